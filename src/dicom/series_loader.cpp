// Series loader: two passes over the files. The first reads every header (up to the pixel
// data) and checks series, pixel format and geometry, so a refusal costs no decoding; the
// second decodes each file's frames straight into their slices of the volume. Nothing but the
// volume and small per-image records is kept, so memory stays close to the volume's size.
#include "segnode/dicom/series_loader.hpp"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfcache.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "encapsulated_frames.hpp"
#include "instance_header.hpp"
#include "j2k_decoder.hpp"
#include "segnode/dicom/environment.hpp"
#include "segnode/dicom/sop_classes.hpp"
#include "slice_geometry.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <new>
#include <spdlog/spdlog.h>
#include <thread>
#include <unordered_map>
#include <utility>

namespace segnode::dicom {
namespace {

namespace fs = std::filesystem;
using detail::FileKind;
using detail::FrameHeader;
using detail::InstanceHeader;

unsigned worker_count(const LoadOptions& options, std::size_t jobs) {
    unsigned threads = options.threads;
    if (threads == 0) {
        threads = std::clamp(std::thread::hardware_concurrency(), 1U, 4U);
    }
    return static_cast<unsigned>(std::clamp<std::size_t>(jobs, 1, threads));
}

/// Runs job(i) for every i in [0, n) on `threads` threads and stops early after a failure;
/// returns the error of the lowest failing index (deterministic for a given input). A stop
/// request ends it as well: no worker takes a further index, and the result is "cancelled".
template <class Job>
Status parallel_for(std::size_t n, unsigned threads, const std::stop_token& stop, Job job) {
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mutex;
    std::size_t error_index = n;
    Error error;
    auto work = [&] {
        for (std::size_t i = next++; i < n && !failed; i = next++) {
            if (stop.stop_requested()) {
                failed = true;
                break;
            }
            Status status;
            try {
                status = job(i);
            } catch (const std::bad_alloc&) {
                status = Error{"out of memory"};
            } catch (const std::exception& e) {
                status = Error{e.what()};
            }
            if (!status) {
                const std::lock_guard lock(mutex);
                if (i < error_index) {
                    error_index = i;
                    error = status.error();
                }
                failed = true;
            }
        }
    };
    if (threads <= 1) {
        work();
    } else {
        std::vector<std::jthread> pool;
        pool.reserve(threads);
        for (unsigned t = 0; t < threads; ++t) {
            pool.emplace_back(work);
        }
    }
    if (stop.stop_requested()) {
        return Error{cancelled_message};
    }
    if (error_index < n) {
        return error;
    }
    return ok_status();
}

std::string files_text(std::size_t count) {
    return std::to_string(count) + (count == 1 ? " file" : " files");
}

std::string name_list(const std::vector<const InstanceHeader*>& members, std::size_t limit) {
    std::string out;
    for (std::size_t i = 0; i < members.size() && i < limit; ++i) {
        out += (i == 0 ? "" : ", ") + members[i]->file.filename().string();
    }
    if (members.size() > limit) {
        out += " and " + std::to_string(members.size() - limit) + " more";
    }
    return out;
}

/// Groups instances by a key; error text "<what>: [k1] in 254 files (a, b, c and 251 more);
/// [k2] in 1 file (d)" when there is more than one group, largest first.
template <class Key>
std::optional<std::string> key_conflict(const std::vector<InstanceHeader>& instances,
                                        const char* what, Key key) {
    std::vector<std::pair<std::string, std::vector<const InstanceHeader*>>> groups;
    for (const InstanceHeader& h : instances) {
        const std::string k = key(h);
        auto it =
            std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == k; });
        if (it == groups.end()) {
            groups.push_back({k, {&h}});
        } else {
            it->second.push_back(&h);
        }
    }
    if (groups.size() < 2) {
        return std::nullopt;
    }
    std::stable_sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) {
        return a.second.size() > b.second.size();
    });
    std::string out = what;
    out += ": ";
    for (std::size_t g = 0; g < groups.size(); ++g) {
        out += (g == 0 ? "" : "; ") + std::string("[") + groups[g].first + "] in " +
               files_text(groups[g].second.size()) + " (" +
               name_list(groups[g].second, g == 0 ? 3 : 5) + ")";
    }
    return out;
}

