#pragma once
// Start-up recovery of instance files the index does not know.
//
// Instance rows are committed with synchronous=NORMAL (index_writer.hpp): a crash of segnode
// loses nothing, but a power loss or kernel crash can take the last rows from the WAL's tail
// although their files, fsynced before the commit, survived. When `segnode serve` starts and
// finds that the previous run did not stop cleanly (Workdir::running_marker()), it walks
// instances/ and indexes every `.dcm` file without a row, as if it had just been received:
// - attributes are read from the file itself; the file must sit at the path its Study,
//   Series and SOP Instance UIDs give, else it is moved to quarantine/ with the reason;
// - calling AE, called AE and peer address come from the receiving association, whose id the
//   receiver stored on the file (extended attribute `user.segnode.association`) and whose row
//   is committed durably; without it, calling AE = (0002,0016) Source AE Title of the file
//   meta, called AE = node.ae_title, peer address empty;
// - received at = the file's modification time; the series is created, extended, or (for a
//   complete series) handled by series.late_instance_policy like any late instance.
// The same pass indexes a file that was renamed into place by a segnode killed before its
// commit; that instance was never acknowledged, and a resend is then an identical duplicate.
#include "segnode/core/config.hpp"
#include "segnode/store/database.hpp"
#include "segnode/store/workdir.hpp"

#include <cstdint>

namespace segnode::pipeline {

struct RecoveryReport {
    std::int64_t files_seen = 0;  ///< .dcm files under instances/
    std::int64_t recovered = 0;   ///< unindexed files now indexed
    std::int64_t series = 0;      ///< series they belong to
    std::int64_t quarantined = 0; ///< unindexed files that could not be indexed
};

/// Indexes the unindexed files under instances/ (see above). Throws store::DatabaseError.
RecoveryReport recover_unindexed(const Config& config, const store::Workdir& workdir,
                                 store::Database& db);

} // namespace segnode::pipeline
