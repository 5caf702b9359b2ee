#include "cli_common.hpp"
#include "segnode/api/http_server.hpp"
#include "segnode/core/logging.hpp"
#include "segnode/pipeline/service.hpp"

#include <iostream>

namespace segnode::cli {

void add_serve_command(CLI::App& app, GlobalOptions& options, int& exit_code) {
    auto* cmd =
        app.add_subcommand("serve", "Run the DICOM node (receiver, completion) until SIGTERM");
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
        // The HTTP API lives in the api layer, above pipeline: serve hands it in.
        api::HttpService http;
        exit_code = pipeline::run_service(*config, &http);
    });
}

} // namespace segnode::cli
