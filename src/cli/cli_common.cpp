#include "cli_common.hpp"
#include "segnode/pipeline/algorithm_catalog.hpp"

#include <cstdlib>
#include <iostream>

#include "segnode/store/migrations.hpp"
#include "segnode/store/workdir.hpp"

namespace segnode::cli {

void add_global_options(CLI::App& app, GlobalOptions& o) {
    app.add_option("-c,--config", o.config_file, "Config file (default: $SEGNODE_CONFIG, else built-in defaults)")
        ->envname("SEGNODE_CONFIG");
    app.add_option("--ae-title", o.overrides.ae_title, "Override node.ae_title");
    app.add_option("--port", o.overrides.port, "Override dicom.port");
    app.add_option("--workdir", o.overrides.workdir, "Override node.workdir");
    app.add_option("--log-level", o.overrides.log_level,
                   "Override log.level (trace, debug, info, warn, error, critical, off)");
}

std::optional<Config> resolve_config(const GlobalOptions& o) {
    Config config;
    if (!o.config_file.empty()) {
        auto loaded = load_config(o.config_file);
        if (!loaded) {
            std::cerr << loaded.error().message << "\n";
            return std::nullopt;
        }
        config = std::move(loaded).value();
    }
    if (auto st = apply_overrides(config, o.overrides); !st) {
        std::cerr << st.error().message << "\n";
        return std::nullopt;
    }
    return config;
}

std::optional<algorithms::Registry> resolve_registry(const Config& config) {
    auto registry = pipeline::make_registry(config);
    if (!registry) {
        std::cerr << registry.error().message << "\n";
        return std::nullopt;
    }
    return std::move(*registry);
}

std::optional<store::Database> open_database(const Config& config, bool create, int* applied) {
    const store::Workdir workdir(config.node.workdir);
    if (create) {
        if (auto st = workdir.ensure(); !st) {
            std::cerr << st.error().message << "\n";
            return std::nullopt;
        }
    } else {
        std::error_code ec;
        if (!std::filesystem::exists(workdir.db_path(), ec)) {
            std::cerr << workdir.db_path().string()
                      << ": no database here (wrong --workdir? run 'segnode db migrate' to "
                         "create one)\n";
            return std::nullopt;
        }
    }
    auto db = store::Database::open(workdir.db_path(), create
                                                          ? store::Database::Mode::ReadWriteCreate
                                                          : store::Database::Mode::ReadWrite);
    if (!db) {
        std::cerr << db.error().message << "\n";
        return std::nullopt;
    }
    if (create) {
        auto migrated = store::migrate(*db);
        if (!migrated) {
            std::cerr << migrated.error().message << "\n";
            return std::nullopt;
        }
        if (applied != nullptr) {
            *applied = *migrated;
        }
    } else if (store::schema_version(*db) != store::latest_schema_version()) {
        std::cerr << workdir.db_path().string() << ": schema version "
                  << store::schema_version(*db) << ", this segnode expects "
                  << store::latest_schema_version() << " (run 'segnode db migrate')\n";
        return std::nullopt;
    }
    return std::move(db).value();
}

} // namespace segnode::cli
