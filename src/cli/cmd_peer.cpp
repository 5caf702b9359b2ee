// segnode peer list | echo NAME
#include <cstdio>
#include <iostream>

#include "cli_common.hpp"
#include "segnode/dicom/environment.hpp"
#include "segnode/dicom/store_scu.hpp"

namespace segnode::cli {

void add_peer_command(CLI::App& app, GlobalOptions& options, int& exit_code) {
    auto* cmd = app.add_subcommand("peer", "DICOM nodes results are sent to ([[peers]])");
    cmd->require_subcommand(1);

    auto* list = cmd->add_subcommand("list", "List the configured peers");
    list->callback([&options, &exit_code] {
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
        auto config = resolve_config(options);
        if (!config) {
            exit_code = 2;
            return;
        }
        const PeerConfig* peer = config->find_peer(*name);
        if (peer == nullptr) {
            std::cerr << "peer echo: no peer named '" << *name << "' in " << config->source
                      << "\n";
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
