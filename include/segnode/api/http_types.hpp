#pragma once
// The request and response the HTTP routes see: plain structs, so routes and their tests
// never include Boost.Beast (only http_server.cpp does).
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace segnode::api {

struct HttpRequest {
    std::string method;                         ///< "GET", "POST", ...
    std::string path;                           ///< percent-encoded path, without the query
    std::map<std::string, std::string> query;   ///< decoded query parameters
    std::map<std::string, std::string> headers; ///< field names in lower case
    std::string body;
    std::string peer_address;
    bool peer_loopback = false;

    [[nodiscard]] std::optional<std::string> header(const std::string& lower_name) const;
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    bool close = false; ///< close the connection after this response
};

/// Splits a request target into path and decoded query parameters.
void split_target(const std::string& target, std::string& path,
                  std::map<std::string, std::string>& query);
/// Percent-decoding ('+' is kept); std::nullopt for a malformed escape or a NUL byte.
std::optional<std::string> percent_decode(const std::string& text);

/// RFC 7807 problem response: application/problem+json with title and detail.
HttpResponse problem(int status, const std::string& detail);
/// The reason phrase of a status code ("Not Found").
const char* reason_phrase(int status);

} // namespace segnode::api
