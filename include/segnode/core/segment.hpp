#pragma once
// What a segment of a label map means: shared by the algorithms layer (which declares the
// segments it produces) and the dicom layer (whose SEG and RTSTRUCT writers encode them), so
// neither needs the other.
#include <array>
#include <cstdint>
#include <string>

namespace segnode {

/// A coded concept as DICOM writes it (Code Value, Coding Scheme Designator, Code Meaning).
struct CodedConcept {
    std::string value;
    std::string scheme; ///< "SCT" for SNOMED CT
    std::string meaning;
};

/// One segment: the voxels of a label map equal to `label`.
struct SegmentInfo {
    std::uint8_t label = 1; ///< 1..255, the SEG segment number and RTSTRUCT ROI number
    std::string name;       ///< SEG SegmentLabel / RTSTRUCT ROIName
    CodedConcept category;  ///< Segmented Property Category (CID 7150)
    CodedConcept type;      ///< Segmented Property Type (CID 7151 and the groups it names)
    std::array<std::uint8_t, 3> rgb{}; ///< recommended display colour (sRGB)
};

} // namespace segnode
