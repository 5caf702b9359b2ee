#pragma once
// The HTTP API's routes, authentication and metrics, in plain C++ over HttpRequest and
// HttpResponse (docs/api.md). One ApiHandler serves every connection and is thread-safe.
// The server calls handle_async() from its I/O threads: routes that only read the database
// answer there at once; routes that may wait (database writes behind the node's writer lock,
// files read from disk, a C-ECHO to a peer) run on the handler's own worker threads and
// complete later, so the I/O threads never wait on them.
#include "segnode/api/api_keys.hpp"
#include "segnode/api/http_types.hpp"
#include "segnode/pipeline/service.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace segnode::api {

/// The role order: read < submit < admin.
int role_rank(Role role);

class StowUpload;

/// The start of a streamed upload: the upload to feed, or the response refusing it.
struct UploadStart {
    std::unique_ptr<StowUpload> upload;
    HttpResponse refusal;
};

class ApiHandler {
public:
    explicit ApiHandler(const pipeline::ServiceContext& context);
    ~ApiHandler();
    ApiHandler(const ApiHandler&) = delete;
    ApiHandler& operator=(const ApiHandler&) = delete;

    /// Answers a request on the calling thread, whatever the route (tests, tools).
    HttpResponse handle(const HttpRequest& request);

    /// Answers a request: `done` is called exactly once, on the calling thread for routes that
    /// answer at once, else on a worker thread of this handler.
    void handle_async(HttpRequest request, std::function<void(HttpResponse)> done);

    /// Waits for the work handed to the worker threads and stops them; later offloaded
    /// requests are answered 503. Called by the server after its I/O threads stopped.
    void stop();

    /// POST /api/v1/studies (STOW-RS): the server streams its body instead of calling
    /// handle(). True for the method and path of that route.
    static bool is_upload(const std::string& method, const std::string& path);
    /// Checks an upload's headers (key and role, media type, Content-Length against
    /// http.max_upload_mb) before any of its body is read; `request.body` is not used.
    UploadStart begin_upload(const HttpRequest& request);

    /// Counted by the server for /metrics: connections refused over http.max_connections,
    /// clients cut off for not sending their headers in time.
    void count_connection_refused() { ++m_connections_refused; }
    void count_header_timeout() { ++m_header_timeouts; }
    /// Records a response the server produced itself (413, 431, 400) for /metrics.
    void count_response(const std::string& route, int status);

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
    std::atomic<std::uint64_t> m_connections_refused{0};
    std::atomic<std::uint64_t> m_header_timeouts{0};
    friend struct Impl;
};

} // namespace segnode::api
