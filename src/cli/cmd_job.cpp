// segnode job list [--state S] | show ID | retry ID | cancel ID
// All of them work against the database of a running node (SQLite WAL, busy timeout): the
// node picks up retried jobs and cancellation requests at its next poll.
#include "cli_common.hpp"
#include "segnode/core/clock.hpp"
#include "segnode/pipeline/job_service.hpp"
#include "segnode/store/job_repo.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace segnode::cli {
namespace {

std::string when(const std::optional<std::int64_t>& ms) {
    return ms ? format_utc_ms(*ms) : std::string("-");
}

void print_job(store::JobRepo& repo, const store::JobRow& j) {
    std::cout << "job " << j.id << "\n"
              << "  state:       " << to_string(j.state)
              << (j.cancel_requested ? " (cancellation requested)" : "") << "\n"
              << "  series:      " << j.spec.series_uid << "\n"
              << "  rule:        " << j.spec.rule << "\n"
              << "  algorithm:   " << j.spec.algorithm << " " << j.spec.algorithm_version << "\n"
              << "  settings:    ";
    if (j.spec.settings.empty()) {
        std::cout << "(defaults)\n";
    } else {
        std::string s = j.spec.settings;
        for (char& ch : s) {
            ch = ch == '\n' ? ' ' : ch;
        }
        std::cout << s << "\n";
    }
    std::cout << "  outputs:     " << j.spec.outputs << "\n"
              << "  destination: " << j.spec.destination;
    if (!j.spec.dest_ae.empty()) {
        std::cout << " (" << j.spec.dest_ae << " at " << j.spec.dest_host << ":" << j.spec.dest_port
                  << ")";
    }
    std::cout << "\n"
              << "  runs:        " << j.runs << ", send attempts: " << j.send_attempts << "\n"
              << "  created:     " << format_utc_ms(j.created_at) << "\n"
              << "  started:     " << when(j.started_at) << "\n"
              << "  finished:    " << when(j.finished_at) << "\n";
    if (j.purged_at) {
        std::cout << "  purged:      " << format_utc_ms(*j.purged_at) << " (outputs removed)\n";
    }
    if (!j.error.empty()) {
        std::cout << "  error:       " << j.error << "\n";
    }
    const auto outputs = repo.outputs(j.id);
    if (!outputs.empty()) {
        std::cout << "outputs:\n";
        for (const store::JobOutput& o : outputs) {
            std::cout << "  " << o.kind << "  " << o.relpath << "  " << o.size_bytes
                      << " bytes  SOP " << o.sop_instance_uid << "  "
                      << (o.sent_at ? "sent " + format_utc_ms(*o.sent_at) : std::string("not sent"))
                      << (o.send_detail.empty() ? "" : " (" + o.send_detail + ")") << "\n";
        }
    }
    std::cout << "timeline:\n";
    for (const store::JobEvent& e : repo.events(j.id)) {
        std::cout << "  " << format_utc_ms(e.at) << "  " << e.event
                  << (e.detail.empty() ? "" : "  " + e.detail) << "\n";
    }
}

// --- the same, from a remote node's HTTP API (--server) -------------------------------------

std::string text_of(const nlohmann::json& v) {
    return v.is_string() ? v.get<std::string>() : (v.is_null() ? std::string("-") : v.dump());
}

void remote_list(const Remote& remote, const std::string& state, std::int64_t limit,
                 int& exit_code) {
    std::printf("%-6s %-9s %-10s %-14s %-12s %-25s %s\n", "ID", "STATE", "ALGORITHM", "OUTPUTS",
                "DEST", "CREATED", "ERROR");
    for_each_remote_item(
        remote, "/api/v1/jobs", state, limit, "job list", exit_code, [](const nlohmann::json& j) {
            std::string outputs;
            for (const auto& o : j["outputs"]) {
                outputs += (outputs.empty() ? "" : ",") + o.get<std::string>();
            }
            std::printf("%-6lld %-9s %-10s %-14s %-12s %-25s %s\n",
                        static_cast<long long>(j["id"].get<std::int64_t>()),
                        text_of(j["state"]).c_str(), text_of(j["algorithm"]).c_str(),
                        outputs.c_str(), text_of(j["destination"]).c_str(),
                        text_of(j["created_at"]).c_str(), text_of(j["error"]).c_str());
        });
}

void remote_show(const Remote& remote, std::int64_t id, int& exit_code) {
    const std::string base = "/api/v1/jobs/" + std::to_string(id);
    const auto j = remote_json(remote, "GET", base, {}, "job show", exit_code);
    if (!j) {
        return;
    }
    const auto outputs = remote_json(remote, "GET", base + "/outputs", {}, "job show", exit_code);
    if (!outputs) {
        return;
    }
    std::string settings;
    for (const auto& [k, v] : (*j)["settings"].items()) {
        settings += (settings.empty() ? "" : " ") + k + "=" + text_of(v);
    }
    std::string kinds;
    for (const auto& o : (*j)["outputs"]) {
        kinds += (kinds.empty() ? "" : ",") + o.get<std::string>();
    }
    std::cout << "job " << id << "\n"
              << "  state:       " << text_of((*j)["state"])
              << ((*j)["cancel_requested"].get<bool>() ? " (cancellation requested)" : "") << "\n"
              << "  series:      " << text_of((*j)["series_uid"]) << "\n"
              << "  rule:        " << text_of((*j)["rule"]) << "\n"
              << "  algorithm:   " << text_of((*j)["algorithm"]) << " "
              << text_of((*j)["algorithm_version"]) << "\n"
              << "  settings:    " << (settings.empty() ? "(defaults)" : settings) << "\n"
              << "  outputs:     " << kinds << "\n"
              << "  destination: " << text_of((*j)["destination"]) << "\n"
              << "  owner:       " << text_of((*j)["owner"]) << "\n"
              << "  runs:        " << (*j)["runs"].get<std::int64_t>()
              << ", send attempts: " << (*j)["send_attempts"].get<std::int64_t>() << "\n"
              << "  created:     " << text_of((*j)["created_at"]) << "\n"
              << "  started:     " << text_of((*j)["started_at"]) << "\n"
              << "  finished:    " << text_of((*j)["finished_at"]) << "\n";
    if (!(*j)["purged_at"].is_null()) {
        std::cout << "  purged:      " << text_of((*j)["purged_at"]) << " (outputs removed)\n";
    }
    if (!text_of((*j)["error"]).empty()) {
        std::cout << "  error:       " << text_of((*j)["error"]) << "\n";
    }
    if (!(*outputs)["items"].empty()) {
        std::cout << "outputs:\n";
        for (const auto& o : (*outputs)["items"]) {
            std::cout << "  " << text_of(o["kind"]) << "  " << text_of(o["href"]) << "  "
                      << o["size_bytes"].get<std::int64_t>() << " bytes  SOP "
                      << text_of(o["sop_instance_uid"]) << "  "
                      << (o["sent_at"].is_null() ? std::string("not sent")
                                                 : "sent " + text_of(o["sent_at"]))
                      << "\n";
        }
    }
    std::cout << "timeline:\n";
    for (const auto& e : (*j)["timeline"]) {
        const std::string detail = text_of(e["detail"]);
        std::cout << "  " << text_of(e["at"]) << "  " << text_of(e["event"])
                  << (detail.empty() ? "" : "  " + detail) << "\n";
    }
}

} // namespace

