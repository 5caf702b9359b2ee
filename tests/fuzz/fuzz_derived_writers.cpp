// Fuzz target: random label maps on a small phantom series -> write_seg and write_rtstruct ->
// each file read back with DCMTK (not with segnode's reader) and compared with the label map:
// - SEG: every BINARY frame (segment from SegmentIdentificationSequence and SegmentSequence's
//   SegmentLabel, slice from the SourceImageSequence's ReferencedSOPInstanceUID) unpacked;
//   the union of the frames is exactly the label map, no frame is empty.
// - RTSTRUCT: every ContourData mapped from patient space back to pixel indices and rasterised
//   with the even-odd rule (tests/dicom/even_odd_raster.hpp) per ROI and slice; exactly the
//   label map.
// Input: byte 0 number of labels (1..4), then one byte per voxel of the 10 x 12 x 3 series
// (value % (labels + 1); missing voxels 0). Every declared label is named "L<label>".
#include "even_odd_raster.hpp"
#include "fuzz_support.hpp"
#include "phantom.hpp"
#include "segnode/dicom/derived_inspect.hpp"
#include "segnode/dicom/rtstruct_writer.hpp"
#include "segnode/dicom/seg_writer.hpp"
#include "segnode/dicom/series_loader.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <dcmtk/dcmdata/dctk.h>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace segnode;
using namespace segnode::dicom;

struct Fixture {
    fs::path dir;
    LoadedSeries series;
};

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_derived_writers: %s\n", what.c_str());
    std::abort();
}

const Fixture& fixture() {
    static const Fixture f = [] {
        segnode::fuzz::init_quiet_dicom();
        Fixture out;
        out.dir = fuzz::make_process_temp_dir("segnode-fuzz-writers");
        phantom::PhantomSpec spec;
        spec.rows = 12;
        spec.cols = 10;
        spec.slices = 3;
        spec.threads = 1;
        spec.orientation = phantom::Orientation::Oblique; // every coordinate non-trivial
        phantom::write_ct_series(spec, out.dir / "ct");
        auto loaded = load_series_dir(out.dir / "ct");
        if (!loaded) {
            fail("phantom series: " + loaded.error().message);
        }
        out.series = std::move(loaded).value();
        return out;
    }();
    return f;
}

std::string get_string(DcmItem& item, const DcmTagKey& tag) {
    OFString value;
    item.findAndGetOFString(tag, value);
    return value.c_str();
}

DcmItem* sub_item(DcmItem& item, const DcmTagKey& sequence) {
    DcmItem* out = nullptr;
    if (item.findAndGetSequenceItem(sequence, out, 0).bad()) {
        return nullptr;
    }
    return out;
}

/// Label of a segment or ROI from its name "L<label>".
std::uint8_t label_of(const std::string& name) {
    if (name.size() < 2 || name[0] != 'L') {
        fail("unexpected segment name '" + name + "'");
    }
    return static_cast<std::uint8_t>(std::stoi(name.substr(1)));
}

std::size_t slice_of(const std::string& sop_uid) {
    const auto& uids = fixture().series.sop_instance_uids;
    for (std::size_t k = 0; k < uids.size(); ++k) {
        if (uids[k] == sop_uid) {
            return k;
        }
    }
    fail("reference to an unknown instance " + sop_uid);
}

