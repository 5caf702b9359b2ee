// Writes the phantom as a CT Image Storage series, one DcmFileFormat per slice.
#include "phantom.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <exception>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace segnode::phantom {

namespace {

constexpr const char* ct_image_storage = "1.2.840.10008.5.1.4.1.1.2";
constexpr int rescale_intercept = -1024;

std::string tag_name(const DcmTagKey& key) {
    DcmTag tag(key);
    return std::string(tag.getTagName()) + " " + key.toString().c_str();
}

void check(const OFCondition& cond, const std::string& what) {
    if (cond.bad()) {
        throw std::runtime_error("phantom: " + what + ": " + cond.text());
    }
}

void put(DcmItem& item, const DcmTagKey& key, const std::string& value) {
    check(item.putAndInsertString(DcmTag(key), value.c_str()), "cannot set " + tag_name(key));
}

void put_us(DcmItem& item, const DcmTagKey& key, Uint16 value) {
    check(item.putAndInsertUint16(DcmTag(key), value), "cannot set " + tag_name(key));
}

std::string join_ds(const double* values, std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
        if (i > 0) {
            out += '\\';
        }
        out += format_ds(values[i]);
    }
    return out;
}

std::optional<std::string> uid_problem(const std::string& uid) {
    if (uid.size() > 64) {
        return "is longer than 64 characters";
    }
    std::size_t start = 0;
    for (std::size_t i = 0; i <= uid.size(); ++i) {
        if (i == uid.size() || uid[i] == '.') {
            if (i == start) {
                return "has an empty component";
            }
            if (i - start > 1 && uid[start] == '0') {
                return "has a component with a leading zero";
            }
            start = i + 1;
        } else if (uid[i] < '0' || uid[i] > '9') {
            return "contains a character other than digits and dots";
        }
    }
    return std::nullopt;
}

void validate(const PhantomSpec& spec) {
    auto fail = [](const std::string& message) {
        throw std::invalid_argument("phantom: invalid spec: " + message);
    };
    if (spec.rows < 1 || spec.rows > 65535 || spec.cols < 1 || spec.cols > 65535) {
        fail("rows and cols must be in 1..65535");
    }
    if (spec.slices < 1 || spec.slices > 99999) {
        fail("slices must be in 1..99999");
    }
    if (!std::isfinite(spec.pixel_spacing) || spec.pixel_spacing <= 0.0 ||
        !std::isfinite(spec.slice_spacing) || spec.slice_spacing <= 0.0) {
        fail("pixel and slice spacing must be positive");
    }
    if (!std::isfinite(spec.noise_hu) || spec.noise_hu < 0.0) {
        fail("noise must be zero or positive");
    }
    if (spec.series_number < 0 || spec.series_number > 99999999) {
        fail("series number must be in 0..99999999");
    }
    const std::pair<const char*, const std::string*> uids[] = {
        {"study UID", &spec.study_uid},
        {"series UID", &spec.series_uid},
        {"frame of reference UID", &spec.frame_of_reference_uid}};
    for (const auto& [what, uid] : uids) {
        if (!uid->empty()) {
            if (auto problem = uid_problem(*uid)) {
                fail(std::string(what) + " '" + *uid + "' " + *problem);
            }
        }
    }
    const std::pair<const char*, const std::string*> los[] = {
        {"patient id", &spec.patient_id},
        {"series description", &spec.series_description},
        {"patient name", &spec.patient_name}};
    for (const auto& [what, value] : los) {
        if (value->size() > 64 || value->find('\\') != std::string::npos) {
            fail(std::string(what) + " must be at most 64 characters without backslash");
        }
    }
    const std::pair<const char*, const std::string*> css[] = {{"modality", &spec.modality},
                                                              {"body part", &spec.body_part}};
    for (const auto& [what, value] : css) {
        const bool ok =
            value->size() <= 16 && std::all_of(value->begin(), value->end(), [](char ch) {
                return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                       ch == ' ';
            });
        if (!ok) {
            fail(std::string(what) + " '" + *value +
                 "' must be at most 16 upper-case letters, digits, '_' or space");
        }
    }
    if (!spec.study_date.empty() &&
        (spec.study_date.size() != 8 ||
         !std::all_of(spec.study_date.begin(), spec.study_date.end(),
                      [](char ch) { return ch >= '0' && ch <= '9'; }))) {
        fail("study date must be YYYYMMDD");
    }
}

