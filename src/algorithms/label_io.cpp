#include "segnode/algorithms/label_io.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <system_error>
#include <type_traits>
#include <variant>

namespace segnode::algorithms {

namespace {

using Mat3 = std::array<double, 9>; // row-major

// ------------------------------------------------------------------ numbers and text

/// Shortest text that reads back as the same double ("0.8", "-123.5", "1e-07").
std::string format_double(double value) {
    if (!std::isfinite(value)) {
        return "nan";
    }
    if (value == 0.0) {
        return "0"; // also for -0.0
    }
    std::array<char, 32> buffer{};
    const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    return {buffer.data(), result.ptr};
}

/// A double for JSON: null when not finite; integral values keep a ".0" so that the type of
/// a double setting stays visible.
std::string json_number(double value) {
    if (!std::isfinite(value)) {
        return "null";
    }
    std::string text = format_double(value);
    if (text.find_first_of(".e") == std::string::npos) {
        text += ".0";
    }
    return text;
}

std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (const char ch : text) {
        const auto u = static_cast<unsigned char>(ch);
        switch (ch) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (u < 0x20) {
                std::array<char, 8> escaped{};
                std::snprintf(escaped.data(), escaped.size(), "\\u%04x", static_cast<unsigned>(u));
                out += escaped.data();
            } else {
                out += ch;
            }
        }
    }
    out += '"';
    return out;
}

// ------------------------------------------------------------------ files

/// Writes `parts` one after the other to a temporary file beside `path`, then renames it
/// into place.
Status write_file_atomically(const std::filesystem::path& path,
                             std::initializer_list<std::pair<const void*, std::size_t>> parts) {
    const std::filesystem::path tmp = path.string() + ".tmp";
    std::FILE* file = std::fopen(tmp.c_str(), "wb");
    if (file == nullptr) {
        return Error{"cannot create " + tmp.string() + ": " + std::strerror(errno)};
    }
    bool ok = true;
    for (const auto& [data, size] : parts) {
        if (size > 0 && std::fwrite(data, 1, size, file) != size) {
            ok = false;
            break;
        }
    }
    const int saved_errno = errno;
    if (std::fclose(file) != 0) {
        ok = false;
    }
    if (!ok) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        return Error{"cannot write " + tmp.string() + ": " + std::strerror(saved_errno)};
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        return Error{"cannot rename " + tmp.string() + " to " + path.string() + ": " +
                     ec.message()};
    }
    return ok_status();
}

Status check_labels(const LabelMap& labels) {
    if (auto problem = geometry_problem(labels.geometry)) {
        return Error{"label map geometry: " + *problem};
    }
    if (!labels.consistent()) {
        return Error{"label map: " + std::to_string(labels.voxels.size()) +
                     " voxels do not match its dimensions"};
    }
    return ok_status();
}

// ------------------------------------------------------------------ 3x3 matrices

double det3(const Mat3& m) {
    return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
           m[2] * (m[3] * m[7] - m[4] * m[6]);
}

/// Inverse transpose, (M^-1)^T = cofactor matrix / det.
Mat3 inverse_transpose(const Mat3& m) {
    const double det = det3(m);
    return {(m[4] * m[8] - m[5] * m[7]) / det, -(m[3] * m[8] - m[5] * m[6]) / det,
            (m[3] * m[7] - m[4] * m[6]) / det, -(m[1] * m[8] - m[2] * m[7]) / det,
            (m[0] * m[8] - m[2] * m[6]) / det, -(m[0] * m[7] - m[1] * m[6]) / det,
            (m[1] * m[5] - m[2] * m[4]) / det, -(m[0] * m[5] - m[2] * m[3]) / det,
            (m[0] * m[4] - m[1] * m[3]) / det};
}

/// The orthogonal factor of the polar decomposition (the nearest orthogonal matrix), by
/// Newton's iteration X <- (X + X^-T) / 2; one step for an orthogonal input.
Mat3 nearest_orthogonal(Mat3 x) {
    for (int iteration = 0; iteration < 100; ++iteration) {
        const Mat3 inv_t = inverse_transpose(x);
        double change = 0.0;
        for (std::size_t n = 0; n < 9; ++n) {
            const double next = 0.5 * (x[n] + inv_t[n]);
            change = std::max(change, std::abs(next - x[n]));
            x[n] = next;
        }
        if (change < 1e-15) {
            break;
        }
    }
    return x;
}