void check_seg(const fs::path& file, const LabelMap& labels) {
    DcmFileFormat ff;
    if (OFCondition c = ff.loadFile(file.c_str()); c.bad()) {
        fail(std::string("SEG not readable: ") + c.text());
    }
    DcmDataset& ds = *ff.getDataset();
    if (get_string(ds, DCM_SOPClassUID) != segmentation_storage_uid ||
        get_string(ds, DCM_SegmentationType) != "BINARY") {
        fail("not a BINARY SEG");
    }
    std::map<std::uint16_t, std::uint8_t> segment_label;
    DcmSequenceOfItems* segments = nullptr;
    ds.findAndGetSequence(DCM_SegmentSequence, segments);
    for (unsigned long s = 0; segments != nullptr && s < segments->card(); ++s) {
        Uint16 number = 0;
        segments->getItem(s)->findAndGetUint16(DCM_SegmentNumber, number);
        segment_label[number] = label_of(get_string(*segments->getItem(s), DCM_SegmentLabel));
    }
    const auto& dims = labels.geometry.dims;
    Uint16 rows = 0;
    Uint16 cols = 0;
    ds.findAndGetUint16(DCM_Rows, rows);
    ds.findAndGetUint16(DCM_Columns, cols);
    if (rows != dims[1] || cols != dims[0]) {
        fail("SEG Rows/Columns differ from the source");
    }
    DcmSequenceOfItems* frames = nullptr;
    ds.findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, frames);
    const Uint8* bits = nullptr;
    unsigned long bytes = 0;
    ds.findAndGetUint8Array(DCM_PixelData, bits, &bytes);
    const std::size_t frame_pixels = std::size_t{rows} * cols;
    const unsigned long n_frames = frames == nullptr ? 0 : frames->card();
    if (bits == nullptr || bytes * 8 < n_frames * frame_pixels) {
        fail("SEG PixelData shorter than its frames");
    }
    std::vector<std::uint8_t> seen(labels.voxels.size(), 0);
    for (unsigned long f = 0; f < n_frames; ++f) {
        DcmItem& item = *frames->getItem(f);
        DcmItem* ident = sub_item(item, DCM_SegmentIdentificationSequence);
        DcmItem* derivation = sub_item(item, DCM_DerivationImageSequence);
        DcmItem* source =
            derivation == nullptr ? nullptr : sub_item(*derivation, DCM_SourceImageSequence);
        if (ident == nullptr || source == nullptr) {
            fail("SEG frame without segment or source image");
        }
        Uint16 number = 0;
        ident->findAndGetUint16(DCM_ReferencedSegmentNumber, number);
        if (segment_label.count(number) == 0) {
            fail("SEG frame of an undeclared segment");
        }
        const std::uint8_t label = segment_label[number];
        const std::size_t k = slice_of(get_string(*source, DCM_ReferencedSOPInstanceUID));
        bool any = false;
        for (std::size_t p = 0; p < frame_pixels; ++p) {
            const std::size_t bit = f * frame_pixels + p;
            if (((bits[bit / 8] >> (bit % 8)) & 1U) != 0) {
                const std::size_t v = p + frame_pixels * k;
                if (labels.voxels[v] != label || seen[v] != 0) {
                    fail("SEG frame " + std::to_string(f + 1) + " sets a voxel of another label");
                }
                seen[v] = label;
                any = true;
            }
        }
        if (!any) {
            fail("SEG has an empty frame");
        }
    }
    for (std::size_t v = 0; v < seen.size(); ++v) {
        if (seen[v] != labels.voxels[v]) {
            fail("SEG misses voxel " + std::to_string(v));
        }
    }
}

