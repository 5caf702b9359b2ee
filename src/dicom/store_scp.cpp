#include "segnode/dicom/store_scp.hpp"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmnet/dcmlayer.h"
#include "dcmtk/dcmnet/dcmtrans.h"
#include "dcmtk/dcmnet/diutil.h"
#include "dcmtk/dcmnet/dul.h"
#include "dcmtk/dcmnet/scpthrd.h"
#include "segnode/dicom/sop_classes.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <list>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace segnode::dicom {
namespace {

std::atomic<std::uint64_t> discarded_datasets{0};

constexpr const char* k_verification = "1.2.840.10008.1.1";

std::string trim(const char* s) {
    std::string out(s);
    const auto first = out.find_first_not_of(' ');
    if (first == std::string::npos) {
        return {};
    }
    return out.substr(first, out.find_last_not_of(' ') - first + 1);
}

/// The socket of one accepted association, shared between its DCMTK connection object and the
/// server (which shuts it down when the shutdown grace period is over). `closed` is set under
/// the mutex before DCMTK closes the descriptor, so a shutdown never reaches a reused number.
struct AssociationSocket {
    std::recursive_mutex mutex; // DcmTCPConnection::close() calls closeTransportConnection()
    int fd = -1;
    bool closed = false;

    void shut_down(int how) {
        const std::lock_guard lock(mutex);
        if (!closed && fd >= 0) {
            ::shutdown(fd, how);
        }
    }
};

/// DCMTK's plain TCP connection, reporting when it closes its socket. Everything here is
/// public DCMTK API: getSocket() is protected, and is called from the derived class.
class TrackedConnection : public DcmTCPConnection {
public:
    TrackedConnection(DcmNativeSocketType fd, std::shared_ptr<AssociationSocket> socket)
        : DcmTCPConnection(fd), m_socket(std::move(socket)) {
        m_socket->fd = getSocket();
    }
    ~TrackedConnection() override { mark_closed(); } // the base destructor closes the socket
    TrackedConnection(const TrackedConnection&) = delete;
    TrackedConnection& operator=(const TrackedConnection&) = delete;

    void close() override {
        const std::lock_guard lock(m_socket->mutex);
        m_socket->closed = true;
        DcmTCPConnection::close();
    }
    void closeTransportConnection() override {
        const std::lock_guard lock(m_socket->mutex);
        m_socket->closed = true;
        DcmTCPConnection::closeTransportConnection();
    }
    [[nodiscard]] const std::shared_ptr<AssociationSocket>& socket() const { return m_socket; }

private:
    void mark_closed() {
        const std::lock_guard lock(m_socket->mutex);
        m_socket->closed = true;
    }
    std::shared_ptr<AssociationSocket> m_socket;
};

/// The transport layer of the listening network (ASC_setTransportLayer): every accepted
/// connection gets TCP_NODELAY (DCMTK keeps Nagle's algorithm on unless the environment says
/// otherwise) and a TrackedConnection, so that the server can reach its socket.
class TrackingTransportLayer : public DcmTransportLayer {
public:
    DcmTransportConnection* createConnection(DcmNativeSocketType fd,
                                             OFBool use_secure_layer) override {
        if (use_secure_layer) {
            return nullptr; // no TLS here; DCMTK closes the socket and fails the association
        }
        const int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return new TrackedConnection(fd, std::make_shared<AssociationSocket>());
    }
};

/// The socket record of an association received on a TrackingTransportLayer (nullptr if not).
std::shared_ptr<AssociationSocket> association_socket(T_ASC_Association* assoc) {
    auto* conn =
        dynamic_cast<TrackedConnection*>(DUL_getTransportConnection(assoc->DULassociation));
    return conn != nullptr ? conn->socket() : nullptr;
}

/// The peer's numeric address as DCMTK recorded it (host lookup is disabled in open()).
std::string peer_address(T_ASC_Association* assoc) {
    char calling[128] = {};
    char called[128] = {};
    if (ASC_getPresentationAddresses(assoc->params, calling, sizeof(calling), called,
                                     sizeof(called))
            .bad() ||
        calling[0] == '\0') {
        return "unknown";
    }
    return calling;
}

std::string get_string(DcmItem& item, const DcmTagKey& tag) {
    OFString value;
    if (item.findAndGetOFStringArray(tag, value).good()) {
        return trim(value.c_str());
    }
    return {};
}

} // namespace

