// The only translation unit with Boost.Beast: accepting, reading with limits and timeouts,
// writing responses. Everything else sees HttpRequest/HttpResponse (http_types.hpp).
#include "segnode/api/http_server.hpp"

#include "segnode/api/api_handler.hpp"
#include "segnode/api/stow.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <map>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace segnode::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto k_body_timeout = std::chrono::seconds(60);
constexpr auto k_write_timeout = std::chrono::seconds(60);
constexpr std::size_t k_drain_limit = 1 << 20;
constexpr std::size_t k_upload_chunk = 256 * 1024;

constexpr auto k_handshake_timeout = std::chrono::seconds(10);

struct Shared {
    Shared(const HttpConfig& c, ApiHandler& h) : config(c), handler(h) {}
    const HttpConfig& config;
    ApiHandler& handler;
    std::atomic<unsigned> connections{0};
    std::unique_ptr<asio::ssl::context> tls; ///< set: HTTPS
};

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

/// One connection, over plain TCP or TLS (the stream type is the only difference).
template <class Stream> class Session : public std::enable_shared_from_this<Session<Stream>> {
public:
    using std::enable_shared_from_this<Session<Stream>>::shared_from_this;

    Session(tcp::socket socket, Shared& shared)
        : m_stream(make_stream(std::move(socket), shared)), m_shared(shared) {
        beast::error_code ec;
        const auto remote = lowest().socket().remote_endpoint(ec);
        if (!ec) {
            m_peer = remote.address().to_string();
            m_loopback = remote.address().is_loopback();
        }
    }
    ~Session() { --m_shared.connections; }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    void start() {
        if constexpr (std::is_same_v<Stream, TlsStream>) {
            lowest().expires_after(k_handshake_timeout);
            m_stream.async_handshake(asio::ssl::stream_base::server,
                                     [self = shared_from_this()](beast::error_code ec) {
                                         if (ec) {
                                             spdlog::info("http: TLS handshake with {} failed: {}",
                                                          self->m_peer, ec.message());
                                             return self->close();
                                         }
                                         self->read_header();
                                     });
        } else {
            read_header();
        }
    }

    /// Answers 503 and closes (after the TLS handshake, if any): http.max_connections are open.
    void start_rejected() {
        if constexpr (std::is_same_v<Stream, TlsStream>) {
            lowest().expires_after(k_handshake_timeout);
            m_stream.async_handshake(asio::ssl::stream_base::server,
                                     [self = shared_from_this()](beast::error_code ec) {
                                         if (ec) {
                                             return self->close();
                                         }
                                         self->reject();
                                     });
        } else {
            reject();
        }
    }

    void reject() {
        refuse(503,
               "too many connections (http.max_connections = " +
                   std::to_string(m_shared.config.max_connections) + "); try again later",
               "(max connections)");
    }

private:
    static Stream make_stream(tcp::socket socket, Shared& shared) {
        if constexpr (std::is_same_v<Stream, TlsStream>) {
            return Stream(std::move(socket), *shared.tls);
        } else {
            return Stream(std::move(socket));
        }
    }

    beast::tcp_stream& lowest() { return beast::get_lowest_layer(m_stream); }

    void read_header() {
        m_parser.emplace();
        m_parser->header_limit(m_shared.config.max_header_bytes);
        // The larger of the two limits until the route is known (on_header applies the right
        // one): a Content-Length over it is refused before the body is read.
        m_parser->body_limit(
            std::max<std::uint64_t>(m_shared.config.max_body_bytes, upload_limit()));
        lowest().expires_after(std::chrono::seconds(m_shared.config.header_timeout_s));
        http::async_read_header(m_stream, m_buffer, *m_parser,
                                beast::bind_front_handler(&Session::on_header, shared_from_this()));
    }

    void on_header(beast::error_code ec, std::size_t /*bytes*/) {
        if (ec == beast::error::timeout) {
            m_shared.handler.count_header_timeout();
            spdlog::info("http: {} sent no complete request headers within {} s; disconnected",
                         m_peer, m_shared.config.header_timeout_s);
            return; // tcp_stream closed the socket
        }
        if (ec == http::error::header_limit) {
            return refuse(431,
                          "the request line and headers exceed http.max_header_bytes (" +
                              std::to_string(m_shared.config.max_header_bytes) + " bytes)",
                          "(header limit)");
        }
        if (ec == http::error::body_limit) {
            const auto length = m_parser->content_length();
            return refuse(
                413,
                "the request body" +
                    (length ? " of " + std::to_string(*length) + " bytes" : std::string()) +
                    " exceeds http.max_body_bytes (" +
                    std::to_string(m_shared.config.max_body_bytes) +
                    " bytes) and, for uploads, http.max_upload_mb (" +
                    std::to_string(m_shared.config.max_upload_mb) + " MiB)",
                "(body limit)");
        }
        if (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
            ec == asio::error::eof || ec == asio::error::operation_aborted) {
            return close();
        }
        if (ec) {
            if (m_buffer.size() == 0 && !m_parser->got_some()) {
                return close();
            }
            return refuse(400, "malformed HTTP request: " + ec.message(), "(malformed)");
        }
        if (ApiHandler::is_upload(std::string(m_parser->get().method_string()), target_path())) {
            return start_upload();
        }
        const auto length = m_parser->content_length();
        if (length && *length > m_shared.config.max_body_bytes) {
            return refuse(413,
                          "the request body of " + std::to_string(*length) +
                              " bytes exceeds http.max_body_bytes (" +
                              std::to_string(m_shared.config.max_body_bytes) + " bytes)",
                          "(body limit)");
        }
        if (m_parser->is_done()) {
            return handle();
        }
        m_parser->body_limit(m_shared.config.max_body_bytes); // for a chunked body
        lowest().expires_after(k_body_timeout);
        http::async_read(m_stream, m_buffer, *m_parser,
                         beast::bind_front_handler(&Session::on_body, shared_from_this()));
    }

    void on_body(beast::error_code ec, std::size_t /*bytes*/) {
        if (ec == http::error::body_limit) {
            return refuse(413,
                          "the request body exceeds http.max_body_bytes (" +
                              std::to_string(m_shared.config.max_body_bytes) + " bytes)",
                          "(body limit)");
        }
        if (ec) {
            return close();
        }
        handle();
    }

    [[nodiscard]] std::uint64_t upload_limit() const {
        return static_cast<std::uint64_t>(m_shared.config.max_upload_mb) * 1024 * 1024;
    }

    std::string target_path() const {
        std::string path;
        std::map<std::string, std::string> query;
        split_target(std::string(m_parser->get().target()), path, query);
        return path;
    }

    /// The request as the routes see it, without its body.
    HttpRequest header_request() const {
        const auto& req = m_parser->get();
        HttpRequest request;
        request.method = std::string(req.method_string());
        split_target(std::string(req.target()), request.path, request.query);
        for (const auto& field : req) {
            std::string name(field.name_string());
            for (char& ch : name) {
                ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            }
            request.headers[name] = std::string(field.value());
        }
        request.peer_address = m_peer;
        request.peer_loopback = m_loopback;
        return request;
    }

    // --- STOW-RS: the body is streamed through StowUpload, never held in memory ----------

    void start_upload() {
        const HttpRequest request = header_request();
        UploadStart started = m_shared.handler.begin_upload(request);
        if (!started.upload) {
            return refuse(started.refusal, k_upload_route);
        }
        m_upload = std::move(started.upload);
        m_filled = 0;
        m_armed_at = {};
        m_upload_parser.emplace(std::move(*m_parser));
        m_upload_parser->body_limit(upload_limit());
        m_chunk.resize(k_upload_chunk);
        // Beast reads as much as the buffer's free capacity (at least 512 bytes): without
        // room, a 50 MB upload took ~100 000 reads of 512 bytes.
        m_buffer.reserve(m_buffer.size() + k_upload_chunk);
        if (request.header("expect") && lower_copy(*request.header("expect")) == "100-continue") {
            static const std::string k_continue = "HTTP/1.1 100 Continue\r\n\r\n";
            lowest().expires_after(k_write_timeout);
            asio::async_write(m_stream, asio::buffer(k_continue),
                              [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                  if (ec) {
                                      self->m_upload.reset(); // recorded as aborted
                                      return self->close();
                                  }
                                  self->read_upload();
                              });
            return;
        }
        read_upload();
    }

    void read_upload() {
        auto& body = m_upload_parser->get().body();
        body.data = m_chunk.data() + m_filled;
        body.size = m_chunk.size() - m_filled;
        // Re-arming the timer is a system call: once a second is enough for a 60 s timeout.
        const auto now = std::chrono::steady_clock::now();
        if (now - m_armed_at > std::chrono::seconds(1)) {
            lowest().expires_after(k_body_timeout);
            m_armed_at = now;
        }
        http::async_read_some(m_stream, m_buffer, *m_upload_parser,
                              beast::bind_front_handler(&Session::on_upload, shared_from_this()));
    }

    void on_upload(beast::error_code ec, std::size_t /*bytes*/) {
        if (ec == http::error::need_buffer) {
            ec = {};
        }
        if (ec == http::error::body_limit) {
            HttpResponse r =
                m_upload->abort(413, "the upload exceeds http.max_upload_mb (" +
                                         std::to_string(m_shared.config.max_upload_mb) + " MiB)");
            return end_upload(std::move(r), true);
        }
        if (ec) {
            spdlog::info("http: STOW-RS upload {} from {} ended before its body was complete: "
                         "{}",
                         m_upload->association_id(), m_peer, ec.message());
            m_upload.reset(); // the part in progress is removed, the upload recorded as aborted
            m_upload_parser.reset();
            return close();
        }
        const std::size_t got = m_chunk.size() - m_upload_parser->get().body().size;
        // Fill the chunk while more of the body is already waiting on the socket: fewer and
        // larger writes; what has arrived is processed as soon as nothing more is waiting.
        beast::error_code waiting_ec;
        if (!m_upload_parser->is_done() && got < m_chunk.size() &&
            lowest().socket().available(waiting_ec) > 0 && !waiting_ec) {
            m_filled = got;
            return read_upload();
        }
        m_filled = 0;
        if (got > 0) {
            if (auto stopped = m_upload->feed(std::string_view(m_chunk.data(), got))) {
                return end_upload(std::move(*stopped), true);
            }
        }
        if (m_upload_parser->is_done()) {
            return end_upload(m_upload->finish(), false);
        }
        read_upload();
    }

    void end_upload(HttpResponse response, bool close_after) {
        const bool keep_alive = m_upload_parser->get().keep_alive() && !close_after;
        const unsigned version = m_upload_parser->get().version();
        m_upload.reset();
        m_upload_parser.reset();
        m_shared.handler.count_response(k_upload_route, response.status);
        response.close = response.close || close_after;
        write(std::move(response), keep_alive, version);
    }

    static std::string lower_copy(std::string s) {
        for (char& ch : s) {
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        }
        return s;
    }

    void handle() {
        HttpRequest request = header_request();
        auto& req = m_parser->get();
        request.body = std::move(req.body());
        const bool keep_alive = req.keep_alive();
        const unsigned version = req.version();
        const std::string method = request.method;
        const std::string path = request.path;
        // Routes that may wait answer later from the handler's worker threads: the response
        // is written back on this connection's strand, so the I/O threads never wait.
        auto done = [self = shared_from_this(), keep_alive, version](HttpResponse response) {
            asio::dispatch(self->lowest().get_executor(),
                           [self, response = std::move(response), keep_alive, version]() mutable {
                               self->write(std::move(response), keep_alive, version);
                           });
        };
        try {
            m_shared.handler.handle_async(std::move(request), done);
        } catch (const std::exception& e) {
            spdlog::error("http: {} {}: internal error: {}", method, path, e.what());
            done(problem(500, "internal error; see the node's log"));
        }
    }

    void refuse(int status, const std::string& detail, const std::string& route) {
        refuse(problem(status, detail), route);
    }

    void refuse(HttpResponse response, const std::string& route) {
        m_shared.handler.count_response(route, response.status);
        response.close = true;
        write(std::move(response), false, 11);
    }

    void write(HttpResponse response, bool keep_alive, unsigned version) {
        auto res = std::make_shared<http::response<http::string_body>>(
            static_cast<http::status>(response.status), version);
        res->set(http::field::server, "segnode");
        res->set(http::field::content_type, response.content_type);
        for (const auto& [name, value] : response.headers) {
            res->set(name, value);
        }
        res->body() = std::move(response.body);
        const bool close_after = response.close || !keep_alive;
        res->keep_alive(!close_after);
        res->prepare_payload();
        lowest().expires_after(k_write_timeout);
        http::async_write(
            m_stream, *res,
            [self = shared_from_this(), res, close_after](beast::error_code ec, std::size_t) {
                if (ec) {
                    return self->close();
                }
                if (close_after) {
                    return self->drain_and_close();
                }
                self->read_header();
            });
    }

    // After refusing a request whose body we did not read, read a little of what the client
    // is still sending so that closing does not reset the connection before it reads the
    // response.
    void drain_and_close() {
        if constexpr (std::is_same_v<Stream, TlsStream>) {
            return close();
        }
        beast::error_code ec;
        lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
        lowest().expires_after(std::chrono::seconds(2));
        m_drain.resize(65536);
        drain_more();
    }

    void drain_more() {
        lowest().async_read_some(asio::buffer(m_drain),
                                 [self = shared_from_this()](beast::error_code e, std::size_t n) {
                                     self->m_drained += n;
                                     if (e || self->m_drained > k_drain_limit) {
                                         return self->close();
                                     }
                                     self->drain_more();
                                 });
    }

    void close() {
        if constexpr (std::is_same_v<Stream, TlsStream>) {
            if (!m_tls_closing) {
                m_tls_closing = true;
                lowest().expires_after(std::chrono::seconds(2));
                m_stream.async_shutdown([self = shared_from_this()](beast::error_code) {
                    beast::error_code ec;
                    self->lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
                    self->lowest().close();
                });
                return;
            }
        }
        beast::error_code ec;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
        lowest().close();
    }

    Stream m_stream;
    bool m_tls_closing = false;
    beast::flat_buffer m_buffer;
    std::optional<http::request_parser<http::string_body>> m_parser;
    std::optional<http::request_parser<http::buffer_body>> m_upload_parser;
    std::unique_ptr<StowUpload> m_upload;
    std::vector<char> m_chunk;
    std::size_t m_filled = 0; ///< bytes of m_chunk read but not yet fed
    std::chrono::steady_clock::time_point m_armed_at{};
    static constexpr const char* k_upload_route = "/api/v1/studies";
    Shared& m_shared;
    std::string m_peer;
    bool m_loopback = false;
    std::vector<char> m_drain;
    std::size_t m_drained = 0;
};

} // namespace

