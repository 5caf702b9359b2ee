// Routes, authentication and metrics of the HTTP API (docs/api.md). Plain C++: the Beast
// server (http_server.cpp) turns each request into an HttpRequest and calls handle().
#include "segnode/api/api_handler.hpp"

#include "segnode/api/stow.hpp"
#include "segnode/core/clock.hpp"
#include "segnode/core/version.hpp"
#include "segnode/dicom/receive_handler.hpp"
#include "segnode/dicom/store_scu.hpp"
#include "segnode/pipeline/disk_guard.hpp"
#include "segnode/pipeline/external_algorithm.hpp"
#include "segnode/pipeline/job_service.hpp"
#include "segnode/pipeline/receiver.hpp"
#include "segnode/pipeline/routing.hpp"
#include "segnode/pipeline/series_taken.hpp"
#include "segnode/store/api_key_repo.hpp"
#include "segnode/store/job_repo.hpp"
#include "segnode/store/receive_index.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sstream>
#include <string_view>
#include <sys/statvfs.h>
#include <vector>

namespace segnode::api {

std::string_view openapi_yaml(); // generated from docs/openapi.yaml

namespace {

using nlohmann::json;
using Params = std::vector<std::string>;

constexpr std::int64_t k_touch_interval_ms = 60000;
constexpr std::int64_t k_default_limit = 50;
constexpr std::int64_t k_max_limit = 1000;

/// Who is asking: no key (public routes, loopback metrics) or a verified key.
struct Caller {
    std::optional<store::ApiKeyRow> key;
    Role role = Role::Read;

    [[nodiscard]] bool sees_all_jobs() const { return !key || role != Role::Submit; }
};

enum class Access { Public, Metrics, Read, Submit, Admin };

/// Where a route runs: on the server's I/O thread (short database reads only), or on the
/// handler's worker threads (anything that may wait: a write behind the writer lock, file
/// reads, the network).
enum class Runs { Inline, Worker };

struct Route {
    std::string method;
    std::string pattern; ///< "/api/v1/jobs/{id}": also the metrics label
    Access access;
    std::function<HttpResponse(const HttpRequest&, const Caller&, const Params&)> handler;
    Runs runs = Runs::Inline;
    std::vector<std::string> segments;
};

constexpr std::size_t k_worker_threads = 4;

std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> parts;
    std::size_t start = 1;
    if (path.empty() || path[0] != '/') {
        return parts;
    }
    while (start <= path.size()) {
        const auto slash = path.find('/', start);
        parts.push_back(path.substr(start, slash == std::string::npos ? slash : slash - start));
        if (slash == std::string::npos) {
            break;
        }
        start = slash + 1;
    }
    return parts;
}

HttpResponse json_response(int status, const json& body) {
    HttpResponse response;
    response.status = status;
    response.body = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    return response;
}

json opt_time(const std::optional<std::int64_t>& ms) {
    return ms ? json(format_utc_ms(*ms)) : json(nullptr);
}

std::string lower(std::string s) {
    for (char& ch : s) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    return s;
}

std::optional<std::int64_t> parse_id(const std::string& text) {
    if (text.empty() || text.size() > 18 ||
        text.find_first_not_of("0123456789") != std::string::npos) {
        return std::nullopt;
    }
    return std::stoll(text);
}

/// The download names of a job_outputs row: seg.dcm, rtstruct.dcm, and for the label map
/// labels.nii.gz with segments.json (one row, two files side by side in jobs/<id>/).
std::vector<std::string> output_names(const std::string& kind) {
    if (kind == "labelmap") {
        return {pipeline::k_labels_file, pipeline::k_segments_file};
    }
    return {kind + ".dcm"};
}

/// Where the file `name` of output row `o` is, relative to the working directory.
std::filesystem::path output_relpath(const store::JobOutput& o, const std::string& name) {
    const std::filesystem::path rel(o.relpath);
    return name == pipeline::k_segments_file ? rel.parent_path() / name : rel;
}

std::string output_content_type(const std::string& name) {
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".dcm") == 0) {
        return "application/dicom";
    }
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) {
        return "application/json";
    }
    return "application/gzip";
}

/// One entry per downloadable file of a job's outputs.
json output_files(const std::filesystem::path& root, const std::string& job_id,
                  const std::vector<store::JobOutput>& outputs, bool detail) {
    json items = json::array();
    for (const store::JobOutput& o : outputs) {
        for (const std::string& name : output_names(o.kind)) {
            std::error_code ec;
            const auto size = name == pipeline::k_segments_file
                                  ? std::filesystem::file_size(root / output_relpath(o, name), ec)
                                  : static_cast<std::uintmax_t>(o.size_bytes);
            json item = {{"name", name},
                         {"href", "/api/v1/jobs/" + job_id + "/outputs/" + name},
                         {"size_bytes", ec ? 0 : size}};
            if (detail) {
                item["kind"] = o.kind;
                item["content_type"] = output_content_type(name);
                const bool dicom = o.kind != "labelmap";
                item["sop_class_uid"] = dicom ? json(o.sop_class_uid) : json(nullptr);
                item["sop_instance_uid"] = dicom ? json(o.sop_instance_uid) : json(nullptr);
                item["series_uid"] = dicom ? json(o.series_uid) : json(nullptr);
                item["sent_at"] = opt_time(o.sent_at);
            }
            items.push_back(std::move(item));
        }
    }
    return items;
}

json outputs_list(const std::string& text) {
    json out = json::array();
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        out.push_back(item);
    }
    return out;
}

/// One page of a listing fetched with limit + 1 rows: the first `limit` as items, and the id of
/// the last of them as the cursor of the next page when there was one more row.
template <class Row, class ToJson>
json page_json(const std::vector<Row>& rows, std::int64_t limit, ToJson&& to_json) {
    json items = json::array();
    const auto shown = std::min(rows.size(), static_cast<std::size_t>(limit));
    for (std::size_t i = 0; i < shown; ++i) {
        items.push_back(to_json(rows[i]));
    }
    json body = {{"items", items}};
    body["next_cursor"] =
        rows.size() > shown ? json(std::to_string(rows[shown - 1].id)) : json(nullptr);
    return body;
}

/// Appends `text` as a JSON string. ASCII is escaped here; text with other bytes goes through
/// nlohmann (invalid UTF-8 replaced), so the answer is always valid JSON.
void append_quoted(std::string& out, std::string_view text) {
    if (std::any_of(text.begin(), text.end(),
                    [](char ch) { return static_cast<unsigned char>(ch) >= 0x80; })) {
        out += json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace);
        return;
    }
    out += '"';
    for (const char ch : text) {
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (static_cast<unsigned char>(ch) < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(ch));
            out += escaped;
        } else {
            out += ch;
        }
    }
    out += '"';
}

void append_time(std::string& out, const std::optional<std::int64_t>& ms) {
    if (ms) {
        append_quoted(out, format_utc_ms(*ms));
    } else {
        out += "null";
    }
}

/// A job as JSON text, written straight into `out`: the job listing is the API's largest
/// frequent answer, and building a JSON tree for it cost ~15 us per job (see bench/README.md).
void append_job_json(std::string& out, const store::JobRow& j) {
    const std::string id = std::to_string(j.id);
    out += "{\"id\":" + id + ",\"href\":\"/api/v1/jobs/" + id + "\",\"state\":";
    append_quoted(out, store::to_string(j.state));
    out += j.cancel_requested ? ",\"cancel_requested\":true" : ",\"cancel_requested\":false";
    out += ",\"series_uid\":";
    append_quoted(out, j.spec.series_uid);
    out += ",\"algorithm\":";
    append_quoted(out, j.spec.algorithm);
    out += ",\"algorithm_version\":";
    append_quoted(out, j.spec.algorithm_version);
    out += ",\"settings\":{";
    bool first = true;
    for (const auto& [k, v] : pipeline::parse_settings_text(j.spec.settings)) {
        out += first ? "" : ",";
        first = false;
        append_quoted(out, k);
        out += ':';
        append_quoted(out, v);
    }
    out += "},\"outputs\":[";
    std::string_view outputs = j.spec.outputs;
    for (bool more = !outputs.empty(); more;) {
        const auto comma = outputs.find(',');
        append_quoted(out, outputs.substr(0, comma));
        more = comma != std::string_view::npos;
        if (more) {
            out += ',';
            outputs.remove_prefix(comma + 1);
        }
    }
    out += "],\"destination\":";
    append_quoted(out, j.spec.destination);
    out += ",\"rule\":";
    append_quoted(out, j.spec.rule);
    out += ",\"owner\":";
    if (j.spec.owner_key_id) {
        append_quoted(out, j.spec.owner_key_name);
    } else {
        out += "null";
    }
    out += ",\"runs\":" + std::to_string(j.runs) +
           ",\"send_attempts\":" + std::to_string(j.send_attempts) + ",\"error\":";
    append_quoted(out, j.error);
    out += ",\"created_at\":";
    append_time(out, j.created_at);
    out += ",\"started_at\":";
    append_time(out, j.started_at);
    out += ",\"finished_at\":";
    append_time(out, j.finished_at);
    out += ",\"updated_at\":";
    append_time(out, j.updated_at);
    out += ",\"purged_at\":";
    append_time(out, j.purged_at);
    out += '}';
}