struct Target {
    std::size_t frame_index = 0; ///< index into InstanceHeader::frames
    std::size_t slice = 0;       ///< k
};

constexpr std::int32_t int16_lo = std::numeric_limits<std::int16_t>::min();
constexpr std::int32_t int16_hi = std::numeric_limits<std::int16_t>::max();

/// Integer rescale (slope 1, integral intercept): the common CT case, written so that the
/// compiler vectorises it at -O2 (fixed-size blocks, no aliasing). Returns whether any value
/// fell outside int16.
template <class Raw>
bool rescale_integer(const Raw* __restrict src, std::int16_t* __restrict dst, std::size_t count,
                     unsigned shift, std::uint32_t mask, std::int32_t sign, std::int32_t offset) {
    std::int32_t low = int16_hi;
    std::int32_t high = int16_lo;
    const auto one = [&](std::size_t p) {
        const auto raw =
            static_cast<std::int32_t>((static_cast<std::uint32_t>(src[p]) >> shift) & mask);
        const std::int32_t value = (raw ^ sign) - sign + offset;
        low = std::min(low, value);
        high = std::max(high, value);
        dst[p] = static_cast<std::int16_t>(std::clamp(value, int16_lo, int16_hi));
    };
    constexpr std::size_t block = 64;
    std::size_t p = 0;
    for (; p + block <= count; p += block) {
        for (std::size_t q = p; q < p + block; ++q) {
            one(q);
        }
    }
    for (; p < count; ++p) {
        one(p);
    }
    return low < int16_lo || high > int16_hi;
}

/// Stored value -> HU for one frame; returns the number of voxels clamped to int16. Raw is
/// Uint8 or Uint16 (host byte order): the value is bits [HighBit-BitsStored+1, HighBit],
/// sign-extended when PixelRepresentation is 1.
template <class Raw>
std::size_t convert_frame(const Raw* src, std::int16_t* dst, std::size_t count,
                          const InstanceHeader& h, double slope, double intercept) {
    const auto shift = static_cast<unsigned>(h.high_bit + 1 - h.bits_stored);
    const std::uint32_t mask = (1U << h.bits_stored) - 1U;
    // Sign extension of a bits_stored-wide two's complement value: (v ^ s) - s.
    const std::int32_t sign = h.pixel_representation == 1 ? (1 << (h.bits_stored - 1)) : 0;
    const auto stored = [&](std::size_t p) {
        const auto raw =
            static_cast<std::int32_t>((static_cast<std::uint32_t>(src[p]) >> shift) & mask);
        return (raw ^ sign) - sign;
    };
    std::size_t clamped = 0;
    if (slope == 1.0 && intercept == std::trunc(intercept) && std::abs(intercept) < 1e9) {
        const auto offset = static_cast<std::int32_t>(intercept);
        if (rescale_integer(src, dst, count, shift, mask, sign, offset)) {
            for (std::size_t p = 0; p < count; ++p) {
                const std::int32_t value = stored(p) + offset;
                clamped += static_cast<std::size_t>(value < int16_lo || value > int16_hi);
            }
        }
        return clamped;
    }
    for (std::size_t p = 0; p < count; ++p) {
        const double value = std::nearbyint(static_cast<double>(stored(p)) * slope + intercept);
        clamped += static_cast<std::size_t>(value < int16_lo || value > int16_hi);
        dst[p] = static_cast<std::int16_t>(
            std::clamp(value, static_cast<double>(int16_lo), static_cast<double>(int16_hi)));
    }
    return clamped;
}

std::string condition_text(const OFCondition& cond) {
    return cond.text();
}

/// Counters shared by the workers that decode the pixel data.
struct DecodeStats {
    std::atomic<std::size_t> clamped{0};
    /// Images whose JPEG 2000 codestream had the other signedness than PixelRepresentation.
    std::atomic<std::size_t> j2k_sign_from_header{0};
};

