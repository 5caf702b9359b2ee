// Private-member access to DCMTK, isolated here (see dcmtk_private.hpp for why).
#include "dcmtk_private.hpp"

#if PACKAGE_VERSION_NUMBER != 367
#error "DCMTK version changed: check that DcmSCU still keeps its T_ASC_Parameters* in m_params \
(set by initNetwork/negotiateAssociation) or now offers an accessor; then update \
dcmtk_private.cpp/.hpp (dcmtk_private_checked_version) and run dicom_scp_test's DcmtkPrivate tests"
#endif

namespace segnode::dicom {
namespace {

// An explicit template instantiation may name a private member ([temp.spec.general]/6): the
// friend function defined inside it hands out the pointer to member, without patching DCMTK.
using ScuParamsMember = T_ASC_Parameters* DcmSCU::*;
ScuParamsMember dcmscu_params_member();
template <ScuParamsMember Member> struct DcmScuParamsAccess {
    friend ScuParamsMember dcmscu_params_member() { return Member; }
};
template struct DcmScuParamsAccess<&DcmSCU::m_params>;

} // namespace

T_ASC_Parameters* dcmscu_parameters(DcmSCU& scu) {
    return scu.*dcmscu_params_member();
}

static_assert(dcmtk_private_checked_version == PACKAGE_VERSION_NUMBER);

} // namespace segnode::dicom