void add_job_command(CLI::App& app, GlobalOptions& options, int& exit_code) {
    auto* cmd = app.add_subcommand("job", "Inspect, retry and cancel jobs");
    cmd->require_subcommand(1);

    auto* list = cmd->add_subcommand("list", "List jobs, newest first");
    auto state = std::make_shared<std::string>();
    auto limit = std::make_shared<std::int64_t>(50);
    list->add_option("--state", *state, "Only jobs in this state")
        ->check(CLI::IsMember({"queued", "running", "sending", "done", "failed", "cancelled"}));
    list->add_option("--limit", *limit, "At most this many (default 50)")
        ->check(CLI::Range(1, 100000));
    list->callback([&options, &exit_code, state, limit] {
        bool failed = false;
        if (const auto remote = resolve_remote(options, failed)) {
            remote_list(*remote, *state, *limit, exit_code);
            return;
        }
        if (failed) {
            exit_code = 2;
            return;
        }
        with_database(options, exit_code, "job", [&](const Config&, store::Database& db) {
            store::JobRepo repo(db);
            const auto rows =
                repo.list(state->empty() ? std::nullopt : store::parse_job_state(*state), *limit);
            std::printf("%-6s %-9s %-10s %-14s %-12s %-25s %s\n", "ID", "STATE", "ALGORITHM",
                        "OUTPUTS", "DEST", "CREATED", "ERROR");
            for (const store::JobRow& j : rows) {
                std::printf("%-6lld %-9s %-10s %-14s %-12s %-25s %s\n",
                            static_cast<long long>(j.id), to_string(j.state).c_str(),
                            j.spec.algorithm.c_str(), j.spec.outputs.c_str(),
                            j.spec.destination.c_str(), format_utc_ms(j.created_at).c_str(),
                            j.error.c_str());
            }
        });
    });

    auto* show = cmd->add_subcommand("show", "A job's timeline, settings, outputs and error");
    auto show_id = std::make_shared<std::int64_t>(0);
    show->add_option("ID", *show_id, "Job id")->required();
    show->callback([&options, &exit_code, show_id] {
        bool failed = false;
        if (const auto remote = resolve_remote(options, failed)) {
            remote_show(*remote, *show_id, exit_code);
            return;
        }
        if (failed) {
            exit_code = 2;
            return;
        }
        with_database(options, exit_code, "job", [&](const Config&, store::Database& db) {
            store::JobRepo repo(db);
            const auto job = repo.find(*show_id);
            if (!job) {
                std::cerr << "job show: no job " << *show_id << "\n";
                exit_code = 1;
                return;
            }
            print_job(repo, *job);
        });
    });

    for (const char* verb : {"retry", "cancel"}) {
        const bool retry = std::string(verb) == "retry";
        auto* sub = cmd->add_subcommand(
            verb, retry ? "Run a failed or cancelled job again (or resend its results)"
                        : "Cancel a queued, running or sending job");
        auto id = std::make_shared<std::int64_t>(0);
        sub->add_option("ID", *id, "Job id")->required();
        sub->callback([&options, &exit_code, id, retry] {
            bool failed = false;
            if (const auto remote = resolve_remote(options, failed)) {
                const auto body = remote_json(
                    *remote, "POST",
                    "/api/v1/jobs/" + std::to_string(*id) + (retry ? "/retry" : "/cancel"), {}, "",
                    exit_code); // the local command prints the bare reason too
                if (body) {
                    std::cout << text_of((*body)["message"]) << "\n";
                    exit_code = 0;
                }
                return;
            }
            if (failed) {
                exit_code = 2;
                return;
            }
            with_database(options, exit_code, "job", [&](const Config&, store::Database& db) {
                const auto outcome =
                    retry ? pipeline::retry_job(db, *id) : pipeline::cancel_job(db, *id);
                (outcome.ok() ? std::cout : std::cerr) << outcome.message << "\n";
                exit_code = outcome.ok() ? 0 : 1;
            });
        });
    }
}

} // namespace segnode::cli