/// The direction in RAS: rows 0 and 1 of the LPS direction negated.
Mat3 ras_direction(const Geometry& geometry) {
    Mat3 m = geometry.direction;
    for (std::size_t n = 0; n < 6; ++n) {
        m[n] = -m[n];
    }
    return m;
}

// ------------------------------------------------------------------ NIfTI-1

constexpr std::size_t nifti_header_size = 348;
constexpr std::size_t nifti_vox_offset = 352;
constexpr std::int16_t nifti_dt_uint8 = 2;
constexpr std::int16_t nifti_intent_label = 1002;
constexpr std::int16_t nifti_xform_scanner_anat = 1;
constexpr std::uint8_t nifti_units_mm = 2;

/// (b, c, d) as stored. Readers recover a = sqrt(1 - b^2 - c^2 - d^2) from the floats; for a
/// rotation by ~180 degrees (a ~ 0, e.g. coronal feet first) float rounding can leave that
/// slightly positive, and sqrt turns 6e-8 into a = 2.4e-4 (a tilt of 0.03 degrees). So when
/// a is ~0 the largest component is rounded up until b^2 + c^2 + d^2 >= 1: nifti1_io (a < 1e-7
/// counts as 0) and nibabel (slightly negative counts as 0) then both read a = 0.
std::array<float, 3> float_quaternion(const NiftiQuaternion& q) {
    std::array<float, 3> f{static_cast<float>(q.b), static_cast<float>(q.c),
                           static_cast<float>(q.d)};
    const double a2 = 1.0 - (q.b * q.b + q.c * q.c + q.d * q.d);
    if (a2 > 1e-8) {
        return f;
    }
    const auto sum = [&f] {
        return double{f[0]} * double{f[0]} + double{f[1]} * double{f[1]} +
               double{f[2]} * double{f[2]};
    };
    std::size_t largest = 0;
    for (std::size_t n = 1; n < 3; ++n) {
        if (std::abs(f[n]) > std::abs(f[largest])) {
            largest = n;
        }
    }
    for (int step = 0; step < 8 && sum() < 1.0; ++step) {
        f[largest] = std::nextafter(f[largest], f[largest] < 0.0F ? -2.0F : 2.0F);
    }
    return f;
}

/// Little-endian field writer over the header buffer.
class HeaderBuffer {
public:
    template <class T> void put(std::size_t offset, T value) {
        static_assert(std::is_arithmetic_v<T>);
        using Bits = std::conditional_t<
            sizeof(T) == 1, std::uint8_t,
            std::conditional_t<sizeof(T) == 2, std::uint16_t,
                               std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;
        auto bits = std::bit_cast<Bits>(value);
        for (std::size_t b = 0; b < sizeof(T); ++b) {
            m_bytes[offset + b] = static_cast<std::uint8_t>(bits & 0xFFU);
            bits = static_cast<Bits>(bits >> 4U >> 4U); // two shifts: no UB for 1-byte types
        }
    }
    void put_text(std::size_t offset, std::size_t capacity, std::string_view text) {
        const std::size_t n = std::min(text.size(), capacity - 1); // keep a terminating NUL
        std::memcpy(m_bytes.data() + offset, text.data(), n);
    }
    [[nodiscard]] const std::uint8_t* data() const { return m_bytes.data(); }

private:
    std::array<std::uint8_t, nifti_vox_offset> m_bytes{};
};

// ------------------------------------------------------------------ NRRD

std::string nrrd_vector(const Vec3d& v) {
    return "(" + format_double(v[0]) + "," + format_double(v[1]) + "," + format_double(v[2]) + ")";
}

/// NRRD header lines must not contain newlines; comments are single lines.
std::string single_line(std::string_view text) {
    std::string out(text);
    std::replace_if(
        out.begin(), out.end(), [](char ch) { return ch == '\n' || ch == '\r'; }, ' ');
    return out;
}

// ------------------------------------------------------------------ JSON helpers

std::string json_concept(const CodedConcept& concept_) {
    return "{\"value\": " + json_string(concept_.value) +
           ", \"scheme\": " + json_string(concept_.scheme) +
           ", \"meaning\": " + json_string(concept_.meaning) + "}";
}

std::string json_setting_value(const SettingValue& value) {
    return std::visit(
        [](const auto& v) -> std::string {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, bool>) {
                return v ? "true" : "false";
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                return std::to_string(v);
            } else if constexpr (std::is_same_v<T, double>) {
                return json_number(v);
            } else {
                return json_string(v);
            }
        },
        value);
}