Result<ReceivedInstance> read_received_file(const std::filesystem::path& file) {
    DcmFileFormat ff;
    const OFCondition cond = ff.loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, 4096,
                                                 ERM_autoDetect, DCM_PixelData);
    if (cond.bad()) {
        return Error{std::string("data set cannot be parsed: ") + cond.text()};
    }
    ReceivedInstance r;
    r.temp_file = file;
    std::error_code ec;
    r.file_size = std::filesystem::file_size(file, ec);
    DcmMetaInfo* meta = ff.getMetaInfo();
    std::string offset_error;
    r.dataset_offset = file_dataset_offset(file, offset_error);
    if (meta == nullptr || !offset_error.empty()) {
        return Error{"received file has no usable file meta information: " + offset_error};
    }
    r.transfer_syntax = get_string(*meta, DCM_TransferSyntaxUID);
    r.source_ae = get_string(*meta, DCM_SourceApplicationEntityTitle);
    DcmDataset& ds = *ff.getDataset();
    r.sop_class_uid = get_string(ds, DCM_SOPClassUID);
    r.sop_instance_uid = get_string(ds, DCM_SOPInstanceUID);
    r.study_uid = get_string(ds, DCM_StudyInstanceUID);
    r.series_uid = get_string(ds, DCM_SeriesInstanceUID);
    r.patient_id = get_string(ds, DCM_PatientID);
    r.patient_name = get_string(ds, DCM_PatientName);
    r.study_date = get_string(ds, DCM_StudyDate);
    r.accession_number = get_string(ds, DCM_AccessionNumber);
    r.modality = get_string(ds, DCM_Modality);
    r.series_number = get_string(ds, DCM_SeriesNumber);
    r.series_description = get_string(ds, DCM_SeriesDescription);
    r.body_part = get_string(ds, DCM_BodyPartExamined);
    r.frame_of_reference = get_string(ds, DCM_FrameOfReferenceUID);
    r.instance_number = get_string(ds, DCM_InstanceNumber);
    return r;
}

Status check_whole_file(const std::filesystem::path& file) {
    DcmFileFormat ff;
    const OFCondition cond =
        ff.loadFile(file.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect);
    if (cond.bad()) {
        return Error{std::string("the data set is incomplete or malformed: ") + cond.text()};
    }
    return ok_status();
}

namespace {

/// One association, on its own thread. DCMTK drives negotiation and the DIMSE loop; the
/// overridden hooks apply segnode's policy and forward received objects to the handler.
class StoreWorker : public DcmThreadSCP {
public:
    /// `closing` is set by the server when it ends the association at shutdown.
    StoreWorker(const ScpOptions& options, ReceiveHandler& handler, AssociationInfo info,
                T_ASC_Association* assoc, const std::atomic<bool>& closing)
        : m_options(options), m_handler(handler), m_info(std::move(info)), m_assoc(assoc),
          m_closing(closing) {}

    ~StoreWorker() override = default;
    StoreWorker(const StoreWorker&) = delete;
    StoreWorker& operator=(const StoreWorker&) = delete;

    /// Reports the end of an accepted association; called by the worker thread after run()
    /// returns, whichever way the association ended.
    void report_end() {
        if (m_closing.load()) {
            m_outcome = "aborted";
            m_detail = "node shutting down: the association was still open when the shutdown "
                       "grace period ended";
        }
        if (m_accepted) {
            m_handler.association_ended(m_info, m_stored, m_refused, m_outcome, m_detail);
        }
    }

    /// After an exception out of run(): sends A-ABORT if the association is still up (the
    /// base class's destructor drops and frees it) and records the end as aborted.
    void abort_after_error(const std::string& what) {
        m_outcome = "aborted";
        m_detail = "internal error: " + what;
        if (isConnected()) {
            if (OFCondition c = abortAssociation(); c.bad()) {
                spdlog::debug("sending A-ABORT failed: {}", c.text());
            }
        }
    }

protected:
    OFBool checkCalledAETitleAccepted(const OFString& called_ae) override {
        const std::string called = trim(called_ae.c_str());
        for (const auto& ae : m_options.ae_titles) {
            if (ae == called) {
                return OFTrue;
            }
        }
        reject("called AE title '" + called + "' is not served here");
        return OFFalse;
    }

