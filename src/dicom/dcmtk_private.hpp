#pragma once
// The one place where segnode reads a private DCMTK member (see dcmtk_private.cpp).
//
// DcmSCU (3.6.7) keeps its association parameters (T_ASC_Parameters, member m_params) private
// and offers no accessor; on an A-ASSOCIATE-RJ or refused presentation contexts it only writes
// the peer's answer to its debug log. The SCU reads the rejection reason and each context's
// result from them to say why a send failed. Everything else in the dicom layer uses public
// DCMTK API only (the SCP reaches its sockets through its own DcmTransportLayer).
//
// The access is tied to one DCMTK version: dcmtk_private.cpp does not compile against another
// (#error), and dicom_scp_test's DcmtkPrivate tests check what it reads on a real association.
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmnet/scu.h"

namespace segnode::dicom {

/// The DCMTK version (PACKAGE_VERSION_NUMBER) the access below was checked against.
constexpr int dcmtk_private_checked_version = 367;

/// DcmSCU's private association parameters: valid from initNetwork() until the association is
/// released or aborted. Read only (the SCU never changes them).
T_ASC_Parameters* dcmscu_parameters(DcmSCU& scu);

} // namespace segnode::dicom
