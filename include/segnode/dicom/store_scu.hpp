#pragma once
// The DICOM SCU: C-ECHO to a peer and C-STORE of files over one association (the send-back of
// results). Built on DCMTK's DcmSCU; see store_scu.cpp for what DcmSCU does not expose.
//
// No retries here: one call is one association. The pipeline retries with backoff, using the
// verdicts and error texts these functions return.
#include "segnode/core/config.hpp"
#include "segnode/core/result.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace segnode::dicom {

struct PeerAddress {
    std::string ae_title;
    std::string host; ///< IPv4/IPv6 address or host name (resolved by the system resolver)
    std::uint16_t port = 104;
};

/// "PACS at 127.0.0.1:4242": how every message names the peer.
std::string describe_peer(const PeerAddress& peer);

struct ScuOptions {
    std::string calling_ae = "SEGNODE";
    /// TCP connect. DCMTK keeps this in a process-wide setting: each call sets it before
    /// connecting, so concurrent calls with different values may use each other's.
    unsigned connect_timeout_s = 10;
    unsigned acse_timeout_s = 30;  ///< waiting for A-ASSOCIATE-AC/RJ and A-RELEASE-RP
    unsigned dimse_timeout_s = 60; ///< waiting for each C-ECHO/C-STORE response
    unsigned max_pdu_bytes = 131072;
};

struct EchoResult {
    std::chrono::milliseconds round_trip{0}; ///< C-ECHO-RQ sent -> C-ECHO-RSP received
    std::chrono::milliseconds total{0};      ///< connect, associate, echo and release
};

/// The SCU options of a node: calling AE node.ae_title, connect and DIMSE timeouts from
/// [send], ACSE timeout and PDU size from [dicom] (the same negotiation limits as the SCP).
ScuOptions scu_options_from(const Config& config);

/// C-ECHO over a new association. Errors are specific and name the peer, e.g.
/// "cannot connect to PACS at 127.0.0.1:4242: connection refused",
/// "association rejected by PACS at ...: called AE title not recognized (permanent)",
/// "no response from PACS at ... within 30 s", "C-ECHO answered with status 0x0110 ...".
Result<EchoResult> echo(const PeerAddress& peer, const ScuOptions& options);

enum class StoreVerdict { Success, Warning, Failure };
std::string_view to_string(StoreVerdict verdict);

/// PS3.7 C.1 / PS3.4 B.2.3: 0000 success; Bxxx (B000, B006, B007, ...) and the general
/// warnings 0001, 0107, 0116 (DCMTK's DICOM_WARNING_STATUS) are warnings; everything else,
/// pending and cancel included (they make no sense for a C-STORE), is a failure.
StoreVerdict classify_store_status(std::uint16_t status);
/// Meaning of a C-STORE status, e.g. "Refused: Out of Resources" for any A7xx.
std::string store_status_meaning(std::uint16_t status);

struct StoreOutcome {
    std::filesystem::path file;
    std::string sop_class_uid;    ///< empty if the file could not be read
    std::string sop_instance_uid; ///< empty if the file could not be read
    StoreVerdict verdict = StoreVerdict::Failure;
    /// The C-STORE-RSP status; empty when no response was received (file not sent: not
    /// readable, SOP class not accepted, no possible conversion, or the association broke).
    std::optional<std::uint16_t> status;
    /// Status meaning plus the peer's Error Comment (0000,0902) when it sent one, or why the
    /// file was not sent / got no response. Empty on plain success.
    std::string detail;
};

/// Sends every file over ONE association, in order. Proposes, for each SOP class found in the
/// files' meta headers, a context with Explicit and Implicit VR Little Endian, plus a context
/// for each other transfer syntax of its files (offered alone, so that the peer can take a
/// compressed file as it is). Each file goes in its own syntax when accepted, else uncompressed:
/// the data set is converted (explicit <-> implicit, or decompressed with the registered
/// decoders); when that is impossible the file fails with the reason.
///
/// Returns an error (not outcomes) when the association cannot be set up at all: connect
/// failure, rejection, timeout, or no proposed context accepted. Otherwise one outcome per file
/// in input order: a file whose SOP class was not accepted fails with "SOP class ... not
/// accepted by <AE> ..."; when the association breaks mid-way (abort, connection lost, DIMSE
/// timeout) the file in flight and the rest fail with that reason. An empty file list returns
/// no outcomes without connecting; when no file can be read, nothing is sent either.
///
/// `on_outcome(index, outcome)`, when given, is called with each file's outcome as soon as it
/// is known -- for a sent file right after its C-STORE response arrived, before the next file
/// is sent -- so that the caller can record an acknowledged object before anything else can
/// go wrong. It is called once per file, in input order, also for files that fail; an
/// exception from it ends the association (A-ABORT) and propagates.
using OutcomeListener = std::function<void(std::size_t, const StoreOutcome&)>;
Result<std::vector<StoreOutcome>> send_files(const PeerAddress& peer, const ScuOptions& options,
                                             const std::vector<std::filesystem::path>& files,
                                             const OutcomeListener& on_outcome = {});

} // namespace segnode::dicom
