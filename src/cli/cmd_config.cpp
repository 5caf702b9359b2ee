#include <iostream>

#include "cli_common.hpp"

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
                  << " late_instance_policy=" << to_string(c.series.late_instance_policy)
                  << "\n";
    });
}

} // namespace segnode::cli
