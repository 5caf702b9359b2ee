#include "cli_common.hpp"
#include "segnode/core/logging.hpp"
#include "segnode/pipeline/service.hpp"

#include <iostream>

namespace segnode::cli {

void add_serve_command(CLI::App& app, GlobalOptions& options, int& exit_code) {
    auto* cmd = app.add_subcommand("serve", "Run the DICOM node (receiver, completion) until SIGTERM");
    cmd->callback([&options, &exit_code] {
        auto config = resolve_config(options);
        if (!config) {
            exit_code = 2;
            return;
        }
        if (auto st = setup_logging(config->log.level, config->log.file); !st) {
            std::cerr << st.error().message << "\n";
            exit_code = 2;
            return;
        }
        exit_code = pipeline::run_service(*config);
    });
}

} // namespace segnode::cli