template <class T, std::size_t N, class F> std::string json_array(const std::array<T, N>& a, F f) {
    std::string out = "[";
    for (std::size_t n = 0; n < N; ++n) {
        out += (n ? ", " : "") + f(a[n]);
    }
    return out + "]";
}

} // namespace

// ------------------------------------------------------------------ formats

std::string_view to_string(LabelFileFormat format) {
    switch (format) {
    case LabelFileFormat::Nifti:
        return "nifti";
    case LabelFileFormat::Nrrd:
        return "nrrd";
    }
    return "unknown";
}

std::optional<LabelFileFormat> parse_label_file_format(std::string_view name) {
    for (const auto format : {LabelFileFormat::Nifti, LabelFileFormat::Nrrd}) {
        if (to_string(format) == name) {
            return format;
        }
    }
    return std::nullopt;
}

std::string_view default_label_file_name(LabelFileFormat format) {
    return format == LabelFileFormat::Nrrd ? "labels.nrrd" : "labels.nii";
}

// ------------------------------------------------------------------ geometry in RAS

std::array<double, 16> ras_affine(const Geometry& geometry) {
    std::array<double, 16> a{};
    for (std::size_t r = 0; r < 3; ++r) {
        const double sign = r < 2 ? -1.0 : 1.0;
        for (std::size_t c = 0; c < 3; ++c) {
            a[4 * r + c] = sign * geometry.direction[3 * r + c] * geometry.spacing[c];
        }
        a[4 * r + 3] = sign * geometry.origin[r];
    }
    a[15] = 1.0;
    return a;
}

NiftiQuaternion nifti_quaternion(const Geometry& geometry) {
    Mat3 m = ras_direction(geometry);
    // Normalise the columns (the geometry's are unit vectors up to 1e-3).
    for (std::size_t c = 0; c < 3; ++c) {
        const double norm = std::sqrt(m[c] * m[c] + m[3 + c] * m[3 + c] + m[6 + c] * m[6 + c]);
        for (std::size_t r = 0; r < 3; ++r) {
            m[3 * r + c] /= norm;
        }
    }
    NiftiQuaternion q;
    if (det3(m) < 0.0) {
        // Left-handed: NIfTI keeps a proper rotation and flips the k axis with qfac.
        q.qfac = -1.0;
        for (std::size_t r = 0; r < 3; ++r) {
            m[3 * r + 2] = -m[3 * r + 2];
        }
    }
    const Mat3 rot = nearest_orthogonal(m);
    const double r11 = rot[0], r12 = rot[1], r13 = rot[2];
    const double r21 = rot[3], r22 = rot[4], r23 = rot[5];
    const double r31 = rot[6], r32 = rot[7], r33 = rot[8];
    // nifti1_io's nifti_mat44_to_quatern: the largest of the four terms is computed first.
    double a = r11 + r22 + r33 + 1.0;
    double b = 0.0;
    double c = 0.0;
    double d = 0.0;
    if (a > 0.5) {
        a = 0.5 * std::sqrt(a);
        b = 0.25 * (r32 - r23) / a;
        c = 0.25 * (r13 - r31) / a;
        d = 0.25 * (r21 - r12) / a;
    } else {
        const double xd = 1.0 + r11 - (r22 + r33);
        const double yd = 1.0 + r22 - (r11 + r33);
        const double zd = 1.0 + r33 - (r11 + r22);
        if (xd > 1.0) {
            b = 0.5 * std::sqrt(xd);
            c = 0.25 * (r12 + r21) / b;
            d = 0.25 * (r13 + r31) / b;
            a = 0.25 * (r32 - r23) / b;
        } else if (yd > 1.0) {
            c = 0.5 * std::sqrt(yd);
            b = 0.25 * (r12 + r21) / c;
            d = 0.25 * (r23 + r32) / c;
            a = 0.25 * (r13 - r31) / c;
        } else {
            d = 0.5 * std::sqrt(zd);
            b = 0.25 * (r13 + r31) / d;
            c = 0.25 * (r23 + r32) / d;
            a = 0.25 * (r21 - r12) / d;
        }
        if (a < 0.0) {
            b = -b;
            c = -c;
            d = -d;
        }
    }
    q.b = b;
    q.c = c;
    q.d = d;
    q.offset = {-geometry.origin[0], -geometry.origin[1], geometry.origin[2]};
    return q;
}

// ------------------------------------------------------------------ writers