json job_json(const store::JobRow& j) {
    std::string text;
    append_job_json(text, j);
    return json::parse(text);
}

json series_json(const store::SeriesRow& s) {
    return {{"uid", s.attrs.series_uid},
            {"href", "/api/v1/series/" + s.attrs.series_uid},
            {"state", store::to_string(s.state)},
            {"study_uid", s.attrs.study_uid},
            {"patient_id", s.attrs.patient_id},
            {"patient_name", s.attrs.patient_name},
            {"study_date", s.attrs.study_date},
            {"accession_number", s.attrs.accession_number},
            {"modality", s.attrs.modality},
            {"series_number", s.attrs.series_number},
            {"description", s.attrs.description},
            {"body_part", s.attrs.body_part},
            {"calling_ae", s.calling_ae},
            {"called_ae", s.called_ae},
            {"peer_address", s.peer_address},
            {"instance_count", s.instance_count},
            {"late_instances", s.late_instances},
            {"first_received_at", format_utc_ms(s.first_received_at)},
            {"last_received_at", format_utc_ms(s.last_received_at)},
            {"completed_at", opt_time(s.completed_at)}};
}

json setting_value_json(const algorithms::SettingValue& v) {
    return std::visit([](const auto& x) { return json(x); }, v);
}

json algorithm_json(const algorithms::AlgorithmInfo& info, bool detail) {
    json out = {{"name", info.name},
                {"href", "/api/v1/algorithms/" + info.name},
                {"version", info.version},
                {"description", info.description}};
    if (!detail) {
        return out;
    }
    json settings = json::array();
    json defaults = json::object();
    for (const algorithms::SettingSpec& spec : info.settings) {
        json s = {{"key", spec.key},
                  {"type", std::string(algorithms::to_string(spec.type))},
                  {"default", setting_value_json(spec.default_value)},
                  {"help", spec.help}};
        if (spec.minimum) {
            s["minimum"] = *spec.minimum;
        }
        if (spec.maximum) {
            s["maximum"] = *spec.maximum;
        }
        if (!spec.allowed.empty()) {
            s["allowed"] = spec.allowed;
        }
        settings.push_back(s);
        defaults[spec.key] = setting_value_json(spec.default_value);
    }
    json segments = json::array();
    for (const SegmentInfo& seg : info.segments) {
        segments.push_back({{"label", seg.label},
                            {"name", seg.name},
                            {"category",
                             {{"scheme", seg.category.scheme},
                              {"value", seg.category.value},
                              {"meaning", seg.category.meaning}}},
                            {"type",
                             {{"scheme", seg.type.scheme},
                              {"value", seg.type.value},
                              {"meaning", seg.type.meaning}}},
                            {"rgb", {seg.rgb[0], seg.rgb[1], seg.rgb[2]}}});
    }
    out["settings"] = settings;
    out["default_settings"] = defaults;
    out["segments"] = segments;
    return out;
}

/// An external algorithm's program, as `segnode algorithm show` prints it.
json external_json(const ExternalAlgorithmConfig& c) {
    return {{"where", c.where},
            {"command", c.command},
            {"layout", c.layout},
            {"input_format", c.input_format},
            {"output_kind", c.output_kind},
            {"output", c.output},
            {"timeout_s", c.timeout_s},
            {"memory_mb", c.memory_mb},
            {"max_parallel", c.max_parallel}};
}

/// The reason label of a refused C-STORE's DIMSE status (PS3.4 Annex B status classes).
const char* refusal_reason(std::int64_t status) {
    if (status == dicom::status::sop_class_not_supported) {
        return "sop_class_not_supported";
    }
    switch ((status >> 8) & 0xFF) {
    case 0xA7:
        return "out_of_resources";
    case 0xA9:
        return "dataset_does_not_match";
    case 0xC0:
        return "cannot_understand";
    default:
        return "other";
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
std::string label_value(const std::string& text) {
    std::string out;
    for (const char ch : text) {
        if (ch == '\\' || ch == '"') {
            out += '\\';
            out += ch;
        } else if (ch == '\n') {
            out += "\\n";
        } else {
            out += ch;
        }
    }
    return out;
}

std::optional<std::uint64_t> free_bytes(const std::filesystem::path& dir) {
    struct statvfs st {};
    if (statvfs(dir.c_str(), &st) != 0) {
        return std::nullopt;
    }
    return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

/// Reads a whole file; std::nullopt when it cannot be opened.
std::optional<std::string> read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return std::nullopt;
    }
    std::ostringstream out;
    out << in.rdbuf();
    if (in.bad()) {
        return std::nullopt;
    }
    return out.str();
}

/// The page size and cursor of a list request, or a problem response.
struct Page {
    std::int64_t limit = k_default_limit;
    std::optional<std::int64_t> before;
};

std::optional<HttpResponse> read_page(const HttpRequest& req, Page& page) {
    if (const auto it = req.query.find("limit"); it != req.query.end()) {
        const auto n = parse_id(it->second);
        if (!n || *n < 1 || *n > k_max_limit) {
            return problem(400, "query parameter 'limit': '" + it->second +
                                    "' is not an integer in [1, " + std::to_string(k_max_limit) +
                                    "]");
        }
        page.limit = *n;
    }
    if (const auto it = req.query.find("cursor"); it != req.query.end()) {
        const auto n = parse_id(it->second);
        if (!n) {
            return problem(400, "query parameter 'cursor': '" + it->second +
                                    "' is not a cursor returned by this list");
        }
        page.before = *n;
    }
    return std::nullopt;
}

std::optional<HttpResponse> check_query(const HttpRequest& req,
                                        std::initializer_list<const char*> known) {
    for (const auto& [k, v] : req.query) {
        if (k == "\x01invalid") {
            return problem(400, "malformed query parameter '" + v + "' (bad percent escape)");
        }
        if (std::none_of(known.begin(), known.end(), [&](const char* n) { return k == n; })) {
            std::string names;
            for (const char* n : known) {
                names += (names.empty() ? "" : ", ") + std::string(n);
            }
            return problem(400, "unknown query parameter '" + k + "' (known: " +
                                    (names.empty() ? std::string("none") : names) + ")");
        }
    }
    return std::nullopt;
}

} // namespace

int role_rank(Role role) {
    switch (role) {
    case Role::Read:
        return 1;
    case Role::Submit:
        return 2;
    case Role::Admin:
        return 3;
    }
    return 0;
}

struct ApiHandler::Impl {
    ApiHandler& self;
    pipeline::ServiceContext ctx;
    pipeline::JobService jobs;
    std::vector<Route> routes;

    std::mutex touch_mutex;
    std::unordered_map<std::int64_t, std::int64_t> last_touch; ///< key id -> ms

    std::mutex metrics_mutex;
    std::map<std::pair<std::string, int>, std::uint64_t> requests; ///< (route, status) -> n
    std::atomic<std::uint64_t> failed_auth{0};

    boost::asio::thread_pool workers{k_worker_threads};
    std::atomic<bool> stopped{false};

