#pragma once
// A small blocking HTTP(S) client for the admin CLI acting on a remote node (`--server URL`).
// The key goes in an Authorization header; it is never part of the URL or an argument.
#include "segnode/core/result.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace segnode::api {

struct ClientResponse {
    int status = 0;
    std::string content_type;
    std::string body;
};

struct ServerUrl {
    bool tls = false;
    std::string host;
    std::string port;
};

/// Parses "http://host[:port]" or "https://host[:port]" (a trailing '/' is allowed; no path).
Result<ServerUrl> parse_server_url(const std::string& url);

/// One request with `Authorization: Bearer <key>`. HTTPS verifies the server's certificate
/// against the system's CAs, or only `ca_file` when given. Errors name the server and reason.
Result<ClientResponse> http_request(const ServerUrl& server, const std::string& method,
                                    const std::string& target, const std::string& key,
                                    const std::string& body = {}, const std::string& ca_file = {});

/// The pieces of a streamed request body: each call returns the next piece, an empty string
/// at the end, or an error that stops the request.
using BodySource = std::function<Result<std::string>()>;

/// A POST whose body (`length` bytes of `content_type`) is streamed from `next`, so an upload
/// never has to be held in memory. The answer is read even if the server answered before the
/// whole body was sent (a 401, 413 or 415 refusing it).
Result<ClientResponse> http_upload(const ServerUrl& server, const std::string& target,
                                   const std::string& key, const std::string& content_type,
                                   std::uint64_t length, const BodySource& next,
                                   const std::string& ca_file = {});

} // namespace segnode::api
