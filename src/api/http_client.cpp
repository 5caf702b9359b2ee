// The CLI's HTTP(S) client (Boost.Beast, synchronous, one request per connection).
#include "segnode/api/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <openssl/ssl.h>

namespace segnode::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto k_timeout = std::chrono::seconds(60);

template <class Stream>
Result<ClientResponse> read_response(Stream& stream, const ServerUrl& server) {
    beast::error_code ec;
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ULL << 31U);
    http::read(stream, buffer, parser, ec);
    if (ec) {
        return Error{"reading the answer of " + server.host + ":" + server.port + ": " +
                     ec.message()};
    }
    const auto& res = parser.get();
    ClientResponse out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    out.body = res.body();
    return out;
}

template <class Stream>
Result<ClientResponse> exchange(Stream& stream, const ServerUrl& server, const std::string& method,
                                const std::string& target, const std::string& key,
                                const std::string& body) {
    http::request<http::string_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, server.host + ":" + server.port);
    req.set(http::field::user_agent, "segnode-cli");
    req.set(http::field::authorization, "Bearer " + key);
    if (!body.empty()) {
        req.set(http::field::content_type, "application/json");
        req.body() = body;
    }
    req.keep_alive(false);
    req.prepare_payload();
    beast::error_code ec;
    http::write(stream, req, ec);
    if (ec) {
        return Error{"sending to " + server.host + ":" + server.port + ": " + ec.message()};
    }
    return read_response(stream, server);
}

/// Streams a body of `length` bytes produced by `next` (see http_upload), then reads the
/// answer. A server that answers early (401, 413, ...) and closes is heard: its answer is read
/// even when sending the rest failed.
template <class Stream>
Result<ClientResponse> upload(Stream& stream, const ServerUrl& server, const std::string& target,
                              const std::string& key, const std::string& content_type,
                              std::uint64_t length, const BodySource& next) {
    http::request<http::buffer_body> req(http::verb::post, target, 11);
    req.set(http::field::host, server.host + ":" + server.port);
    req.set(http::field::user_agent, "segnode-cli");
    req.set(http::field::authorization, "Bearer " + key);
    req.set(http::field::content_type, content_type);
    req.content_length(length);
    req.keep_alive(false);
    req.body().data = nullptr;
    req.body().more = true;
    http::request_serializer<http::buffer_body> sr(req);
    beast::error_code ec;
    http::write_header(stream, sr, ec);
    std::string send_error;
    std::string piece;
    while (!ec) {
        auto got = next();
        if (!got) {
            return got.error(); // the caller's source failed (a file could not be read)
        }
        piece = std::move(*got);
        req.body().data = piece.empty() ? nullptr : piece.data();
        req.body().size = piece.size();
        req.body().more = !piece.empty();
        http::write(stream, sr, ec);
        if (ec == http::error::need_buffer) {
            ec = {};
        }
        if (piece.empty()) {
            break;
        }
    }
    auto answer = read_response(stream, server);
    if (!answer && ec) {
        return Error{"sending to " + server.host + ":" + server.port + ": " + ec.message()};
    }
    return answer;
}

} // namespace

Result<ServerUrl> parse_server_url(const std::string& url) {
    ServerUrl out;
    std::string rest;
    if (url.rfind("http://", 0) == 0) {
        rest = url.substr(7);
    } else if (url.rfind("https://", 0) == 0) {
        out.tls = true;
        rest = url.substr(8);
    } else {
        return Error{"server URL '" + url + "' must start with http:// or https://"};
    }
    while (!rest.empty() && rest.back() == '/') {
        rest.pop_back();
    }
    if (rest.empty() || rest.find('/') != std::string::npos) {
        return Error{"server URL '" + url + "' must be scheme://host[:port] without a path"};
    }
    const auto colon = rest.rfind(':');
    if (colon != std::string::npos && rest.find(']') == std::string::npos) {
        out.host = rest.substr(0, colon);
        out.port = rest.substr(colon + 1);
        if (out.port.empty() || out.port.find_first_not_of("0123456789") != std::string::npos) {
            return Error{"server URL '" + url + "': '" + out.port + "' is not a port"};
        }
    } else {
        out.host = rest;
        out.port = out.tls ? "443" : "80";
    }
    if (out.host.empty()) {
        return Error{"server URL '" + url + "' has no host"};
    }
    return out;
}

namespace {

/// Connects (TLS: verifies the certificate) and calls `talk(stream)` on the open stream.
template <class Talk>
Result<ClientResponse> with_connection(const ServerUrl& server, const std::string& ca_file,
                                       Talk&& talk) {
    try {
        asio::io_context io;
        tcp::resolver resolver(io);
        beast::error_code ec;
        const auto endpoints = resolver.resolve(server.host, server.port, ec);
        if (ec) {
            return Error{"cannot resolve " + server.host + ": " + ec.message()};
        }
        if (!server.tls) {
            beast::tcp_stream stream(io);
            stream.expires_after(k_timeout);
            stream.connect(endpoints, ec);
            if (ec) {
                return Error{"cannot connect to " + server.host + ":" + server.port + ": " +
                             ec.message()};
            }
            return talk(stream);
        }
        asio::ssl::context tls(asio::ssl::context::tls_client);
        if (ca_file.empty()) {
            tls.set_default_verify_paths(ec);
        } else {
            tls.load_verify_file(ca_file, ec);
        }
        if (ec) {
            return Error{"TLS trust store" + (ca_file.empty() ? std::string() : " " + ca_file) +
                         ": " + ec.message()};
        }
        tls.set_verify_mode(asio::ssl::verify_peer);
        beast::ssl_stream<beast::tcp_stream> stream(io, tls);
        X509_VERIFY_PARAM* param = SSL_get0_param(stream.native_handle());
        if (X509_VERIFY_PARAM_set1_ip_asc(param, server.host.c_str()) != 1) {
            // A host name: send it (SNI) and check the certificate against it.
            // SSL_set_tlsext_host_name() without its C cast.
            if (SSL_ctrl(stream.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                         TLSEXT_NAMETYPE_host_name, const_cast<char*>(server.host.c_str())) != 1 ||
                X509_VERIFY_PARAM_set1_host(param, server.host.c_str(), 0) != 1) {
                return Error{"TLS: cannot check the certificate for " + server.host};
            }
        }
        beast::get_lowest_layer(stream).expires_after(k_timeout);
        beast::get_lowest_layer(stream).connect(endpoints, ec);
        if (ec) {
            return Error{"cannot connect to " + server.host + ":" + server.port + ": " +
                         ec.message()};
        }
        stream.handshake(asio::ssl::stream_base::client, ec);
        if (ec) {
            return Error{"TLS handshake with " + server.host + ":" + server.port + ": " +
                         ec.message()};
        }
        return talk(stream);
    } catch (const std::exception& e) {
        return Error{"HTTP request to " + server.host + ":" + server.port + ": " + e.what()};
    }
}

} // namespace

Result<ClientResponse> http_request(const ServerUrl& server, const std::string& method,
                                    const std::string& target, const std::string& key,
                                    const std::string& body, const std::string& ca_file) {
    return with_connection(server, ca_file, [&](auto& stream) {
        return exchange(stream, server, method, target, key, body);
    });
}

Result<ClientResponse> http_upload(const ServerUrl& server, const std::string& target,
                                   const std::string& key, const std::string& content_type,
                                   std::uint64_t length, const BodySource& next,
                                   const std::string& ca_file) {
    return with_connection(server, ca_file, [&](auto& stream) {
        return upload(stream, server, target, key, content_type, length, next);
    });
}

} // namespace segnode::api
