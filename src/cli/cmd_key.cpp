#include "cli_common.hpp"
#include "segnode/api/api_keys.hpp"
#include "segnode/core/clock.hpp"

#include <cstdio>
#include <iostream>

namespace segnode::cli {

void add_key_command(CLI::App& app, GlobalOptions& options, int& exit_code) {
    auto* cmd = app.add_subcommand("key", "API keys for the HTTP API");
    cmd->require_subcommand(1);

    auto* add = cmd->add_subcommand("add", "Issue a key; its secret is printed once");
    auto name = std::make_shared<std::string>();
    auto role = std::make_shared<std::string>();
    add->add_option("NAME", *name, "Key name (letters, digits, . _ -)")->required();
    add->add_option("--role", *role, "admin, submit or read")
        ->required()
        ->check(CLI::IsMember({"admin", "submit", "read"}));
    add->callback([&options, &exit_code, name, role] {
        if (auto problem = api::key_name_problem(*name)) {
            std::cerr << "key add: " << *problem << "\n";
            exit_code = 1;
            return;
        }
        bool failed = false;
        if (const auto remote = resolve_remote(options, failed)) {
            const nlohmann::json request = {{"name", *name}, {"role", *role}};
            const auto body =
                remote_json(*remote, "POST", "/api/v1/keys", request.dump(), "key add", exit_code);
            if (body) {
                std::cout << (*body)["key"].get<std::string>() << "\n";
                std::cerr << "API key '" << *name << "' (" << *role << ", prefix "
                          << (*body)["prefix"].get<std::string>()
                          << ") created. The key above is shown only now: store it safely.\n";
            }
            return;
        }
        if (failed) {
            exit_code = 2;
            return;
        }
        with_database(
            options, exit_code, "key add",
            [&](const Config&, store::Database& db) {
                store::ApiKeyRepository repo(db);
                auto issued = api::issue_key(repo, *name, *api::parse_role(*role));
                if (!issued) {
                    std::cerr << "key add: " << issued.error().message << "\n";
                    exit_code = 1;
                    return;
                }
                std::cout << issued->key << "\n";
                std::cerr << "API key '" << *name << "' (" << *role << ", prefix "
                          << issued->row.prefix
                          << ") created. The key above is shown only now: store it safely.\n";
            },
            true);
    });

    auto* list = cmd->add_subcommand("list", "List keys (never their secrets)");
    list->callback([&options, &exit_code] {
        bool failed = false;
        if (const auto remote = resolve_remote(options, failed)) {
            const auto body =
                remote_json(*remote, "GET", "/api/v1/keys", {}, "key list", exit_code);
            if (!body) {
                return;
            }
            std::printf("%-24s %-7s %-9s %-25s %-25s %s\n", "NAME", "ROLE", "PREFIX", "CREATED",
                        "LAST USED", "STATUS");
            for (const auto& k : (*body)["items"]) {
                const std::string used =
                    k["last_used_at"].is_null() ? "never" : k["last_used_at"].get<std::string>();
                const std::string status = k["revoked_at"].is_null()
                                               ? "active"
                                               : "revoked " + k["revoked_at"].get<std::string>();
                std::printf(
                    "%-24s %-7s %-9s %-25s %-25s %s\n", k["name"].get<std::string>().c_str(),
                    k["role"].get<std::string>().c_str(), k["prefix"].get<std::string>().c_str(),
                    k["created_at"].get<std::string>().c_str(), used.c_str(), status.c_str());
            }
            return;
        }
        if (failed) {
            exit_code = 2;
            return;
        }
        with_database(options, exit_code, "key list", [&](const Config&, store::Database& db) {
            const auto rows = store::ApiKeyRepository(db).list();
            std::printf("%-24s %-7s %-9s %-25s %-25s %s\n", "NAME", "ROLE", "PREFIX", "CREATED",
                        "LAST USED", "STATUS");
            for (const auto& r : rows) {
                std::printf("%-24s %-7s %-9s %-25s %-25s %s\n", r.name.c_str(), r.role.c_str(),
                            r.prefix.c_str(), format_utc_ms(r.created_at).c_str(),
                            r.last_used_at ? format_utc_ms(*r.last_used_at).c_str() : "never",
                            r.revoked_at ? ("revoked " + format_utc_ms(*r.revoked_at)).c_str()
                                         : "active");
            }
        });
    });

    auto* revoke = cmd->add_subcommand("revoke", "Revoke a key by name");
    auto revoke_name = std::make_shared<std::string>();
    revoke->add_option("NAME", *revoke_name, "Key name")->required();
    revoke->callback([&options, &exit_code, revoke_name] {
        bool failed = false;
        if (const auto remote = resolve_remote(options, failed)) {
            if (remote_json(*remote, "DELETE", "/api/v1/keys/" + *revoke_name, {}, "key revoke",
                            exit_code)) {
                std::cout << "API key '" << *revoke_name << "' revoked\n";
            }
            return;
        }
        if (failed) {
            exit_code = 2;
            return;
        }
        with_database(options, exit_code, "key revoke", [&](const Config&, store::Database& db) {
            if (auto st = store::ApiKeyRepository(db).revoke(*revoke_name, now_ms()); !st) {
                std::cerr << "key revoke: " << st.error().message << "\n";
                exit_code = 1;
                return;
            }
            std::cout << "API key '" << *revoke_name << "' revoked\n";
        });
    });
}

} // namespace segnode::cli
