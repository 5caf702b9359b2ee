// The HTTP API's routing, authentication and job service without a socket: ApiHandler over a
// real database in a temporary working directory (the server itself is covered by
// tests/integration/test_http.py with real clients).
#include "segnode/api/api_handler.hpp"
#include "segnode/api/http_types.hpp"
#include "segnode/core/clock.hpp"
#include "segnode/pipeline/job_service.hpp"
#include "segnode/pipeline/receiver.hpp"
#include "segnode/store/migrations.hpp"
#include "test_util.hpp"

#include <chrono>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <thread>

using namespace segnode;
using nlohmann::json;

namespace {

class ApiHandlerTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_config.node.workdir = m_dir.path();
        ASSERT_TRUE(m_workdir.ensure().ok());
        auto db =
            store::Database::open(m_workdir.db_path(), store::Database::Mode::ReadWriteCreate);
        ASSERT_TRUE(db.ok()) << db.error().message;
        m_db.emplace(std::move(db).value());
        ASSERT_TRUE(store::migrate(*m_db).ok());
        m_db->exec("INSERT INTO series(series_uid, study_uid, calling_ae, called_ae, "
                   "peer_address, instance_count, first_received_at, last_received_at) "
                   "VALUES ('1.2.3', '1.2', 'CT1', 'SEGNODE', '127.0.0.1', 3, 1, 2)");
        for (const auto& [name, role] : {std::pair{"r", api::Role::Read},
                                         {"s1", api::Role::Submit},
                                         {"s2", api::Role::Submit},
                                         {"a", api::Role::Admin}}) {
            store::ApiKeyRepository repo(*m_db);
            auto issued = api::issue_key(repo, name, role);
            ASSERT_TRUE(issued.ok());
            m_keys[name] = issued->key;
        }
        m_handler = std::make_unique<api::ApiHandler>(m_context);
    }

    api::HttpResponse call(const std::string& method, const std::string& target,
                           const std::string& key = {}, const std::string& body = {},
                           bool loopback = true, const std::string& header = "authorization") {
        api::HttpRequest req;
        req.method = method;
        api::split_target(target, req.path, req.query);
        if (!key.empty()) {
            req.headers[header] = header == "authorization" ? "Bearer " + key : key;
        }
        req.body = body;
        req.peer_address = loopback ? "127.0.0.1" : "10.0.0.9";
        req.peer_loopback = loopback;
        return m_handler->handle(req);
    }

    static json body_of(const api::HttpResponse& r) { return json::parse(r.body); }

    test::TempDir m_dir;
    Config m_config;
    store::Workdir m_workdir{m_dir.path()};
    std::optional<store::Database> m_db;
    pipeline::ConnectionPool m_pool{m_dir.path() / "segnode.db"};
    algorithms::Registry m_registry = algorithms::make_builtin_registry();
    int m_wakes = 0;
    pipeline::ServiceContext m_context{m_config,
                                       m_workdir,
                                       m_pool,
                                       m_registry,
                                       now_ms(),
                                       [this] { ++m_wakes; },
                                       [] { return true; },
                                       [] { return std::size_t{0}; }};
    std::map<std::string, std::string> m_keys;
    std::unique_ptr<api::ApiHandler> m_handler;
};

} // namespace

TEST(HttpTypes, SplitTargetDecodesQuery) {
    std::string path;
    std::map<std::string, std::string> query;
    api::split_target("/api/v1/jobs?state=done&algorithm=a%20b&limit=5", path, query);
    EXPECT_EQ(path, "/api/v1/jobs");
    EXPECT_EQ(query.at("state"), "done");
    EXPECT_EQ(query.at("algorithm"), "a b");
    EXPECT_EQ(query.at("limit"), "5");
    EXPECT_EQ(api::percent_decode("%2e%2E%2f"), "../");
    EXPECT_FALSE(api::percent_decode("%2").has_value());
    EXPECT_FALSE(api::percent_decode("%zz").has_value());
    EXPECT_FALSE(api::percent_decode("a%00b").has_value());
}

