// segnode series list | show UID | run UID --algorithm NAME [--set k=v] [--to PEER]
#include "cli_common.hpp"
#include "segnode/algorithms/registry.hpp"
#include "segnode/core/clock.hpp"
#include "segnode/pipeline/job_service.hpp"
#include "segnode/pipeline/routing.hpp"
#include "segnode/pipeline/series_taken.hpp"
#include "segnode/store/job_repo.hpp"
#include "segnode/store/receive_index.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

namespace segnode::cli {
namespace {

struct RunOptions {
    std::string uid;
    std::string algorithm;
    std::vector<std::string> assignments;
    std::string to = "sender";
    std::string outputs = "both";
};

constexpr const char* k_list_format = "%-64s %-9s %-4s %6s %-12s %-25s %s\n";
constexpr const char* k_list_row_format = "%-64s %-9s %-4s %6lld %-12s %-25s %s\n";

void print_list_header() {
    std::printf(k_list_format, "SERIES UID", "STATE", "MOD", "COUNT", "FROM", "LAST RECEIVED",
                "DESCRIPTION");
}

/// The fields `series show` prints, from the database or from GET /api/v1/series/{uid}.
struct ShownSeries {
    store::SeriesRow row; ///< the times below instead of the row's
    std::string first_received, last_received, completed;
    std::vector<std::string> taken; ///< how the loader takes it (pipeline::describe_series_taken)
    std::string routing;            ///< "rule NAME (ALGORITHM)" or "no rule matches"
    struct Job {
        std::int64_t id = 0;
        std::string state, algorithm, outputs, destination, error;
    };
    std::vector<Job> jobs;
};

void print_series(const ShownSeries& shown) {
    const store::SeriesRow& s = shown.row;
    std::cout << "series " << s.attrs.series_uid << "\n"
              << "  state:        " << to_string(s.state) << "\n"
              << "  patient:      " << s.attrs.patient_name << " (" << s.attrs.patient_id << ")\n"
              << "  study:        " << s.attrs.study_uid << " " << s.attrs.study_date
              << " accession " << s.attrs.accession_number << "\n"
              << "  modality:     " << s.attrs.modality << ", body part '" << s.attrs.body_part
              << "', number " << s.attrs.series_number << "\n"
              << "  description:  " << s.attrs.description << "\n"
              << "  from:         " << s.calling_ae << " at " << s.peer_address << " to "
              << s.called_ae << "\n"
              << "  instances:    " << s.instance_count << " (late " << s.late_instances << ")\n"
              << "  received:     " << shown.first_received << " .. " << shown.last_received << "\n"
              << "  completed:    " << shown.completed << "\n";
    for (std::size_t i = 0; i < shown.taken.size(); ++i) {
        std::cout << (i == 0 ? "  taken:        " : "                ") << shown.taken[i] << "\n";
    }
    std::cout << "  routing:      " << shown.routing << "\n";
    std::cout << "jobs:" << (shown.jobs.empty() ? " none" : "") << "\n";
    for (const ShownSeries::Job& j : shown.jobs) {
        std::cout << "  " << j.id << "  " << j.state << "  " << j.algorithm << "  " << j.outputs
                  << " -> " << j.destination << (j.error.empty() ? "" : "  " + j.error) << "\n";
    }
}

std::string routing_text(const RuleConfig* rule) {
    return rule != nullptr ? "rule " + rule->name + " (" + rule->algorithm + ")"
                           : std::string("no rule matches");
}

// --- the same, from a remote node's HTTP API (--server) -------------------------------------

store::SeriesRow series_from_json(const nlohmann::json& j) {
    store::SeriesRow s;
    s.attrs.series_uid = json_text(j["uid"]);
    s.state =
        store::parse_series_state(json_text(j["state"])).value_or(store::SeriesState::Receiving);
    s.attrs.study_uid = json_text(j["study_uid"]);
    s.attrs.patient_id = json_text(j["patient_id"]);
    s.attrs.patient_name = json_text(j["patient_name"]);
    s.attrs.study_date = json_text(j["study_date"]);
    s.attrs.accession_number = json_text(j["accession_number"]);
    s.attrs.modality = json_text(j["modality"]);
    s.attrs.series_number = json_text(j["series_number"]);
    s.attrs.description = json_text(j["description"]);
    s.attrs.body_part = json_text(j["body_part"]);
    s.calling_ae = json_text(j["calling_ae"]);
    s.called_ae = json_text(j["called_ae"]);
    s.peer_address = json_text(j["peer_address"]);
    s.instance_count = j["instance_count"].get<std::int64_t>();
    s.late_instances = j["late_instances"].get<std::int64_t>();
    return s;
}

void remote_list(const Remote& remote, const std::string& state, std::int64_t limit,
                 int& exit_code) {
    print_list_header();
    for_each_remote_item(
        remote, "/api/v1/series", state, limit, "series list", exit_code,
        [](const nlohmann::json& item) {
            const store::SeriesRow s = series_from_json(item);
            std::printf(k_list_row_format, s.attrs.series_uid.c_str(), to_string(s.state).c_str(),
                        s.attrs.modality.c_str(), static_cast<long long>(s.instance_count),
                        s.calling_ae.c_str(), json_text(item["last_received_at"]).c_str(),
                        s.attrs.description.c_str());
        });
}

void remote_show(const Remote& remote, const std::string& uid, int& exit_code) {
    const auto body =
        remote_json(remote, "GET", "/api/v1/series/" + uid, {}, "series show", exit_code);
    if (!body) {
        return;
    }
    ShownSeries shown;
    shown.row = series_from_json(*body);
    shown.first_received = json_text((*body)["first_received_at"]);
    shown.last_received = json_text((*body)["last_received_at"]);
    shown.completed =
        (*body)["completed_at"].is_string() ? json_text((*body)["completed_at"]) : "-";
    for (const auto& line : (*body)["taken"]) {
        shown.taken.push_back(json_text(line));
    }
    const auto& routing = (*body)["routing"];
    shown.routing = routing.is_object() ? "rule " + json_text(routing["rule"]) + " (" +
                                              json_text(routing["algorithm"]) + ")"
                                        : std::string("no rule matches");
    for (const auto& j : (*body)["jobs"]) {
        std::string outputs;
        for (const auto& o : j["outputs"]) {
            outputs += (outputs.empty() ? "" : ",") + json_text(o);
        }
        shown.jobs.push_back({j["id"].get<std::int64_t>(), json_text(j["state"]),
                              json_text(j["algorithm"]), outputs, json_text(j["destination"]),
                              json_text(j["error"])});
    }
    print_series(shown);
}

/// POST /api/v1/jobs; exit status as the local command's: 1 for a missing or empty series,
/// 2 for a request the node refuses (algorithm, settings, outputs, destination).
void remote_run(const Remote& remote, const RunOptions& ro, const algorithms::RawSettings& settings,
                const std::vector<OutputKind>& outputs, int& exit_code) {
    nlohmann::json request = {{"series_uid", ro.uid},
                              {"algorithm", ro.algorithm},
                              {"settings", nlohmann::json::object()},
                              {"outputs", nlohmann::json::array()},
                              {"destination", ro.to}};
    for (const auto& [k, v] : settings) {
        request["settings"][k] = v;
    }
    for (const OutputKind kind : outputs) {
        request["outputs"].push_back(std::string(to_string(kind)));
    }
    auto res = api::http_request(remote.url, "POST", "/api/v1/jobs", remote.key, request.dump(),
                                 remote.ca_file);
    if (!res) {
        std::cerr << "series run: " << res.error().message << "\n";
        exit_code = 1;
        return;
    }
    const auto body = nlohmann::json::parse(res->body, nullptr, false);
    const bool object = !body.is_discarded() && body.is_object();
    if (res->status == 202 && object) {
        std::cout << json_text(body["message"]) << "\n";
        return;
    }
    const std::string detail = object && body.contains("detail")
                                   ? json_text(body["detail"])
                                   : "HTTP " + std::to_string(res->status);
    std::cerr << "series run: " << detail << "\n";
    exit_code = res->status == 404 || res->status == 409 || res->status >= 500 ? 1 : 2;
}

} // namespace

void add_series_command(CLI::App& app, GlobalOptions& options, int& exit_code) {
    auto* cmd = app.add_subcommand("series", "Inspect received series and run algorithms on them");
    cmd->require_subcommand(1);

    auto* list = cmd->add_subcommand("list", "List series, most recently received first");
    auto state = std::make_shared<std::string>();
    auto limit = std::make_shared<std::int64_t>(50);
    list->add_option("--state", *state, "Only series in this state")
        ->check(CLI::IsMember({"receiving", "complete", "routed"}));
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
        with_database(options, exit_code, "series list", [&](const Config&, store::Database& db) {
            const auto filter = state->empty() ? std::nullopt : store::parse_series_state(*state);
            print_list_header();
            for (const auto& s :
                 store::ReceiveIndex(db).list_series_page(filter, std::nullopt, *limit)) {
                std::printf(k_list_row_format, s.attrs.series_uid.c_str(),
                            to_string(s.state).c_str(), s.attrs.modality.c_str(),
                            static_cast<long long>(s.instance_count), s.calling_ae.c_str(),
                            format_utc_ms(s.last_received_at).c_str(), s.attrs.description.c_str());
            }
        });
    });

    auto* show = cmd->add_subcommand("show", "A series' attributes, state and jobs");
    auto show_uid = std::make_shared<std::string>();
    show->add_option("UID", *show_uid, "Series Instance UID")->required();
    show->callback([&options, &exit_code, show_uid] {
        bool failed = false;
        if (const auto remote = resolve_remote(options, failed)) {
            remote_show(*remote, *show_uid, exit_code);
            return;
        }
        if (failed) {
            exit_code = 2;
            return;
        }
        with_database(options, exit_code, "series show",
                      [&](const Config& config, store::Database& db) {
                          store::ReceiveIndex index(db);
                          const auto s = index.find_series(*show_uid);
                          if (!s) {
                              std::cerr << "series show: no series " << *show_uid << "\n";
                              exit_code = 1;
                              return;
                          }
                          ShownSeries shown{*s,
                                            format_utc_ms(s->first_received_at),
                                            format_utc_ms(s->last_received_at),
                                            s->completed_at ? format_utc_ms(*s->completed_at) : "-",
                                            pipeline::describe_series_taken(config, index, s->id),
                                            routing_text(pipeline::first_match(config, *s)),
                                            {}};
                          for (const store::JobRow& j : store::JobRepo(db).for_series(s->id)) {
                              shown.jobs.push_back({j.id, to_string(j.state), j.spec.algorithm,
                                                    j.spec.outputs, j.spec.destination, j.error});
                          }
                          print_series(shown);
                      });
    });

    auto* run = cmd->add_subcommand("run", "Queue a job for a stored series on the running node");
    auto ro = std::make_shared<RunOptions>();
    run->add_option("UID", ro->uid, "Series Instance UID")->required();
    run->add_option("--algorithm", ro->algorithm, "Algorithm name (segnode algorithm list)")
        ->required();
    run->add_option("--set", ro->assignments, "Setting KEY=VALUE (repeatable)");
    run->add_option(
        "--to", ro->to,
        "Destination peer name, 'sender' (default) or 'none' (keep the results on the node)");
    run->add_option("--outputs", ro->outputs,
                    "seg, rtstruct, labelmap (comma-separated) or both (default both)");
    run->callback([&options, &exit_code, ro] {
        auto raw = algorithms::parse_assignments(ro->assignments);
        if (!raw) {
            std::cerr << "series run: --set: " << raw.error().message << "\n";
            exit_code = 2;
            return;
        }
        auto outputs = pipeline::parse_outputs(ro->outputs);
        if (!outputs) {
            std::cerr << "series run: --outputs: " << outputs.error().message << "\n";
            exit_code = 2;
            return;
        }
        bool failed = false;
        if (const auto remote = resolve_remote(options, failed)) {
            remote_run(*remote, *ro, *raw, *outputs, exit_code);
            return;
        }
        if (failed) {
            exit_code = 2;
            return;
        }
        auto config = resolve_config(options);
        if (!config) {
            exit_code = 2;
            return;
        }
        const auto made = resolve_registry(*config);
        if (!made) {
            exit_code = 2;
            return;
        }
        const algorithms::Registry& registry = *made;
        auto db = open_database(*config, false);
        if (!db) {
            exit_code = 1;
            return;
        }
        try {
            pipeline::SubmitRequest request;
            request.series_uid = ro->uid;
            request.algorithm = ro->algorithm;
            request.settings = *raw;
            request.outputs = *outputs;
            request.destination = ro->to;
            const auto outcome = pipeline::JobService(*config, registry).submit(*db, request);
            if (!outcome.ok()) {
                std::cerr << "series run: " << outcome.message << "\n";
                const bool missing = outcome.problem == pipeline::JobProblem::SeriesNotFound ||
                                     outcome.problem == pipeline::JobProblem::SeriesEmpty;
                exit_code = missing ? 1 : 2;
                return;
            }
            std::cout << outcome.message << "\n";
        } catch (const store::DatabaseError& e) {
            std::cerr << "series run: " << e.what() << "\n";
            exit_code = 1;
        }
    });
}

} // namespace segnode::cli