    Impl(ApiHandler& owner, const pipeline::ServiceContext& context)
        : self(owner), ctx(context), jobs(context.config, context.registry) {
        add_routes();
        for (Route& r : routes) {
            r.segments = split_path(r.pattern);
        }
    }

    void add(std::string method, std::string pattern, Access access,
             std::function<HttpResponse(const HttpRequest&, const Caller&, const Params&)> fn,
             Runs runs = Runs::Inline) {
        routes.push_back({std::move(method), std::move(pattern), access, std::move(fn), runs, {}});
    }

    void count(const std::string& route, int status) {
        std::lock_guard lock(metrics_mutex);
        ++requests[{route, status}];
    }

    // --- authentication -------------------------------------------------------------------

    static std::optional<std::string> presented_key(const HttpRequest& req) {
        if (auto auth = req.header("authorization")) {
            const std::string& a = *auth;
            if (a.size() > 7 && lower(a.substr(0, 7)) == "bearer ") {
                std::string key = a.substr(7);
                key.erase(0, key.find_first_not_of(' '));
                key.erase(key.find_last_not_of(' ') + 1);
                return key;
            }
            return std::string(); // another scheme: treated as a malformed key
        }
        if (auto key = req.header("api_key")) {
            return *key;
        }
        return std::nullopt;
    }

    static HttpResponse unauthorized(const std::string& detail) {
        HttpResponse r = problem(401, detail);
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"segnode\"");
        return r;
    }

    /// Authenticates for `access`; a response when the request may not go on.
    std::optional<HttpResponse> authorize(const HttpRequest& req, Access access, Caller& caller) {
        if (access == Access::Public) {
            return std::nullopt;
        }
        const auto key = presented_key(req);
        if (access == Access::Metrics && !key && !ctx.config.http.metrics_require_key &&
            req.peer_loopback) {
            return std::nullopt;
        }
        if (!key) {
            return unauthorized("no API key: send 'Authorization: Bearer <key>' or "
                                "'API_KEY: <key>' (keys are made with `segnode key add`)");
        }
        Result<store::ApiKeyRow> row = Error{""};
        {
            auto db = ctx.pool.acquire();
            store::ApiKeyRepository repo(*db);
            row = verify_key(repo, *key);
        }
        if (!row) {
            ++failed_auth;
            const std::string reason =
                key->empty() ? std::string("the Authorization header is not 'Bearer <key>'")
                             : row.error().message;
            spdlog::info("http: {} {} from {}: authentication failed: {}", req.method, req.path,
                         req.peer_address, reason);
            return unauthorized(reason);
        }
        caller.role = parse_role(row->role).value_or(Role::Read);
        caller.key = *row;
        touch(row->id);
        Role needed = Role::Read;
        if (access == Access::Submit) {
            needed = Role::Submit;
        } else if (access == Access::Admin) {
            needed = Role::Admin;
        }
        if (role_rank(caller.role) < role_rank(needed)) {
            return problem(403, req.method + " " + req.path + " needs the " + to_string(needed) +
                                    " role; key '" + row->name + "' has the " +
                                    to_string(caller.role) + " role");
        }
        return std::nullopt;
    }

    /// last_used_at is written at most once a minute per key.
    void touch(std::int64_t key_id) {
        const std::int64_t now = now_ms();
        {
            std::lock_guard lock(touch_mutex);
            auto& last = last_touch[key_id];
            if (last != 0 && now - last < k_touch_interval_ms) {
                return;
            }
            last = now;
        }
        // The write waits for the node's writer lock: never on the caller's (I/O) thread.
        offload([this, key_id, now] {
            try {
                auto db = ctx.pool.acquire();
                auto lock = ctx.pool.write_lock();
                store::ApiKeyRepository(*db).touch(key_id, now);
            } catch (const store::DatabaseError& e) {
                spdlog::warn("http: recording the use of API key {}: {}", key_id, e.what());
            }
        });
    }

    /// Runs `work` on a worker thread; false once stop() began (the work is dropped).
    template <class Work> bool offload(Work&& work) {
        if (stopped.load()) {
            return false;
        }
        boost::asio::post(workers, std::forward<Work>(work));
        return true;
    }

    // --- dispatch ---------------------------------------------------------------------------

    /// The route a request goes to with its path parameters, or the answer when none does
    /// (404, 400 for a bad escape, 405 with Allow).
    struct Match {
        const Route* route = nullptr;
        Params params;
        HttpResponse refusal;
    };

    HttpResponse handle(const HttpRequest& req) {
        Match m = match(req);
        return m.route != nullptr ? run(*m.route, req, m.params) : std::move(m.refusal);
    }

    void handle_async(HttpRequest req, std::function<void(HttpResponse)> done) {
        Match m = match(req);
        if (m.route == nullptr) {
            return done(std::move(m.refusal));
        }
        if (m.route->runs == Runs::Inline) {
            return done(run(*m.route, req, m.params));
        }
        auto shared_done = std::make_shared<std::function<void(HttpResponse)>>(std::move(done));
        const Route* route = m.route;
        const bool posted = offload([this, route, req = std::move(req),
                                     params = std::move(m.params), shared_done]() {
            HttpResponse response;
            try {
                response = run(*route, req, params);
            } catch (const std::exception& e) {
                spdlog::error("http: {} {}: internal error: {}", req.method, req.path, e.what());
                response = problem(500, "internal error; see the node's log");
            }
            (*shared_done)(std::move(response));
        });
        if (!posted) {
            (*shared_done)(problem(503, "the HTTP API is stopping"));
        }
    }

    /// Authorizes and runs one matched route, counting its status for /metrics.
    HttpResponse run(const Route& r, const HttpRequest& req, const Params& params) {
        Caller caller;
        HttpResponse response;
        if (auto refused = authorize(req, r.access, caller)) {
            response = std::move(*refused);
        } else {
            try {
                response = r.handler(req, caller, params);
            } catch (const store::DatabaseError& e) {
                spdlog::error("http: {} {}: database: {}", req.method, req.path, e.what());
                response = problem(503, std::string("database unavailable: ") + e.what());
            }
        }
        count(r.pattern, response.status);
        return response;
    }

    Match match(const HttpRequest& req) {
        const auto parts = split_path(req.path);
        std::vector<const Route*> matched;
        std::vector<Params> matched_params;
        bool bad_escape = false;
        for (const Route& r : routes) {
            if (r.segments.size() != parts.size()) {
                continue;
            }
            Params params;
            bool ok = true;
            for (std::size_t i = 0; i < parts.size() && ok; ++i) {
                const std::string& p = r.segments[i];
                if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
                    auto decoded = percent_decode(parts[i]);
                    if (!decoded || decoded->empty()) {
                        bad_escape = bad_escape || !decoded;
                        ok = false;
                    } else {
                        params.push_back(std::move(*decoded));
                    }
                } else {
                    ok = p == parts[i];
                }
            }
            if (ok) {
                matched.push_back(&r);
                matched_params.push_back(std::move(params));
            }
        }
        Match m;
        if (matched.empty()) {
            m.refusal =
                bad_escape
                    ? problem(400, "malformed percent escape in " + req.path)
                    : problem(404, "no route " + req.path + " (see GET /api/v1/openapi.yaml)");
            count("(unmatched)", m.refusal.status);
            return m;
        }
        for (std::size_t i = 0; i < matched.size(); ++i) {
            if (matched[i]->method == req.method) {
                m.route = matched[i];
                m.params = std::move(matched_params[i]);
                return m;
            }
        }
        std::string allow;
        for (const Route* r : matched) {
            allow += (allow.empty() ? "" : ", ") + r->method;
        }
        m.refusal = problem(405, req.method + " is not allowed on " + req.path +
                                     " (allowed: " + allow + ")");
        m.refusal.headers.emplace_back("Allow", allow);
        count(matched.front()->pattern, 405);
        return m;
    }

    // --- helpers used by routes -------------------------------------------------------------

    /// The job if it exists and the caller may see it.
    /// The job `id_text` names, if it is a job id and the caller may see that job.
    std::optional<store::JobRow> visible_job(store::Database& db, const Caller& caller,
                                             const std::string& id_text) {
        const auto id = parse_id(id_text);
        if (!id) {
            return std::nullopt;
        }
        auto job = store::JobRepo(db).find(*id);
        if (!job) {
            return std::nullopt;
        }
        if (!caller.sees_all_jobs() && job->spec.owner_key_id != caller.key->id) {
            return std::nullopt; // another key's job: as if it did not exist
        }
        return job;
    }

    static HttpResponse no_job(const std::string& id_text) {
        return problem(404, "no job " + id_text + " (or it belongs to another API key)");
    }

    /// "body: min_hu: 99999 is out of range" -> "settings.min_hu: 99999 is out of range".
    std::string settings_detail(std::string message) const {
        for (const std::string& name : ctx.registry.names()) {
            if (message.rfind(name + ": ", 0) == 0) {
                message.erase(0, name.size() + 2);
                break;
            }
        }
        const auto colon = message.find(": ");
        const std::string head = message.substr(0, colon);
        if (colon != std::string::npos && !head.empty() &&
            head.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos) {
            return "settings." + message;
        }
        return "settings: " + message;
    }

    HttpResponse job_outcome(const pipeline::JobOutcome& outcome) {
        using pipeline::JobProblem;
        switch (outcome.problem) {
        case JobProblem::None:
            break;
        case JobProblem::SeriesNotFound:
        case JobProblem::JobNotFound:
            return problem(404, outcome.message);
        case JobProblem::Conflict:
        case JobProblem::SeriesEmpty:
            return problem(409, outcome.message);
        case JobProblem::InvalidSettings:
            return problem(422, settings_detail(outcome.message));
        case JobProblem::UnknownAlgorithm:
            return problem(422, "algorithm: " + outcome.message);
        case JobProblem::InvalidOutputs:
            return problem(422, "outputs: " + outcome.message);
        case JobProblem::UnknownDestination:
            return problem(422, "destination: " + outcome.message);
        }
        auto db = ctx.pool.acquire();
        const auto job = store::JobRepo(*db).find(outcome.job_id);
        json body = job ? job_json(*job) : json::object();
        body["message"] = outcome.message;
        return json_response(200, body);
    }

    void add_routes();
    UploadStart start_upload(const HttpRequest& req, const Caller& caller);
    HttpResponse metrics(const HttpRequest& req);
    HttpResponse readiness();
    HttpResponse submit_job(const HttpRequest& req, const Caller& caller);
    HttpResponse job_file(const HttpRequest& req, const Caller& caller, const Params& p, bool log);
};

