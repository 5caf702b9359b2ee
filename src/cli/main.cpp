// segnode: one binary, the daemon (`serve`) being one subcommand among the admin commands.
#include "cli_common.hpp"
#include "segnode/core/version.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
    CLI::App app{"segnode - a DICOM node that segments what it receives"};
    app.set_version_flag("--version", segnode::version_string());
    app.require_subcommand(1);
    app.fallthrough();

    segnode::cli::GlobalOptions options;
    int exit_code = 0;
    segnode::cli::add_global_options(app, options);
    segnode::cli::add_serve_command(app, options, exit_code);
    segnode::cli::add_config_command(app, options, exit_code);
    segnode::cli::add_db_command(app, options, exit_code);
    segnode::cli::add_key_command(app, options, exit_code);
    segnode::cli::add_algorithm_command(app, options, exit_code);
    segnode::cli::add_run_command(app, options, exit_code);
    segnode::cli::add_peer_command(app, options, exit_code);
    segnode::cli::add_job_command(app, options, exit_code);
    segnode::cli::add_series_command(app, options, exit_code);
    segnode::cli::add_submit_command(app, options, exit_code);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // CLI11 prints the message; usage errors exit with 2 (--help and --version with 0).
        return app.exit(e) == 0 ? 0 : 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "segnode: %s\n", e.what());
        return 1;
    }
    return exit_code;
}
