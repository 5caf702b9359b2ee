#include "cli_common.hpp"
#include "segnode/store/backup.hpp"
#include "segnode/store/job_repo.hpp"
#include "segnode/store/migrations.hpp"
#include "segnode/store/receive_index.hpp"

#include <chrono>
#include <iomanip>
#include <iostream>
#include <memory>

namespace segnode::cli {

void add_db_command(CLI::App& app, GlobalOptions& options, int& exit_code) {
    auto* cmd = app.add_subcommand("db", "Database tools");
    cmd->require_subcommand(1);

    auto* migrate =
        cmd->add_subcommand("migrate", "Create the database or apply pending migrations");
    migrate->callback([&options, &exit_code] {
        auto config = resolve_config(options);
        if (!config) {
            exit_code = 2;
            return;
        }
        int applied = 0;
        auto db = open_database(*config, true, &applied);
        if (!db) {
            exit_code = 1;
            return;
        }
        std::cout << db->path().string() << ": schema version " << store::schema_version(*db)
                  << " (" << applied << " migration(s) applied)\n";
    });

    auto* status = cmd->add_subcommand("status", "Schema version and counts");
    status->callback([&options, &exit_code] {
        with_database(options, exit_code, "db status", [&](const Config&, store::Database& db) {
            const auto c = store::ReceiveIndex(db).counts();
            std::cout << "database:        " << db.path().string() << "\n"
                      << "schema version:  " << store::schema_version(db) << " (latest "
                      << store::latest_schema_version() << ")\n"
                      << "instances:       " << c.instances << "\n"
                      << "series:          " << c.series_receiving << " receiving, "
                      << c.series_complete << " complete, " << c.series_routed << " routed\n"
                      << "associations:    " << c.associations << "\n"
                      << "refused stores:  " << c.refused << "\n"
                      << "quarantined:     " << c.quarantined << "\n"
                      << "active API keys: " << c.api_keys << "\n";
            if (store::schema_version(db) >= 2) {
                std::cout << "jobs:            ";
                bool first = true;
                for (const auto& [state, n] : store::JobRepo(db).count_by_state()) {
                    std::cout << (first ? "" : ", ") << n << " " << state;
                    first = false;
                }
                std::cout << (first ? "none" : "") << "\n";
            }
        });
    });

    auto* backup = cmd->add_subcommand(
        "backup", "Copy the database to FILE while the node runs (SQLite online backup)");
    auto file = std::make_shared<std::string>();
    backup->add_option("FILE", *file, "Where to write the copy (must not exist)")->required();
    backup->callback([&options, &exit_code, file] {
        with_database(options, exit_code, "db backup", [&](const Config&, store::Database& db) {
            const auto start = std::chrono::steady_clock::now();
            auto copy = store::backup_database(db, *file);
            if (!copy) {
                std::cerr << "db backup: " << copy.error().message << "\n";
                exit_code = 1;
                return;
            }
            const double seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            std::cout << copy->file.string() << ": " << copy->bytes << " bytes, " << copy->pages
                      << " pages, schema version " << copy->schema_version << ", "
                      << copy->instances << " instances, " << copy->jobs << " jobs (" << std::fixed
                      << std::setprecision(2) << seconds << " s)\n";
        });
    });
}

} // namespace segnode::cli