UploadStart ApiHandler::Impl::start_upload(const HttpRequest& req, const Caller& caller) {
    UploadStart start;
    const auto content_type = req.header("content-type");
    const auto media = content_type ? parse_media_type(*content_type) : std::nullopt;
    const std::string accepted = "send multipart/related; type=\"application/dicom\"; "
                                 "boundary=... or one application/dicom instance";
    if (!media) {
        start.refusal = problem(415, content_type ? "malformed Content-Type '" + *content_type +
                                                        "'; " + accepted
                                                  : "no Content-Type; " + accepted);
        return start;
    }
    std::optional<std::string> boundary;
    if (media->type == "multipart/related") {
        const auto type = media->params.find("type");
        if (type != media->params.end() && lower(type->second) != "application/dicom") {
            start.refusal = problem(415, "multipart/related with type=\"" + type->second +
                                             "\" is not supported; " + accepted);
            return start;
        }
        const auto b = media->params.find("boundary");
        if (b == media->params.end() || b->second.empty() || b->second.size() > 70) {
            start.refusal = problem(400, "Content-Type multipart/related has no boundary "
                                         "parameter (1 to 70 characters)");
            return start;
        }
        boundary = b->second;
    } else if (media->type != "application/dicom") {
        start.refusal = problem(415, "Content-Type " + media->type +
                                         " is not supported by POST /api/v1/studies; " + accepted);
        return start;
    }
    const std::uint64_t limit =
        static_cast<std::uint64_t>(ctx.config.http.max_upload_mb) * 1024 * 1024;
    if (const auto length = req.header("content-length")) {
        std::uint64_t n = 0;
        const auto* end = length->data() + length->size();
        if (std::from_chars(length->data(), end, n).ptr == end && n > limit) {
            start.refusal =
                problem(413, "the upload of " + *length + " bytes exceeds http.max_upload_mb (" +
                                 std::to_string(ctx.config.http.max_upload_mb) + " MiB)");
            return start;
        }
    }
    if (ctx.receiver == nullptr) {
        start.refusal = problem(503, "this node does not receive instances");
        return start;
    }
    if (const dicom::StoreStatus gate = ctx.receiver->admission(); !gate.success()) {
        start.refusal = problem(503, gate.comment);
        return start;
    }
    const dicom::AssociationInfo info{"STOW-RS", ctx.config.node.ae_title, req.peer_address, 0};
    start.upload = std::make_unique<StowUpload>(*ctx.receiver, info, boundary, caller.key->name);
    if (start.upload->association_id() > 0) {
        try {
            auto db = ctx.pool.acquire();
            auto lock = ctx.pool.write_lock();
            store::ReceiveIndex(*db).set_association_key(start.upload->association_id(),
                                                         caller.key->id);
        } catch (const store::DatabaseError& e) {
            spdlog::warn("STOW-RS upload {}: cannot record its API key: {}",
                         start.upload->association_id(), e.what());
        }
    }
    return start;
}

HttpResponse ApiHandler::Impl::readiness() {
    json checks = json::object();
    bool ready = true;
    try {
        auto db = ctx.pool.acquire();
        auto lock = ctx.pool.write_lock();
        db->exec("BEGIN IMMEDIATE");
        db->exec("ROLLBACK");
        checks["database"] = "writable";
    } catch (const store::DatabaseError& e) {
        checks["database"] = std::string("not writable: ") + e.what();
        ready = false;
    }
    if (ctx.scp_listening()) {
        checks["dicom"] = "listening on port " + std::to_string(ctx.config.dicom.port);
    } else {
        checks["dicom"] = "not listening";
        ready = false;
    }
    const auto free = free_bytes(ctx.workdir.root());
    const std::uint64_t min_free = std::uint64_t{ctx.config.retention.min_free_mb} << 20U;
    if (!free) {
        checks["disk"] = "free space of " + ctx.workdir.root().string() + " cannot be read";
        ready = false;
    } else if (*free < min_free) {
        checks["disk"] = std::to_string(*free >> 20U) + " MiB free, below retention.min_free_mb " +
                         std::to_string(ctx.config.retention.min_free_mb);
        ready = false;
    } else {
        checks["disk"] = std::to_string(*free >> 20U) + " MiB free";
    }
    if (!ready) {
        HttpResponse r = problem(503, "not ready: " + checks.dump());
        return r;
    }
    return json_response(200, {{"status", "ready"}, {"checks", checks}});
}

