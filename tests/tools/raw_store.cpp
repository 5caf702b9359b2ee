// segnode-test-store: a minimal C-STORE SCU for segnode's integration tests.
//
//   segnode-test-store --host H --port N --aec AE [--aet AE] [--context-sop-class UID]
//                      [--command-sop-class UID] [--timeout S] [--pause-ms MS] FILE...
//
// It proposes one presentation context per distinct (SOP class, transfer syntax) of the input
// files -- abstract syntax = the file's SOP class, or --context-sop-class for all files --
// with the file's own transfer syntax first, then Explicit and Implicit VR Little Endian.
// Each file is sent as one C-STORE whose Affected SOP Class UID is --command-sop-class if
// given, else the data set's SOP Class UID. Unlike storescu it does not check or repair the
// data set: tests use it to send what a real peer would refuse to send.
//
// Output: one line per input file on stdout, flushed at once, in sending order:
//     <sop_instance_uid> <status> <error comment or ->
// <status> is the DIMSE status as 4 upper-case hex digits, or "----" when no C-STORE
// response was received for the file (no accepted presentation context, conversion or
// network failure, or the association broke before the file could be sent).
// Exit status: 0 if every file got status 0000, 1 if any did not, 2 on usage errors, an
// unreadable input file, a rejected or failed association or a network failure (the reason
// goes to stderr).
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/cond.h"
#include "dcmtk/dcmnet/dimse.h"
#include "dcmtk/oflog/oflog.h"
#include "dcmtk/ofstd/ofstd.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

constexpr int k_exit_ok = 0;
constexpr int k_exit_failed = 1;
constexpr int k_exit_error = 2;

struct Options {
    std::string host = "127.0.0.1";
    int port = 0;
    std::string called_ae;
    std::string calling_ae = "SEGTEST";
    std::string context_sop_class;
    std::string command_sop_class;
    int timeout_s = 30;
    int pause_ms = 0;
    std::vector<std::string> files;
};

struct InputFile {
    std::string path;
    std::string sop_class;
    std::string sop_instance;
    std::string transfer_syntax;
    std::string context_sop_class; ///< abstract syntax of the context it goes through
    T_ASC_PresentationContextID context_id = 0;
};

struct Context {
    T_ASC_PresentationContextID id = 0;
    std::string abstract_syntax;
    std::vector<std::string> transfer_syntaxes;
};

void usage(const char* argv0) {
    std::fprintf(stderr,
                 "usage: %s --host H --port N --aec AE [--aet AE] [--context-sop-class UID]\n"
                 "       [--command-sop-class UID] [--timeout S] [--pause-ms MS] FILE...\n",
                 argv0);
}

bool parse_int(std::string_view text, int lo, int hi, int& out) {
    if (text.empty() || text.size() > 9) {
        return false;
    }
    int value = 0;
    for (const char ch : text) {
        if (ch < '0' || ch > '9') {
            return false;
        }
        value = value * 10 + (ch - '0');
    }
    if (value < lo || value > hi) {
        return false;
    }
    out = value;
    return true;
}

/// Returns an error text, or an empty string when the options are complete.
std::string parse_args(int argc, char** argv, Options& o) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&](std::string& out) -> bool {
            if (i + 1 >= argc) {
                return false;
            }
            out = argv[++i];
            return true;
        };
        std::string text;
        if (arg == "--host") {
            if (!value(o.host)) {
                return "--host needs a value";
            }
        } else if (arg == "--port") {
            if (!value(text) || !parse_int(text, 1, 65535, o.port)) {
                return "--port needs a number in [1, 65535]";
            }
        } else if (arg == "--aec") {
            if (!value(o.called_ae)) {
                return "--aec needs a value";
            }
        } else if (arg == "--aet") {
            if (!value(o.calling_ae)) {
                return "--aet needs a value";
            }
        } else if (arg == "--context-sop-class") {
            if (!value(o.context_sop_class)) {
                return "--context-sop-class needs a value";
            }
        } else if (arg == "--command-sop-class") {
            if (!value(o.command_sop_class)) {
                return "--command-sop-class needs a value";
            }
        } else if (arg == "--timeout") {
            if (!value(text) || !parse_int(text, 1, 3600, o.timeout_s)) {
                return "--timeout needs a number of seconds in [1, 3600]";
            }
        } else if (arg == "--pause-ms") {
            if (!value(text) || !parse_int(text, 0, 600000, o.pause_ms)) {
                return "--pause-ms needs a number of milliseconds in [0, 600000]";
            }
        } else if (arg == "-h" || arg == "--help") {
            return "help";
        } else if (arg.size() > 1 && arg[0] == '-') {
            return "unknown option " + std::string(arg);
        } else {
            o.files.emplace_back(arg);
        }
    }
    if (o.port == 0) {
        return "--port is required";
    }
    if (o.called_ae.empty()) {
        return "--aec is required";
    }
    if (o.called_ae.size() > 16 || o.calling_ae.empty() || o.calling_ae.size() > 16) {
        return "AE titles must be 1 to 16 characters long";
    }
    if (o.files.empty()) {
        return "no input files";
    }
    return {};
}