    OFBool checkCallingAETitleAccepted(const OFString& calling_ae) override {
        if (m_options.allowed_callers.empty()) {
            return OFTrue;
        }
        const std::string calling = trim(calling_ae.c_str());
        bool ae_known = false;
        for (const auto& allowed : m_options.allowed_callers) {
            if (allowed.ae_title == calling) {
                ae_known = true;
                if (allowed.host.empty() || allowed.host == m_info.peer_address) {
                    return OFTrue;
                }
            }
        }
        reject(ae_known
                   ? "calling AE title '" + calling + "' is not allowed from " + m_info.peer_address
                   : "calling AE title '" + calling + "' is not in the allow-list");
        return OFFalse;
    }

    void notifyAssociationRequest(const T_ASC_Parameters& params,
                                  DcmSCPActionType& /*desiredAction*/) override {
        m_params = &params;
    }

    void notifyAssociationAcknowledge() override {
        m_accepted = true;
        m_info.id = m_handler.association_accepted(m_info);
        (void)describe_refused_contexts();
    }

    void notifyReleaseRequest() override { m_outcome = "released"; }
    void notifyAbortRequest() override {
        m_outcome = "aborted";
        m_detail = "A-ABORT from the peer";
    }

    /// Refusals decided inside DCMTK (not by the AE title checks above, which log their own).
    void refuseAssociation(const DcmRefuseReasonType reason) override {
        switch (reason) {
        case DCMSCP_CALLED_AE_TITLE_NOT_RECOGNIZED:
        case DCMSCP_CALLING_AE_TITLE_NOT_RECOGNIZED:
            break;
        case DCMSCP_NO_PRESENTATION_CONTEXTS:
            reject("no acceptable presentation context: " + describe_refused_contexts());
            break;
        case DCMSCP_BAD_APPLICATION_CONTEXT_NAME:
            reject("unsupported application context name");
            break;
        case DCMSCP_NO_IMPLEMENTATION_CLASS_UID:
            reject("the request carries no implementation class UID");
            break;
        default:
            reject("refused by the DICOM layer (DCMTK reason " +
                   std::to_string(static_cast<int>(reason)) + ")");
            break;
        }
        DcmThreadSCP::refuseAssociation(reason);
    }

