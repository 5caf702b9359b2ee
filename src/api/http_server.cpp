// The only translation unit with Boost.Beast: accepting, reading with limits and timeouts,
// writing responses. Everything else sees HttpRequest/HttpResponse (http_types.hpp).
#include "segnode/api/http_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <spdlog/spdlog.h>
#include <thread>
#include <vector>

#include "segnode/api/api_handler.hpp"

namespace segnode::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto k_body_timeout = std::chrono::seconds(60);
constexpr auto k_write_timeout = std::chrono::seconds(60);
constexpr std::size_t k_drain_limit = 1 << 20;

struct Shared {
    Shared(const HttpConfig& c, ApiHandler& h) : config(c), handler(h) {}
    const HttpConfig& config;
    ApiHandler& handler;
    std::atomic<unsigned> connections{0};
};

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket socket, Shared& shared) : m_stream(std::move(socket)), m_shared(shared) {
        beast::error_code ec;
        const auto remote = m_stream.socket().remote_endpoint(ec);
        if (!ec) {
            m_peer = remote.address().to_string();
            m_loopback = remote.address().is_loopback();
        }
    }
    ~Session() { --m_shared.connections; }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    void start() { read_header(); }

    /// Answers 503 and closes: http.max_connections are open.
    void reject() {
        refuse(503, "too many connections (http.max_connections = " +
                        std::to_string(m_shared.config.max_connections) + "); try again later",
               "(max connections)");
    }

