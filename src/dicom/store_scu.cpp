#include "segnode/dicom/store_scu.hpp"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmnet/scu.h"
#include "dcmtk_private.hpp"
#include "segnode/dicom/environment.hpp"

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstring>
#include <memory>
#include <mutex>
#include <spdlog/spdlog.h>
#include <utility>

namespace segnode::dicom {

// ---------------------------------------------------------------- status classification

StoreVerdict classify_store_status(std::uint16_t status) {
    if (status == STATUS_Success) {
        return StoreVerdict::Success;
    }
    // DCMTK's DICOM_WARNING_STATUS: Bxxx plus the general warnings of PS3.7 C.
    if ((status & 0xF000U) == 0xB000U || status == 0x0001 || status == 0x0107 || status == 0x0116) {
        return StoreVerdict::Warning;
    }
    return StoreVerdict::Failure;
}

std::string store_status_meaning(std::uint16_t status) {
    switch (status) {
    case 0x0000:
        return "Success";
    case 0xB000:
        return "Warning: Coercion of Data Elements";
    case 0xB006:
        return "Warning: Elements Discarded";
    case 0xB007:
        return "Warning: Data Set does not match SOP Class";
    case 0x0001:
        return "Warning: Requested optional Attributes are not supported";
    case 0x0107:
        return "Warning: Attribute list error";
    case 0x0116:
        return "Warning: Attribute Value out of range";
    case 0x0117:
        return "Error: Invalid SOP Class";
    case 0x0122:
        return "Refused: SOP Class not supported";
    case 0x0124:
        return "Refused: Not authorized";
    case 0x0210:
        return "Error: Duplicate invocation";
    case 0x0211:
        return "Error: Unrecognized operation";
    case 0x0212:
        return "Error: Mistyped argument";
    case 0x0213:
        return "Error: Resource limitation";
    case 0xFE00:
        return "Cancel (not a C-STORE status)";
    case 0xFF00:
    case 0xFF01:
        return "Pending (not a C-STORE status)";
    default:
        break;
    }
    switch (status & 0xFF00U) {
    case 0xA700:
        return "Refused: Out of Resources";
    case 0xA900:
        return "Error: Data Set does not match SOP Class";
    default:
        break;
    }
    if ((status & 0xF000U) == 0xC000U) {
        return "Error: Cannot understand";
    }
    if ((status & 0xF000U) == 0xB000U) {
        return "Warning";
    }
    if ((status & 0xF000U) == 0xA000U) {
        return "Failure";
    }
    return "Failure: unknown status";
}

std::string_view to_string(StoreVerdict verdict) {
    switch (verdict) {
    case StoreVerdict::Success:
        return "success";
    case StoreVerdict::Warning:
        return "warning";
    case StoreVerdict::Failure:
        return "failure";
    }
    return "failure";
}

std::string describe_peer(const PeerAddress& peer) {
    const bool v6 = peer.host.find(':') != std::string::npos;
    return peer.ae_title + " at " + (v6 ? "[" + peer.host + "]" : peer.host) + ":" +
           std::to_string(peer.port);
}

namespace {

std::string hex4(std::uint16_t v) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out = "0x0000";
    for (int i = 0; i < 4; ++i) {
        out[static_cast<std::size_t>(5 - i)] = digits[(v >> (4 * i)) & 0xFU];
    }
    return out;
}

std::string trim(std::string s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) {
        return {};
    }
    return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

std::string uid_label(const std::string& uid) {
    const char* name = dcmFindNameOfUID(uid.c_str(), nullptr);
    return name != nullptr ? std::string(name) + " (" + uid + ")" : uid;
}

std::string xfer_name(const std::string& uid) {
    const char* name = dcmFindNameOfUID(uid.c_str(), nullptr);
    return name != nullptr ? name : uid;
}

std::string reject_reason(const T_ASC_RejectParameters& rej) {
    std::string reason;
    switch (rej.reason) {
    case ASC_REASON_SU_NOREASON:
        reason = "no reason given (service user)";
        break;
    case ASC_REASON_SU_APPCONTEXTNAMENOTSUPPORTED:
        reason = "application context name not supported";
        break;
    case ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED:
        reason = "calling AE title not recognized";
        break;
    case ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED:
        reason = "called AE title not recognized";
        break;
    case ASC_REASON_SP_ACSE_NOREASON:
        reason = "no reason given (service provider, ACSE)";
        break;
    case ASC_REASON_SP_ACSE_PROTOCOLVERSIONNOTSUPPORTED:
        reason = "protocol version not supported";
        break;
    case ASC_REASON_SP_PRES_TEMPORARYCONGESTION:
        reason = "temporary congestion";
        break;
    case ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED:
        reason = "local limit exceeded";
        break;
    default:
        reason = "reason " + hex4(static_cast<std::uint16_t>(rej.reason));
        break;
    }
    return reason + (rej.result == ASC_RESULT_REJECTEDPERMANENT ? " (permanent)" : " (transient)");
}

std::string context_refusal(T_ASC_P_ResultReason reason) {
    switch (reason) {
    case ASC_P_ACCEPTANCE:
        return "accepted";
    case ASC_P_USERREJECTION:
        return "user rejection";
    case ASC_P_NOREASON:
        return "no reason given";
    case ASC_P_ABSTRACTSYNTAXNOTSUPPORTED:
        return "abstract syntax not supported";
    case ASC_P_TRANSFERSYNTAXESNOTSUPPORTED:
        return "none of the proposed transfer syntaxes accepted";
    case ASC_P_NOTYETNEGOTIATED:
        return "not answered by the peer";
    }
    return "refused";
}

/// SIGPIPE would kill the process when the peer closes the socket while DCMTK writes to it.
/// `segnode serve` ignores it already; this covers the CLI and tools. A handler someone
/// installed on purpose is left alone.
void ignore_sigpipe_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction current {};
        if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
            std::signal(SIGPIPE, SIG_IGN);
        }
    });
}