struct HttpService::Impl {
    std::unique_ptr<ApiHandler> handler;
    std::unique_ptr<Shared> shared;
    /// Destroyed in stop(): its pending handlers own sessions, and a session's upload in
    /// progress reports its end to the Receiver, which does not outlive run_service.
    std::unique_ptr<asio::io_context> io = std::make_unique<asio::io_context>(2);
    std::optional<tcp::acceptor> acceptor;
    std::vector<std::thread> threads;
    bool running = false;

    void accept() {
        acceptor->async_accept(asio::make_strand(*io), [this](beast::error_code ec,
                                                              tcp::socket socket) {
            if (ec == asio::error::operation_aborted || !acceptor->is_open()) {
                return;
            }
            if (!ec) {
                socket.set_option(tcp::no_delay(true), ec);
                const unsigned active = ++shared->connections;
                if (shared->tls) {
                    start_session(std::make_shared<Session<TlsStream>>(std::move(socket), *shared),
                                  active);
                } else {
                    start_session(
                        std::make_shared<Session<PlainStream>>(std::move(socket), *shared), active);
                }
            }
            accept();
        });
    }

    template <class SessionPtr> void start_session(SessionPtr session, unsigned active) {
        start_session_impl(*shared, *handler, std::move(session), active);
    }
};

