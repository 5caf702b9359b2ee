#pragma once
#include "segnode/algorithms/registry.hpp"
#include "segnode/api/http_client.hpp"
#include "segnode/core/config.hpp"
#include "segnode/store/database.hpp"

#include <CLI/CLI.hpp>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace segnode::cli {

/// Options every subcommand understands (they may be given before or after it).
struct GlobalOptions {
    std::string config_file;
    ConfigOverrides overrides;
    std::string server;   ///< --server / $SEGNODE_SERVER: act on a remote node over HTTP
    std::string key_file; ///< --key-file: the API key for --server (else $SEGNODE_API_KEY)
};

/// A remote node for `--server`: its URL, the API key, and an optional CA file
/// ($SEGNODE_CA_FILE) for HTTPS.
struct Remote {
    api::ServerUrl url;
    std::string key;
    std::string ca_file;
};

/// std::nullopt with `failed` false: no --server, act locally. Otherwise the remote node; on
/// a bad URL or a missing key the error is printed and `failed` is set.
std::optional<Remote> resolve_remote(const GlobalOptions& options, bool& failed);

/// Sends one request to the remote node and parses the JSON answer. A transport error or an
/// error status prints "<command>: <detail>" (just the detail for an empty command) and
/// returns std::nullopt with exit_code 1.
std::optional<nlohmann::json> remote_json(const Remote& remote, const std::string& method,
                                          const std::string& target, const std::string& body,
                                          const char* command, int& exit_code);

/// Pages through a remote listing: GET `path`?limit=..[&state=..][&cursor=..] until `limit`
/// items were passed to `on_item` or the listing has no next page. A failed request is
/// reported as by remote_json (exit_code 1) and ends the listing.
void for_each_remote_item(const Remote& remote, const std::string& path, const std::string& state,
                          std::int64_t limit, const char* command, int& exit_code,
                          const std::function<void(const nlohmann::json&)>& on_item);

/// A JSON string's value; empty for anything else (null, a missing key).
std::string json_text(const nlohmann::json& v);

void add_global_options(CLI::App& app, GlobalOptions& options);

/// The effective configuration: --config (or $SEGNODE_CONFIG) if given, else the built-in
/// defaults, then command-line overrides. Prints the error and returns nullopt on failure.
std::optional<Config> resolve_config(const GlobalOptions& options);

/// The algorithms of this config: built-ins and [[algorithms]] (pipeline::make_registry).
/// Prints the error (file:line) and returns nullopt.
std::optional<algorithms::Registry> resolve_registry(const Config& config);

/// Opens the database of the configured working directory; with `create`, creates the
/// working directory and applies migrations first (their number goes to `*applied` when
/// given). Prints the error and returns nullopt.
std::optional<store::Database> open_database(const Config& config, bool create,
                                             int* applied = nullptr);

/// The usual frame of a command that reads or writes the node's database: resolves the
/// config (exit status 2 on error), opens the database (1 on error; with `create` it is
/// created and migrated first) and calls `f(config, db)`. A store::DatabaseError thrown by
/// `f` is printed as "<command>: <what>" with exit status 1.
template <typename F>
void with_database(const GlobalOptions& options, int& exit_code, const char* command, F&& f,
                   bool create = false) {
    auto config = resolve_config(options);
    if (!config) {
        exit_code = 2;
        return;
    }
    auto db = open_database(*config, create);
    if (!db) {
        exit_code = 1;
        return;
    }
    try {
        f(*config, *db);
    } catch (const store::DatabaseError& e) {
        std::cerr << command << ": " << e.what() << "\n";
        exit_code = 1;
    }
}

void add_serve_command(CLI::App& app, GlobalOptions& options, int& exit_code);
void add_config_command(CLI::App& app, GlobalOptions& options, int& exit_code);
void add_db_command(CLI::App& app, GlobalOptions& options, int& exit_code);
void add_key_command(CLI::App& app, GlobalOptions& options, int& exit_code);
void add_algorithm_command(CLI::App& app, GlobalOptions& options, int& exit_code);
void add_run_command(CLI::App& app, GlobalOptions& options, int& exit_code);
void add_peer_command(CLI::App& app, GlobalOptions& options, int& exit_code);
void add_job_command(CLI::App& app, GlobalOptions& options, int& exit_code);
void add_series_command(CLI::App& app, GlobalOptions& options, int& exit_code);
void add_submit_command(CLI::App& app, GlobalOptions& options, int& exit_code);

} // namespace segnode::cli