    /// While a data set streams into its temp file, ask the kernel to start writing what has
    /// arrived so far (sync_file_range, non-blocking). The fsync before the response then
    /// waits only for the tail instead of the whole instance: disk writes overlap the network
    /// transfer. Only with storage.fsync (without fsync nothing waits for the disk anyway).
    void notifyRECEIVEProgress(const unsigned long byte_count) override {
        if (m_writeback_file == nullptr || byte_count < m_written_back + writeback_step) {
            return;
        }
        if (m_writeback_fd < 0) {
            m_writeback_fd = ::open(m_writeback_file->c_str(), O_RDONLY | O_CLOEXEC);
            if (m_writeback_fd < 0) {
                m_writeback_file = nullptr; // not fatal: the fsync later does all the work
                return;
            }
        }
        (void)::sync_file_range(m_writeback_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        m_written_back = byte_count;
    }

    /// Scope of one data set receive with early writeback (see notifyRECEIVEProgress).
    class EarlyWriteback {
    public:
        EarlyWriteback(StoreWorker& worker, const std::filesystem::path& file) : m_worker(worker) {
            if (m_worker.m_options.early_writeback) {
                m_worker.m_writeback_file = &file;
                m_worker.m_written_back = 0;
            }
        }
        ~EarlyWriteback() {
            if (m_worker.m_writeback_fd >= 0) {
                ::close(m_worker.m_writeback_fd);
            }
            m_worker.m_writeback_fd = -1;
            m_worker.m_writeback_file = nullptr;
        }
        EarlyWriteback(const EarlyWriteback&) = delete;
        EarlyWriteback& operator=(const EarlyWriteback&) = delete;

    private:
        StoreWorker& m_worker;
    };

    void notifyDIMSEError(const OFCondition& cond) override {
        m_outcome = "failed";
        m_detail = cond.text();
    }

    OFCondition handleIncomingCommand(T_DIMSE_Message* msg,
                                      const DcmPresentationContextInfo& pres) override {
        if (msg->CommandField == DIMSE_C_STORE_RQ) {
            return handle_store(msg->msg.CStoreRQ, pres);
        }
        return DcmThreadSCP::handleIncomingCommand(msg, pres);
    }

private:
    void reject(const std::string& reason) {
        spdlog::warn("association from {} ({} -> {}) rejected: {}", m_info.peer_address,
                     m_info.calling_ae, m_info.called_ae, reason);
        m_handler.association_rejected(m_info, reason);
    }

    /// Logs refused presentation contexts: each transfer-syntax refusal as a warning (the
    /// sender has data segnode cannot take), SOP classes not supported as one debug line
    /// (storescu proposes a hundred by default). Returns a one-line summary.
    std::string describe_refused_contexts() {
        if (m_params == nullptr) {
            return "no presentation context information";
        }
        // DCMTK's accessors take a non-const pointer but only read.
        auto* params = const_cast<T_ASC_Parameters*>(m_params);
        const int n = ASC_countPresentationContexts(params);
        std::string unsupported_classes;
        std::string bad_syntaxes;
        int unsupported = 0;
        int bad = 0;
        for (int i = 0; i < n; ++i) {
            T_ASC_PresentationContext pc;
            if (ASC_getPresentationContext(params, i, &pc).bad() ||
                pc.resultReason == ASC_P_ACCEPTANCE) {
                continue;
            }
            const std::string as_name = uid_name(pc.abstractSyntax);
            const std::string sop = as_name.empty() ? std::string(pc.abstractSyntax) : as_name;
            if (pc.resultReason == ASC_P_ABSTRACTSYNTAXNOTSUPPORTED) {
                unsupported_classes += (unsupported++ > 0 ? ", " : "") + sop;
                continue;
            }
            std::string offered;
            std::string why;
            for (int t = 0; t < pc.transferSyntaxCount; ++t) {
                const std::string ts = pc.proposedTransferSyntaxes[t];
                const std::string name = uid_name(ts);
                offered += (t > 0 ? ", " : "") + (name.empty() ? ts : name);
                for (const auto& [info, reason] : refused_transfer_syntaxes()) {
                    if (ts == info.uid) {
                        why = " (" + std::string(info.name) + ": " + reason + ")";
                    }
                }
            }
            bad_syntaxes += (bad++ > 0 ? "; " : "") + sop + " offered only " + offered;
            spdlog::warn("association from {} ({}): presentation context {} refused, no "
                         "acceptable transfer syntax: {} offered only {}{}",
                         m_info.peer_address, m_info.calling_ae,
                         static_cast<int>(pc.presentationContextID), sop, offered, why);
        }
        if (unsupported > 0) {
            spdlog::info("association from {} ({}): {} presentation context(s) refused, SOP "
                         "class not supported (listed at debug level)",
                         m_info.peer_address, m_info.calling_ae, unsupported);
            spdlog::debug("association from {} ({}): SOP classes not supported: {}",
                          m_info.peer_address, m_info.calling_ae, unsupported_classes);
        }
        std::string summary;
        if (unsupported > 0) {
            summary = std::to_string(unsupported) + " SOP class(es) not supported (" +
                      unsupported_classes + ")";
        }
        if (bad > 0) {
            summary += (summary.empty() ? "" : "; ") +
                       std::string("no acceptable transfer "
                                   "syntax for ") +
                       bad_syntaxes;
        }
        return summary;
    }

    OFCondition respond(T_ASC_PresentationContextID pres_id, const T_DIMSE_C_StoreRQ& req,
                        const StoreStatus& result) {
        DcmDataset detail;
        DcmDataset* detail_ptr = nullptr;
        if (!result.success() && !result.comment.empty()) {
            // Error Comment is LO: at most 64 characters on the wire; the log has it all.
            if (detail.putAndInsertString(DCM_ErrorComment, result.comment.substr(0, 64).c_str())
                    .good()) {
                detail_ptr = &detail;
            }
        }
        return sendSTOREResponse(pres_id, req.MessageID, req.AffectedSOPClassUID,
                                 req.AffectedSOPInstanceUID, result.status, detail_ptr);
    }

    /// Discards the data set of a C-STORE refused before it is received (DIMSE_ignoreDataSet:
    /// its PDVs are read and dropped one PDU at a time, nothing is parsed or buffered), then
    /// sends the refusal.
    OFCondition discard_and_refuse(T_DIMSE_C_StoreRQ& req, T_ASC_PresentationContextID pres_id,
                                   const StoreStatus& result) {
        DIC_UL bytes = 0;
        DIC_UL pdvs = 0;
        const bool blocking = m_options.dimse_timeout_s == 0;
        const OFCondition cond =
            DIMSE_ignoreDataSet(m_assoc, blocking ? DIMSE_BLOCKING : DIMSE_NONBLOCKING,
                                static_cast<int>(m_options.dimse_timeout_s), &bytes, &pdvs);
        if (cond.bad()) {
            m_outcome = "failed";
            m_detail =
                std::string("network error while discarding a refused data set: ") + cond.text();
            return cond;
        }
        discarded_datasets.fetch_add(1);
        spdlog::debug("C-STORE {}: refused data set discarded unread ({} bytes in {} PDVs)",
                      req.AffectedSOPInstanceUID, bytes, pdvs);
        ++m_refused;
        m_handler.refused(m_info, req.AffectedSOPInstanceUID, result.status, result.comment, {});
        return respond(pres_id, req, result);
    }

    OFCondition handle_store(T_DIMSE_C_StoreRQ& req, const DcmPresentationContextInfo& pres) {
        const T_ASC_PresentationContextID pres_id = pres.presentationContextID;
        const std::string sop_class = req.AffectedSOPClassUID;
        if (!is_supported_storage_sop_class(sop_class) ||
            sop_class != pres.abstractSyntax.c_str()) {
            const std::string name = uid_name(sop_class);
            return discard_and_refuse(req, pres_id,
                                      {status::sop_class_not_supported,
                                       "SOP class " + sop_class +
                                           (name.empty() ? "" : " (" + name + ")") +
                                           (sop_class != pres.abstractSyntax.c_str()
                                                ? " does not match the presentation context"
                                                : " is not supported")});
        }
        if (StoreStatus gate = m_handler.admission(); !gate.success()) {
            return discard_and_refuse(req, pres_id, gate);
        }
        const std::filesystem::path temp = m_handler.new_temp_file();
        OFCondition cond;
        {
            const EarlyWriteback writeback(*this, temp);
            cond = receiveSTORERequest(req, pres_id, temp.c_str());
        }
        if (cond.bad()) {
            std::error_code ec;
            std::filesystem::remove(temp, ec);
            m_outcome = "failed";
            m_detail = std::string("network error while receiving a data set: ") + cond.text();
            return cond;
        }
        StoreStatus result;
        auto parsed = read_received_file(temp);
        if (!parsed) {
            result = {status::cannot_understand, parsed.error().message};
        } else if (parsed->sop_instance_uid != req.AffectedSOPInstanceUID) {
            result = {status::dataset_does_not_match, "SOP Instance UID in data set (" +
                                                          parsed->sop_instance_uid +
                                                          ") differs from the C-STORE request (" +
                                                          req.AffectedSOPInstanceUID + ")"};
        } else if (parsed->sop_class_uid != sop_class) {
            result = {status::dataset_does_not_match,
                      "SOP Class UID in data set (" + parsed->sop_class_uid +
                          ") differs from the C-STORE request (" + sop_class + ")"};
        }
        if (!result.success()) {
            ++m_refused;
            m_handler.refused(m_info, req.AffectedSOPInstanceUID, result.status, result.comment,
                              temp);
            return respond(pres_id, req, result);
        }
        result = store_guarded(*parsed);
        if (result.success()) {
            ++m_stored;
        } else {
            ++m_refused;
        }
        return respond(pres_id, req, result);
    }

    /// The handler's store(), with any exception turned into a failure status that names it
    /// (0110 Processing failure + Error Comment): the association and the node carry on.
    StoreStatus store_guarded(const ReceivedInstance& instance) {
        std::string what;
        try {
            return m_handler.store(m_info, instance);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
            what = "unknown exception";
        }
        spdlog::error("C-STORE {} from {}: internal error: {}", instance.sop_instance_uid,
                      m_info.calling_ae, what);
        std::error_code ec;
        std::filesystem::remove(instance.temp_file, ec); // if the handler left it
        return {status::processing_failure, "internal error: " + what};
    }

    const ScpOptions& m_options;
    ReceiveHandler& m_handler;
    AssociationInfo m_info;
    T_ASC_Association* m_assoc;
    const std::atomic<bool>& m_closing;
    const T_ASC_Parameters* m_params = nullptr;
    bool m_accepted = false;
    std::string m_outcome = "released"; ///< released, aborted or failed (schema values)
    std::string m_detail;
    std::int64_t m_stored = 0;
    std::int64_t m_refused = 0;
    static constexpr unsigned long writeback_step = 128 * 1024;
    const std::filesystem::path* m_writeback_file = nullptr;
    int m_writeback_fd = -1;
    unsigned long m_written_back = 0;
};

/// The body of an association's thread.
void run_association(const ScpOptions& options, ReceiveHandler& handler,
                     const DcmSharedSCPConfig& shared, T_ASC_Association* assoc,
                     const AssociationInfo& info, const std::atomic<bool>& closing) noexcept {
    // Nothing may escape an association's thread (std::terminate would end the node): an
    // exception is logged and the association aborted.
    std::unique_ptr<StoreWorker> worker;
    bool handed_over = false; // run() owns the association from its first line on
    auto log_error = [&info](const char* what) noexcept {
        try {
            spdlog::error("association from {} ({} -> {}): internal error: {}; aborted",
                          info.peer_address, info.calling_ae, info.called_ae, what);
        } catch (...) { // NOLINT(bugprone-empty-catch): logging itself failed
        }
    };
    auto on_error = [&](const char* what) noexcept {
        log_error(what);
        try {
            if (handed_over && worker) {
                worker->abort_after_error(what);
                worker->report_end();
            } else if (!handed_over) {
                ASC_abortAssociation(assoc);
                ASC_dropAssociation(assoc);
                ASC_destroyAssociation(&assoc);
            }
        } catch (const std::exception& e) {
            log_error(e.what());
        } catch (...) {
            log_error("unknown exception while aborting");
        }
    };
    try {
        worker = std::make_unique<StoreWorker>(options, handler, info, assoc, closing);
        if (OFCondition c = worker->setSharedConfig(shared); c.bad()) {
            spdlog::error("association from {}: SCP configuration refused: {}", info.peer_address,
                          c.text());
        }
        handed_over = true;
        if (OFCondition c = worker->run(assoc); c.bad()) {
            spdlog::warn("association from {} ({}) ended with an error: {}", info.peer_address,
                         info.calling_ae, c.text());
        }
        worker->report_end();
    } catch (const std::exception& e) {
        on_error(e.what());
    } catch (...) {
        on_error("unknown exception");
    }
    try {
        worker.reset();
    } catch (...) {
        log_error("exception while freeing the association");
    }
}

} // namespace

std::uint64_t refused_datasets_discarded() {
    return discarded_datasets.load();
}

struct StoreScpServer::Network {
    T_ASC_Network* net = nullptr;
    DcmSharedSCPConfig shared;
};

/// One association's thread and what the server needs to end it at shutdown.
struct StoreScpServer::Live {
    std::thread thread;
    std::shared_ptr<AssociationSocket> socket; ///< nullptr if the socket is unknown
    std::atomic<bool> closing{false};
    bool done = false; ///< guarded by the server's mutex
};

ScpOptions scp_options_from(const Config& config) {
    ScpOptions o;
    o.ae_titles = config.called_ae_titles();
    o.bind_address = config.dicom.bind_address;
    o.port = config.dicom.port;
    o.max_associations = config.dicom.max_associations;
    o.max_pdu_bytes = config.dicom.max_pdu_bytes;
    o.acse_timeout_s = config.dicom.acse_timeout_s;
    o.dimse_timeout_s = config.dicom.dimse_timeout_s;
    o.allowed_callers = config.dicom.allowed_callers;
    o.early_writeback = config.storage.fsync;
    return o;
}

StoreScpServer::StoreScpServer(ScpOptions options, ReceiveHandler& handler)
    : m_options(std::move(options)), m_handler(handler), m_network(std::make_unique<Network>()) {}

StoreScpServer::~StoreScpServer() {
    // Normally drained already; otherwise the remaining associations are cut now.
    (void)drain_associations(std::chrono::milliseconds(0), std::chrono::milliseconds(0));
    if (m_network && m_network->net != nullptr) {
        ASC_dropNetwork(&m_network->net);
    }
}

Status StoreScpServer::open() {
    if (m_options.ae_titles.empty()) {
        return Error{"no AE title configured"};
    }
    DcmSCPConfig& cfg = *m_network->shared;
    cfg.setAETitle(m_options.ae_titles.front().c_str());
    cfg.setRespondWithCalledAETitle(OFTrue); // answer with whichever of our titles was called
    cfg.setMaxReceivePDULength(m_options.max_pdu_bytes);
    cfg.setACSETimeout(m_options.acse_timeout_s);
    cfg.setDIMSETimeout(m_options.dimse_timeout_s);
    // DCMTK's default DIMSE mode is blocking, which ignores the DIMSE timeout: an association
    // that stopped sending would stay open (and hold a max_associations slot) for ever.
    cfg.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
    cfg.setConnectionBlockingMode(DUL_NOBLOCK);
    cfg.setHostLookupEnabled(OFFalse);
    cfg.setProgressNotificationMode(m_options.early_writeback ? OFTrue : OFFalse);

    OFList<OFString> basic_ts;
    basic_ts.push_back(UID_LittleEndianExplicitTransferSyntax);
    basic_ts.push_back(UID_LittleEndianImplicitTransferSyntax);
    if (auto c = cfg.addPresentationContext(k_verification, basic_ts); c.bad()) {
        return Error{std::string("cannot add Verification presentation context: ") + c.text()};
    }
    OFList<OFString> storage_ts;
    for (const auto& ts : accepted_transfer_syntaxes()) {
        storage_ts.push_back(ts.uid);
    }
    for (const auto& sop : supported_storage_sop_classes()) {
        if (auto c = cfg.addPresentationContext(sop.uid, storage_ts); c.bad()) {
            return Error{std::string("cannot add presentation context for ") + sop.name + ": " +
                         c.text()};
        }
    }
    for (const auto& [info, reason] : refused_transfer_syntaxes()) {
        spdlog::info("transfer syntax {} is not accepted: {}", info.name, reason);
    }

    // DCMTK 3.6.7 always listens on all interfaces. Let it open a listener on an ephemeral
    // port, then put our own socket, bound to the configured address, in its place.
    if (auto c = ASC_initializeNetwork(NET_ACCEPTOR, 0, static_cast<int>(m_options.acse_timeout_s),
                                       &m_network->net);
        c.bad()) {
        return Error{std::string("cannot initialise the DICOM network: ") + c.text()};
    }
    // Peers are named by their numeric address (ASC_getPresentationAddresses), without a
    // reverse DNS lookup per association (DCMTK's default).
    dcmDisableGethostbyaddr.set(OFTrue);
    if (auto c = ASC_setTransportLayer(m_network->net, new TrackingTransportLayer(), 1); c.bad()) {
        return Error{std::string("cannot set the DICOM transport layer: ") + c.text()};
    }
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return Error{std::string("socket(): ") + std::strerror(errno)};
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(m_options.port);
    if (inet_pton(AF_INET, m_options.bind_address.c_str(), &addr.sin_addr) != 1) {
        close(fd);
        return Error{"bind address '" + m_options.bind_address + "' is not an IPv4 address"};
    }
    if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        const int err = errno;
        close(fd);
        return Error{"cannot listen on " + m_options.bind_address + ":" +
                     std::to_string(m_options.port) + ": " + std::strerror(err) +
                     (err == EADDRINUSE ? " (is another DICOM service using the port?)" : "")};
    }
    if (listen(fd, 64) != 0) {
        const int err = errno;
        close(fd);
        return Error{std::string("listen(): ") + std::strerror(err)};
    }
    const int dcmtk_fd = DUL_networkSocket(m_network->net->network);
    if (dcmtk_fd < 0 || dup2(fd, dcmtk_fd) < 0) {
        const int err = errno;
        close(fd);
        return Error{std::string("cannot hand the listening socket to DCMTK: ") +
                     std::strerror(err)};
    }
    close(fd);
    return ok_status();
}