/// One association, as a DcmSCU. DcmSCU's own sendECHORequest/sendSTORERequest drop the
/// response status (C-ECHO) and the status detail (C-STORE); these exchanges use its
/// protected sendDIMSEMessage/receiveDIMSECommand instead.
class Association : public DcmSCU {
public:
    Association(const PeerAddress& peer, const ScuOptions& options)
        : m_peer(peer), m_name(describe_peer(peer)), m_options(options) {
        setAETitle(options.calling_ae.c_str());
        setPeerAETitle(peer.ae_title.c_str());
        setPeerHostName(peer.host.c_str());
        setPeerPort(peer.port);
        setMaxReceivePDULength(options.max_pdu_bytes);
        setACSETimeout(options.acse_timeout_s);
        // DcmSCU's default is blocking DIMSE, which ignores the DIMSE timeout altogether.
        setDIMSEBlockingMode(DIMSE_NONBLOCKING);
        setDIMSETimeout(options.dimse_timeout_s);
        setConnectionTimeout(static_cast<Sint32>(options.connect_timeout_s));
        setProgressNotificationMode(OFFalse);
        setDatasetConversionMode(OFFalse); // conversion is done (and reported) here
    }

    const std::string& name() const { return m_name; }

    /// Connects and negotiates; on failure the error says why, in the peer's terms.
    Status open() {
        OFCondition cond = initNetwork();
        if (cond.bad()) {
            return Error{"cannot prepare an association to " + m_name + ": " + cond.text()};
        }
        cond = negotiateAssociation();
        if (cond.good()) {
            return ok_status();
        }
        if (cond == NET_EC_NoAcceptablePresentationContexts) {
            std::string summary = refused_contexts_summary();
            if (OFCondition r = releaseAssociation(); r.bad()) {
                spdlog::debug("releasing the association to {} failed: {}", m_name, r.text());
            }
            return Error{m_name +
                         " accepted none of the proposed presentation contexts: " + summary};
        }
        return Error{describe_negotiation_failure(cond)};
    }

    /// Why the presentation context(s) for this SOP class were refused.
    std::string refusal_of(const std::string& sop_class) {
        T_ASC_Parameters* p = params();
        std::string why;
        if (p != nullptr) {
            const int n = ASC_countPresentationContexts(p);
            for (int i = 0; i < n; ++i) {
                T_ASC_PresentationContext pc;
                if (ASC_getPresentationContext(p, i, &pc).good() &&
                    sop_class == pc.abstractSyntax && pc.resultReason != ASC_P_ACCEPTANCE) {
                    why = context_refusal(pc.resultReason);
                    if (pc.resultReason == ASC_P_TRANSFERSYNTAXESNOTSUPPORTED) {
                        why += " (" + proposed_syntaxes(pc) + ")";
                    }
                }
            }
        }
        return why.empty() ? std::string("not proposed") : why;
    }

