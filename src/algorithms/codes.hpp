#pragma once
// Coded concepts and colours of the built-in segments (internal to the algorithms layer).
//
// SNOMED CT ("SCT") codes with the code meanings DICOM PS3.16 uses:
//  - category 123037004 "Anatomical Structure" (CID 7150) for organs and the body outline:
//    type 38266002 "Entire body" and type 39607008 "Lung" (CID 7151/4030 style anatomy).
//  - category 85756007 "Tissue" (CID 7150) for bone, type 272673000 "Bone" (CID 7166,
//    the pairing 3D Slicer's terminology and dcmqi use for bone masks).
//  - generic intensity masks (otsu, threshold) say no more than "tissue": category and type
//    85756007 "Tissue". (The old SRT code 91723000 "Anatomical Structure" is retired in
//    favour of 123037004 and is not used.)
// Colours follow 3D Slicer's generic anatomy colour table where it has the structure.
#include "segnode/algorithms/algorithm.hpp"

namespace segnode::algorithms::codes {

inline CodedConcept anatomical_structure() {
    return {"123037004", "SCT", "Anatomical Structure"};
}
inline CodedConcept tissue() {
    return {"85756007", "SCT", "Tissue"};
}
inline CodedConcept entire_body() {
    return {"38266002", "SCT", "Entire body"};
}
inline CodedConcept lung() {
    return {"39607008", "SCT", "Lung"};
}
inline CodedConcept bone() {
    return {"272673000", "SCT", "Bone"};
}

} // namespace segnode::algorithms::codes