struct Clock {
    std::string date; // YYYYMMDD
    std::string time; // HHMMSS
};

Clock now() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char date[16];
    char time[16];
    std::strftime(date, sizeof date, "%Y%m%d", &tm);
    std::strftime(time, sizeof time, "%H%M%S", &tm);
    return {date, time};
}

std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// Seeded permutation of 0..n-1 that differs from the identity whenever n > 1.
std::vector<int> shuffled_order(int n, std::uint64_t seed) {
    std::vector<int> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(splitmix64(seed));
    for (std::size_t i = order.size(); i > 1; --i) {
        const auto j = static_cast<std::size_t>(rng() % i);
        std::swap(order[i - 1], order[j]);
    }
    if (n > 1 && std::is_sorted(order.begin(), order.end())) {
        std::rotate(order.begin(), order.begin() + 1, order.end());
    }
    return order;
}

// Everything a worker needs to write one slice.
struct SeriesContext {
    const PhantomSpec* spec = nullptr;
    PhantomGeometry geometry;
    Anatomy anatomy;
    GeneratedSeries* series = nullptr;
    Clock clock;
    std::string study_date;
    std::string orientation; // ImageOrientationPatient value
    E_TransferSyntax xfer = EXS_LittleEndianExplicit;
};

void put_common(DcmDataset& ds, const SeriesContext& ctx) {
    const PhantomSpec& spec = *ctx.spec;
    const GeneratedSeries& series = *ctx.series;
    // SOP Common
    put(ds, DCM_SpecificCharacterSet, "ISO_IR 100");
    put(ds, DCM_SOPClassUID, ct_image_storage);
    put(ds, DCM_InstanceCreationDate, ctx.clock.date);
    put(ds, DCM_InstanceCreationTime, ctx.clock.time);
    // Patient
    put(ds, DCM_PatientName, spec.patient_name);
    put(ds, DCM_PatientID, spec.patient_id);
    put(ds, DCM_PatientBirthDate, "19700101");
    put(ds, DCM_PatientSex, "O");
    // General Study
    put(ds, DCM_StudyInstanceUID, series.study_uid);
    put(ds, DCM_StudyDate, ctx.study_date);
    put(ds, DCM_StudyTime, "080000");
    put(ds, DCM_ReferringPhysicianName, "");
    put(ds, DCM_StudyID, "1");
    put(ds, DCM_AccessionNumber, "");
    put(ds, DCM_StudyDescription, "Synthetic phantom");
    // General Series
    put(ds, DCM_Modality, spec.modality);
    put(ds, DCM_SeriesInstanceUID, series.series_uid);
    put(ds, DCM_SeriesNumber, std::to_string(spec.series_number));
    put(ds, DCM_SeriesDescription, spec.series_description);
    put(ds, DCM_SeriesDate, ctx.study_date);
    put(ds, DCM_SeriesTime, "080000");
    put(ds, DCM_BodyPartExamined, spec.body_part);
    put(ds, DCM_PatientPosition, spec.feet_first ? "FFS" : "HFS");
    // Frame of Reference
    put(ds, DCM_FrameOfReferenceUID, series.frame_of_reference_uid);
    put(ds, DCM_PositionReferenceIndicator, "");
    // General Equipment
    put(ds, DCM_Manufacturer, "segnode-phantom");
    put(ds, DCM_ManufacturerModelName, "segnode-phantom");
    put(ds, DCM_SoftwareVersions, "1");
    // General Image / General Acquisition
    put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY\\AXIAL");
    put(ds, DCM_AcquisitionNumber, "1");
    put(ds, DCM_ContentDate, ctx.study_date);
    put(ds, DCM_AcquisitionDate, ctx.study_date);
    put(ds, DCM_BurnedInAnnotation, "NO");
    // Image Plane
    put(ds, DCM_PixelSpacing,
        format_ds(ctx.geometry.pixel_spacing) + "\\" + format_ds(ctx.geometry.pixel_spacing));
    put(ds, DCM_ImageOrientationPatient, ctx.orientation);
    put(ds, DCM_SliceThickness, format_ds(ctx.geometry.slice_spacing));
    // Image Pixel
    put_us(ds, DCM_SamplesPerPixel, 1);
    put(ds, DCM_PhotometricInterpretation, "MONOCHROME2");
    put_us(ds, DCM_Rows, static_cast<Uint16>(spec.rows));
    put_us(ds, DCM_Columns, static_cast<Uint16>(spec.cols));
    put_us(ds, DCM_BitsAllocated, 16);
    put_us(ds, DCM_BitsStored, 16);
    put_us(ds, DCM_HighBit, 15);
    put_us(ds, DCM_PixelRepresentation, 0);
    // CT Image
    put(ds, DCM_RescaleIntercept, std::to_string(rescale_intercept));
    put(ds, DCM_RescaleSlope, "1");
    put(ds, DCM_RescaleType, "HU");
    put(ds, DCM_KVP, "120");
    // VOI LUT
    put(ds, DCM_WindowCenter, "40");
    put(ds, DCM_WindowWidth, "400");
}