/// One decoded frame (stored values in `buffer`, Uint8 or Uint16 per BitsAllocated) into its
/// slice of the volume.
void store_frame(const Uint16* buffer, const InstanceHeader& h, const FrameHeader& frame,
                 std::int16_t* dst, DecodeStats& stats) {
    const std::size_t pixels = std::size_t{h.rows} * h.columns;
    if (h.bits_allocated == 8) {
        stats.clamped += convert_frame(reinterpret_cast<const Uint8*>(buffer), dst, pixels, h,
                                       frame.slope, frame.intercept);
    } else {
        stats.clamped += convert_frame(buffer, dst, pixels, h, frame.slope, frame.intercept);
    }
}

/// The JPEG 2000 frames of one instance, decoded with OpenJPEG (DCMTK 3.6.7 has no JPEG 2000
/// codec): the fragments are read first (DCMTK loads them from the file, one thread), then the
/// target frames are decoded on up to `threads` threads, OpenJPEG's own threads taking what the
/// frames leave (a single image gets them all).
Status decode_j2k_instance(const InstanceHeader& h, DcmDataset& ds, DcmPixelData& pixel_data,
                           const std::vector<Target>& targets, CtVolume& volume, DecodeStats& stats,
                           const std::stop_token& stop, unsigned threads) {
    const std::string name = h.file.string();
    DcmPixelSequence* sequence = nullptr;
    const OFCondition cond =
        pixel_data.getEncapsulatedRepresentation(ds.getOriginalXfer(), nullptr, sequence);
    if (cond.bad() || sequence == nullptr) {
        return Error{name + ": no encapsulated JPEG 2000 pixel data" +
                     (cond.bad() ? ": " + condition_text(cond) : std::string())};
    }
    auto fragments = detail::read_fragments(*sequence);
    if (!fragments) {
        return Error{name + ": " + fragments.error().message};
    }
    auto ranges = detail::group_fragments(fragments->fragments, fragments->offset_table,
                                          h.number_of_frames, detail::looks_like_j2k);
    if (!ranges) {
        return Error{name + ": " + ranges.error().message};
    }
    const detail::J2kFrameFormat format{.rows = h.rows,
                                        .columns = h.columns,
                                        .bits_allocated = h.bits_allocated,
                                        .bits_stored = h.bits_stored,
                                        .high_bit = h.high_bit,
                                        .is_signed = h.pixel_representation == 1};
    const auto frame_threads =
        static_cast<unsigned>(std::clamp<std::size_t>(targets.size(), 1, std::max(threads, 1U)));
    const unsigned codec_threads = std::max(1U, threads / frame_threads);
    const std::size_t pixels = std::size_t{h.rows} * h.columns;
    return parallel_for(targets.size(), frame_threads, stop, [&](std::size_t t) -> Status {
        const Target& target = targets[t];
        const FrameHeader& frame = h.frames[target.frame_index];
        std::vector<std::uint8_t> joined;
        const detail::Bytes bytes =
            detail::frame_bytes(fragments->fragments, (*ranges)[frame.frame], joined);
        std::vector<Uint16> buffer(pixels);
        auto info = detail::decode_j2k_frame(bytes, format, buffer.data(), codec_threads);
        if (!info) {
            return Error{frame.geometry.label + " (" + name +
                         "): cannot decode the JPEG 2000 pixel data: " + info.error().message};
        }
        stats.j2k_sign_from_header += static_cast<std::size_t>(info->sign_from_header);
        store_frame(buffer.data(), h, frame, volume.voxels.data() + target.slice * pixels, stats);
        return ok_status();
    });
}