void StoreScpServer::run() {
    while (!m_stop.load()) {
        reap_finished();
        T_ASC_Association* assoc = nullptr;
        const OFCondition cond = ASC_receiveAssociation(m_network->net, &assoc,
                                                        static_cast<long>(m_options.max_pdu_bytes),
                                                        nullptr, nullptr, OFFalse, DUL_NOBLOCK, 1);
        if (cond.bad()) {
            if (cond != DUL_NOASSOCIATIONREQUEST) {
                spdlog::warn("incoming association failed before negotiation: {}", cond.text());
            }
            if (assoc != nullptr) {
                ASC_dropAssociation(assoc);
                ASC_destroyAssociation(&assoc);
            }
            continue;
        }
        AssociationInfo info;
        info.calling_ae = trim(assoc->params->DULparams.callingAPTitle);
        info.called_ae = trim(assoc->params->DULparams.calledAPTitle);
        info.peer_address = peer_address(assoc);
        bool over_limit = false;
        {
            std::lock_guard lock(m_mutex);
            over_limit = m_active >= m_options.max_associations;
            if (!over_limit) {
                ++m_active;
            }
        }
        if (over_limit || m_stop.load()) {
            const std::string reason =
                over_limit ? "too many concurrent associations (dicom.max_associations = " +
                                 std::to_string(m_options.max_associations) + ")"
                           : std::string("node is shutting down");
            spdlog::warn("association from {} ({} -> {}) rejected: {}", info.peer_address,
                         info.calling_ae, info.called_ae, reason);
            T_ASC_RejectParameters rej = {ASC_RESULT_REJECTEDTRANSIENT,
                                          ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED,
                                          ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED};
            if (OFCondition c = ASC_rejectAssociation(assoc, &rej); c.bad()) {
                spdlog::debug("sending A-ASSOCIATE-RJ failed: {}", c.text());
            }
            m_handler.association_rejected(info, reason);
            if (!over_limit) {
                worker_finished(nullptr);
            }
            ASC_dropAssociation(assoc);
            ASC_destroyAssociation(&assoc);
            continue;
        }
        Live* live = nullptr;
        {
            std::lock_guard lock(m_mutex);
            live = &m_live.emplace_back();
            live->socket = association_socket(assoc);
        }
        try {
            live->thread = std::thread([this, assoc, info, live]() mutable {
                run_association(m_options, m_handler, m_network->shared, assoc, info,
                                live->closing);
                worker_finished(live);
            });
        } catch (const std::system_error& e) {
            spdlog::error("cannot start a thread for the association from {}: {}",
                          info.peer_address, e.what());
            ASC_abortAssociation(assoc);
            ASC_dropAssociation(assoc);
            ASC_destroyAssociation(&assoc);
            worker_finished(live);
        }
    }
    // Stop accepting: close the listening socket now, in-flight associations carry on.
    ASC_dropNetwork(&m_network->net);
    m_network->net = nullptr;
}