    void add_context(const std::string& abstract_syntax, const std::vector<std::string>& ts) {
        OFList<OFString> list;
        for (const auto& t : ts) {
            list.push_back(t.c_str());
        }
        // DcmSCU::addPresentationContext only appends to a list; it cannot fail.
        (void)addPresentationContext(abstract_syntax.c_str(), list);
    }

    Uint16 next_message_id() { return m_next_message_id++; }

    /// Receives one response command; the status detail, if any, is handed back.
    OFCondition receive_response(T_ASC_PresentationContextID pcid, T_DIMSE_Message& rsp,
                                 std::unique_ptr<DcmDataset>& status_detail) {
        std::memset(static_cast<void*>(&rsp), 0, sizeof(rsp));
        DcmDataset* detail = nullptr;
        T_ASC_PresentationContextID id = pcid;
        const OFCondition cond = receiveDIMSECommand(&id, &rsp, &detail, nullptr);
        status_detail.reset(detail);
        return cond;
    }

    OFCondition send_message(T_ASC_PresentationContextID pcid, T_DIMSE_Message& msg,
                             DcmDataset* data) {
        return sendDIMSEMessage(pcid, &msg, data);
    }

    /// The accepted transfer syntax of a presentation context ("" if not accepted).
    std::string accepted_syntax(T_ASC_PresentationContextID pcid) {
        OFString as;
        OFString ts;
        findPresentationContext(pcid, as, ts);
        return ts.c_str();
    }

    /// Text for a failed DIMSE exchange (the association is unusable after any of these).
    std::string describe_dimse_failure(const OFCondition& cond, const char* waiting_for) {
        if (cond == DIMSE_NODATAAVAILABLE || cond == DUL_READTIMEOUT) {
            return std::string("no ") + waiting_for + " from " + m_name + " within " +
                   std::to_string(m_options.dimse_timeout_s) + " s";
        }
        if (cond == DUL_PEERABORTEDASSOCIATION) {
            return m_name + " aborted the association (A-ABORT or connection closed)";
        }
        if (cond == DUL_PEERREQUESTEDRELEASE) {
            return m_name + " released the association before answering";
        }
        return "association with " + m_name + " failed: " + cond.text();
    }

    /// Ends a broken association without waiting on the peer.
    void drop(const OFCondition& cause) {
        if (!isConnected()) {
            return;
        }
        if (cause == DUL_PEERABORTEDASSOCIATION) {
            closeAssociation(DCMSCU_PEER_ABORTED_ASSOCIATION); // nothing to send: just free
        } else if (OFCondition c = abortAssociation(); c.bad()) {
            spdlog::debug("aborting the association to {} failed: {}", m_name, c.text());
        }
    }

    void release() {
        if (!isConnected()) {
            return;
        }
        if (OFCondition c = releaseAssociation(); c.bad()) {
            spdlog::debug("releasing the association to {} failed: {}", m_name, c.text());
        }
    }

private:
    T_ASC_Parameters* params() { return dcmscu_parameters(*this); } // dcmtk_private.hpp

    static std::string proposed_syntaxes(const T_ASC_PresentationContext& pc) {
        std::string out = "proposed ";
        for (int t = 0; t < pc.transferSyntaxCount; ++t) {
            out += (t > 0 ? ", " : "") + xfer_name(pc.proposedTransferSyntaxes[t]);
        }
        return out;
    }

    std::string refused_contexts_summary() {
        T_ASC_Parameters* p = params();
        if (p == nullptr) {
            return "no presentation context information";
        }
        std::string out;
        const int n = ASC_countPresentationContexts(p);
        for (int i = 0; i < n; ++i) {
            T_ASC_PresentationContext pc;
            if (ASC_getPresentationContext(p, i, &pc).bad()) {
                continue;
            }
            std::string why = context_refusal(pc.resultReason);
            if (pc.resultReason == ASC_P_TRANSFERSYNTAXESNOTSUPPORTED) {
                why += " (" + proposed_syntaxes(pc) + ")";
            }
            out += (out.empty() ? "" : "; ") + uid_label(pc.abstractSyntax) + ": " + why;
        }
        return out;
    }