/// Decodes the frames of one instance into their slices of `volume`; `threads` is what this
/// instance may use (JPEG 2000 frames are decoded in parallel).
Status decode_instance(const InstanceHeader& h, const std::vector<Target>& targets,
                       CtVolume& volume, DecodeStats& stats, const std::stop_token& stop,
                       unsigned threads) {
    const std::string name = h.file.string();
    DcmFileFormat ff;
    OFCondition cond =
        ff.loadFile(h.file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect);
    if (cond.bad()) {
        return Error{name + ": cannot be read as DICOM: " + condition_text(cond)};
    }
    DcmDataset* ds = ff.getDataset();
    Uint16 rows = 0;
    Uint16 columns = 0;
    Uint16 bits = 0;
    if (ds->findAndGetUint16(DCM_Rows, rows).bad() ||
        ds->findAndGetUint16(DCM_Columns, columns).bad() ||
        ds->findAndGetUint16(DCM_BitsAllocated, bits).bad() || rows != h.rows ||
        columns != h.columns || bits != h.bits_allocated) {
        return Error{name + ": Rows, Columns or BitsAllocated changed while the series was "
                            "being loaded"};
    }
    DcmElement* element = nullptr;
    cond = ds->findAndGetElement(DCM_PixelData, element);
    auto* pixel_data = dynamic_cast<DcmPixelData*>(element);
    if (cond.bad() || pixel_data == nullptr) {
        return Error{name + ": no PixelData (7FE0,0010)" +
                     (cond.bad() ? ": " + condition_text(cond) : std::string())};
    }
    if (h.jpeg2000) {
        return decode_j2k_instance(h, *ds, *pixel_data, targets, volume, stats, stop, threads);
    }
    Uint32 frame_size = 0;
    cond = pixel_data->getUncompressedFrameSize(ds, frame_size);
    const std::size_t pixels = std::size_t{h.rows} * h.columns;
    const std::size_t bytes_per_pixel = h.bits_allocated / 8U;
    if (cond.bad() || frame_size != pixels * bytes_per_pixel) {
        return Error{name + ": unexpected pixel data frame size" +
                     (cond.bad() ? ": " + condition_text(cond) : std::string())};
    }
    // One spare byte: a decoder may swap an odd-sized frame in place.
    std::vector<Uint16> buffer(pixels + 1);
    const auto buffer_bytes = static_cast<Uint32>(buffer.size() * sizeof(Uint16));
    DcmFileCache cache;
    Uint32 start_fragment = 0;
    OFString colour_model;
    for (const Target& target : targets) {
        if (stop.stop_requested()) {
            return Error{cancelled_message};
        }
        const FrameHeader& frame = h.frames[target.frame_index];
        cond = pixel_data->getUncompressedFrame(ds, frame.frame, start_fragment, buffer.data(),
                                                buffer_bytes, colour_model, &cache);
        if (cond.bad()) {
            return Error{frame.geometry.label + " (" + name +
                         "): cannot read the pixel data: " + condition_text(cond)};
        }
        store_frame(buffer.data(), h, frame, volume.voxels.data() + target.slice * pixels, stats);
    }
    return ok_status();
}

/// One line per transfer syntax: what it is, how many images, how it is decoded; and a line
/// when images say they were lossy compressed before (LossyImageCompression 01).
std::vector<std::string> describe_decoding(const std::vector<InstanceHeader>& instances) {
    struct Group {
        const InstanceHeader* first = nullptr;
        std::size_t files = 0;
        std::size_t images = 0;
    };
    std::vector<std::pair<std::string, Group>> groups;
    std::size_t lossy_before = 0;
    for (const InstanceHeader& h : instances) {
        auto it = std::find_if(groups.begin(), groups.end(),
                               [&](const auto& g) { return g.first == h.transfer_syntax_uid; });
        if (it == groups.end()) {
            groups.push_back({h.transfer_syntax_uid, Group{&h}});
            it = std::prev(groups.end());
        }
        ++it->second.files;
        it->second.images += h.frames.size();
        lossy_before += static_cast<std::size_t>(h.lossy_image_compression);
    }
    std::vector<std::string> lines;
    for (const auto& [uid, g] : groups) {
        const std::string name = uid_name(uid);
        std::string line = (name.empty() ? "transfer syntax" : name) + " " + uid + ", " +
                           std::to_string(g.images) + (g.images == 1 ? " image" : " images");
        if (g.files != g.images) {
            line += " in " + files_text(g.files);
        }
        line += ": " + detail::pixel_decoding_text(*g.first);
        if (g.first->lossy_syntax) {
            line += " (lossy compression)";
        }
        lines.push_back(std::move(line));
    }
    if (lossy_before > 0) {
        lines.push_back("LossyImageCompression 01 in " + files_text(lossy_before) +
                        ": the pixel values were lossy compressed at some point");
    }
    return lines;
}

