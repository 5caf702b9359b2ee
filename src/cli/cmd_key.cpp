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