Status write_nifti(const LabelMap& labels, const std::filesystem::path& path,
                   std::string_view description) {
    if (auto status = check_labels(labels); !status) {
        return status;
    }
    const Geometry& g = labels.geometry;
    for (const std::size_t d : g.dims) {
        if (d > static_cast<std::size_t>(std::numeric_limits<std::int16_t>::max())) {
            return Error{"NIfTI-1 cannot store a dimension of " + std::to_string(d) +
                         " (at most 32767)"};
        }
    }
    const std::array<double, 16> affine = ras_affine(g);
    const NiftiQuaternion q = nifti_quaternion(g);
    std::uint8_t max_label = 0;
    for (const std::uint8_t v : labels.voxels) {
        max_label = std::max(max_label, v);
    }

    HeaderBuffer h;
    h.put<std::int32_t>(0, static_cast<std::int32_t>(nifti_header_size)); // sizeof_hdr
    h.put<char>(38, 'r');                                                 // regular
    h.put<std::int16_t>(40, 3);                                           // dim[0]
    for (std::size_t a = 0; a < 3; ++a) {
        h.put<std::int16_t>(42 + 2 * a, static_cast<std::int16_t>(g.dims[a]));
    }
    for (std::size_t a = 3; a < 7; ++a) {
        h.put<std::int16_t>(42 + 2 * a, 1);
    }
    h.put<std::int16_t>(68, nifti_intent_label);  // intent_code
    h.put<std::int16_t>(70, nifti_dt_uint8);      // datatype
    h.put<std::int16_t>(72, 8);                   // bitpix
    h.put<float>(76, static_cast<float>(q.qfac)); // pixdim[0]
    for (std::size_t a = 0; a < 3; ++a) {
        h.put<float>(80 + 4 * a, static_cast<float>(g.spacing[a]));
    }
    for (std::size_t a = 3; a < 7; ++a) {
        h.put<float>(80 + 4 * a, 1.0F);
    }
    h.put<float>(108, static_cast<float>(nifti_vox_offset)); // vox_offset
    h.put<float>(112, 1.0F);                                 // scl_slope
    h.put<float>(116, 0.0F);                                 // scl_inter
    h.put<std::uint8_t>(123, nifti_units_mm);                // xyzt_units
    h.put<float>(124, static_cast<float>(max_label));        // cal_max
    h.put<float>(128, 0.0F);                                 // cal_min
    h.put_text(148, 80, single_line(description));           // descrip
    h.put<std::int16_t>(252, nifti_xform_scanner_anat);      // qform_code
    h.put<std::int16_t>(254, nifti_xform_scanner_anat);      // sform_code
    const std::array<float, 3> bcd = float_quaternion(q);
    for (std::size_t n = 0; n < 3; ++n) {
        h.put<float>(256 + 4 * n, bcd[n]); // quatern_b, quatern_c, quatern_d
    }
    for (std::size_t r = 0; r < 3; ++r) {
        h.put<float>(268 + 4 * r, static_cast<float>(q.offset[r]));
    }
    for (std::size_t r = 0; r < 3; ++r) { // srow_x, srow_y, srow_z
        for (std::size_t c = 0; c < 4; ++c) {
            h.put<float>(280 + 16 * r + 4 * c, static_cast<float>(affine[4 * r + c]));
        }
    }
    h.put_text(328, 16, "labels"); // intent_name
    h.put_text(344, 4, "n+1");     // magic (with its NUL)
    // Bytes 348..351: the extension flag, all zero (no extensions).

    return write_file_atomically(
        path, {{h.data(), nifti_vox_offset}, {labels.voxels.data(), labels.voxels.size()}});
}

Status write_nrrd(const LabelMap& labels, const std::filesystem::path& path,
                  std::string_view description) {
    if (auto status = check_labels(labels); !status) {
        return status;
    }
    const Geometry& g = labels.geometry;
    std::string header = "NRRD0004\n";
    header += "# Complete NRRD file format specification at:\n";
    header += "# http://teem.sourceforge.net/nrrd/format.html\n";
    if (!description.empty()) {
        header += "# " + single_line(description) + "\n";
    }
    header += "type: uint8\n";
    header += "dimension: 3\n";
    header += "space: left-posterior-superior\n";
    header += "sizes: " + std::to_string(g.dims[0]) + " " + std::to_string(g.dims[1]) + " " +
              std::to_string(g.dims[2]) + "\n";
    header += "space directions:";
    for (std::size_t a = 0; a < 3; ++a) {
        const Vec3d d = axis_direction(g, a);
        header +=
            " " + nrrd_vector({d[0] * g.spacing[a], d[1] * g.spacing[a], d[2] * g.spacing[a]});
    }
    header += "\n";
    header += "kinds: domain domain domain\n";
    header += "encoding: raw\n";
    header += "space units: \"mm\" \"mm\" \"mm\"\n";
    header += "space origin: " + nrrd_vector(g.origin) + "\n";
    header += "\n"; // the blank line ends the header; the data follows
    return write_file_atomically(
        path, {{header.data(), header.size()}, {labels.voxels.data(), labels.voxels.size()}});
}