TEST(HttpTypes, ProblemIsRfc7807) {
    const auto r = api::problem(409, "job 3 is done");
    EXPECT_EQ(r.status, 409);
    EXPECT_EQ(r.content_type, "application/problem+json");
    const auto j = json::parse(r.body);
    EXPECT_EQ(j["title"], "Conflict");
    EXPECT_EQ(j["status"], 409);
    EXPECT_EQ(j["detail"], "job 3 is done");
}

TEST(ApiRoles, OrderIsReadSubmitAdmin) {
    EXPECT_LT(api::role_rank(api::Role::Read), api::role_rank(api::Role::Submit));
    EXPECT_LT(api::role_rank(api::Role::Submit), api::role_rank(api::Role::Admin));
}

TEST_F(ApiHandlerTest, PublicRoutesAndMetricsFromLoopback) {
    EXPECT_EQ(call("GET", "/healthz").status, 200);
    EXPECT_EQ(call("GET", "/readyz").status, 200);
    EXPECT_EQ(call("GET", "/api/v1/openapi.yaml").status, 200);
    EXPECT_EQ(call("GET", "/metrics").status, 200);
    const auto remote = call("GET", "/metrics", {}, {}, false);
    EXPECT_EQ(remote.status, 401);
    EXPECT_EQ(call("GET", "/metrics", m_keys["r"], {}, false).status, 200);
}

TEST_F(ApiHandlerTest, KeysByBothHeadersRolesAndErrors) {
    auto r = call("GET", "/api/v1/system");
    EXPECT_EQ(r.status, 401);
    ASSERT_FALSE(r.headers.empty());
    EXPECT_EQ(r.headers[0].first, "WWW-Authenticate");
    EXPECT_EQ(call("GET", "/api/v1/system", m_keys["r"]).status, 200);
    EXPECT_EQ(call("GET", "/api/v1/system", m_keys["r"], {}, true, "api_key").status, 200);
    r = call("GET", "/api/v1/keys", m_keys["s1"]);
    EXPECT_EQ(r.status, 403);
    EXPECT_NE(body_of(r)["detail"].get<std::string>().find("needs the admin role"),
              std::string::npos);
    EXPECT_EQ(call("GET", "/api/v1/keys", m_keys["a"]).status, 200);
    r = call("DELETE", "/api/v1/system", m_keys["a"]);
    EXPECT_EQ(r.status, 405);
    ASSERT_FALSE(r.headers.empty());
    EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"Allow", "GET"}));
    EXPECT_EQ(call("GET", "/api/v1/nope", m_keys["a"]).status, 404);

    store::ApiKeyRepository repo(*m_db);
    ASSERT_TRUE(repo.revoke("r", now_ms()).ok());
    r = call("GET", "/api/v1/system", m_keys["r"]);
    EXPECT_EQ(r.status, 401);
    EXPECT_NE(body_of(r)["detail"].get<std::string>().find("revoked"), std::string::npos);
}