HttpResponse ApiHandler::Impl::metrics(const HttpRequest& /*req*/) {
    std::ostringstream out;
    auto gauge = [&out](const std::string& name, const std::string& help, const std::string& type) {
        out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    };
    store::Counts counts;
    std::vector<std::pair<std::string, std::int64_t>> job_states;
    std::optional<std::int64_t> oldest;
    std::int64_t rejected = 0;
    std::vector<std::pair<std::string, double>> durations;
    std::vector<std::pair<std::int64_t, std::int64_t>> refused_by_status;
    struct PeerCount {
        std::string peer;
        std::string ae_title;
        std::int64_t n = 0;
    };
    std::vector<PeerCount> send_attempts;
    std::vector<PeerCount> send_failures;
    {
        auto db = ctx.pool.acquire();
        counts = store::ReceiveIndex(*db).counts();
        store::JobRepo repo(*db);
        job_states = repo.count_by_state();
        oldest = repo.oldest_queued_at();
        auto st = db->prepare("SELECT count(*) FROM associations WHERE outcome = 'rejected'");
        if (st.step()) {
            rejected = st.column_int64(0);
        }
        auto refused = db->prepare("SELECT dimse_status, count(*) FROM receive_events "
                                   "WHERE kind = 'refused' GROUP BY dimse_status "
                                   "ORDER BY dimse_status");
        while (refused.step()) {
            refused_by_status.emplace_back(refused.column_int64(0), refused.column_int64(1));
        }
        auto dur = db->prepare("SELECT algorithm, finished_at - started_at FROM jobs "
                               "WHERE state = 'done' AND started_at IS NOT NULL AND "
                               "finished_at IS NOT NULL");
        while (dur.step()) {
            durations.emplace_back(dur.column_text(0),
                                   static_cast<double>(dur.column_int64(1)) / 1000.0);
        }
        auto sends = db->prepare("SELECT destination, dest_ae, sum(send_attempts) FROM jobs "
                                 "WHERE dest_ae != '' GROUP BY destination, dest_ae "
                                 "ORDER BY destination, dest_ae");
        while (sends.step()) {
            send_attempts.push_back(
                {sends.column_text(0), sends.column_text(1), sends.column_int64(2)});
        }
        auto fails = db->prepare("SELECT j.destination, j.dest_ae, count(*) FROM job_events e "
                                 "JOIN jobs j ON j.id = e.job_id WHERE e.event = 'send_failed' "
                                 "GROUP BY j.destination, j.dest_ae "
                                 "ORDER BY j.destination, j.dest_ae");
        while (fails.step()) {
            send_failures.push_back(
                {fails.column_text(0), fails.column_text(1), fails.column_int64(2)});
        }
    }
    const std::int64_t now = now_ms();
    gauge("segnode_build_info", "Build information (value 1)", "gauge");
    out << "segnode_build_info{version=\"" << version_string() << "\"} 1\n";
    gauge("segnode_uptime_seconds", "Seconds since segnode serve started", "gauge");
    out << "segnode_uptime_seconds " << static_cast<double>(now - ctx.started_at_ms) / 1000.0
        << "\n";
    gauge("segnode_instances_received_total", "Instances stored (rows in the index)", "counter");
    out << "segnode_instances_received_total " << counts.instances << "\n";
    gauge("segnode_instances_refused_total", "C-STOREs refused, by DIMSE status and reason",
          "counter");
    for (const auto& [status, n] : refused_by_status) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "%04X", static_cast<unsigned>(status & 0xFFFF));
        out << "segnode_instances_refused_total{status=\"0x" << hex << "\",reason=\""
            << refusal_reason(status) << "\"} " << n << "\n";
    }
    gauge("segnode_instances_quarantined_total", "Instances quarantined", "counter");
    out << "segnode_instances_quarantined_total " << counts.quarantined << "\n";
    gauge("segnode_associations_total", "Associations received", "counter");
    out << "segnode_associations_total " << counts.associations << "\n";
    gauge("segnode_associations_rejected_total", "Associations rejected", "counter");
    out << "segnode_associations_rejected_total " << rejected << "\n";
    gauge("segnode_associations_active", "Associations in progress", "gauge");
    out << "segnode_associations_active " << ctx.active_associations() << "\n";
    gauge("segnode_series", "Series by state", "gauge");
    out << "segnode_series{state=\"receiving\"} " << counts.series_receiving << "\n"
        << "segnode_series{state=\"complete\"} " << counts.series_complete << "\n"
        << "segnode_series{state=\"routed\"} " << counts.series_routed << "\n";
    gauge("segnode_jobs", "Jobs by state", "gauge");
    std::int64_t queued = 0;
    for (const char* state : {"queued", "running", "sending", "done", "failed", "cancelled"}) {
        std::int64_t n = 0;
        for (const auto& [s, c] : job_states) {
            n = s == state ? c : n;
        }
        queued = std::string(state) == "queued" ? n : queued;
        out << "segnode_jobs{state=\"" << state << "\"} " << n << "\n";
    }
    gauge("segnode_job_queue_depth", "Jobs waiting to run", "gauge");
    out << "segnode_job_queue_depth " << queued << "\n";
    gauge("segnode_job_oldest_queued_age_seconds", "Age of the oldest queued job (0: none)",
          "gauge");
    out << "segnode_job_oldest_queued_age_seconds "
        << (oldest ? static_cast<double>(now - *oldest) / 1000.0 : 0.0) << "\n";
    gauge("segnode_job_duration_seconds",
          "Duration of done jobs from the start of their last run to done, per algorithm",
          "histogram");
    {
        static constexpr std::array<double, 9> k_buckets = {1, 5, 10, 30, 60, 120, 300, 900, 3600};
        std::map<std::string,
                 std::pair<std::array<std::uint64_t, 9>, std::pair<std::uint64_t, double>>>
            per_algorithm;
        for (const auto& [algorithm, seconds] : durations) {
            auto& [buckets, totals] = per_algorithm[algorithm];
            for (std::size_t i = 0; i < k_buckets.size(); ++i) {
                buckets.at(i) += seconds <= k_buckets.at(i) ? 1U : 0U;
            }
            ++totals.first;
            totals.second += seconds;
        }
        for (const auto& [algorithm, data] : per_algorithm) {
            const auto& [buckets, totals] = data;
            for (std::size_t i = 0; i < k_buckets.size(); ++i) {
                out << "segnode_job_duration_seconds_bucket{algorithm=\"" << algorithm << "\",le=\""
                    << k_buckets.at(i) << "\"} " << buckets.at(i) << "\n";
            }
            out << "segnode_job_duration_seconds_bucket{algorithm=\"" << algorithm
                << "\",le=\"+Inf\"} " << totals.first << "\n"
                << "segnode_job_duration_seconds_sum{algorithm=\"" << algorithm << "\"} "
                << totals.second << "\n"
                << "segnode_job_duration_seconds_count{algorithm=\"" << algorithm << "\"} "
                << totals.first << "\n";
        }
    }
    gauge("segnode_send_attempts_total",
          "C-STORE send attempts of jobs, per destination (peer name or sender) and AE title",
          "counter");
    for (const PeerCount& c : send_attempts) {
        out << "segnode_send_attempts_total{peer=\"" << label_value(c.peer) << "\",ae_title=\""
            << label_value(c.ae_title) << "\"} " << c.n << "\n";
    }
    gauge("segnode_send_failures_total",
          "Failed send attempts of jobs, per destination (peer name or sender) and AE title",
          "counter");
    for (const PeerCount& c : send_failures) {
        out << "segnode_send_failures_total{peer=\"" << label_value(c.peer) << "\",ae_title=\""
            << label_value(c.ae_title) << "\"} " << c.n << "\n";
    }
    gauge("segnode_disk_free_bytes", "Free space in the working directory", "gauge");
    out << "segnode_disk_free_bytes " << free_bytes(ctx.workdir.root()).value_or(0) << "\n";
    gauge("segnode_api_keys_active", "API keys not revoked", "gauge");
    out << "segnode_api_keys_active " << counts.api_keys << "\n";
    gauge("segnode_http_auth_failures_total",
          "Requests refused because their API key was malformed, unknown or revoked", "counter");
    out << "segnode_http_auth_failures_total " << failed_auth.load() << "\n";
    gauge("segnode_http_connections_refused_total",
          "Connections closed at once because http.max_connections were open", "counter");
    out << "segnode_http_connections_refused_total " << self.m_connections_refused.load() << "\n";
    gauge("segnode_http_header_timeouts_total",
          "Connections closed for not sending their headers within http.header_timeout_s",
          "counter");
    out << "segnode_http_header_timeouts_total " << self.m_header_timeouts.load() << "\n";
    gauge("segnode_http_requests_total", "HTTP requests by route and status", "counter");
    {
        std::lock_guard lock(metrics_mutex);
        for (const auto& [key, n] : requests) {
            out << "segnode_http_requests_total{route=\"" << key.first << "\",status=\""
                << key.second << "\"} " << n << "\n";
        }
    }
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = out.str();
    return r;
}