template <class SessionPtr>
void start_session_impl(Shared& shared, ApiHandler& handler, SessionPtr session, unsigned active) {
    if (active > shared.config.max_connections) {
        handler.count_connection_refused();
        spdlog::warn("http: {} connections open (http.max_connections); refusing one", active - 1);
        session->start_rejected();
    } else {
        session->start();
    }
}

HttpService::HttpService() : m_impl(std::make_unique<Impl>()) {}

HttpService::~HttpService() {
    stop();
}

Status HttpService::start(const pipeline::ServiceContext& context) {
    const HttpConfig& config = context.config.http;
    if (!config.enabled) {
        spdlog::info("HTTP API disabled (http.enabled = false)");
        return ok_status();
    }
    m_impl->handler = std::make_unique<ApiHandler>(context);
    m_impl->shared = std::make_unique<Shared>(config, *m_impl->handler);
    if (!config.tls_cert_file.empty()) {
        auto tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
        beast::error_code tls_ec;
        tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                             asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                             asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use,
                         tls_ec);
        tls->use_certificate_chain_file(config.tls_cert_file, tls_ec);
        if (tls_ec) {
            return Error{"http.tls.cert_file: cannot use '" + config.tls_cert_file +
                         "' as a PEM certificate chain: " + tls_ec.message()};
        }
        tls->use_private_key_file(config.tls_key_file, asio::ssl::context::pem, tls_ec);
        if (tls_ec) {
            return Error{"http.tls.key_file: cannot use '" + config.tls_key_file +
                         "' as a PEM private key: " + tls_ec.message()};
        }
        if (SSL_CTX_check_private_key(tls->native_handle()) != 1) {
            return Error{"http.tls: the private key " + config.tls_key_file +
                         " does not belong to the certificate " + config.tls_cert_file};
        }
        m_impl->shared->tls = std::move(tls);
    }
    beast::error_code ec;
    const auto address = asio::ip::make_address_v4(config.bind_address, ec);
    if (ec) {
        return Error{"http.bind_address: '" + config.bind_address + "': " + ec.message()};
    }
    const tcp::endpoint endpoint(address, config.port);
    auto& acceptor = m_impl->acceptor.emplace(*m_impl->io);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) {
        acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
        acceptor.bind(endpoint, ec);
    }
    if (!ec) {
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        return Error{"HTTP API: cannot listen on " + config.bind_address + ":" +
                     std::to_string(config.port) + ": " + ec.message() +
                     " (http.bind_address, http.port; http.enabled = false turns the API off)"};
    }
    m_impl->accept();
    for (int i = 0; i < 2; ++i) {
        m_impl->threads.emplace_back([this] {
            // Under CPU contention the DICOM receiver and the job workers go first: the API
            // threads run at nice +10 (Linux applies it to this thread only).
            if (setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10) != 0) {
                spdlog::debug("http: cannot lower the API threads' priority");
            }
            m_impl->io->run();
        });
    }
    m_impl->running = true;
    spdlog::info("HTTP API on {}://{}:{}/ (docs/api.md)", m_impl->shared->tls ? "https" : "http",
                 config.bind_address, config.port);
    return ok_status();
}

void HttpService::stop() {
    if (!m_impl || !m_impl->running) {
        return;
    }
    m_impl->running = false;
    asio::post(*m_impl->io, [this] {
        beast::error_code ec;
        m_impl->acceptor->close(ec);
    });
    // Requests in progress get a moment to finish, then the loop stops.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (m_impl->shared->connections.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    m_impl->io->stop();
    for (std::thread& t : m_impl->threads) {
        t.join();
    }
    m_impl->threads.clear();
    m_impl->handler->stop(); // offloaded requests finish; their answers go nowhere now
    // Sessions still open (an unfinished upload) end here, while the Receiver exists; the
    // answers of offloaded requests queued on the stopped loop go with them.
    m_impl->acceptor.reset();
    m_impl->io.reset();
    spdlog::info("HTTP API stopped");
}

} // namespace segnode::api
