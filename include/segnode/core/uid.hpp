#pragma once
// DICOM UID validation and generation. A UID is validated before it becomes part of a path.
#include <optional>
#include <string>
#include <string_view>

namespace segnode {

/// Returns std::nullopt when `uid` is a valid DICOM UID (PS3.5 9.1: components of digits
/// separated by single dots, no leading zero in a multi-digit component, at most 64
/// characters); otherwise a short reason suitable for an error message.
std::optional<std::string> uid_problem(std::string_view uid);

inline bool is_valid_uid(std::string_view uid) {
    return !uid_problem(uid).has_value();
}

/// A new UID under the 2.25 root derived from a random (version 4) UUID.
std::string generate_uuid_uid();

} // namespace segnode