HttpResponse ApiHandler::Impl::submit_job(const HttpRequest& req, const Caller& caller) {
    json body;
    try {
        body = json::parse(req.body);
    } catch (const json::parse_error& e) {
        std::string what = e.what();
        if (const auto pos = what.find("] "); pos != std::string::npos) {
            what = what.substr(pos + 2);
        }
        return problem(400, "malformed JSON (byte " + std::to_string(e.byte) + "): " + what);
    }
    if (!body.is_object()) {
        return problem(400, "the request body must be a JSON object, e.g. {\"series_uid\": "
                            "\"1.2.3\", \"algorithm\": \"body\"}");
    }
    static const std::vector<std::string> known = {"series_uid", "algorithm", "settings", "outputs",
                                                   "destination"};
    for (const auto& [k, v] : body.items()) {
        if (std::find(known.begin(), known.end(), k) == known.end()) {
            return problem(400, "unknown field '" + k +
                                    "' (known: series_uid, algorithm, settings, outputs, "
                                    "destination)");
        }
    }
    pipeline::SubmitRequest request;
    for (const char* field : {"series_uid", "algorithm"}) {
        if (!body.contains(field)) {
            return problem(400, std::string("missing field '") + field + "'");
        }
        if (!body[field].is_string()) {
            return problem(400, std::string("field '") + field + "' must be a string, not " +
                                    body[field].type_name());
        }
    }
    request.series_uid = body["series_uid"].get<std::string>();
    request.algorithm = body["algorithm"].get<std::string>();
    if (body.contains("settings")) {
        const json& settings = body["settings"];
        if (!settings.is_object()) {
            return problem(400, std::string("field 'settings' must be an object, not ") +
                                    settings.type_name());
        }
        for (const auto& [k, v] : settings.items()) {
            std::string text;
            if (v.is_string()) {
                text = v.get<std::string>();
            } else if (v.is_boolean()) {
                text = v.get<bool>() ? "true" : "false";
            } else if (v.is_number()) {
                text = v.dump();
            } else {
                return problem(422, "settings." + k +
                                        ": expected a string, number or boolean, "
                                        "not " +
                                        v.type_name());
            }
            request.settings.emplace_back(k, text);
        }
    }
    if (body.contains("outputs")) {
        const json& outputs = body["outputs"];
        if (!outputs.is_array()) {
            return problem(400, std::string("field 'outputs' must be an array of strings, not ") +
                                    outputs.type_name());
        }
        for (const json& o : outputs) {
            if (!o.is_string()) {
                return problem(400, std::string("field 'outputs': each item must be a string, "
                                                "not ") +
                                        o.type_name());
            }
            const std::string name = o.get<std::string>();
            OutputKind kind{};
            if (name == "seg") {
                kind = OutputKind::Seg;
            } else if (name == "rtstruct") {
                kind = OutputKind::Rtstruct;
            } else if (name == "labelmap") {
                kind = OutputKind::Labelmap;
            } else {
                return problem(422, "outputs: '" + name +
                                        "' is not an output (seg, rtstruct, labelmap)");
            }
            if (std::find(request.outputs.begin(), request.outputs.end(), kind) ==
                request.outputs.end()) {
                request.outputs.push_back(kind);
            }
        }
    } else {
        request.outputs = {OutputKind::Seg};
    }
    request.destination = "none";
    if (body.contains("destination")) {
        if (!body["destination"].is_string()) {
            return problem(400, std::string("field 'destination' must be a string, not ") +
                                    body["destination"].type_name());
        }
        request.destination = body["destination"].get<std::string>();
    }
    request.why = "HTTP API, key '" + caller.key->name + "'";
    request.owner_key_id = caller.key->id;
    request.owner_key_name = caller.key->name;
    pipeline::JobOutcome outcome;
    {
        auto db = ctx.pool.acquire();
        auto lock = ctx.pool.write_lock();
        outcome = jobs.submit(*db, request);
    }
    if (!outcome.ok()) {
        return job_outcome(outcome);
    }
    ctx.wake_jobs();
    spdlog::info("http: {} (key '{}')", outcome.message, caller.key->name);
    json accepted = outcome.job ? job_json(*outcome.job) : json::object();
    accepted["message"] = outcome.message;
    HttpResponse r = json_response(202, accepted);
    r.headers.emplace_back("Location", "/api/v1/jobs/" + std::to_string(outcome.job_id));
    return r;
}

HttpResponse ApiHandler::Impl::job_file(const HttpRequest& req, const Caller& caller,
                                        const Params& p, bool log) {
    std::filesystem::path path;
    std::string etag;
    std::string filename;
    std::string content_type;
    {
        auto db = ctx.pool.acquire();
        const auto job = visible_job(*db, caller, p[0]);
        if (!job) {
            return no_job(p[0]);
        }
        const std::int64_t id = job->id;
        if (job->purged_at) {
            return problem(404, "job " + p[0] + "'s files were removed by retention at " +
                                    format_utc_ms(*job->purged_at));
        }
        if (log) {
            path = ctx.workdir.jobs_dir() / std::to_string(id) / "job.log";
            filename = "job-" + p[0] + ".log";
            content_type = "text/plain; charset=utf-8";
        } else {
            const std::string& name = p[1];
            if (name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789._-") !=
                    std::string::npos ||
                name.front() == '.' || name.find("..") != std::string::npos) {
                return problem(
                    400,
                    "invalid output name '" + name +
                        "' (names are like seg.dcm, rtstruct.dcm, labels.nii.gz, segments.json)");
            }
            const auto outputs = store::JobRepo(*db).outputs(id);
            std::string names;
            for (const store::JobOutput& o : outputs) {
                for (const std::string& n : output_names(o.kind)) {
                    names += (names.empty() ? "" : ", ") + n;
                    if (n == name) {
                        path = ctx.workdir.root() / output_relpath(o, n);
                        if (!o.sop_instance_uid.empty()) {
                            etag = "\"" + o.sop_instance_uid + "\"";
                        }
                    }
                }
            }
            if (path.empty()) {
                return problem(404, "job " + p[0] + " has no output '" + name + "' (it has: " +
                                        (names.empty() ? std::string("none yet") : names) + ")");
            }
            filename = "job-" + p[0] + "-" + name;
            content_type = output_content_type(name);
        }
    }
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) {
        return problem(404, log ? "job " + p[0] + " has no log yet"
                                : "the output file of job " + p[0] + " is missing");
    }
    if (etag.empty()) {
        const auto mtime = std::filesystem::last_write_time(path, ec);
        etag = "\"" + std::to_string(size) + "-" +
               std::to_string(mtime.time_since_epoch().count()) + "\"";
    }
    HttpResponse r;
    r.headers.emplace_back("ETag", etag);
    if (req.header("if-none-match") == etag) {
        r.status = 304;
        r.content_type = content_type;
        return r;
    }
    auto data = read_file(path);
    if (!data) {
        return problem(404, "cannot read the file of job " + p[0]);
    }
    r.content_type = content_type;
    r.body = std::move(*data);
    r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + filename + "\"");
    return r;
}