Status check_options(const LoadOptions& options) {
    if (!std::isfinite(options.spacing_tolerance) || options.spacing_tolerance < 0.0 ||
        options.spacing_tolerance >= 1.0) {
        return Error{"spacing tolerance must be a fraction in [0, 1)"};
    }
    if (!std::isfinite(options.tilt_tolerance_deg) || options.tilt_tolerance_deg < 0.0 ||
        options.tilt_tolerance_deg >= 90.0) {
        return Error{"tilt tolerance must be in [0, 90) degrees"};
    }
    return ok_status();
}

/// Every check that needs only the headers, in the order that gives the most useful message.
Status check_instances(const std::vector<InstanceHeader>& instances) {
    std::unordered_map<std::string, const InstanceHeader*> seen;
    for (const InstanceHeader& h : instances) {
        if (h.sop_instance_uid.empty()) {
            continue;
        }
        const auto [it, inserted] = seen.emplace(h.sop_instance_uid, &h);
        if (!inserted) {
            return Error{"the same instance (SOP Instance UID " + h.sop_instance_uid +
                         ") is in two files: " + it->second->file.string() + " and " +
                         h.file.string()};
        }
    }
    if (auto conflict = key_conflict(instances,
                                     "the input holds more than one series (SeriesInstanceUID); "
                                     "a volume is built from one series only",
                                     [](const InstanceHeader& h) {
                                         return h.series_uid.empty()
                                                    ? std::string("no SeriesInstanceUID")
                                                    : h.series_uid;
                                     })) {
        return Error{*conflict};
    }
    std::vector<std::pair<std::string, std::vector<const InstanceHeader*>>> groups;
    for (const InstanceHeader& h : instances) {
        if (!h.unsupported.empty()) {
            auto it = std::find_if(groups.begin(), groups.end(),
                                   [&](const auto& g) { return g.first == h.unsupported; });
            if (it == groups.end()) {
                groups.push_back({h.unsupported, {&h}});
            } else {
                it->second.push_back(&h);
            }
        }
    }
    if (!groups.empty()) {
        std::string message = "cannot load the pixel data: ";
        for (std::size_t g = 0; g < groups.size(); ++g) {
            message += (g == 0 ? "" : "; ") + groups[g].first + " (" +
                       (groups[g].second.size() == instances.size() && instances.size() > 1
                            ? "all " + files_text(instances.size()) + ", e.g. " +
                                  groups[g].second.front()->file.filename().string()
                            : name_list(groups[g].second, 5)) +
                       ")";
        }
        return Error{message};
    }
    if (auto conflict = key_conflict(
            instances, "images of different sizes (Rows x Columns)", [](const InstanceHeader& h) {
                return std::to_string(h.rows) + " x " + std::to_string(h.columns);
            })) {
        return Error{*conflict};
    }
    if (auto conflict =
            key_conflict(instances, "different frames of reference (FrameOfReferenceUID)",
                         [](const InstanceHeader& h) {
                             return h.frame_of_reference_uid.empty()
                                        ? std::string("no FrameOfReferenceUID")
                                        : h.frame_of_reference_uid;
                         })) {
        return Error{*conflict};
    }
    return ok_status();
}

