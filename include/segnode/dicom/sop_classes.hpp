#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace segnode::dicom {

struct UidInfo {
    const char* uid;
    const char* name;
};

/// Image storage SOP classes the receiver accepts (what segmentation users send).
const std::vector<UidInfo>& supported_storage_sop_classes();
bool is_supported_storage_sop_class(std::string_view uid);

/// Transfer syntaxes accepted for storage, in order of preference.
const std::vector<UidInfo>& accepted_transfer_syntaxes();
/// Transfer syntaxes recognised but refused, with the reason (logged at start-up).
const std::vector<std::pair<UidInfo, std::string>>& refused_transfer_syntaxes();

/// Human-readable name of a SOP class or transfer syntax UID ("" if unknown).
std::string uid_name(std::string_view uid);

} // namespace segnode::dicom
