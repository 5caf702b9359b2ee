#pragma once
#include "segnode/core/result.hpp"

namespace segnode::dicom {

/// Process-wide DCMTK set-up, called once before any DICOM work: checks that the data
/// dictionary loaded, disables reverse DNS lookups, disables Nagle's algorithm for DCMTK's
/// own sockets (TCP_NODELAY), registers the decoders and routes DCMTK's log to warnings only.
Status init_dicom_environment();

} // namespace segnode::dicom