void fill_pixels(const SeriesContext& ctx, int k, std::vector<Uint16>& pixels) {
    const PhantomSpec& spec = *ctx.spec;
    const PhantomGeometry& g = ctx.geometry;
    std::array<double, label_count> stored{};
    for (int label = 0; label < label_count; ++label) {
        stored[static_cast<std::size_t>(label)] = truth_hu(label) - rescale_intercept;
    }
    const bool noisy = spec.noise_hu > 0.0;
    std::mt19937_64 rng(splitmix64(spec.seed ^ splitmix64(static_cast<std::uint64_t>(k) + 1)));
    std::normal_distribution<double> noise(0.0, noisy ? spec.noise_hu : 1.0);

    const Vec3 origin = g.slice_position(k);
    const double ps = g.pixel_spacing;
    std::size_t index = 0;
    for (int j = 0; j < spec.rows; ++j) {
        const double bx = origin[0] + j * ps * g.col_dir[0];
        const double by = origin[1] + j * ps * g.col_dir[1];
        const double bz = origin[2] + j * ps * g.col_dir[2];
        for (int i = 0; i < spec.cols; ++i) {
            const double x = bx + i * ps * g.row_dir[0];
            const double y = by + i * ps * g.row_dir[1];
            const double z = bz + i * ps * g.row_dir[2];
            double value = stored[static_cast<std::size_t>(ctx.anatomy.label(x, y, z))];
            if (noisy) {
                value = std::round(value + noise(rng));
                value = std::clamp(value, 0.0, 65535.0);
            }
            pixels[index++] = static_cast<Uint16>(value);
        }
    }
}

void write_slice(const SeriesContext& ctx, int k) {
    const PhantomSpec& spec = *ctx.spec;
    const auto kk = static_cast<std::size_t>(k);
    const std::filesystem::path& path = ctx.series->files[kk];
    DcmFileFormat file;
    DcmDataset& ds = *file.getDataset();
    put_common(ds, ctx);
    put(ds, DCM_SOPInstanceUID, ctx.series->sop_instance_uids[kk]);
    put(ds, DCM_InstanceNumber, std::to_string(k + 1));
    const Vec3 position = ctx.geometry.slice_position(k);
    put(ds, DCM_ImagePositionPatient, join_ds(position.data(), 3));
    // SliceLocation: the position along the normal, rounded to 1e-6 mm (informative only).
    const Vec3& n = ctx.geometry.normal;
    const double location = position[0] * n[0] + position[1] * n[1] + position[2] * n[2];
    put(ds, DCM_SliceLocation, format_ds(std::round(location * 1e6) / 1e6));
    // Content/acquisition time advance one second per slice, like a real acquisition.
    const int seconds = 8 * 3600 + 60 + k;
    char time[16];
    std::snprintf(time, sizeof time, "%02d%02d%02d", (seconds / 3600) % 24, (seconds / 60) % 60,
                  seconds % 60);
    put(ds, DCM_ContentTime, time);
    put(ds, DCM_AcquisitionTime, time);

    std::vector<Uint16> pixels(static_cast<std::size_t>(spec.rows) *
                               static_cast<std::size_t>(spec.cols));
    fill_pixels(ctx, k, pixels);
    check(ds.putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size()),
          "cannot set PixelData");
    check(file.saveFile(path.c_str(), ctx.xfer, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0,
                        0, EWM_createNewMeta),
          "cannot write " + path.string());
}

} // namespace