std::string get_string(DcmItem& item, const DcmTagKey& tag) {
    OFString value;
    if (item.findAndGetOFStringArray(tag, value).bad()) {
        return {};
    }
    return value.c_str();
}

/// Reads what the association needs to know about a file (not its pixel data).
bool scan_file(const std::string& path, InputFile& out, std::string& error) {
    DcmFileFormat ff;
    const OFCondition cond = ff.loadFileUntilTag(path.c_str(), EXS_Unknown, EGL_noChange,
                                                 DCM_MaxReadLength, ERM_autoDetect, DCM_PixelData);
    if (cond.bad()) {
        error = path + ": cannot read: " + cond.text();
        return false;
    }
    DcmDataset& ds = *ff.getDataset();
    out.path = path;
    out.sop_class = get_string(ds, DCM_SOPClassUID);
    out.sop_instance = get_string(ds, DCM_SOPInstanceUID);
    const DcmXfer xfer(ds.getOriginalXfer());
    out.transfer_syntax = xfer.getXferID();
    if (out.sop_class.empty() || out.sop_instance.empty()) {
        error = path + ": no SOP Class UID or SOP Instance UID in the data set";
        return false;
    }
    if (out.transfer_syntax.empty()) {
        error = path + ": unknown transfer syntax";
        return false;
    }
    return true;
}

void print_result(const InputFile& f, const std::string& status, std::string comment) {
    for (char& ch : comment) {
        if (ch == '\n' || ch == '\r') {
            ch = ' ';
        }
    }
    if (comment.empty()) {
        comment = "-";
    }
    std::printf("%s %s %s\n", f.sop_instance.c_str(), status.c_str(), comment.c_str());
    std::fflush(stdout);
}

std::string hex4(unsigned value) {
    char buf[8] = {};
    std::snprintf(buf, sizeof(buf), "%04X", value & 0xFFFFU);
    return buf;
}

/// Owns the network and association; releases or aborts on every path.
class Session {
public:
    Session() = default;
    ~Session() {
        if (m_assoc != nullptr) {
            if (OFCondition c = ASC_abortAssociation(m_assoc); c.bad()) {
                std::fprintf(stderr, "abort: %s\n", c.text());
            }
            if (OFCondition c = ASC_destroyAssociation(&m_assoc); c.bad()) {
                std::fprintf(stderr, "destroy association: %s\n", c.text());
            }
        } else if (m_params != nullptr) {
            if (OFCondition c = ASC_destroyAssociationParameters(&m_params); c.bad()) {
                std::fprintf(stderr, "destroy association parameters: %s\n", c.text());
            }
        }
        if (m_net != nullptr) {
            if (OFCondition c = ASC_dropNetwork(&m_net); c.bad()) {
                std::fprintf(stderr, "drop network: %s\n", c.text());
            }
        }
    }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    T_ASC_Network* m_net = nullptr;
    T_ASC_Parameters* m_params = nullptr; ///< owned by m_assoc once the request was made
    T_ASC_Association* m_assoc = nullptr;
};