void check_rtstruct(const fs::path& file, const LabelMap& labels) {
    DcmFileFormat ff;
    if (OFCondition c = ff.loadFile(file.c_str()); c.bad()) {
        fail(std::string("RTSTRUCT not readable: ") + c.text());
    }
    DcmDataset& ds = *ff.getDataset();
    if (get_string(ds, DCM_SOPClassUID) != rt_structure_set_storage) {
        fail("not an RTSTRUCT");
    }
    std::map<long, std::uint8_t> roi_label;
    DcmSequenceOfItems* rois = nullptr;
    ds.findAndGetSequence(DCM_StructureSetROISequence, rois);
    for (unsigned long r = 0; rois != nullptr && r < rois->card(); ++r) {
        Sint32 number = 0;
        rois->getItem(r)->findAndGetSint32(DCM_ROINumber, number);
        roi_label[number] = label_of(get_string(*rois->getItem(r), DCM_ROIName));
    }
    const Geometry& g = labels.geometry;
    const auto [w, h, depth] = g.dims;
    // contours[label][k], in pixel coordinates
    std::map<std::uint8_t, std::vector<std::vector<Contour>>> contours;
    DcmSequenceOfItems* roi_contours = nullptr;
    ds.findAndGetSequence(DCM_ROIContourSequence, roi_contours);
    for (unsigned long r = 0; roi_contours != nullptr && r < roi_contours->card(); ++r) {
        DcmItem& roi = *roi_contours->getItem(r);
        Sint32 number = 0;
        roi.findAndGetSint32(DCM_ReferencedROINumber, number);
        if (roi_label.count(number) == 0) {
            fail("contours of an undeclared ROI");
        }
        auto& per_slice = contours[roi_label[number]];
        per_slice.resize(depth);
        DcmSequenceOfItems* cs = nullptr;
        roi.findAndGetSequence(DCM_ContourSequence, cs);
        for (unsigned long c = 0; cs != nullptr && c < cs->card(); ++c) {
            DcmItem& item = *cs->getItem(c);
            DcmItem* image = sub_item(item, DCM_ContourImageSequence);
            if (image == nullptr || get_string(item, DCM_ContourGeometricType) != "CLOSED_PLANAR") {
                fail("contour without image reference or not CLOSED_PLANAR");
            }
            const std::size_t k = slice_of(get_string(*image, DCM_ReferencedSOPInstanceUID));
            DcmElement* data = nullptr;
            item.findAndGetElement(DCM_ContourData, data);
            const unsigned long values = data == nullptr ? 0 : data->getVM();
            if (values == 0 || values % 3 != 0) {
                fail("ContourData is not a list of points");
            }
            Contour contour;
            for (unsigned long p = 0; p < values; p += 3) {
                Vec3d d{};
                for (unsigned long a = 0; a < 3; ++a) {
                    Float64 v = 0;
                    data->getFloat64(v, p + a);
                    d[a] = v - g.origin[a];
                }
                double idx[3];
                for (std::size_t axis = 0; axis < 3; ++axis) {
                    const Vec3d dir = axis_direction(g, axis);
                    idx[axis] = (d[0] * dir[0] + d[1] * dir[1] + d[2] * dir[2]) / g.spacing[axis];
                }
                if (std::abs(idx[2] - static_cast<double>(k)) > 1e-3) {
                    fail("contour point off its referenced slice");
                }
                contour.points.push_back({idx[0], idx[1]});
            }
            per_slice[k].push_back(std::move(contour));
        }
    }
    for (std::uint8_t label = 1; label <= 4; ++label) { // at most 4 labels are written
        for (std::size_t k = 0; k < depth; ++k) {
            const auto it = contours.find(label);
            const std::vector<Contour> none;
            const auto& slice = it == contours.end() ? none : it->second[k];
            const auto raster = test::rasterise_even_odd(slice, w, h, 1);
            if (raster.odd_row >= 0) {
                fail("RTSTRUCT contours not closed");
            }
            for (std::size_t p = 0; p < w * h; ++p) {
                if ((labels.voxels[p + w * h * k] == label) != (raster.mask[p] == 1)) {
                    fail("RTSTRUCT label " + std::to_string(label) + " slice " + std::to_string(k) +
                         " differs from the label map");
                }
            }
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const Fixture& f = fixture();
    const unsigned n = 1 + data[0] % 4;
    LabelMap labels = make_volume<std::uint8_t>(f.series.volume.geometry, 0);
    bool foreground = false;
    for (std::size_t v = 0; v < labels.voxels.size() && v + 1 < size; ++v) {
        labels.voxels[v] = static_cast<std::uint8_t>(data[v + 1] % (n + 1));
        foreground = foreground || labels.voxels[v] != 0;
    }
    std::vector<SegmentInfo> segments;
    for (unsigned l = 1; l <= n; ++l) {
        segments.push_back({static_cast<std::uint8_t>(l),
                            "L" + std::to_string(l),
                            {"85756007", "SCT", "Tissue"},
                            {"85756007", "SCT", "Tissue"},
                            {static_cast<std::uint8_t>(60 * l), 100, 50}});
    }
    DerivedObjectOptions options;
    options.algorithm_name = "fuzz";
    options.algorithm_version = "1";
    const fs::path seg_file = f.dir / "seg.dcm";
    const fs::path rt_file = f.dir / "rt.dcm";
    auto seg = write_seg(f.series, labels, segments, options, seg_file);
    auto rt = write_rtstruct(f.series, labels, segments, options, rt_file);
    if (!foreground) {
        if (seg || rt || fs::exists(seg_file) || fs::exists(rt_file)) {
            fail("an empty label map was written");
        }
        return 0;
    }
    if (!seg) {
        fail("write_seg: " + seg.error().message);
    }
    if (!rt) {
        fail("write_rtstruct: " + rt.error().message);
    }
    check_seg(seg_file, labels);
    check_rtstruct(rt_file, labels);
    fs::remove(seg_file);
    fs::remove(rt_file);
    return 0;
}
