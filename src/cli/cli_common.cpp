#include "cli_common.hpp"

#include "segnode/pipeline/algorithm_catalog.hpp"
#include "segnode/store/migrations.hpp"
#include "segnode/store/workdir.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iostream>

namespace segnode::cli {

void add_global_options(CLI::App& app, GlobalOptions& o) {
    app.add_option("-c,--config", o.config_file,
                   "Config file (default: $SEGNODE_CONFIG, else built-in defaults)")
        ->envname("SEGNODE_CONFIG");
    app.add_option("--ae-title", o.overrides.ae_title, "Override node.ae_title");
    app.add_option("--port", o.overrides.port, "Override dicom.port");
    app.add_option("--workdir", o.overrides.workdir, "Override node.workdir");
    app.add_option("--log-level", o.overrides.log_level,
                   "Override log.level (trace, debug, info, warn, error, critical, off)");
    app.add_option("--server", o.server,
                   "job, series, algorithm, key and peer commands: act on the node at this URL "
                   "over its HTTP API "
                   "(http[s]://host:port; default: $SEGNODE_SERVER)")
        ->envname("SEGNODE_SERVER");
    app.add_option("--key-file", o.key_file,
                   "With --server: file holding the API key (default: $SEGNODE_API_KEY)");
}

std::optional<Remote> resolve_remote(const GlobalOptions& o, bool& failed) {
    failed = false;
    if (o.server.empty()) {
        return std::nullopt;
    }
    failed = true;
    auto url = api::parse_server_url(o.server);
    if (!url) {
        std::cerr << "--server: " << url.error().message << "\n";
        return std::nullopt;
    }
    Remote remote;
    remote.url = *url;
    if (!o.key_file.empty()) {
        std::ifstream in(o.key_file);
        if (!in || !std::getline(in, remote.key)) {
            std::cerr << "--key-file: cannot read an API key from " << o.key_file << "\n";
            return std::nullopt;
        }
    } else if (const char* env = std::getenv("SEGNODE_API_KEY"); env != nullptr) {
        remote.key = env;
    }
    while (!remote.key.empty() && std::isspace(static_cast<unsigned char>(remote.key.back()))) {
        remote.key.pop_back();
    }
    if (remote.key.empty()) {
        std::cerr << "--server needs an API key: set SEGNODE_API_KEY or give --key-file "
                     "(never the key itself as an argument)\n";
        return std::nullopt;
    }
    if (const char* ca = std::getenv("SEGNODE_CA_FILE"); ca != nullptr) {
        remote.ca_file = ca;
    }
    failed = false;
    return remote;
}

std::optional<nlohmann::json> remote_json(const Remote& remote, const std::string& method,
                                          const std::string& target, const std::string& body,
                                          const char* command, int& exit_code) {
    auto res = api::http_request(remote.url, method, target, remote.key, body, remote.ca_file);
    if (!res) {
        std::cerr << command << ": " << res.error().message << "\n";
        exit_code = 1;
        return std::nullopt;
    }
    const auto parsed = nlohmann::json::parse(res->body, nullptr, false);
    if (res->status >= 300) {
        std::string detail = "HTTP " + std::to_string(res->status);
        if (!parsed.is_discarded() && parsed.is_object() && parsed.contains("detail") &&
            parsed["detail"].is_string()) {
            detail = parsed["detail"].get<std::string>();
        }
        std::cerr << (*command != '\0' ? std::string(command) + ": " : std::string()) << detail
                  << "\n";
        exit_code = 1;
        return std::nullopt;
    }
    if (parsed.is_discarded()) {
        std::cerr << command << ": the server's answer is not JSON\n";
        exit_code = 1;
        return std::nullopt;
    }
    return parsed;
}

void for_each_remote_item(const Remote& remote, const std::string& path, const std::string& state,
                          std::int64_t limit, const char* command, int& exit_code,
                          const std::function<void(const nlohmann::json&)>& on_item) {
    std::string cursor;
    std::int64_t seen = 0;
    while (seen < limit) {
        const std::int64_t page = std::min<std::int64_t>(1000, limit - seen);
        std::string target = path + "?limit=" + std::to_string(page);
        target += state.empty() ? "" : "&state=" + state;
        target += cursor.empty() ? "" : "&cursor=" + cursor;
        const auto body = remote_json(remote, "GET", target, {}, command, exit_code);
        if (!body) {
            return;
        }
        for (const auto& item : (*body)["items"]) {
            on_item(item);
            ++seen;
        }
        if (!(*body)["next_cursor"].is_string()) {
            return;
        }
        cursor = (*body)["next_cursor"].get<std::string>();
    }
}

std::string json_text(const nlohmann::json& v) {
    return v.is_string() ? v.get<std::string>() : std::string();
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
    auto db =
        store::Database::open(workdir.db_path(), create ? store::Database::Mode::ReadWriteCreate
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
        std::cerr << workdir.db_path().string() << ": schema version " << store::schema_version(*db)
                  << ", this segnode expects " << store::latest_schema_version()
                  << " (run 'segnode db migrate')\n";
        return std::nullopt;
    }
    return std::move(db).value();
}

} // namespace segnode::cli