int run(const Options& o) {
    std::vector<InputFile> files;
    files.reserve(o.files.size());
    for (const auto& path : o.files) {
        InputFile f;
        std::string error;
        if (!scan_file(path, f, error)) {
            std::fprintf(stderr, "%s\n", error.c_str());
            return k_exit_error;
        }
        f.context_sop_class = o.context_sop_class.empty() ? f.sop_class : o.context_sop_class;
        files.push_back(std::move(f));
    }

    // One presentation context per (abstract syntax, file transfer syntax).
    std::vector<Context> contexts;
    for (auto& f : files) {
        for (const auto& c : contexts) {
            if (c.abstract_syntax == f.context_sop_class &&
                c.transfer_syntaxes.front() == f.transfer_syntax) {
                f.context_id = c.id;
                break;
            }
        }
        if (f.context_id != 0) {
            continue;
        }
        if (contexts.size() >= 128) {
            std::fprintf(stderr, "more than 128 presentation contexts would be needed\n");
            return k_exit_error;
        }
        Context c;
        c.id = static_cast<T_ASC_PresentationContextID>(2 * contexts.size() + 1);
        c.abstract_syntax = f.context_sop_class;
        c.transfer_syntaxes.push_back(f.transfer_syntax);
        for (const char* ts :
             {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}) {
            if (f.transfer_syntax != ts) {
                c.transfer_syntaxes.emplace_back(ts);
            }
        }
        f.context_id = c.id;
        contexts.push_back(std::move(c));
    }

    Session s;
    if (OFCondition c = ASC_initializeNetwork(NET_REQUESTOR, 0, o.timeout_s, &s.m_net); c.bad()) {
        std::fprintf(stderr, "cannot initialise the network: %s\n", c.text());
        return k_exit_error;
    }
    if (OFCondition c = ASC_createAssociationParameters(&s.m_params, ASC_DEFAULTMAXPDU); c.bad()) {
        std::fprintf(stderr, "cannot create association parameters: %s\n", c.text());
        return k_exit_error;
    }
    if (OFCondition c =
            ASC_setAPTitles(s.m_params, o.calling_ae.c_str(), o.called_ae.c_str(), nullptr);
        c.bad()) {
        std::fprintf(stderr, "cannot set AE titles: %s\n", c.text());
        return k_exit_error;
    }
    const std::string peer = o.host + ":" + std::to_string(o.port);
    if (OFCondition c = ASC_setPresentationAddresses(s.m_params, "localhost", peer.c_str());
        c.bad()) {
        std::fprintf(stderr, "cannot set presentation addresses: %s\n", c.text());
        return k_exit_error;
    }
    for (const auto& ctx : contexts) {
        std::vector<const char*> ts;
        ts.reserve(ctx.transfer_syntaxes.size());
        for (const auto& t : ctx.transfer_syntaxes) {
            ts.push_back(t.c_str());
        }
        if (OFCondition c =
                ASC_addPresentationContext(s.m_params, ctx.id, ctx.abstract_syntax.c_str(),
                                           ts.data(), static_cast<int>(ts.size()));
            c.bad()) {
            std::fprintf(stderr, "cannot add presentation context for %s: %s\n",
                         ctx.abstract_syntax.c_str(), c.text());
            return k_exit_error;
        }
    }

    T_ASC_Parameters* params = s.m_params;
    const OFCondition assoc_cond = ASC_requestAssociation(s.m_net, params, &s.m_assoc, nullptr,
                                                          nullptr, DUL_BLOCK, o.timeout_s);
    if (s.m_assoc != nullptr) {
        s.m_params = nullptr; // now owned by the association
    }
    if (assoc_cond.bad()) {
        if (assoc_cond == DUL_ASSOCIATIONREJECTED) {
            T_ASC_RejectParameters rej{};
            OFString text;
            if (ASC_getRejectParameters(params, &rej).good()) {
                ASC_printRejectParameters(text, &rej);
            }
            std::fprintf(stderr, "association rejected: %s\n", text.c_str());
        } else {
            std::fprintf(stderr, "association request to %s failed: %s\n", peer.c_str(),
                         assoc_cond.text());
        }
        // A rejected or failed association has nothing to abort.
        if (s.m_assoc != nullptr) {
            if (OFCondition c = ASC_destroyAssociation(&s.m_assoc); c.bad()) {
                std::fprintf(stderr, "destroy association: %s\n", c.text());
            }
        }
        return k_exit_error;
    }

    bool all_ok = true;
    std::size_t index = 0;
    for (; index < files.size(); ++index) {
        InputFile& f = files[index];
        if (index > 0 && o.pause_ms > 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(o.pause_ms));
        }
        T_ASC_PresentationContext pc{};
        if (ASC_findAcceptedPresentationContext(s.m_assoc->params, f.context_id, &pc).bad()) {
            print_result(f, "----",
                         "no presentation context accepted for " + f.context_sop_class + " / " +
                             f.transfer_syntax);
            all_ok = false;
            continue;
        }
        DcmFileFormat ff;
        if (OFCondition c = ff.loadFile(f.path.c_str(), EXS_Unknown, EGL_noChange,
                                        DCM_MaxReadLength, ERM_autoDetect);
            c.bad()) {
            print_result(f, "----", std::string("cannot read: ") + c.text());
            all_ok = false;
            continue;
        }
        DcmDataset* ds = ff.getDataset();
        const std::string accepted_ts = pc.acceptedTransferSyntax;
        if (accepted_ts != f.transfer_syntax) {
            const DcmXfer target(accepted_ts.c_str());
            if (ds->chooseRepresentation(target.getXfer(), nullptr).bad() ||
                !ds->canWriteXfer(target.getXfer())) {
                print_result(f, "----",
                             "cannot convert from " + f.transfer_syntax + " to " + accepted_ts);
                all_ok = false;
                continue;
            }
        }
        T_DIMSE_C_StoreRQ req{};
        req.MessageID = s.m_assoc->nextMsgID++;
        const std::string& command_class =
            o.command_sop_class.empty() ? f.sop_class : o.command_sop_class;
        OFStandard::strlcpy(req.AffectedSOPClassUID, command_class.c_str(),
                            sizeof(req.AffectedSOPClassUID));
        if (f.sop_instance.size() >= sizeof(req.AffectedSOPInstanceUID)) {
            std::fprintf(stderr,
                         "warning: %s: SOP Instance UID is %zu characters long; the C-STORE "
                         "request carries its first %zu\n",
                         f.path.c_str(), f.sop_instance.size(),
                         sizeof(req.AffectedSOPInstanceUID) - 1);
        }
        OFStandard::strlcpy(req.AffectedSOPInstanceUID, f.sop_instance.c_str(),
                            sizeof(req.AffectedSOPInstanceUID));
        req.DataSetType = DIMSE_DATASET_PRESENT;
        req.Priority = DIMSE_PRIORITY_MEDIUM;

        T_DIMSE_C_StoreRSP rsp{};
        DcmDataset* detail = nullptr;
        const OFCondition cond =
            DIMSE_storeUser(s.m_assoc, f.context_id, &req, nullptr, ds, nullptr, nullptr,
                            DIMSE_NONBLOCKING, o.timeout_s, &rsp, &detail, nullptr, 0);
        if (cond.bad()) {
            delete detail;
            print_result(f, "----", std::string("C-STORE failed: ") + cond.text());
            std::fprintf(stderr, "C-STORE of %s failed: %s\n", f.path.c_str(), cond.text());
            ++index;
            for (; index < files.size(); ++index) {
                print_result(files[index], "----", "not sent: the association failed");
            }
            return k_exit_error;
        }
        std::string comment;
        if (detail != nullptr) {
            OFString text;
            if (detail->findAndGetOFString(DCM_ErrorComment, text).good()) {
                comment = text.c_str();
            }
            delete detail;
        }
        print_result(f, hex4(rsp.DimseStatus), comment);
        if (rsp.DimseStatus != STATUS_Success) {
            all_ok = false;
        }
    }

    const OFCondition release = ASC_releaseAssociation(s.m_assoc);
    if (release.bad()) {
        std::fprintf(stderr, "association release failed: %s\n", release.text());
        return k_exit_error;
    }
    if (OFCondition c = ASC_destroyAssociation(&s.m_assoc); c.bad()) {
        std::fprintf(stderr, "destroy association: %s\n", c.text());
    }
    return all_ok ? k_exit_ok : k_exit_failed;
}

} // namespace

int main(int argc, char** argv) {
    // DCMTK reads TCP_NODELAY when it opens a socket: without it, Nagle's algorithm makes
    // every C-STORE wait for the delayed ACK.
    if (setenv("TCP_NODELAY", "1", 1) != 0) {
        std::perror("setenv TCP_NODELAY");
        return k_exit_error;
    }
    OFLog::configure(OFLogger::WARN_LOG_LEVEL);
    // Scanning stops at the pixel data on purpose; dcmdata would warn about it per file.
    OFLog::getLogger("dcmtk.dcmdata").setLogLevel(OFLogger::ERROR_LOG_LEVEL);
    Options options;
    if (const std::string problem = parse_args(argc, argv, options); !problem.empty()) {
        if (problem != "help") {
            std::fprintf(stderr, "%s: %s\n", argv[0], problem.c_str());
        }
        usage(argv[0]);
        return problem == "help" ? k_exit_ok : k_exit_error;
    }
    if (!dcmDataDict.isDictionaryLoaded()) {
        std::fprintf(stderr, "the DICOM data dictionary is not loaded (DCMDICTPATH?)\n");
        return k_exit_error;
    }
    return run(options);
}