    std::string describe_negotiation_failure(const OFCondition& cond) {
        if (cond == DUL_ASSOCIATIONREJECTED) {
            T_ASC_Parameters* p = params();
            T_ASC_RejectParameters rej{};
            if (p != nullptr && ASC_getRejectParameters(p, &rej).good()) {
                std::string reason = reject_reason(rej);
                if (rej.reason == ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED) {
                    reason += "; called AE title was '" + m_peer.ae_title + "'";
                } else if (rej.reason == ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED) {
                    reason += "; calling AE title was '" + m_options.calling_ae + "'";
                }
                return "association rejected by " + m_name + ": " + reason;
            }
            return "association rejected by " + m_name + " (reason unavailable)";
        }
        if (cond == DUL_READTIMEOUT) {
            return "no response from " + m_name + " within " +
                   std::to_string(m_options.acse_timeout_s) + " s (association request)";
        }
        if (cond == DUL_PEERABORTEDASSOCIATION || cond == DUL_NETWORKCLOSED) {
            return m_name + " closed the connection during association negotiation";
        }
        // DCMTK reports connect() failures as "TCP Initialization Error: <strerror>" and
        // unknown hosts as "Attempt to connect to unknown host: <name>".
        std::string text = cond.text();
        static constexpr std::string_view tcp_prefix = "TCP Initialization Error: ";
        if (text.rfind(tcp_prefix, 0) == 0) {
            std::string why = text.substr(tcp_prefix.size());
            std::transform(why.begin(), why.end(), why.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            if (why.find("timed out") != std::string::npos ||
                why.find("in progress") != std::string::npos) {
                why = "no answer within " + std::to_string(m_options.connect_timeout_s) + " s";
            }
            return "cannot connect to " + m_name + ": " + why;
        }
        if (text.find("unknown host") != std::string::npos) {
            return "cannot connect to " + m_name + ": unknown host '" + m_peer.host + "'";
        }
        return "association with " + m_name + " failed: " + text;
    }

    PeerAddress m_peer;
    std::string m_name;
    ScuOptions m_options;
    Uint16 m_next_message_id = 1;
};

Status prepare() {
    ignore_sigpipe_once();
    // Also sets TCP_NODELAY=1 in the environment, which dcmnet reads for the sockets it
    // connects itself (DULFSM requestAssociationTCP): the SCU side does not pay Nagle either.
    return init_dicom_environment();
}

// ---------------------------------------------------------------- send_files helpers

struct FileInfo {
    std::string sop_class;
    std::string sop_instance;
    std::string transfer_syntax;
    std::string error; ///< non-empty: not sendable, reason
};

FileInfo read_meta(const std::filesystem::path& file) {
    FileInfo info;
    DcmMetaInfo meta;
    const OFCondition cond = meta.loadFile(file.c_str());
    if (cond.bad()) {
        info.error = file.string() + ": cannot read the file meta information: " + cond.text();
        return info;
    }
    OFString value;
    if (meta.findAndGetOFString(DCM_MediaStorageSOPClassUID, value).good()) {
        info.sop_class = trim(value.c_str());
    }
    if (meta.findAndGetOFString(DCM_MediaStorageSOPInstanceUID, value).good()) {
        info.sop_instance = trim(value.c_str());
    }
    if (meta.findAndGetOFString(DCM_TransferSyntaxUID, value).good()) {
        info.transfer_syntax = trim(value.c_str());
    }
    if (info.sop_class.empty() || info.transfer_syntax.empty()) {
        info.error = "the file meta information lacks the Media Storage SOP Class UID or the "
                     "Transfer Syntax UID";
    } else if (DcmXfer(info.transfer_syntax.c_str()).getXfer() == EXS_Unknown) {
        info.error = "unknown transfer syntax " + info.transfer_syntax;
    }
    return info;
}

bool is_uncompressed_le(const std::string& ts) {
    return ts == UID_LittleEndianExplicitTransferSyntax ||
           ts == UID_LittleEndianImplicitTransferSyntax;
}

using ContextPlan = std::vector<std::pair<std::string, std::vector<std::string>>>;

/// Per SOP class: one context offering Explicit and Implicit VR Little Endian (either is a
/// lossless re-encoding of the other), and one context per other syntax its files are in,
/// offering that syntax alone. A separate context lets the peer take a compressed file as it
/// is: offered in one list with the uncompressed syntaxes, most SCPs (storescp, segnode)
/// would pick by their own preference and force a needless decompression.
ContextPlan plan_contexts(const std::vector<FileInfo>& infos) {
    ContextPlan plan;
    auto has = [&plan](const std::string& sop_class, const std::string& first_ts) {
        return std::any_of(plan.begin(), plan.end(), [&](const auto& c) {
            return c.first == sop_class && c.second.front() == first_ts;
        });
    };
    for (const auto& info : infos) {
        if (!info.error.empty()) {
            continue;
        }
        const bool implicit = info.transfer_syntax == UID_LittleEndianImplicitTransferSyntax;
        const std::string first = implicit ? UID_LittleEndianImplicitTransferSyntax
                                           : UID_LittleEndianExplicitTransferSyntax;
        const std::string second = implicit ? UID_LittleEndianExplicitTransferSyntax
                                            : UID_LittleEndianImplicitTransferSyntax;
        if (!has(info.sop_class, first) && !has(info.sop_class, second)) {
            plan.push_back({info.sop_class, {first, second}});
        }
        if (!is_uncompressed_le(info.transfer_syntax) &&
            !has(info.sop_class, info.transfer_syntax)) {
            plan.push_back({info.sop_class, {info.transfer_syntax}});
        }
    }
    return plan;
}

StoreOutcome failed(const std::filesystem::path& file, const FileInfo& info, std::string why) {
    StoreOutcome o;
    o.file = file;
    o.sop_class_uid = info.sop_class;
    o.sop_instance_uid = info.sop_instance;
    o.verdict = StoreVerdict::Failure;
    o.detail = std::move(why);
    return o;
}

std::string error_comment(DcmDataset* detail) {
    if (detail == nullptr) {
        return {};
    }
    OFString comment;
    if (detail->findAndGetOFString(DCM_ErrorComment, comment).good()) {
        return trim(comment.c_str());
    }
    return {};
}

/// Outcome of one file over an open association; `broken` when the association is unusable.
struct SendStep {
    StoreOutcome outcome;
    bool broken = false;
    OFCondition cause;
};

SendStep send_one(Association& assoc, const std::filesystem::path& file, FileInfo info) {
    SendStep step;
    DcmFileFormat ff;
    if (OFCondition c = ff.loadFile(file.c_str()); c.bad()) {
        step.outcome = failed(file, info, file.string() + ": cannot read the file: " + c.text());
        return step;
    }
    DcmDataset* ds = ff.getDataset();
    OFString value;
    std::string sop_class;
    if (ds->findAndGetOFString(DCM_SOPClassUID, value).good()) {
        sop_class = trim(value.c_str());
    }
    if (ds->findAndGetOFString(DCM_SOPInstanceUID, value).good()) {
        info.sop_instance = trim(value.c_str());
    }
    if (sop_class.empty() || info.sop_instance.empty()) {
        step.outcome = failed(file, info, "the data set has no SOP Class UID or SOP Instance UID");
        return step;
    }
    if (sop_class != info.sop_class) {
        step.outcome = failed(file, info,
                              "the data set's SOP Class UID " + sop_class +
                                  " differs from the file meta information's " + info.sop_class);
        return step;
    }
    if (info.sop_instance.size() > 64 || sop_class.size() > 64) {
        step.outcome = failed(file, info, "a UID is longer than 64 characters");
        return step;
    }

    // Presentation context: the file's own syntax, else Explicit then Implicit VR Little
    // Endian, else whatever the peer accepted for the class (findAnyPresentationContextID's
    // order); a conversion is attempted below when the syntax differs from the file's.
    const T_ASC_PresentationContextID pcid =
        assoc.findAnyPresentationContextID(sop_class.c_str(), info.transfer_syntax.c_str());
    if (pcid == 0) {
        step.outcome = failed(file, info,
                              "SOP class " + uid_label(sop_class) + " not accepted by " +
                                  assoc.name() + ": " + assoc.refusal_of(sop_class));
        return step;
    }
    const std::string network_ts = assoc.accepted_syntax(pcid);
    if (network_ts != info.transfer_syntax) {
        const DcmXfer target(network_ts.c_str());
        const OFCondition c = ds->chooseRepresentation(target.getXfer(), nullptr);
        if (c.bad() || !ds->canWriteXfer(target.getXfer())) {
            step.outcome = failed(file, info,
                                  "cannot convert from " + xfer_name(info.transfer_syntax) +
                                      " to " + xfer_name(network_ts) + ", the transfer syntax " +
                                      assoc.name() + " accepted for " + uid_label(sop_class) +
                                      (c.bad() ? ": " + std::string(c.text()) : std::string()));
            return step;
        }
        spdlog::debug("{}: converting {} -> {} for {}", file.string(),
                      xfer_name(info.transfer_syntax), xfer_name(network_ts), assoc.name());
    }

    T_DIMSE_Message msg;
    std::memset(static_cast<void*>(&msg), 0, sizeof(msg));
    msg.CommandField = DIMSE_C_STORE_RQ;
    T_DIMSE_C_StoreRQ& rq = msg.msg.CStoreRQ;
    rq.MessageID = assoc.next_message_id();
    OFStandard::strlcpy(rq.AffectedSOPClassUID, sop_class.c_str(), sizeof(rq.AffectedSOPClassUID));
    OFStandard::strlcpy(rq.AffectedSOPInstanceUID, info.sop_instance.c_str(),
                        sizeof(rq.AffectedSOPInstanceUID));
    rq.DataSetType = DIMSE_DATASET_PRESENT;
    rq.Priority = DIMSE_PRIORITY_MEDIUM;

    if (OFCondition c = assoc.send_message(pcid, msg, ds); c.bad()) {
        step.broken = true;
        step.cause = c;
        step.outcome =
            failed(file, info, "sending failed: " + assoc.describe_dimse_failure(c, "response"));
        return step;
    }
    T_DIMSE_Message rsp;
    std::unique_ptr<DcmDataset> status_detail;
    if (OFCondition c = assoc.receive_response(pcid, rsp, status_detail); c.bad()) {
        step.broken = true;
        step.cause = c;
        step.outcome = failed(file, info,
                              "no C-STORE response (the peer may or may not have stored it): " +
                                  assoc.describe_dimse_failure(c, "C-STORE response"));
        return step;
    }
    if (rsp.CommandField != DIMSE_C_STORE_RSP ||
        rsp.msg.CStoreRSP.MessageIDBeingRespondedTo != rq.MessageID) {
        step.broken = true;
        step.cause = DIMSE_BADCOMMANDTYPE;
        step.outcome = failed(file, info,
                              "protocol error: " + assoc.name() +
                                  " answered the C-STORE with another message (command " +
                                  hex4(static_cast<std::uint16_t>(rsp.CommandField)) + ")");
        return step;
    }
    const std::uint16_t status = rsp.msg.CStoreRSP.DimseStatus;
    step.outcome = failed(file, info, {});
    step.outcome.status = status;
    step.outcome.verdict = classify_store_status(status);
    if (status != STATUS_Success) {
        step.outcome.detail = store_status_meaning(status);
        if (const std::string comment = error_comment(status_detail.get()); !comment.empty()) {
            step.outcome.detail += ": " + comment;
        }
    }
    return step;
}

} // namespace

