#include "segnode/dicom/sop_classes.hpp"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcuid.h"

#include <algorithm>

namespace segnode::dicom {

const std::vector<UidInfo>& supported_storage_sop_classes() {
    static const std::vector<UidInfo> classes = {
        {"1.2.840.10008.5.1.4.1.1.2", "CT Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.2.1", "Enhanced CT Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.2.2", "Legacy Converted Enhanced CT Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.4", "MR Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.4.1", "Enhanced MR Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.4.3", "Enhanced MR Color Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.4.4", "Legacy Converted Enhanced MR Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.128", "Positron Emission Tomography Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.130", "Enhanced PET Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.128.1", "Legacy Converted Enhanced PET Image Storage"},
    };
    return classes;
}

bool is_supported_storage_sop_class(std::string_view uid) {
    const auto& all = supported_storage_sop_classes();
    return std::any_of(all.begin(), all.end(), [&](const UidInfo& u) { return uid == u.uid; });
}

const std::vector<UidInfo>& accepted_transfer_syntaxes() {
    // When a peer proposes several syntaxes in one presentation context, the first of this
    // list that it proposed is chosen: lossless compression first (the sender need not
    // transcode compressed data, and fewer bytes cross the network and land on disk), then
    // uncompressed, then lossy syntaxes last so lossy data is never preferred. Every one is
    // stored as received; the series loader decodes all of them (JPEG 2000 with OpenJPEG,
    // the others with DCMTK).
    static const std::vector<UidInfo> syntaxes = {
        {"1.2.840.10008.1.2.4.80", "JPEG-LS Lossless"},
        {"1.2.840.10008.1.2.4.70", "JPEG Lossless, Non-Hierarchical, First-Order Prediction"},
        {"1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)"},
        {"1.2.840.10008.1.2.4.90", "JPEG 2000 Image Compression (Lossless Only)"},
        {"1.2.840.10008.1.2.5", "RLE Lossless"},
        {"1.2.840.10008.1.2.1", "Explicit VR Little Endian"},
        {"1.2.840.10008.1.2", "Implicit VR Little Endian"},
        {"1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian"},
        {"1.2.840.10008.1.2.4.81", "JPEG-LS Lossy (Near-Lossless)"},
        {"1.2.840.10008.1.2.4.91", "JPEG 2000 Image Compression"},
        {"1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)"},
        {"1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)"},
    };
    return syntaxes;
}

const std::vector<std::pair<UidInfo, std::string>>& refused_transfer_syntaxes() {
    static const std::vector<std::pair<UidInfo, std::string>> refused = {
        {{"1.2.840.10008.1.2.2", "Explicit VR Big Endian (retired)"},
         "retired transfer syntax; peers fall back to little endian"},
    };
    return refused;
}

std::string uid_name(std::string_view uid) {
    for (const auto& u : supported_storage_sop_classes()) {
        if (uid == u.uid) {
            return u.name;
        }
    }
    for (const auto& u : accepted_transfer_syntaxes()) {
        if (uid == u.uid) {
            return u.name;
        }
    }
    for (const auto& [u, why] : refused_transfer_syntaxes()) {
        if (uid == u.uid) {
            return u.name;
        }
    }
    const std::string text(uid);
    const char* known = dcmFindNameOfUID(text.c_str(), nullptr);
    return known != nullptr ? known : std::string();
}

} // namespace segnode::dicom