Result<LoadedSeries> load(const std::vector<fs::path>& files, const LoadOptions& options,
                          bool from_directory, const std::string& source) {
    if (auto status = check_options(options); !status) {
        return status.error();
    }
    if (auto status = init_dicom_environment(); !status) {
        return status.error();
    }
    if (files.empty()) {
        return Error{"no files to load"};
    }
    if (options.stop.stop_requested()) {
        return Error{cancelled_message};
    }
    const auto started = std::chrono::steady_clock::now();
    const unsigned threads = worker_count(options, files.size());

    // Pass 1: headers.
    std::vector<detail::HeaderRead> reads(files.size());
    if (auto status = parallel_for(files.size(), threads, options.stop,
                                   [&](std::size_t i) -> Status {
                                       auto read = detail::read_instance_header(files[i]);
                                       if (!read) {
                                           return read.error();
                                       }
                                       reads[i] = std::move(read).value();
                                       return ok_status();
                                   });
        !status) {
        return status.error();
    }
    std::vector<InstanceHeader> instances;
    instances.reserve(reads.size());
    std::size_t skipped = 0;
    for (detail::HeaderRead& read : reads) {
        if (read.kind == FileKind::Image) {
            instances.push_back(std::move(read.header));
            continue;
        }
        const std::string what =
            read.kind == FileKind::NotDicom ? "not a DICOM file" : "not a DICOM image";
        if (!from_directory) {
            return Error{read.header.file.string() + ": " + what + ": " + read.reason};
        }
        spdlog::debug("series loader: skipping {}: {}: {}", read.header.file.string(), what,
                      read.reason);
        ++skipped;
    }
    reads = {};
    if (instances.empty()) {
        return Error{"no DICOM images in " + source +
                     (skipped > 0 ? " (" + files_text(skipped) + " skipped: not DICOM images)"
                                  : std::string())};
    }
    if (auto status = check_instances(instances); !status) {
        return status.error();
    }
    const InstanceHeader& first = instances.front();
    const std::string series_text = "series " + first.series_uid;

    // Geometry.
    std::vector<detail::SliceGeometry> slices;
    std::vector<std::pair<std::size_t, std::size_t>> origin_of; // (instance, frame index)
    for (std::size_t i = 0; i < instances.size(); ++i) {
        for (std::size_t f = 0; f < instances[i].frames.size(); ++f) {
            slices.push_back(instances[i].frames[f].geometry);
            origin_of.emplace_back(i, f);
        }
    }
    const detail::StackRules rules{.spacing_tolerance = options.spacing_tolerance,
                                   .tilt_tolerance_deg = options.tilt_tolerance_deg,
                                   .gantry_tilt_attribute = first.gantry_tilt};
    auto stack = detail::build_stack(slices, first.rows, first.columns, rules);
    slices = {};
    if (!stack) {
        std::string message = series_text + " (" + std::to_string(origin_of.size()) +
                              " images): " + stack.error().message;
        for (const InstanceHeader& h : instances) {
            if (h.stack_ids.size() > 1) {
                message += "; note: " + h.file.filename().string() + " holds " +
                           std::to_string(h.stack_ids.size()) +
                           " stacks (StackID): they load only when together they form one "
                           "regular volume";
                break;
            }
        }
        return Error{message};
    }

    LoadedSeries out;
    out.study_uid = first.study_uid;
    out.series_uid = first.series_uid;
    out.frame_of_reference_uid = first.frame_of_reference_uid;
    out.modality = first.modality;
    out.sop_class_uid = first.sop_class_uid;
    out.volume.geometry = stack->geometry;
    const auto count = voxel_count(out.volume.geometry);
    if (!count) {
        return Error{series_text + ": the volume is too large"};
    }
    if (options.max_voxels > 0 && *count > options.max_voxels) {
        const auto& d = out.volume.geometry.dims;
        return Error{series_text + ": volume of " + std::to_string(d[0]) + " x " +
                     std::to_string(d[1]) + " x " + std::to_string(d[2]) + " = " +
                     std::to_string(*count) + " voxels exceeds the limit of " +
                     std::to_string(options.max_voxels) + " (" +
                     std::to_string(options.max_voxels * 2 / (1024 * 1024)) +
                     " MiB of int16); refused before reading pixel data"};
    }
    out.how_taken = describe_decoding(instances);
    const std::size_t n = stack->order.size();
    out.sop_instance_uids.resize(n);
    out.files.resize(n);
    out.frame_numbers.resize(n);
    std::vector<std::vector<Target>> targets(instances.size());
    for (std::size_t k = 0; k < n; ++k) {
        const auto [i, f] = origin_of[stack->order[k]];
        targets[i].push_back({f, k});
        out.sop_instance_uids[k] = instances[i].sop_instance_uid;
        out.files[k] = instances[i].file;
        out.frame_numbers[k] = instances[i].frames[f].frame + 1;
    }
    for (auto& t : targets) {
        // Frames in increasing order: what DCMTK's frame decoders need without offset table.
        std::sort(t.begin(), t.end(),
                  [](const Target& a, const Target& b) { return a.frame_index < b.frame_index; });
    }
    if (options.headers_only) {
        return out;
    }
    try {
        out.volume.voxels.resize(*count);
    } catch (const std::bad_alloc&) {
        return Error{series_text + ": not enough memory for a volume of " + std::to_string(*count) +
                     " voxels"};
    }

    // Pass 2: pixel data.
    DecodeStats stats;
    // Threads per instance: what the instance workers leave (a single multi-frame object
    // decodes its JPEG 2000 frames on all of them).
    const unsigned instance_threads =
        std::max(1U, worker_count(options, std::numeric_limits<std::size_t>::max()) /
                         worker_count(options, instances.size()));
    std::mutex progress_mutex;
    std::size_t done = 0;
    const auto checked = std::chrono::steady_clock::now();
    if (options.stop.stop_requested()) {
        return Error{cancelled_message};
    }
    if (auto status = parallel_for(instances.size(), threads, options.stop,
                                   [&](std::size_t i) -> Status {
                                       auto s =
                                           decode_instance(instances[i], targets[i], out.volume,
                                                           stats, options.stop, instance_threads);
                                       if (s && options.progress) {
                                           const std::lock_guard lock(progress_mutex);
                                           options.progress(++done, instances.size());
                                       }
                                       return s;
                                   });
        !status) {
        if (options.stop.stop_requested()) {
            return Error{cancelled_message};
        }
        return Error{series_text + ": " + status.error().message};
    }

    if (stats.clamped > 0) {
        out.warnings.push_back(std::to_string(stats.clamped.load()) +
                               " voxels were outside the int16 range after rescaling and were "
                               "clamped");
    }
    if (const std::size_t n_sign = stats.j2k_sign_from_header; n_sign > 0) {
        out.warnings.push_back("the JPEG 2000 codestreams of " + std::to_string(n_sign) +
                               " images are " +
                               (first.pixel_representation == 1 ? "unsigned" : "signed") +
                               " while PixelRepresentation says " +
                               (first.pixel_representation == 1 ? "signed" : "unsigned") +
                               ": their values were taken as the DICOM header says");
    }
    if (first.photometric == "MONOCHROME1") {
        out.warnings.push_back("MONOCHROME1 images: stored values were rescaled as they are "
                               "(the inversion applies to display only)");
    }
    if (first.frame_of_reference_uid.empty()) {
        out.warnings.push_back("the images have no FrameOfReferenceUID");
    }
    for (const std::string& warning : out.warnings) {
        spdlog::debug("series loader: {}: {}", series_text, warning);
    }
    const auto finished = std::chrono::steady_clock::now();
    const auto ms = [](auto a, auto b) {
        return std::chrono::duration<double, std::milli>(b - a).count();
    };
    const auto& g = out.volume.geometry;
    spdlog::debug("series loader: {}: {}x{}x{} voxels from {} ({} skipped) in {:.0f} ms "
                  "(headers and checks {:.0f} ms, pixel data {:.0f} ms, {} threads)",
                  series_text, g.dims[0], g.dims[1], g.dims[2], files_text(instances.size()),
                  skipped, ms(started, finished), ms(started, checked), ms(checked, finished),
                  threads);
    return out;
}

} // namespace

Result<LoadedSeries> load_series(const std::vector<std::filesystem::path>& files,
                                 const LoadOptions& options) {
    return load(files, options, false, "the file list");
}

Result<LoadedSeries> load_series_dir(const std::filesystem::path& dir, const LoadOptions& options) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        return Error{dir.string() + ": not a directory" + (ec ? ": " + ec.message() : "")};
    }
    std::vector<fs::path> files;
    fs::directory_iterator it(dir, ec);
    if (ec) {
        return Error{dir.string() + ": cannot list: " + ec.message()};
    }
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec) {
            return Error{dir.string() + ": cannot list: " + ec.message()};
        }
        std::error_code type_ec;
        if (it->is_regular_file(type_ec)) {
            files.push_back(it->path());
        } else {
            spdlog::debug("series loader: skipping {}: not a regular file", it->path().string());
        }
    }
    if (ec) {
        return Error{dir.string() + ": cannot list: " + ec.message()};
    }
    if (files.empty()) {
        return Error{dir.string() + ": no files"};
    }
    std::sort(files.begin(), files.end());
    return load(files, options, true, dir.string());
}

} // namespace segnode::dicom
