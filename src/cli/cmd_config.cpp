#include "cli_common.hpp"
#include "segnode/algorithms/registry.hpp"
#include "segnode/pipeline/routing.hpp"

#include <iostream>

namespace segnode::cli {

void add_config_command(CLI::App& app, GlobalOptions& options, int& exit_code) {
    auto* cmd = app.add_subcommand("config", "Configuration tools");
    cmd->require_subcommand(1);
    auto* check = cmd->add_subcommand("check", "Validate a config file (default: --config)");
    auto file = std::make_shared<std::string>();
    check->add_option("FILE", *file, "Config file to check");
    check->callback([&options, &exit_code, file] {
        GlobalOptions effective = options;
        if (!file->empty()) {
            effective.config_file = *file;
        }
        if (effective.config_file.empty()) {
            std::cerr << "config check: no file given (pass FILE or --config)\n";
            exit_code = 2;
            return;
        }
        auto config = resolve_config(effective);
        if (!config) {
            exit_code = 1;
            return;
        }
        const Config& c = *config;
        const auto registry = resolve_registry(c);
        if (!registry) {
            exit_code = 1;
            return;
        }
        if (auto st = pipeline::validate_rules(c, *registry); !st) {
            std::cerr << st.error().message << "\n";
            exit_code = 1;
            return;
        }
        std::cout << "config OK: " << c.source << "\n"
                  << "  node:    ae_title=" << c.node.ae_title
                  << " workdir=" << c.node.workdir.string() << "\n"
                  << "  dicom:   " << c.dicom.bind_address << ":" << c.dicom.port
                  << " max_associations=" << c.dicom.max_associations
                  << " allowed_callers=" << c.dicom.allowed_callers.size()
                  << (c.dicom.allowed_callers.empty() ? " (any caller)" : "") << "\n"
                  << "  storage: fsync=" << (c.storage.fsync ? "true" : "false")
                  << " duplicate_policy=" << to_string(c.storage.duplicate_policy) << "\n"
                  << "  series:  quiet_period_s=" << c.series.quiet_period_s
                  << " late_instance_policy=" << to_string(c.series.late_instance_policy) << "\n"
                  << "  jobs:    workers=" << c.jobs.workers << " timeout_s=" << c.jobs.timeout_s
                  << " send attempts=" << c.send.attempts << "\n";
        if (c.http.enabled) {
            std::cout << "  http:    " << (c.http.tls_cert_file.empty() ? "http" : "https") << "://"
                      << c.http.bind_address << ":" << c.http.port
                      << " max_connections=" << c.http.max_connections
                      << " max_body_bytes=" << c.http.max_body_bytes << "\n";
        } else {
            std::cout << "  http:    disabled\n";
        }
        for (const PeerConfig& peer : c.peers) {
            std::cout << "  peer:    " << peer.name << " = " << peer.ae_title << "@" << peer.host
                      << ":" << peer.port << "\n";
        }
        for (const RuleConfig& rule : c.rules) {
            std::cout << "  rule:    " << rule.name << " -> " << rule.algorithm << " ("
                      << pipeline::outputs_text(rule.outputs) << ") to " << rule.destination
                      << "\n";
        }
        for (const ExternalAlgorithmConfig& algo : c.algorithms) {
            std::cout << "  algorithm: " << algo.name << " " << algo.version
                      << " (external: " << algo.command.front() << ", layout " << algo.layout
                      << ", " << algo.input_format << " -> " << algo.output_kind << ", timeout "
                      << algo.timeout_s << " s, max_parallel " << algo.max_parallel << ")\n";
        }
        if (c.rules.empty()) {
            std::cout << "  rules:   none (received series are stored but not processed)\n";
        }
    });
}

} // namespace segnode::cli
