#pragma once

namespace segnode {
const char* version_string();
/// Implementation Class UID sent in associations and file meta headers.
const char* implementation_class_uid();
const char* implementation_version_name();
} // namespace segnode
