#pragma once
// The boundary between the DICOM receiver (this layer) and what is done with received objects
// (pipeline layer). The SCP receives each C-STORE into a temporary file, extracts the
// attributes below and hands the file to the handler, whose answer becomes the C-STORE status.
#include "segnode/core/result.hpp"

#include <cstdint>
#include <filesystem>
#include <string>

namespace segnode::dicom {

struct AssociationInfo {
    std::string calling_ae;
    std::string called_ae;
    std::string peer_address;
    std::int64_t id = 0; ///< assigned by the handler when the association is accepted
};

struct ReceivedInstance {
    std::filesystem::path temp_file;
    std::uintmax_t dataset_offset = 0; ///< bytes of preamble + file meta information
    std::uintmax_t file_size = 0;
    std::string sop_class_uid;
    std::string sop_instance_uid;
    std::string transfer_syntax;
    std::string study_uid;
    std::string series_uid;
    std::string patient_id;
    std::string patient_name;
    std::string study_date;
    std::string accession_number;
    std::string modality;
    std::string series_number;
    std::string series_description;
    std::string body_part;
    std::string frame_of_reference;
    std::string instance_number;
    std::string source_ae; ///< (0002,0016) in the file meta: the calling AE that sent it
};

/// DIMSE status plus error comment (at most 64 characters are sent, the rest is logged).
struct StoreStatus {
    std::uint16_t status = 0;
    std::string comment;
    [[nodiscard]] bool success() const { return status == 0; }
};

namespace status {
constexpr std::uint16_t success = 0x0000;
constexpr std::uint16_t processing_failure = 0x0110;
constexpr std::uint16_t sop_class_not_supported = 0x0122;
constexpr std::uint16_t out_of_resources = 0xA700;
constexpr std::uint16_t dataset_does_not_match = 0xA900;
constexpr std::uint16_t cannot_understand = 0xC000;
} // namespace status

class ReceiveHandler {
public:
    virtual ~ReceiveHandler() = default;

    /// The association was accepted; returns an id used in later calls.
    virtual std::int64_t association_accepted(const AssociationInfo& info) = 0;
    /// The association was rejected (called AE, allow-list, overload).
    virtual void association_rejected(const AssociationInfo& info, const std::string& reason) = 0;
    /// The association ended: `outcome` is "released", "aborted" or "failed", `detail` says
    /// why for the last two.
    virtual void association_ended(const AssociationInfo& info, std::int64_t stored,
                                   std::int64_t refused, const std::string& outcome,
                                   const std::string& detail) = 0;

    /// Where the next C-STORE data set is written (same filesystem as the store).
    virtual std::filesystem::path new_temp_file() = 0;
    /// Takes ownership of instance.temp_file (moves or removes it) and decides the status.
    virtual StoreStatus store(const AssociationInfo& assoc, const ReceivedInstance& instance) = 0;
    /// A C-STORE was refused by the SCP itself. If `temp_file` is non-empty the handler takes
    /// ownership of it (quarantine or removal).
    virtual void refused(const AssociationInfo& assoc, const std::string& sop_instance_uid,
                         std::uint16_t dimse_status, const std::string& reason,
                         const std::filesystem::path& temp_file) = 0;
    /// Checked before each C-STORE data set is received; a non-success status refuses it
    /// (e.g. "out of resources" when the disk is nearly full).
    virtual StoreStatus admission() { return {}; }
};

} // namespace segnode::dicom

namespace segnode::dicom {
/// Reads the attributes segnode indexes from a received Part 10 file (up to, not including,
/// the pixel data). Used on every C-STORE and by start-up recovery of unindexed files.
Result<ReceivedInstance> read_received_file(const std::filesystem::path& file);

/// Reads a whole Part 10 file (values over 4 KiB are skipped, not loaded) and fails if it
/// ends early or is malformed after the attributes read_received_file reads: the check for a
/// file that did not come through DIMSE (an HTTP upload), where nothing else proves it whole.
Status check_whole_file(const std::filesystem::path& file);

/// Byte offset of the data set in a DICOM Part 10 file (preamble + file meta information),
/// read from the meta group length; error if the file has no valid meta header.
std::uintmax_t file_dataset_offset(const std::filesystem::path& file, std::string& error);
} // namespace segnode::dicom