Status write_label_map(const LabelMap& labels, const std::filesystem::path& path,
                       LabelFileFormat format, std::string_view description) {
    switch (format) {
    case LabelFileFormat::Nifti:
        return write_nifti(labels, path, description);
    case LabelFileFormat::Nrrd:
        return write_nrrd(labels, path, description);
    }
    return Error{"unknown label file format"};
}

// ------------------------------------------------------------------ statistics, manifest

std::vector<SegmentStats> segment_stats(const LabelMap& labels,
                                        const std::vector<SegmentInfo>& segments) {
    std::array<std::uint64_t, 256> counts{};
    for (const std::uint8_t v : labels.voxels) {
        ++counts[v];
    }
    const double ml = voxel_volume_ml(labels.geometry);
    std::vector<SegmentStats> out;
    out.reserve(segments.size());
    for (const SegmentInfo& segment : segments) {
        SegmentStats stats;
        stats.segment = segment;
        stats.voxels = counts[segment.label];
        stats.volume_ml = static_cast<double>(stats.voxels) * ml;
        out.push_back(std::move(stats));
    }
    return out;
}

std::string segments_json(const SegmentsManifest& m) {
    const auto number = [](double v) { return json_number(v); };
    const auto integer = [](auto v) { return std::to_string(v); };
    std::string out = "{\n";
    out += "  \"algorithm\": {\n";
    out += "    \"name\": " + json_string(m.algorithm_name) + ",\n";
    out += "    \"version\": " + json_string(m.algorithm_version) + ",\n";
    out += "    \"settings\": {";
    bool first = true;
    for (const auto& [key, value] : m.settings.values()) {
        out += std::string(first ? "\n" : ",\n") + "      " + json_string(key) + ": " +
               json_setting_value(value);
        first = false;
    }
    out += first ? "}\n" : "\n    }\n";
    out += "  },\n";
    out += "  \"label_map\": {\n";
    // No label file when the run wrote DICOM objects only: the geometry is still described.
    out += "    \"file\": " + (m.label_file.empty() ? "null" : json_string(m.label_file)) + ",\n";
    out += "    \"format\": " +
           (m.label_file.empty() ? "null" : json_string(to_string(m.format))) + ",\n";
    out += "    \"dims\": " + json_array(m.geometry.dims, integer) + ",\n";
    out += "    \"spacing_mm\": " + json_array(m.geometry.spacing, number) + ",\n";
    out += "    \"origin_lps_mm\": " + json_array(m.geometry.origin, number) + ",\n";
    out += "    \"direction\": " + json_array(m.geometry.direction, number) + "\n";
    out += "  },\n";
    out += "  \"source\": {";
    first = true;
    for (const auto& [key, value] : m.source) {
        out += std::string(first ? "\n" : ",\n") + "    " + json_string(key) + ": " +
               json_string(value);
        first = false;
    }
    out += first ? "},\n" : "\n  },\n";
    out += "  \"segments\": [";
    first = true;
    for (const SegmentStats& s : m.segments) {
        out += first ? "\n" : ",\n";
        first = false;
        out += "    {\n";
        out += "      \"label\": " + std::to_string(s.segment.label) + ",\n";
        out += "      \"name\": " + json_string(s.segment.name) + ",\n";
        out += "      \"category\": " + json_concept(s.segment.category) + ",\n";
        out += "      \"type\": " + json_concept(s.segment.type) + ",\n";
        out += "      \"rgb\": " + json_array(s.segment.rgb, integer) + ",\n";
        out += "      \"voxels\": " + std::to_string(s.voxels) + ",\n";
        out += "      \"volume_ml\": " + json_number(s.volume_ml) + "\n";
        out += "    }";
    }
    out += first ? "]\n" : "\n  ]\n";
    out += "}\n";
    return out;
}

Status write_segments_json(const SegmentsManifest& manifest, const std::filesystem::path& path) {
    const std::string text = segments_json(manifest);
    return write_file_atomically(path, {{text.data(), text.size()}});
}

} // namespace segnode::algorithms
