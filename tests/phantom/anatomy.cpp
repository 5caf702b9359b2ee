// Phantom geometry (orientation, slice positions) and the analytic anatomy.
#include "phantom.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numbers>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>

namespace segnode::phantom {

namespace {

Vec3 add(const Vec3& a, const Vec3& b) {
    return {a[0] + b[0], a[1] + b[1], a[2] + b[2]};
}
Vec3 scale(const Vec3& a, double s) {
    return {a[0] * s, a[1] * s, a[2] * s};
}
Vec3 cross(const Vec3& a, const Vec3& b) {
    return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

double ds_round(double value) {
    return std::strtod(format_ds(value).c_str(), nullptr);
}
Vec3 ds_round(const Vec3& v) {
    return {ds_round(v[0]), ds_round(v[1]), ds_round(v[2])};
}

// Half extent (mm, between the outermost voxel centres, at least half a voxel) of a series
// along its row, column and slice directions.
struct HalfExtents {
    double along_row;
    double along_col;
    double along_normal;
};

HalfExtents half_extents(const PhantomSpec& spec) {
    auto half = [](int count, double spacing) {
        return std::max(0.5 * (count - 1) * spacing, 0.5 * spacing);
    };
    return {half(spec.cols, spec.pixel_spacing), half(spec.rows, spec.pixel_spacing),
            half(spec.slices, spec.slice_spacing)};
}

// Field of view along the patient axes: a half extent and the sampling step per axis.
struct PatientExtent {
    Vec3 half{};
    Vec3 step{};
};

PatientExtent patient_extent(const PhantomSpec& spec) {
    const HalfExtents h = half_extents(spec);
    const auto c = orientation_cosines(spec.orientation);
    const Vec3 row{c[0], c[1], c[2]};
    const Vec3 col{c[3], c[4], c[5]};
    const Vec3 normal = cross(row, col);
    PatientExtent out;
    if (spec.orientation == Orientation::Oblique) {
        // A cube centred at the origin that fits in the rotated box, in every direction.
        const std::array<std::pair<const Vec3*, double>, 3> dirs{
            {{&row, h.along_row}, {&col, h.along_col}, {&normal, h.along_normal}}};
        double side = std::numeric_limits<double>::max();
        for (const auto& [dir, extent] : dirs) {
            const double l1 = std::abs((*dir)[0]) + std::abs((*dir)[1]) + std::abs((*dir)[2]);
            side = std::min(side, extent / l1);
        }
        const double step = std::max(spec.pixel_spacing, spec.slice_spacing);
        out.half = {side, side, side};
        out.step = {step, step, step};
        return out;
    }
    const std::array<std::pair<const Vec3*, std::pair<double, double>>, 3> dirs{
        {{&row, {h.along_row, spec.pixel_spacing}},
         {&col, {h.along_col, spec.pixel_spacing}},
         {&normal, {h.along_normal, spec.slice_spacing}}}};
    for (const auto& [dir, extent_and_step] : dirs) {
        for (std::size_t axis = 0; axis < 3; ++axis) {
            if (std::abs((*dir)[axis]) > 0.5) {
                out.half[axis] = extent_and_step.first;
                out.step[axis] = extent_and_step.second;
            }
        }
    }
    return out;
}

// Anatomy proportions, in units of the body semi-axes (u = x / a, v = (y - yc) / b).
constexpr double lung_u = 0.42;        // lung centre |u|
constexpr double lung_v = -0.05;       // lung centre v
constexpr double lung_semi_u = 0.28;   // lung semi-axis in u
constexpr double lung_semi_v = 0.50;   // lung semi-axis in v
constexpr double spine_v = 0.55;       // spine centre v
constexpr double rib_inner = 0.84;     // rib ring, normalised radius
constexpr double rib_outer = 0.95;     //
constexpr double sternum_gap_u = 0.15; // no ribs anteriorly within |u| < this

} // namespace

std::string format_ds(double value) {
    if (!std::isfinite(value)) {
        throw std::invalid_argument("format_ds: value is not finite");
    }
    if (value == 0.0) {
        return "0"; // also turns -0 into 0
    }
    char buf[64];
    for (int precision = 16; precision >= 1; --precision) {
        const int n = std::snprintf(buf, sizeof buf, "%.*g", precision, value);
        if (n > 0 && n <= 16) {
            return std::string(buf, static_cast<std::size_t>(n));
        }
    }
    throw std::invalid_argument("format_ds: cannot format value in 16 characters");
}

std::string generate_uid() {
    // 128 random bits with the UUID version (4) and variant bits set, printed as one decimal
    // integer below the 2.25 root (PS3.5 B.2).
    static thread_local std::mt19937_64 engine{[] {
        std::random_device device;
        std::seed_seq seq{device(), device(), device(), device()};
        return std::mt19937_64(seq);
    }()};
    std::uint64_t hi = engine();
    std::uint64_t lo = engine();
    hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
    lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
    std::array<std::uint32_t, 4> limbs{
        static_cast<std::uint32_t>(hi >> 32), static_cast<std::uint32_t>(hi),
        static_cast<std::uint32_t>(lo >> 32), static_cast<std::uint32_t>(lo)};
    std::string digits;
    auto is_zero = [&] {
        return std::all_of(limbs.begin(), limbs.end(), [](auto l) { return l == 0; });
    };
    while (!is_zero()) {
        std::uint64_t rem = 0;
        for (auto& limb : limbs) {
            const std::uint64_t cur = (rem << 32) | limb;
            limb = static_cast<std::uint32_t>(cur / 10);
            rem = cur % 10;
        }
        digits.push_back(static_cast<char>('0' + rem));
    }
    return "2.25." + std::string(digits.rbegin(), digits.rend());
}

std::array<double, 6> orientation_cosines(Orientation orientation) {
    std::array<double, 6> c{};
    switch (orientation) {
    case Orientation::Axial:
        c = {1, 0, 0, 0, 1, 0};
        break;
    case Orientation::Coronal:
        c = {1, 0, 0, 0, 0, -1};
        break;
    case Orientation::Sagittal:
        c = {0, 1, 0, 0, 0, -1};
        break;
    case Orientation::Oblique: {
        // Axial rotated by 20 degrees about (1, 1, 1) / sqrt(3) (Rodrigues), so that every
        // cosine is non-trivial.
        const double angle = 20.0 * std::numbers::pi / 180.0;
        const double cs = std::cos(angle);
        const double sn = std::sin(angle) / std::numbers::sqrt3;
        const double k = (1.0 - cs) / 3.0;
        c = {cs + k, k + sn, k - sn, k - sn, cs + k, k + sn};
        break;
    }
    }
    for (double& v : c) {
        v = ds_round(v);
    }
    return c;
}

Vec3 PhantomGeometry::slice_position(int k) const {
    return ds_round(add(first_position, scale(slice_step, k)));
}

Vec3 PhantomGeometry::voxel_position(int i, int j, int k) const {
    const Vec3 origin = slice_position(k);
    return add(origin, add(scale(row_dir, i * pixel_spacing), scale(col_dir, j * pixel_spacing)));
}

PhantomGeometry compute_geometry(const PhantomSpec& spec) {
    PhantomGeometry g;
    const auto c = orientation_cosines(spec.orientation);
    g.row_dir = {c[0], c[1], c[2]};
    g.col_dir = {c[3], c[4], c[5]};
    g.normal = cross(g.row_dir, g.col_dir);
    g.pixel_spacing = ds_round(spec.pixel_spacing);
    g.slice_spacing = ds_round(spec.slice_spacing);
    const double direction = spec.feet_first ? -1.0 : 1.0;
    g.slice_step = ds_round(scale(g.normal, direction * g.slice_spacing));
    // Centre the voxel grid on the patient origin.
    const Vec3 in_plane = add(scale(g.row_dir, -0.5 * (spec.cols - 1) * g.pixel_spacing),
                              scale(g.col_dir, -0.5 * (spec.rows - 1) * g.pixel_spacing));
    g.first_position = ds_round(add(in_plane, scale(g.slice_step, -0.5 * (spec.slices - 1))));
    return g;
}

Anatomy::Anatomy(const PhantomSpec& spec) : m_ribs(spec.ribs) {
    const PatientExtent fov = patient_extent(spec);
    const double ax = fov.half[0];
    const double ay = fov.half[1];
    const double r = std::min(ax, ay);
    m_body_a = 0.80 * r;
    m_body_b = 0.56 * r;
    // The table and the air gap are at least one sampling step thick along y, so both are
    // present in the voxels whatever the orientation.
    const double table = std::max(0.08 * r, 1.05 * fov.step[1]);
    const double gap = std::max(0.08 * r, 1.05 * fov.step[1]);
    const double limit = 0.95 * ay; // keep everything inside the field of view along y
    double total = 2.0 * m_body_b + gap + table;
    if (total > 2.0 * limit) {
        m_body_b = std::max(0.5 * (2.0 * limit - gap - table), 0.1 * r);
        total = 2.0 * m_body_b + gap + table;
    }
    // Stack anterior to posterior: body, gap, table; centred on y = 0.
    const double anterior = -0.5 * total;
    m_body_yc = anterior + m_body_b;
    m_table_y0 = anterior + 2.0 * m_body_b + gap;
    m_table_y1 = m_table_y0 + table;
    m_table_x = 0.95 * ax;
    m_rib_period = std::max(4.0 * fov.step[2], 0.12 * r);
}

int Anatomy::label(double x_mm, double y_mm, double z_mm) const {
    if (y_mm >= m_table_y0 && y_mm <= m_table_y1 && std::abs(x_mm) <= m_table_x) {
        return Label::Table;
    }
    const double u = x_mm / m_body_a;
    const double v = (y_mm - m_body_yc) / m_body_b;
    const double r2 = u * u + v * v;
    if (r2 > 1.0) {
        return Label::Air;
    }
    // Spine: a circle in mm.
    const double spine_r = std::min(0.14 * m_body_a, 0.2 * m_body_b);
    const double sy = y_mm - (m_body_yc + spine_v * m_body_b);
    if (x_mm * x_mm + sy * sy <= spine_r * spine_r) {
        return Label::Bone;
    }
    if (m_ribs && r2 >= rib_inner * rib_inner && r2 <= rib_outer * rib_outer &&
        !(v < 0.0 && std::abs(u) < sternum_gap_u)) {
        const double dz = z_mm - m_rib_period * std::round(z_mm / m_rib_period);
        if (std::abs(dz) < 0.25 * m_rib_period) {
            return Label::Bone;
        }
    }
    const double lu = (std::abs(u) - lung_u) / lung_semi_u;
    const double lv = (v - lung_v) / lung_semi_v;
    if (lu * lu + lv * lv <= 1.0) {
        return Label::Lung;
    }
    return Label::SoftTissue;
}

Vec3 Anatomy::lung_centre() const {
    return {-lung_u * m_body_a, m_body_yc + lung_v * m_body_b, 0.0};
}

Vec3 Anatomy::spine_centre() const {
    return {0.0, m_body_yc + spine_v * m_body_b, 0.0};
}

int truth_label(const PhantomSpec& spec, double x_mm, double y_mm, double z_mm) {
    return Anatomy(spec).label(x_mm, y_mm, z_mm);
}

double truth_hu(int label) {
    switch (label) {
    case Label::Air:
        return -1000.0;
    case Label::SoftTissue:
        return 40.0;
    case Label::Lung:
        return -850.0;
    case Label::Bone:
        return 700.0;
    case Label::Table:
        return 200.0;
    default:
        throw std::out_of_range("truth_hu: unknown label " + std::to_string(label));
    }
}

double truth_hu(const PhantomSpec& spec, double x_mm, double y_mm, double z_mm) {
    return truth_hu(truth_label(spec, x_mm, y_mm, z_mm));
}

} // namespace segnode::phantom