GeneratedSeries write_ct_series(const PhantomSpec& spec, const std::filesystem::path& out_dir) {
    validate(spec);
    if (!dcmDataDict.isDictionaryLoaded()) {
        throw std::runtime_error("phantom: the DICOM data dictionary is not loaded (is "
                                 "DCMDICTPATH set correctly / libdcmtk installed?)");
    }
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) {
        throw std::runtime_error("phantom: cannot create output directory " + out_dir.string() +
                                 ": " + ec.message());
    }
    if (!std::filesystem::is_directory(out_dir, ec)) {
        throw std::runtime_error("phantom: output path is not a directory: " + out_dir.string());
    }

    GeneratedSeries series;
    series.study_uid = spec.study_uid.empty() ? generate_uid() : spec.study_uid;
    series.series_uid = spec.series_uid.empty() ? generate_uid() : spec.series_uid;
    series.frame_of_reference_uid =
        spec.frame_of_reference_uid.empty() ? generate_uid() : spec.frame_of_reference_uid;
    const auto slices = static_cast<std::size_t>(spec.slices);
    std::vector<int> names(slices);
    if (spec.shuffle_files) {
        names = shuffled_order(spec.slices, spec.seed);
    } else {
        std::iota(names.begin(), names.end(), 0);
    }
    for (std::size_t k = 0; k < slices; ++k) {
        series.sop_instance_uids.push_back(generate_uid());
        char name[32];
        std::snprintf(name, sizeof name, "IM%04d.dcm", names[k] + 1);
        series.files.push_back(out_dir / name);
    }

    const PhantomGeometry geometry = compute_geometry(spec);
    const std::array<double, 6> cosines{geometry.row_dir[0], geometry.row_dir[1],
                                        geometry.row_dir[2], geometry.col_dir[0],
                                        geometry.col_dir[1], geometry.col_dir[2]};
    const Clock clock = now();
    const SeriesContext ctx{.spec = &spec,
                            .geometry = geometry,
                            .anatomy = Anatomy(spec),
                            .series = &series,
                            .clock = clock,
                            .study_date = spec.study_date.empty() ? clock.date : spec.study_date,
                            .orientation = join_ds(cosines.data(), cosines.size()),
                            .xfer = spec.transfer_syntax == TransferSyntax::ImplicitLittle
                                        ? EXS_LittleEndianImplicit
                                        : EXS_LittleEndianExplicit};

    unsigned workers = spec.threads != 0 ? spec.threads : std::thread::hardware_concurrency();
    workers = std::clamp(workers, 1U, static_cast<unsigned>(spec.slices));
    std::atomic<int> next{0};
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto work = [&] {
        for (int k = next++; k < spec.slices && !failed; k = next++) {
            try {
                write_slice(ctx, k);
            } catch (...) {
                const std::lock_guard lock(error_mutex);
                if (!error) {
                    error = std::current_exception();
                }
                failed = true;
            }
        }
    };
    if (workers == 1) {
        work();
    } else {
        std::vector<std::jthread> pool;
        pool.reserve(workers);
        for (unsigned t = 0; t < workers; ++t) {
            pool.emplace_back(work);
        }
    }
    if (error) {
        std::rethrow_exception(error);
    }
    return series;
}

} // namespace segnode::phantom