void ApiHandler::Impl::add_routes() {
    add("GET", "/healthz", Access::Public, [](const HttpRequest&, const Caller&, const Params&) {
        return json_response(200, {{"status", "ok"}});
    });
    add(
        "GET", "/readyz", Access::Public,
        [this](const HttpRequest&, const Caller&, const Params&) { return readiness(); },
        Runs::Worker);
    add(
        "GET", "/metrics", Access::Metrics,
        [this](const HttpRequest& req, const Caller&, const Params&) { return metrics(req); },
        Runs::Worker);
    add("GET", "/api/v1/openapi.yaml", Access::Public,
        [](const HttpRequest&, const Caller&, const Params&) {
            HttpResponse r;
            r.content_type = "application/yaml";
            r.body = std::string(openapi_yaml());
            return r;
        });
    add("GET", "/api/v1/system", Access::Read,
        [this](const HttpRequest&, const Caller&, const Params&) {
            store::Counts c;
            std::vector<std::pair<std::string, std::int64_t>> job_states;
            {
                auto db = ctx.pool.acquire();
                c = store::ReceiveIndex(*db).counts();
                job_states = store::JobRepo(*db).count_by_state();
            }
            json jobs_by_state = json::object();
            for (const auto& [s, n] : job_states) {
                jobs_by_state[s] = n;
            }
            const auto free = free_bytes(ctx.workdir.root());
            return json_response(200, {{"version", version_string()},
                                       {"ae_titles", ctx.config.called_ae_titles()},
                                       {"dicom",
                                        {{"bind_address", ctx.config.dicom.bind_address},
                                         {"port", ctx.config.dicom.port},
                                         {"listening", ctx.scp_listening()},
                                         {"active_associations", ctx.active_associations()}}},
                                       {"http",
                                        {{"bind_address", ctx.config.http.bind_address},
                                         {"port", ctx.config.http.port}}},
                                       {"counts",
                                        {{"instances", c.instances},
                                         {"series",
                                          {{"receiving", c.series_receiving},
                                           {"complete", c.series_complete},
                                           {"routed", c.series_routed}}},
                                         {"associations", c.associations},
                                         {"jobs", jobs_by_state}}},
                                       {"disk",
                                        {{"free_bytes", free ? json(*free) : json(nullptr)},
                                         {"min_free_mb", ctx.config.retention.min_free_mb}}},
                                       {"uptime_s", (now_ms() - ctx.started_at_ms) / 1000}});
        });
    add("GET", "/api/v1/algorithms", Access::Read,
        [this](const HttpRequest&, const Caller&, const Params&) {
            json items = json::array();
            for (const std::string& name : ctx.registry.names()) {
                items.push_back(algorithm_json(ctx.registry.find(name)->info(), false));
            }
            return json_response(200, {{"items", items}});
        });
    add("GET", "/api/v1/algorithms/{name}", Access::Read,
        [this](const HttpRequest&, const Caller&, const Params& p) {
            auto algorithm = ctx.registry.get(p[0]);
            if (!algorithm) {
                return problem(404, algorithm.error().message);
            }
            json body = algorithm_json((*algorithm)->info(), true);
            if (const auto* ext = dynamic_cast<const pipeline::ExternalAlgorithm*>(*algorithm)) {
                body["external"] = external_json(ext->config());
            }
            return json_response(200, body);
        });
    add("GET", "/api/v1/series", Access::Read,
        [this](const HttpRequest& req, const Caller&, const Params&) {
            if (auto bad = check_query(req, {"state", "limit", "cursor"})) {
                return *bad;
            }
            Page page;
            if (auto bad = read_page(req, page)) {
                return *bad;
            }
            std::optional<store::SeriesState> state;
            if (const auto it = req.query.find("state"); it != req.query.end()) {
                state = store::parse_series_state(it->second);
                if (!state) {
                    return problem(400, "query parameter 'state': '" + it->second +
                                            "' is not a series state (receiving, complete, "
                                            "routed)");
                }
            }
            std::vector<store::SeriesRow> rows;
            {
                auto db = ctx.pool.acquire();
                rows =
                    store::ReceiveIndex(*db).list_series_page(state, page.before, page.limit + 1);
            }
            return json_response(200, page_json(rows, page.limit, series_json));
        });
    add(
        "GET", "/api/v1/series/{uid}", Access::Read,
        [this](const HttpRequest&, const Caller& caller, const Params& p) {
            auto db = ctx.pool.acquire();
            const auto s = store::ReceiveIndex(*db).find_series(p[0]);
            if (!s) {
                return problem(404, "no series " + p[0]);
            }
            json body = series_json(*s);
            store::ReceiveIndex index(*db);
            body["taken"] = pipeline::describe_series_taken(ctx.config, index, s->id);
            const RuleConfig* rule = pipeline::first_match(ctx.config, *s);
            body["routing"] = rule != nullptr
                                  ? json{{"rule", rule->name}, {"algorithm", rule->algorithm}}
                                  : json(nullptr);
            json jobs_list = json::array();
            for (const store::JobRow& j : store::JobRepo(*db).for_series(s->id)) {
                if (caller.sees_all_jobs() || j.spec.owner_key_id == caller.key->id) {
                    jobs_list.push_back({{"id", j.id},
                                         {"href", "/api/v1/jobs/" + std::to_string(j.id)},
                                         {"state", store::to_string(j.state)},
                                         {"algorithm", j.spec.algorithm},
                                         {"outputs", outputs_list(j.spec.outputs)},
                                         {"destination", j.spec.destination},
                                         {"error", j.error}});
                }
            }
            body["jobs"] = jobs_list;
            return json_response(200, body);
        },
        Runs::Worker); // reads the instances' headers
    // Served streamed by the server (begin_upload); this path serves a body already in memory.
    add(
        "POST", "/api/v1/studies", Access::Submit,
        [this](const HttpRequest& req, const Caller& caller, const Params&) {
            UploadStart start = start_upload(req, caller);
            if (!start.upload) {
                return start.refusal;
            }
            if (auto ended = start.upload->feed(req.body)) {
                return *ended;
            }
            return start.upload->finish();
        },
        Runs::Worker); // writes files and the index
    add(
        "POST", "/api/v1/series/{uid}/complete", Access::Submit,
        [this](const HttpRequest&, const Caller& caller, const Params& p) {
            std::optional<store::SeriesRow> series;
            {
                auto db = ctx.pool.acquire();
                store::ReceiveIndex index(*db);
                series = index.find_series(p[0]);
                if (!series) {
                    return problem(404, "no series " + p[0]);
                }
                auto lock = ctx.pool.write_lock();
                if (!index.complete_series(series->id, now_ms())) {
                    return problem(409, "series " + p[0] + " is " +
                                            store::to_string(series->state) +
                                            ", not receiving; it cannot be completed again");
                }
                series = index.find_series(series->id);
            }
            spdlog::info("series {} completed by the HTTP API (key '{}')", p[0], caller.key->name);
            ctx.wake_jobs(); // routing takes it at once
            return json_response(200, series_json(*series));
        },
        Runs::Worker);
    add(
        "POST", "/api/v1/jobs", Access::Submit,
        [this](const HttpRequest& req, const Caller& caller, const Params&) {
            return submit_job(req, caller);
        },
        Runs::Worker);
    add("GET", "/api/v1/jobs", Access::Read,
        [this](const HttpRequest& req, const Caller& caller, const Params&) {
            if (auto bad = check_query(req, {"state", "algorithm", "limit", "cursor"})) {
                return *bad;
            }
            Page page;
            if (auto bad = read_page(req, page)) {
                return *bad;
            }
            store::JobFilter filter;
            if (const auto it = req.query.find("state"); it != req.query.end()) {
                filter.state = store::parse_job_state(it->second);
                if (!filter.state) {
                    return problem(400, "query parameter 'state': '" + it->second +
                                            "' is not a job state (queued, running, sending, "
                                            "done, failed, cancelled)");
                }
            }
            if (const auto it = req.query.find("algorithm"); it != req.query.end()) {
                filter.algorithm = it->second;
            }
            if (!caller.sees_all_jobs()) {
                filter.owner_key_id = caller.key->id;
            }
            filter.before_id = page.before;
            filter.limit = page.limit + 1;
            std::vector<store::JobRow> rows;
            {
                auto db = ctx.pool.acquire();
                rows = store::JobRepo(*db).list(filter);
            }
            // Written as text, not as a JSON tree: this is the hot listing.
            HttpResponse r;
            const auto shown = std::min(rows.size(), static_cast<std::size_t>(page.limit));
            r.body.reserve(shown * 700 + 64);
            r.body = "{\"items\":[";
            for (std::size_t i = 0; i < shown; ++i) {
                r.body += i == 0 ? "" : ",";
                append_job_json(r.body, rows[i]);
            }
            r.body += "],\"next_cursor\":";
            r.body += rows.size() > shown ? "\"" + std::to_string(rows[shown - 1].id) + "\""
                                          : std::string("null");
            r.body += "}\n";
            return r;
        });
    add("GET", "/api/v1/jobs/{id}", Access::Read,
        [this](const HttpRequest&, const Caller& caller, const Params& p) {
            auto db = ctx.pool.acquire();
            const auto job = visible_job(*db, caller, p[0]);
            if (!job) {
                return no_job(p[0]);
            }
            const std::int64_t id = job->id;
            json body = job_json(*job);
            store::JobRepo repo(*db);
            json timeline = json::array();
            for (const store::JobEvent& e : repo.events(id)) {
                timeline.push_back(
                    {{"at", format_utc_ms(e.at)}, {"event", e.event}, {"detail", e.detail}});
            }
            body["timeline"] = timeline;
            body["files"] = output_files(ctx.workdir.root(), p[0], repo.outputs(id), false);
            return json_response(200, body);
        });
    for (const bool retry : {false, true}) {
        add(
            "POST", retry ? "/api/v1/jobs/{id}/retry" : "/api/v1/jobs/{id}/cancel", Access::Submit,
            [this, retry](const HttpRequest&, const Caller& caller, const Params& p) {
                pipeline::JobOutcome outcome;
                {
                    auto db = ctx.pool.acquire();
                    const auto job = visible_job(*db, caller, p[0]);
                    if (!job) {
                        return no_job(p[0]);
                    }
                    auto lock = ctx.pool.write_lock();
                    outcome = retry ? pipeline::retry_job(*db, job->id)
                                    : pipeline::cancel_job(*db, job->id);
                }
                if (outcome.ok()) {
                    ctx.wake_jobs();
                    spdlog::info("http: {} (key '{}')", outcome.message, caller.key->name);
                }
                return job_outcome(outcome);
            },
            Runs::Worker);
    }
    add("GET", "/api/v1/jobs/{id}/outputs", Access::Read,
        [this](const HttpRequest&, const Caller& caller, const Params& p) {
            auto db = ctx.pool.acquire();
            const auto job = visible_job(*db, caller, p[0]);
            if (!job) {
                return no_job(p[0]);
            }
            const std::int64_t id = job->id;
            const json items =
                output_files(ctx.workdir.root(), p[0], store::JobRepo(*db).outputs(id), true);
            return json_response(
                200, {{"job", id}, {"state", store::to_string(job->state)}, {"items", items}});
        });
    add(
        "GET", "/api/v1/jobs/{id}/outputs/{name}", Access::Read,
        [this](const HttpRequest& req, const Caller& caller, const Params& p) {
            return job_file(req, caller, p, false);
        },
        Runs::Worker);
    add(
        "GET", "/api/v1/jobs/{id}/log", Access::Read,
        [this](const HttpRequest& req, const Caller& caller, const Params& p) {
            return job_file(req, caller, p, true);
        },
        Runs::Worker);
    add("GET", "/api/v1/peers", Access::Read,
        [this](const HttpRequest&, const Caller&, const Params&) {
            json items = json::array();
            for (const PeerConfig& peer : ctx.config.peers) {
                items.push_back({{"name", peer.name},
                                 {"ae_title", peer.ae_title},
                                 {"host", peer.host},
                                 {"port", peer.port}});
            }
            return json_response(200, {{"items", items}});
        });
    add(
        "POST", "/api/v1/peers/{name}/echo", Access::Admin,
        [this](const HttpRequest&, const Caller&, const Params& p) {
            const PeerConfig* peer = ctx.config.find_peer(p[0]);
            if (peer == nullptr) {
                return problem(404, "no peer '" + p[0] + "' in [[peers]]");
            }
            const dicom::PeerAddress address{peer->ae_title, peer->host, peer->port};
            auto result = dicom::echo(address, dicom::scu_options_from(ctx.config));
            if (!result) {
                return problem(502, result.error().message);
            }
            return json_response(200, {{"peer", peer->name},
                                       {"ok", true},
                                       {"ae_title", peer->ae_title},
                                       {"host", peer->host},
                                       {"port", peer->port},
                                       {"calling_ae", ctx.config.node.ae_title},
                                       {"round_trip_ms", result->round_trip.count()},
                                       {"total_ms", result->total.count()}});
        },
        Runs::Worker);
    add("GET", "/api/v1/keys", Access::Admin,
        [this](const HttpRequest&, const Caller&, const Params&) {
            std::vector<store::ApiKeyRow> rows;
            {
                auto db = ctx.pool.acquire();
                rows = store::ApiKeyRepository(*db).list();
            }
            json items = json::array();
            for (const store::ApiKeyRow& k : rows) {
                items.push_back({{"name", k.name},
                                 {"role", k.role},
                                 {"prefix", k.prefix},
                                 {"created_at", format_utc_ms(k.created_at)},
                                 {"last_used_at", opt_time(k.last_used_at)},
                                 {"revoked_at", opt_time(k.revoked_at)}});
            }
            return json_response(200, {{"items", items}});
        });
    add(
        "POST", "/api/v1/keys", Access::Admin,
        [this](const HttpRequest& req, const Caller& caller, const Params&) {
            json body;
            try {
                body = json::parse(req.body);
            } catch (const json::parse_error& e) {
                std::string what = e.what();
                if (const auto pos = what.find("] "); pos != std::string::npos) {
                    what = what.substr(pos + 2);
                }
                return problem(400,
                               "malformed JSON (byte " + std::to_string(e.byte) + "): " + what);
            }
            if (!body.is_object() || !body.contains("name") || !body["name"].is_string() ||
                !body.contains("role") || !body["role"].is_string()) {
                return problem(400, "the body must be {\"name\": \"...\", \"role\": "
                                    "\"read|submit|admin\"}");
            }
            const auto role = parse_role(body["role"].get<std::string>());
            if (!role) {
                return problem(422, "role: '" + body["role"].get<std::string>() +
                                        "' is not a role (read, submit, admin)");
            }
            const std::string name = body["name"].get<std::string>();
            if (auto bad = key_name_problem(name)) {
                return problem(422, "name: " + *bad);
            }
            Result<IssuedKey> issued = Error{""};
            {
                auto db = ctx.pool.acquire();
                auto lock = ctx.pool.write_lock();
                store::ApiKeyRepository repo(*db);
                for (const store::ApiKeyRow& k : repo.list()) {
                    if (k.name == name) {
                        return problem(409, "an API key named '" + name + "' exists already");
                    }
                }
                issued = issue_key(repo, name, *role);
            }
            if (!issued) {
                return problem(409, issued.error().message);
            }
            spdlog::info("http: API key '{}' ({}) created by key '{}'", name, to_string(*role),
                         caller.key->name);
            HttpResponse r =
                json_response(201, {{"name", issued->row.name},
                                    {"role", issued->row.role},
                                    {"prefix", issued->row.prefix},
                                    {"key", issued->key},
                                    {"note", "the key is shown only now; store it safely"}});
            r.headers.emplace_back("Location", "/api/v1/keys/" + name);
            return r;
        },
        Runs::Worker);
    add(
        "DELETE", "/api/v1/keys/{name}", Access::Admin,
        [this](const HttpRequest&, const Caller& caller, const Params& p) {
            Status st;
            {
                auto db = ctx.pool.acquire();
                auto lock = ctx.pool.write_lock();
                store::ApiKeyRepository repo(*db);
                bool exists = false;
                for (const store::ApiKeyRow& k : repo.list()) {
                    exists = exists || k.name == p[0];
                }
                if (!exists) {
                    return problem(404, "no API key named '" + p[0] + "'");
                }
                st = repo.revoke(p[0], now_ms());
            }
            if (!st) {
                return problem(409, st.error().message);
            }
            spdlog::info("http: API key '{}' revoked by key '{}'", p[0], caller.key->name);
            return json_response(200, {{"name", p[0]}, {"revoked", true}});
        },
        Runs::Worker);
}

ApiHandler::ApiHandler(const pipeline::ServiceContext& context)
    : m_impl(std::make_unique<Impl>(*this, context)) {}

ApiHandler::~ApiHandler() {
    stop();
}

HttpResponse ApiHandler::handle(const HttpRequest& request) {
    return m_impl->handle(request);
}

void ApiHandler::handle_async(HttpRequest request, std::function<void(HttpResponse)> done) {
    m_impl->handle_async(std::move(request), std::move(done));
}

void ApiHandler::stop() {
    if (!m_impl->stopped.exchange(true)) {
        m_impl->workers.join();
    }
}

bool ApiHandler::is_upload(const std::string& method, const std::string& path) {
    return method == "POST" && path == "/api/v1/studies";
}

UploadStart ApiHandler::begin_upload(const HttpRequest& request) {
    Caller caller;
    if (auto refused = m_impl->authorize(request, Access::Submit, caller)) {
        return {nullptr, std::move(*refused)};
    }
    return m_impl->start_upload(request, caller);
}

void ApiHandler::count_response(const std::string& route, int status) {
    m_impl->count(route, status);
}

} // namespace segnode::api
