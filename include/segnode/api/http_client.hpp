#pragma once
// A small blocking HTTP(S) client for the admin CLI acting on a remote node (`--server URL`).
// The key goes in an Authorization header; it is never part of the URL or an argument.
#include <string>

#include "segnode/core/result.hpp"

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
                                    const std::string& body = {},
                                    const std::string& ca_file = {});

} // namespace segnode::api