// ---------------------------------------------------------------- public entry points

ScuOptions scu_options_from(const Config& config) {
    ScuOptions options;
    options.calling_ae = config.node.ae_title;
    options.connect_timeout_s = config.send.connect_timeout_s;
    options.acse_timeout_s = config.dicom.acse_timeout_s;
    options.dimse_timeout_s = config.send.dimse_timeout_s;
    options.max_pdu_bytes = config.dicom.max_pdu_bytes;
    return options;
}

Result<EchoResult> echo(const PeerAddress& peer, const ScuOptions& options) {
    if (auto st = prepare(); !st) {
        return st.error();
    }
    const auto start = std::chrono::steady_clock::now();
    Association assoc(peer, options);
    assoc.add_context(UID_VerificationSOPClass, {UID_LittleEndianExplicitTransferSyntax,
                                                 UID_LittleEndianImplicitTransferSyntax});
    if (auto st = assoc.open(); !st) {
        return st.error();
    }
    const T_ASC_PresentationContextID pcid = assoc.findAnyPresentationContextID(
        UID_VerificationSOPClass, UID_LittleEndianExplicitTransferSyntax);
    if (pcid == 0) {
        assoc.release();
        return Error{assoc.name() + " accepted the association but not the Verification SOP class"};
    }
    T_DIMSE_Message msg;
    std::memset(static_cast<void*>(&msg), 0, sizeof(msg));
    msg.CommandField = DIMSE_C_ECHO_RQ;
    msg.msg.CEchoRQ.MessageID = assoc.next_message_id();
    msg.msg.CEchoRQ.DataSetType = DIMSE_DATASET_NULL;
    OFStandard::strlcpy(msg.msg.CEchoRQ.AffectedSOPClassUID, UID_VerificationSOPClass,
                        sizeof(msg.msg.CEchoRQ.AffectedSOPClassUID));

    const auto sent = std::chrono::steady_clock::now();
    if (OFCondition c = assoc.send_message(pcid, msg, nullptr); c.bad()) {
        assoc.drop(c);
        return Error{"sending the C-ECHO failed: " + assoc.describe_dimse_failure(c, "response")};
    }
    T_DIMSE_Message rsp;
    std::unique_ptr<DcmDataset> detail;
    if (OFCondition c = assoc.receive_response(pcid, rsp, detail); c.bad()) {
        assoc.drop(c);
        return Error{assoc.describe_dimse_failure(c, "C-ECHO response")};
    }
    const auto answered = std::chrono::steady_clock::now();
    if (rsp.CommandField != DIMSE_C_ECHO_RSP) {
        assoc.drop(DIMSE_BADCOMMANDTYPE);
        return Error{"protocol error: " + assoc.name() + " answered the C-ECHO with command " +
                     hex4(static_cast<std::uint16_t>(rsp.CommandField))};
    }
    const std::uint16_t status = rsp.msg.CEchoRSP.DimseStatus;
    assoc.release();
    if (status != STATUS_Success) {
        std::string text = "C-ECHO answered with status " + hex4(status) + " by " + assoc.name();
        if (const std::string comment = error_comment(detail.get()); !comment.empty()) {
            text += ": " + comment;
        }
        return Error{text};
    }
    EchoResult result;
    result.round_trip = std::chrono::duration_cast<std::chrono::milliseconds>(answered - sent);
    result.total = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    return result;
}

