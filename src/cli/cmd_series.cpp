// segnode series list | show UID | run UID --algorithm NAME [--set k=v] [--to PEER]
#include "cli_common.hpp"
#include "segnode/algorithms/registry.hpp"
#include "segnode/core/clock.hpp"
#include "segnode/dicom/series_loader.hpp"
#include "segnode/pipeline/job_service.hpp"
#include "segnode/pipeline/routing.hpp"
#include "segnode/store/job_repo.hpp"
#include "segnode/store/receive_index.hpp"

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

/// How the stored instances would be taken by the loader (headers only, nothing decoded):
/// transfer syntaxes and decoders, or why the series cannot be loaded.
void print_how_taken(const Config& config, store::ReceiveIndex& index, std::int64_t series_id) {
    std::vector<std::filesystem::path> files;
    for (const std::string& rel : index.series_files(series_id)) {
        files.push_back(config.node.workdir / rel);
    }
    if (files.empty()) {
        std::cout << "  taken:        - (no stored instances)\n";
        return;
    }
    dicom::LoadOptions options;
    options.headers_only = true;
    const auto loaded = dicom::load_series(files, options);
    if (!loaded) {
        std::cout << "  taken:        cannot be loaded: " << loaded.error().message << "\n";
        return;
    }
    const auto& d = loaded->volume.geometry.dims;
    std::cout << "  taken:        " << d[0] << " x " << d[1] << " x " << d[2] << " voxels\n";
    for (const std::string& line : loaded->how_taken) {
        std::cout << "                " << line << "\n";
    }
    for (const std::string& line : loaded->warnings) {
        std::cout << "                warning: " << line << "\n";
    }
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
        with_database(options, exit_code, "series list", [&](const Config&, store::Database& db) {
            std::optional<store::SeriesState> filter;
            if (*state == "receiving") {
                filter = store::SeriesState::Receiving;
            } else if (*state == "complete") {
                filter = store::SeriesState::Complete;
            } else if (*state == "routed") {
                filter = store::SeriesState::Routed;
            }
            std::printf("%-64s %-9s %-4s %6s %-12s %-25s %s\n", "SERIES UID", "STATE", "MOD",
                        "COUNT", "FROM", "LAST RECEIVED", "DESCRIPTION");
            for (const auto& s : store::ReceiveIndex(db).list_series(filter, *limit)) {
                std::printf("%-64s %-9s %-4s %6lld %-12s %-25s %s\n", s.attrs.series_uid.c_str(),
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
        with_database(
            options, exit_code, "series show", [&](const Config& config, store::Database& db) {
                store::ReceiveIndex index(db);
                const auto s = index.find_series(*show_uid);
                if (!s) {
                    std::cerr << "series show: no series " << *show_uid << "\n";
                    exit_code = 1;
                    return;
                }
                std::cout << "series " << s->attrs.series_uid << "\n"
                          << "  state:        " << to_string(s->state) << "\n"
                          << "  patient:      " << s->attrs.patient_name << " ("
                          << s->attrs.patient_id << ")\n"
                          << "  study:        " << s->attrs.study_uid << " " << s->attrs.study_date
                          << " accession " << s->attrs.accession_number << "\n"
                          << "  modality:     " << s->attrs.modality << ", body part '"
                          << s->attrs.body_part << "', number " << s->attrs.series_number << "\n"
                          << "  description:  " << s->attrs.description << "\n"
                          << "  from:         " << s->calling_ae << " at " << s->peer_address
                          << " to " << s->called_ae << "\n"
                          << "  instances:    " << s->instance_count << " (late "
                          << s->late_instances << ")\n"
                          << "  received:     " << format_utc_ms(s->first_received_at) << " .. "
                          << format_utc_ms(s->last_received_at) << "\n"
                          << "  completed:    "
                          << (s->completed_at ? format_utc_ms(*s->completed_at) : std::string("-"))
                          << "\n";
                print_how_taken(config, index, s->id);
                const auto matched = pipeline::first_match(config, *s);
                std::cout << "  routing:      "
                          << (matched != nullptr
                                  ? "rule " + matched->name + " (" + matched->algorithm + ")"
                                  : std::string("no rule matches"))
                          << "\n";
                const auto jobs = store::JobRepo(db).for_series(s->id);
                std::cout << "jobs:" << (jobs.empty() ? " none" : "") << "\n";
                for (const store::JobRow& j : jobs) {
                    std::cout << "  " << j.id << "  " << to_string(j.state) << "  "
                              << j.spec.algorithm << "  " << j.spec.outputs << " -> "
                              << j.spec.destination << (j.error.empty() ? "" : "  " + j.error)
                              << "\n";
                }
            });
    });

    auto* run = cmd->add_subcommand("run", "Queue a job for a stored series on the running node");
    auto ro = std::make_shared<RunOptions>();
    run->add_option("UID", ro->uid, "Series Instance UID")->required();
    run->add_option("--algorithm", ro->algorithm, "Algorithm name (segnode algorithm list)")
        ->required();
    run->add_option("--set", ro->assignments, "Setting KEY=VALUE (repeatable)");
    run->add_option("--to", ro->to, "Destination peer name, 'sender' (default) or 'none' (keep the results on the node)");
    run->add_option("--outputs", ro->outputs, "seg, rtstruct or both (default both)");
    run->callback([&options, &exit_code, ro] {
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