TEST_F(ApiHandlerTest, LastUsedIsWrittenAtMostOncePerMinute) {
    ASSERT_EQ(call("GET", "/api/v1/system", m_keys["a"]).status, 200);
    // The write happens on the handler's worker thread, off the request's own thread.
    std::optional<std::int64_t> used;
    for (int i = 0; i < 200 && !used; ++i) {
        auto first = m_db->prepare("SELECT last_used_at FROM api_keys WHERE name = 'a'");
        ASSERT_TRUE(first.step());
        used = first.column_optional_int64(0);
        if (!used) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    ASSERT_TRUE(used.has_value());
    m_db->exec("UPDATE api_keys SET last_used_at = 5 WHERE name = 'a'");
    ASSERT_EQ(call("GET", "/api/v1/system", m_keys["a"]).status, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // a write would have landed
    auto second = m_db->prepare("SELECT last_used_at FROM api_keys WHERE name = 'a'");
    ASSERT_TRUE(second.step());
    EXPECT_EQ(second.column_int64(0), 5) << "touched again within a minute";
}

TEST_F(ApiHandlerTest, SubmitKeysSeeOnlyTheirOwnJobs) {
    auto r = call("POST", "/api/v1/jobs", m_keys["s1"],
                  R"({"series_uid": "1.2.3", "algorithm": "body", "outputs": ["seg"]})");
    ASSERT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(m_wakes, 1);
    const auto id = std::to_string(body_of(r)["id"].get<std::int64_t>());
    EXPECT_EQ(body_of(r)["destination"], "none");
    EXPECT_EQ(body_of(r)["owner"], "s1");
    EXPECT_EQ(call("GET", "/api/v1/jobs/" + id, m_keys["s1"]).status, 200);
    EXPECT_EQ(call("GET", "/api/v1/jobs/" + id, m_keys["s2"]).status, 404);
    EXPECT_EQ(call("POST", "/api/v1/jobs/" + id + "/cancel", m_keys["s2"]).status, 404);
    EXPECT_EQ(body_of(call("GET", "/api/v1/jobs", m_keys["s2"]))["items"].size(), 0U);
    EXPECT_EQ(body_of(call("GET", "/api/v1/jobs", m_keys["r"]))["items"].size(), 1U);
    EXPECT_EQ(call("POST", "/api/v1/jobs/" + id + "/cancel", m_keys["r"]).status, 403);
    r = call("POST", "/api/v1/jobs/" + id + "/cancel", m_keys["s1"]);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(body_of(r)["state"], "cancelled");
    EXPECT_EQ(call("POST", "/api/v1/jobs/" + id + "/cancel", m_keys["s1"]).status, 409);
    EXPECT_EQ(call("POST", "/api/v1/jobs/" + id + "/retry", m_keys["a"]).status, 200);
}

TEST_F(ApiHandlerTest, SubmitValidationNamesTheProblem) {
    auto detail = [&](const std::string& body) {
        const auto r = call("POST", "/api/v1/jobs", m_keys["s1"], body);
        return std::to_string(r.status) + " " + body_of(r)["detail"].get<std::string>();
    };
    EXPECT_EQ(detail(R"({"series_uid": "9.9", "algorithm": "body"})").substr(0, 3), "404");
    EXPECT_EQ(detail(R"({"series_uid": "1.2.3", "algorithm": "body", "settings":
                         {"min_hu": 99999}})")
                  .rfind("422 settings.min_hu: ", 0),
              0U);
    EXPECT_EQ(detail(R"({"series_uid": "1.2.3", "algorithm": "nope"})").rfind("422 algorithm", 0),
              0U);
    EXPECT_NE(detail(R"({"series_uid": "1.2.3", "algorithm": )").find("400 malformed JSON"),
              std::string::npos);
    EXPECT_EQ(detail(R"({"series_uid": "1.2.3", "algorithm": "body", "destination": "x"})")
                  .rfind("422 destination: unknown peer 'x'", 0),
              0U);
}

TEST_F(ApiHandlerTest, JobServiceTypedResults) {
    pipeline::JobService service(m_config, m_registry);
    pipeline::SubmitRequest req;
    req.series_uid = "1.2.3";
    req.algorithm = "body";
    req.outputs = {OutputKind::Seg};
    req.destination = "none";
    auto out = service.submit(*m_db, req);
    ASSERT_TRUE(out.ok()) << out.message;
    ASSERT_TRUE(out.job.has_value());
    EXPECT_EQ(out.job->spec.destination, "none");
    EXPECT_TRUE(out.job->spec.dest_ae.empty());
    EXPECT_FALSE(out.job->spec.owner_key_id.has_value());
    req.series_uid = "4.5.6";
    EXPECT_EQ(service.submit(*m_db, req).problem, pipeline::JobProblem::SeriesNotFound);
    req.series_uid = "1.2.3";
    req.destination = "sender"; // no [[peers]] entry for CT1
    EXPECT_EQ(service.submit(*m_db, req).problem, pipeline::JobProblem::UnknownDestination);
    EXPECT_EQ(pipeline::cancel_job(*m_db, 999).problem, pipeline::JobProblem::JobNotFound);
    EXPECT_EQ(pipeline::retry_job(*m_db, out.job_id).problem, pipeline::JobProblem::Conflict);
    EXPECT_TRUE(pipeline::cancel_job(*m_db, out.job_id).ok());
    EXPECT_TRUE(pipeline::retry_job(*m_db, out.job_id).ok());
}