private:
    void read_header() {
        m_parser.emplace();
        m_parser->header_limit(m_shared.config.max_header_bytes);
        m_parser->body_limit(m_shared.config.max_body_bytes);
        m_stream.expires_after(std::chrono::seconds(m_shared.config.header_timeout_s));
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
            return refuse(431, "the request line and headers exceed http.max_header_bytes (" +
                                   std::to_string(m_shared.config.max_header_bytes) + " bytes)",
                          "(header limit)");
        }
        if (ec == http::error::body_limit) {
            const auto length = m_parser->content_length();
            return refuse(413, "the request body" +
                                   (length ? " of " + std::to_string(*length) + " bytes"
                                           : std::string()) +
                                   " exceeds http.max_body_bytes (" +
                                   std::to_string(m_shared.config.max_body_bytes) + " bytes)",
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
        const auto length = m_parser->content_length();
        if (length && *length > m_shared.config.max_body_bytes) {
            return refuse(413, "the request body of " + std::to_string(*length) +
                                   " bytes exceeds http.max_body_bytes (" +
                                   std::to_string(m_shared.config.max_body_bytes) + " bytes)",
                          "(body limit)");
        }
        if (m_parser->is_done()) {
            return handle();
        }
        m_stream.expires_after(k_body_timeout);
        http::async_read(m_stream, m_buffer, *m_parser,
                         beast::bind_front_handler(&Session::on_body, shared_from_this()));
    }

    void on_body(beast::error_code ec, std::size_t /*bytes*/) {
        if (ec == http::error::body_limit) {
            return refuse(413, "the request body exceeds http.max_body_bytes (" +
                                   std::to_string(m_shared.config.max_body_bytes) + " bytes)",
                          "(body limit)");
        }
        if (ec) {
            return close();
        }
        handle();
    }

    void handle() {
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
        request.body = req.body();
        request.peer_address = m_peer;
        request.peer_loopback = m_loopback;
        HttpResponse response;
        try {
            response = m_shared.handler.handle(request);
        } catch (const std::exception& e) {
            spdlog::error("http: {} {}: internal error: {}", request.method, request.path,
                          e.what());
            response = problem(500, "internal error; see the node's log");
        }
        write(std::move(response), req.keep_alive(), req.version());
    }

    void refuse(int status, const std::string& detail, const std::string& route) {
        m_shared.handler.count_response(route, status);
        HttpResponse response = problem(status, detail);
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
        m_stream.expires_after(k_write_timeout);
        http::async_write(m_stream, *res,
                          [self = shared_from_this(), res, close_after](beast::error_code ec,
                                                                        std::size_t) {
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
        beast::error_code ec;
        m_stream.socket().shutdown(tcp::socket::shutdown_send, ec);
        m_stream.expires_after(std::chrono::seconds(2));
        m_drain.resize(65536);
        m_stream.async_read_some(asio::buffer(m_drain),
                                 [self = shared_from_this()](beast::error_code e, std::size_t n) {
                                     self->m_drained += n;
                                     if (e || self->m_drained > k_drain_limit) {
                                         return self->close();
                                     }
                                     self->drain_more();
                                 });
    }

    void drain_more() {
        m_stream.async_read_some(asio::buffer(m_drain),
                                 [self = shared_from_this()](beast::error_code e, std::size_t n) {
                                     self->m_drained += n;
                                     if (e || self->m_drained > k_drain_limit) {
                                         return self->close();
                                     }
                                     self->drain_more();
                                 });
    }

    void close() {
        beast::error_code ec;
        m_stream.socket().shutdown(tcp::socket::shutdown_both, ec);
        m_stream.close();
    }

    beast::tcp_stream m_stream;
    beast::flat_buffer m_buffer;
    std::optional<http::request_parser<http::string_body>> m_parser;
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
    asio::io_context io{2};
    std::optional<tcp::acceptor> acceptor;
    std::vector<std::thread> threads;
    bool running = false;

    void accept() {
        acceptor->async_accept(asio::make_strand(io), [this](beast::error_code ec,
                                                             tcp::socket socket) {
            if (ec == asio::error::operation_aborted || !acceptor->is_open()) {
                return;
            }
            if (!ec) {
                socket.set_option(tcp::no_delay(true), ec);
                const unsigned active = ++shared->connections;
                auto session = std::make_shared<Session>(std::move(socket), *shared);
                if (active > shared->config.max_connections) {
                    handler->count_connection_refused();
                    spdlog::warn("http: {} connections open (http.max_connections); refusing "
                                 "one",
                                 active - 1);
                    session->reject();
                } else {
                    session->start();
                }
            }
            accept();
        });
    }
};

HttpService::HttpService() : m_impl(std::make_unique<Impl>()) {}

HttpService::~HttpService() { stop(); }

Status HttpService::start(const pipeline::ServiceContext& context) {
    const HttpConfig& config = context.config.http;
    if (!config.enabled) {
        spdlog::info("HTTP API disabled (http.enabled = false)");
        return ok_status();
    }
    m_impl->handler = std::make_unique<ApiHandler>(context);
    m_impl->shared = std::make_unique<Shared>(config, *m_impl->handler);
    beast::error_code ec;
    const auto address = asio::ip::make_address_v4(config.bind_address, ec);
    if (ec) {
        return Error{"http.bind_address: '" + config.bind_address + "': " + ec.message()};
    }
    const tcp::endpoint endpoint(address, config.port);
    auto& acceptor = m_impl->acceptor.emplace(m_impl->io);
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
        m_impl->threads.emplace_back([this] { m_impl->io.run(); });
    }
    m_impl->running = true;
    spdlog::info("HTTP API on http://{}:{}/ (docs/api.md)", config.bind_address, config.port);
    return ok_status();
}

void HttpService::stop() {
    if (!m_impl || !m_impl->running) {
        return;
    }
    m_impl->running = false;
    asio::post(m_impl->io, [this] {
        beast::error_code ec;
        m_impl->acceptor->close(ec);
    });
    // Requests in progress get a moment to finish, then the loop stops.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (m_impl->shared->connections.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    m_impl->io.stop();
    for (std::thread& t : m_impl->threads) {
        t.join();
    }
    m_impl->threads.clear();
    spdlog::info("HTTP API stopped");
}

} // namespace segnode::api
