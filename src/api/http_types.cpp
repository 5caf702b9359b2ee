#include "segnode/api/http_types.hpp"

#include <nlohmann/json.hpp>

namespace segnode::api {
namespace {

int hex_value(char ch) {
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

} // namespace

std::optional<std::string> HttpRequest::header(const std::string& lower_name) const {
    const auto it = headers.find(lower_name);
    if (it == headers.end()) {
        return std::nullopt;
    }
    return it->second;
}

std::optional<std::string> percent_decode(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out.push_back(text[i]);
            continue;
        }
        if (i + 2 >= text.size()) {
            return std::nullopt;
        }
        const int hi = hex_value(text[i + 1]);
        const int lo = hex_value(text[i + 2]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        const char ch = static_cast<char>(hi * 16 + lo);
        if (ch == '\0') {
            return std::nullopt;
        }
        out.push_back(ch);
        i += 2;
    }
    return out;
}

void split_target(const std::string& target, std::string& path,
                  std::map<std::string, std::string>& query) {
    const auto q = target.find('?');
    path = target.substr(0, q);
    query.clear();
    if (q == std::string::npos) {
        return;
    }
    const std::string qs = target.substr(q + 1);
    std::size_t start = 0;
    while (start <= qs.size()) {
        const auto amp = qs.find('&', start);
        const std::string part = qs.substr(start, amp == std::string::npos ? amp : amp - start);
        if (!part.empty()) {
            const auto eq = part.find('=');
            std::string key = part.substr(0, eq);
            std::string value = eq == std::string::npos ? std::string() : part.substr(eq + 1);
            for (std::string* s : {&key, &value}) {
                for (char& ch : *s) {
                    ch = ch == '+' ? ' ' : ch;
                }
            }
            auto k = percent_decode(key);
            auto v = percent_decode(value);
            if (k && v) {
                query[*k] = *v;
            } else {
                query["\x01invalid"] = part; // reported by the routes as a 400
            }
        }
        if (amp == std::string::npos) {
            break;
        }
        start = amp + 1;
    }
}

const char* reason_phrase(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "Error";
    }
}

HttpResponse problem(int status, const std::string& detail) {
    HttpResponse response;
    response.status = status;
    response.content_type = "application/problem+json";
    const nlohmann::json body = {{"type", "about:blank"},
                                 {"title", reason_phrase(status)},
                                 {"status", status},
                                 {"detail", detail}};
    response.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    return response;
}

} // namespace segnode::api
