#pragma once
// The HTTP server: Boost.Beast on its own io_context and two threads, serving ApiHandler.
// Limits from [http]: request header size (431), body size (413, refused from the
// Content-Length before the body is read), header-read timeout (the connection is closed),
// max connections (the connection is answered 503 and closed).
#include "segnode/core/result.hpp"
#include "segnode/pipeline/service.hpp"

#include <memory>

namespace segnode::api {

/// `segnode serve` hands this to pipeline::run_service: it starts the API after the SCP and
/// stops it first at shutdown. With http.enabled = false it does nothing.
class HttpService final : public pipeline::ServiceExtension {
public:
    HttpService();
    ~HttpService() override;
    Status start(const pipeline::ServiceContext& context) override;
    void stop() override;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace segnode::api