void StoreScpServer::request_stop() {
    m_stop.store(true);
}

void StoreScpServer::worker_finished(Live* live) {
    std::lock_guard lock(m_mutex);
    --m_active;
    if (live != nullptr) {
        live->done = true;
    }
    m_cv.notify_all();
}

void StoreScpServer::reap_finished() {
    std::list<Live> finished;
    {
        std::lock_guard lock(m_mutex);
        for (auto it = m_live.begin(); it != m_live.end();) {
            auto next = std::next(it);
            if (it->done) {
                finished.splice(finished.end(), m_live, it);
            }
            it = next;
        }
    }
    for (Live& live : finished) {
        if (live.thread.joinable()) {
            live.thread.join(); // returns at once: the thread's last act was worker_finished
        }
    }
}

bool StoreScpServer::wait_for_associations(std::chrono::milliseconds timeout) {
    std::unique_lock lock(m_mutex);
    return m_cv.wait_for(lock, timeout, [this] { return m_active == 0; });
}

bool StoreScpServer::drain_associations(std::chrono::milliseconds grace,
                                        std::chrono::milliseconds abort_wait) {
    const bool drained = wait_for_associations(grace);
    if (!drained) {
        // Shut the read side: the worker's next read sees the end of the stream, DCMTK
        // aborts the association (the A-ABORT still goes out) and the worker reports it.
        std::lock_guard lock(m_mutex);
        for (Live& live : m_live) {
            if (!live.done) {
                live.closing.store(true);
                if (live.socket) {
                    live.socket->shut_down(SHUT_RD);
                }
            }
        }
    }
    if (!drained && !wait_for_associations(abort_wait)) {
        // A worker blocked in a write (a peer that reads nothing): cut both directions.
        std::lock_guard lock(m_mutex);
        for (Live& live : m_live) {
            if (!live.done && live.socket) {
                live.socket->shut_down(SHUT_RDWR);
            }
        }
    }
    // run() has returned (or never ran): nothing adds to the list any more.
    for (Live& live : m_live) {
        if (live.thread.joinable()) {
            live.thread.join();
        }
    }
    std::lock_guard lock(m_mutex);
    m_live.clear();
    return drained;
}

std::size_t StoreScpServer::active_associations() const {
    std::lock_guard lock(m_mutex);
    return m_active;
}

} // namespace segnode::dicom
