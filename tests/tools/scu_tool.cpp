// segnode-test-scu: drives the dicom layer's SCU (segnode::dicom::echo / send_files) for the
// integration tests (tests/integration/test_store_scu.py).
//
//   segnode-test-scu echo  --host H --port N --aec AE [options]
//   segnode-test-scu store --host H --port N --aec AE [options] FILE...
// options: --aet AE (default SEGNODE) --connect-timeout S --acse-timeout S --dimse-timeout S
//          --max-pdu BYTES
//
// echo prints "echo ok <round trip ms> <total ms>". store prints one line per file, in order:
//     <sop instance uid or -> <success|warning|failure> 0x<status or ----> <detail or ->
// Exit status: 0 when the call returned a result (whatever the verdicts), 1 when it returned
// an error (printed on stderr), 2 on usage errors.
#include "segnode/dicom/store_scu.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: segnode-test-scu echo|store --host H --port N --aec AE [--aet AE]\n"
                 "       [--connect-timeout S] [--acse-timeout S] [--dimse-timeout S]\n"
                 "       [--max-pdu BYTES] [FILE...]\n");
}

bool parse_unsigned(const char* text, unsigned long max, unsigned long& out) {
    char* end = nullptr;
    const unsigned long v = std::strtoul(text, &end, 10);
    if (end == text || *end != '\0' || v > max) {
        return false;
    }
    out = v;
    return true;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        usage();
        return 2;
    }
    const std::string_view mode = argv[1];
    if (mode != "echo" && mode != "store") {
        usage();
        return 2;
    }
    segnode::dicom::PeerAddress peer;
    peer.host = "127.0.0.1";
    segnode::dicom::ScuOptions options;
    std::vector<std::filesystem::path> files;
    for (int i = 2; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        unsigned long n = 0;
        if (arg == "--host" && has_value) {
            peer.host = argv[++i];
        } else if (arg == "--port" && has_value && parse_unsigned(argv[++i], 65535, n)) {
            peer.port = static_cast<std::uint16_t>(n);
        } else if (arg == "--aec" && has_value) {
            peer.ae_title = argv[++i];
        } else if (arg == "--aet" && has_value) {
            options.calling_ae = argv[++i];
        } else if (arg == "--connect-timeout" && has_value && parse_unsigned(argv[++i], 3600, n)) {
            options.connect_timeout_s = static_cast<unsigned>(n);
        } else if (arg == "--acse-timeout" && has_value && parse_unsigned(argv[++i], 3600, n)) {
            options.acse_timeout_s = static_cast<unsigned>(n);
        } else if (arg == "--dimse-timeout" && has_value && parse_unsigned(argv[++i], 3600, n)) {
            options.dimse_timeout_s = static_cast<unsigned>(n);
        } else if (arg == "--max-pdu" && has_value && parse_unsigned(argv[++i], 1U << 24U, n)) {
            options.max_pdu_bytes = static_cast<unsigned>(n);
        } else if (!arg.empty() && arg[0] != '-') {
            files.emplace_back(arg);
        } else {
            std::fprintf(stderr, "segnode-test-scu: bad argument '%s'\n", argv[i]);
            usage();
            return 2;
        }
    }
    if (peer.ae_title.empty() || peer.port == 0 || (mode == "echo") != files.empty()) {
        usage();
        return 2;
    }

    if (mode == "echo") {
        auto r = segnode::dicom::echo(peer, options);
        if (!r) {
            std::fprintf(stderr, "%s\n", r.error().message.c_str());
            return 1;
        }
        std::printf("echo ok %lld %lld\n", static_cast<long long>(r->round_trip.count()),
                    static_cast<long long>(r->total.count()));
        return 0;
    }
    auto r = segnode::dicom::send_files(peer, options, files);
    if (!r) {
        std::fprintf(stderr, "%s\n", r.error().message.c_str());
        return 1;
    }
    for (const auto& o : *r) {
        char status[8] = "----";
        if (o.status) {
            std::snprintf(status, sizeof(status), "%04X", static_cast<unsigned>(*o.status));
        }
        std::printf("%s %s 0x%s %s\n",
                    o.sop_instance_uid.empty() ? "-" : o.sop_instance_uid.c_str(),
                    std::string(segnode::dicom::to_string(o.verdict)).c_str(), status,
                    o.detail.empty() ? "-" : o.detail.c_str());
    }
    return 0;
}
