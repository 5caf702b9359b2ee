#include "segnode/dicom/environment.hpp"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/dcmnet/dul.h"
#include "dcmtk/oflog/oflog.h"

#include <cstdlib>
#include <mutex>

namespace segnode::dicom {

Status init_dicom_environment() {
    static std::once_flag once;
    std::call_once(once, [] {
        // DCMTK reads TCP_NODELAY for the sockets it opens itself (SCU side); the SCP sets
        // the option directly on every accepted socket.
        setenv("TCP_NODELAY", "1", 0);
        dcmDisableGethostbyaddr.set(OFTrue);
        OFLog::configure(OFLogger::WARN_LOG_LEVEL);
        // The receiver deliberately stops parsing at the pixel data; dcmdata would warn about
        // that for every instance.
        OFLog::getLogger("dcmtk.dcmdata").setLogLevel(OFLogger::ERROR_LOG_LEVEL);
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
        DcmRLEDecoderRegistration::registerCodecs();
    });
    if (!dcmDataDict.isDictionaryLoaded()) {
        const char* path = std::getenv("DCMDICTPATH");
        return Error{std::string("the DICOM data dictionary is not loaded (") +
                     (path != nullptr ? "DCMDICTPATH=" + std::string(path)
                                      : std::string("expected /usr/share/libdcmtk17/dicom.dic "
                                                    "from the libdcmtk17 package")) +
                     "); without it no attribute can be read"};
    }
    return ok_status();
}

} // namespace segnode::dicom