Result<std::vector<StoreOutcome>> send_files(const PeerAddress& peer, const ScuOptions& options,
                                             const std::vector<std::filesystem::path>& files,
                                             const OutcomeListener& on_outcome) {
    std::vector<StoreOutcome> outcomes;
    auto add = [&](StoreOutcome outcome) {
        outcomes.push_back(std::move(outcome));
        if (on_outcome) {
            on_outcome(outcomes.size() - 1, outcomes.back());
        }
    };
    if (files.empty()) {
        return outcomes;
    }
    if (auto st = prepare(); !st) {
        return st.error();
    }
    std::vector<FileInfo> infos;
    infos.reserve(files.size());
    for (const auto& f : files) {
        infos.push_back(read_meta(f));
    }
    const ContextPlan contexts = plan_contexts(infos);
    if (contexts.size() > 128) {
        return Error{"the files need " + std::to_string(contexts.size()) +
                     " presentation contexts (SOP classes and transfer syntaxes); an "
                     "association allows 128"};
    }
    if (contexts.empty()) { // nothing readable: no association
        for (std::size_t i = 0; i < files.size(); ++i) {
            add(failed(files[i], infos[i], infos[i].error));
        }
        return outcomes;
    }

    Association assoc(peer, options);
    for (const auto& [sop_class, syntaxes] : contexts) {
        assoc.add_context(sop_class, syntaxes);
    }
    if (auto st = assoc.open(); !st) {
        return st.error();
    }

    std::string broken_reason;
    for (std::size_t i = 0; i < files.size(); ++i) {
        if (!infos[i].error.empty()) {
            add(failed(files[i], infos[i], infos[i].error));
            continue;
        }
        if (!broken_reason.empty()) {
            add(failed(files[i], infos[i], "not sent: " + broken_reason));
            continue;
        }
        SendStep step = send_one(assoc, files[i], infos[i]);
        if (step.broken) {
            broken_reason = assoc.describe_dimse_failure(step.cause, "C-STORE response");
            assoc.drop(step.cause);
        }
        add(std::move(step.outcome)); // may throw: the Association's destructor aborts
    }
    assoc.release();

    std::size_t counts[3] = {0, 0, 0};
    for (const auto& o : outcomes) {
        ++counts[static_cast<std::size_t>(o.verdict)];
    }
    spdlog::debug("C-STORE to {}: {} success, {} warning, {} failure", assoc.name(), counts[0],
                  counts[1], counts[2]);
    return outcomes;
}

} // namespace segnode::dicom
