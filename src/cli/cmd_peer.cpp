// segnode peer list | echo NAME
#include "cli_common.hpp"
#include "segnode/dicom/environment.hpp"
#include "segnode/dicom/store_scu.hpp"

#include <cstdio>
#include <iostream>

namespace segnode::cli {

void add_peer_command(CLI::App& app, GlobalOptions& options, int& exit_code) {
    auto* cmd = app.add_subcommand("peer", "DICOM nodes results are sent to ([[peers]])");
    cmd->require_subcommand(1);

    auto* list = cmd->add_subcommand("list", "List the configured peers");
    list->callback([&options, &exit_code] {
        bool failed = false;
        if (const auto remote = resolve_remote(options, failed)) {
            const auto body =
                remote_json(*remote, "GET", "/api/v1/peers", {}, "peer list", exit_code);
            if (!body) {
                return;
            }
            if ((*body)["items"].empty()) {
                std::cout << "no peers configured on " << options.server << "\n";
                return;
            }
            std::printf("%-20s %-16s %-30s %s\n", "NAME", "AE TITLE", "HOST", "PORT");
            for (const auto& p : (*body)["items"]) {
                std::printf("%-20s %-16s %-30s %u\n", p["name"].get<std::string>().c_str(),
                            p["ae_title"].get<std::string>().c_str(),
                            p["host"].get<std::string>().c_str(), p["port"].get<unsigned>());
            }
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
        if (config->peers.empty()) {
            std::cout << "no peers configured (add [[peers]] entries to " << config->source
                      << ")\n";
            return;
        }
        std::printf("%-20s %-16s %-30s %s\n", "NAME", "AE TITLE", "HOST", "PORT");
        for (const PeerConfig& p : config->peers) {
            std::printf("%-20s %-16s %-30s %u\n", p.name.c_str(), p.ae_title.c_str(),
                        p.host.c_str(), static_cast<unsigned>(p.port));
        }
    });

    auto* echo = cmd->add_subcommand("echo", "C-ECHO a peer and report the verdict");
    auto name = std::make_shared<std::string>();
    echo->add_option("NAME", *name, "Peer name")->required();
    echo->callback([&options, &exit_code, name] {
        bool failed = false;
        if (const auto remote = resolve_remote(options, failed)) {
            // The node echoes the peer: the verdict is from the node's network, not ours.
            auto res = api::http_request(remote->url, "POST", "/api/v1/peers/" + *name + "/echo",
                                         remote->key, {}, remote->ca_file);
            if (!res) {
                std::cerr << "peer echo: " << res.error().message << "\n";
                exit_code = 1;
                return;
            }
            const auto body = nlohmann::json::parse(res->body, nullptr, false);
            const std::string detail =
                body.is_object() && body.contains("detail") && body["detail"].is_string()
                    ? body["detail"].get<std::string>()
                    : "HTTP " + std::to_string(res->status);
            if (res->status == 502) {
                std::cout << "FAILED: " << *name << ": " << detail << "\n";
                exit_code = 1;
                return;
            }
            if (res->status != 200 || !body.is_object() || !body.contains("round_trip_ms")) {
                std::cerr << "peer echo: " << detail << "\n";
                exit_code = res->status == 404 ? 2 : 1;
                return;
            }
            const dicom::PeerAddress address{body["ae_title"].get<std::string>(),
                                             body["host"].get<std::string>(),
                                             body["port"].get<std::uint16_t>()};
            std::cout << "OK: " << *name << " (" << dicom::describe_peer(address)
                      << ") answered C-ECHO in " << body["round_trip_ms"].get<std::int64_t>()
                      << " ms (calling AE " << body["calling_ae"].get<std::string>() << ")\n";
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
        const PeerConfig* peer = config->find_peer(*name);
        if (peer == nullptr) {
            std::cerr << "peer echo: no peer named '" << *name << "' in " << config->source << "\n";
            exit_code = 2;
            return;
        }
        if (auto st = dicom::init_dicom_environment(); !st) {
            std::cerr << "peer echo: " << st.error().message << "\n";
            exit_code = 1;
            return;
        }
        const dicom::PeerAddress address{peer->ae_title, peer->host, peer->port};
        const dicom::ScuOptions scu = dicom::scu_options_from(*config);
        auto result = dicom::echo(address, scu);
        if (!result) {
            std::cout << "FAILED: " << peer->name << ": " << result.error().message << "\n";
            exit_code = 1;
            return;
        }
        std::cout << "OK: " << peer->name << " (" << dicom::describe_peer(address)
                  << ") answered C-ECHO in " << result->round_trip.count() << " ms (calling AE "
                  << scu.calling_ae << ")\n";
    });
}

} // namespace segnode::cli
