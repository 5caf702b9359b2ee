#include "cli_common.hpp"
#include "segnode/store/job_repo.hpp"
#include "segnode/store/migrations.hpp"
#include "segnode/store/receive_index.hpp"

#include <iostream>

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
}

} // namespace segnode::cli
