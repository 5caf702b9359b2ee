#include "slice_geometry.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <numeric>

namespace segnode::dicom::detail {
namespace {

double dot(const Vec3d& a, const Vec3d& b) {
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

Vec3d cross(const Vec3d& a, const Vec3d& b) {
    return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

Vec3d sub(const Vec3d& a, const Vec3d& b) {
    return {a[0] - b[0], a[1] - b[1], a[2] - b[2]};
}

Vec3d scaled(const Vec3d& a, double s) {
    return {a[0] * s, a[1] * s, a[2] * s};
}

double norm(const Vec3d& a) {
    return std::sqrt(dot(a, a));
}

std::string number(double value, int digits) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*g", digits, value);
    return buf;
}

/// Distances and sizes in mm, as people read them.
std::string mm(double value) {
    return number(value, 4) + " mm";
}

std::string images(std::size_t count) {
    return std::to_string(count) + (count == 1 ? " image" : " images");
}

std::string join(const std::vector<std::string>& parts, const char* separator) {
    std::string out;
    for (const std::string& part : parts) {
        if (!out.empty()) {
            out += separator;
        }
        out += part;
    }
    return out;
}

/// "a, b, c and 4 more" (at most `limit` names).
std::string list_labels(const std::vector<std::string>& labels, std::size_t limit = 5) {
    std::vector<std::string> shown(labels.begin(),
                                   labels.begin() +
                                       static_cast<std::ptrdiff_t>(std::min(limit, labels.size())));
    std::string out = join(shown, ", ");
    if (labels.size() > limit) {
        out += " and " + std::to_string(labels.size() - limit) + " more";
    }
    return out;
}

std::vector<std::string> labels_of(const std::vector<SliceGeometry>& slices,
                                   const std::vector<std::size_t>& indices) {
    std::vector<std::string> out;
    out.reserve(indices.size());
    for (const std::size_t i : indices) {
        out.push_back(slices[i].label);
    }
    return out;
}

/// Partitions 0..n-1 into groups whose members are `same` as the group's first member;
/// groups are sorted by decreasing size (ties: first appearance).
template <class Same> std::vector<std::vector<std::size_t>> group_by(std::size_t n, Same same) {
    std::vector<std::vector<std::size_t>> groups;
    for (std::size_t i = 0; i < n; ++i) {
        auto it = std::find_if(groups.begin(), groups.end(),
                               [&](const std::vector<std::size_t>& g) { return same(g[0], i); });
        if (it == groups.end()) {
            groups.push_back({i});
        } else {
            it->push_back(i);
        }
    }
    std::stable_sort(groups.begin(), groups.end(),
                     [](const auto& a, const auto& b) { return a.size() > b.size(); });
    return groups;
}

/// "[v1] in 250 images (a, b, c and 247 more); [v2] in 1 image (d)"
template <class Value>
std::string describe_groups(const std::vector<std::vector<std::size_t>>& groups,
                            const std::vector<SliceGeometry>& slices, Value value) {
    std::vector<std::string> parts;
    for (std::size_t g = 0; g < groups.size(); ++g) {
        parts.push_back("[" + value(groups[g][0]) + "] in " + images(groups[g].size()) + " (" +
                        list_labels(labels_of(slices, groups[g]), g == 0 ? 3 : 5) + ")");
    }
    return join(parts, "; ");
}

template <std::size_t N>
double max_difference(const std::array<double, N>& a, const std::array<double, N>& b) {
    double out = 0.0;
    for (std::size_t i = 0; i < N; ++i) {
        out = std::max(out, std::abs(a[i] - b[i]));
    }
    return out;
}

std::optional<std::string> missing_attributes(const std::vector<SliceGeometry>& slices) {
    std::vector<std::string> no_position;
    std::vector<std::string> no_orientation;
    std::vector<std::string> no_spacing;
    for (const SliceGeometry& s : slices) {
        if (!s.position) {
            no_position.push_back(s.label);
        }
        if (!s.orientation) {
            no_orientation.push_back(s.label);
        }
        if (!s.pixel_spacing) {
            no_spacing.push_back(s.label);
        }
    }
    std::vector<std::string> problems;
    const auto add = [&](const std::vector<std::string>& labels, const char* attribute) {
        if (!labels.empty()) {
            problems.push_back(std::string("no valid ") + attribute + " in " +
                               images(labels.size()) + " (" + list_labels(labels) + ")");
        }
    };
    add(no_orientation, "ImageOrientationPatient (0020,0037)");
    add(no_position, "ImagePositionPatient (0020,0032)");
    add(no_spacing, "PixelSpacing (0028,0030)");
    if (problems.empty()) {
        return std::nullopt;
    }
    return join(problems, "; ") + ": voxels cannot be placed in patient coordinates";
}

struct Sorted {
    Vec3d normal{};
    std::vector<double> along;                  ///< position . normal, per input image
    std::vector<std::size_t> order;             ///< input indices by increasing `along`
    std::vector<std::vector<std::size_t>> runs; ///< input indices sharing a position
};

std::optional<std::string> duplicate_problem(const Sorted& s,
                                             const std::vector<SliceGeometry>& slices) {
    std::vector<const std::vector<std::size_t>*> shared;
    for (const auto& run : s.runs) {
        if (run.size() > 1) {
            shared.push_back(&run);
        }
    }
    if (shared.empty()) {
        return std::nullopt;
    }
    std::string out = "duplicate slice positions: " + std::to_string(shared.size()) +
                      (shared.size() == 1 ? " position holds" : " positions hold") +
                      " more than one image: ";
    std::vector<std::string> parts;
    for (std::size_t g = 0; g < shared.size() && g < 4; ++g) {
        const auto& run = *shared[g];
        parts.push_back(list_labels(labels_of(slices, run)) + " at " +
                        format_values(slices[run[0]].position->data(), 3));
    }
    out += join(parts, "; ");
    if (shared.size() > 4) {
        out += "; and " + std::to_string(shared.size() - 4) + " more";
    }
    const std::size_t multiplicity = s.runs.front().size();
    const bool uniform = std::all_of(s.runs.begin(), s.runs.end(),
                                     [&](const auto& run) { return run.size() == multiplicity; });
    if (uniform && multiplicity > 1) {
        out += " (every position holds " + std::to_string(multiplicity) +
               " images: the input looks like " + std::to_string(multiplicity) +
               " volumes in one series, e.g. time points, echoes or image types)";
    }
    return out;
}

std::optional<std::string> gap_problem(const Sorted& s, const std::vector<SliceGeometry>& slices,
                                       const StackRules& rules) {
    if (s.runs.size() < 3) {
        return std::nullopt;
    }
    std::vector<double> gaps;
    for (std::size_t r = 0; r + 1 < s.runs.size(); ++r) {
        gaps.push_back(s.along[s.runs[r + 1][0]] - s.along[s.runs[r][0]]);
    }
    std::vector<double> sorted = gaps;
    std::sort(sorted.begin(), sorted.end());
    const std::size_t mid = sorted.size() / 2;
    const double median =
        sorted.size() % 2 == 1 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid]);
    std::vector<std::string> parts;
    std::size_t irregular = 0;
    for (std::size_t r = 0; r < gaps.size(); ++r) {
        if (std::abs(gaps[r] - median) <= rules.spacing_tolerance * median) {
            continue;
        }
        ++irregular;
        if (parts.size() >= 4) {
            continue;
        }
        std::string part = slices[s.runs[r][0]].label + " and " + slices[s.runs[r + 1][0]].label +
                           " are " + mm(gaps[r]) + " apart";
        const double ratio = gaps[r] / median;
        const double whole = std::round(ratio);
        if (whole >= 2.0 && std::abs(ratio - whole) <= rules.spacing_tolerance * whole) {
            const auto missing = static_cast<long>(whole) - 1;
            part += " (" + std::to_string(missing) +
                    (missing == 1 ? " slice missing?)" : " slices missing?)");
        }
        parts.push_back(std::move(part));
    }
    if (irregular == 0) {
        return std::nullopt;
    }
    std::string out = "missing slices or non-uniform slice spacing: " + std::to_string(irregular) +
                      " of " + std::to_string(gaps.size()) +
                      " gaps differ from the median spacing " + mm(median) + " by more than " +
                      number(rules.spacing_tolerance * 100.0, 3) + " %: " + join(parts, "; ");
    if (irregular > parts.size()) {
        out += "; and " + std::to_string(irregular - parts.size()) + " more";
    }
    return out;
}

std::optional<std::string> tilt_problem(const Sorted& s, const std::vector<SliceGeometry>& slices,
                                        const StackRules& rules) {
    if (s.runs.size() < 2) {
        return std::nullopt;
    }
    const SliceGeometry& first = slices[s.runs.front()[0]];
    const SliceGeometry& last = slices[s.runs.back()[0]];
    const Vec3d line = sub(*last.position, *first.position);
    const double cosine = std::clamp(dot(line, s.normal) / norm(line), -1.0, 1.0);
    const double angle_deg = std::acos(cosine) * 180.0 / std::numbers::pi;
    if (angle_deg <= rules.tilt_tolerance_deg) {
        return std::nullopt;
    }
    std::string out = "gantry tilt: the slice positions advance at " + number(angle_deg, 4) +
                      " degrees to the image plane normal (from " + first.label + " to " +
                      last.label + "; tolerance " + number(rules.tilt_tolerance_deg, 3) +
                      " degrees";
    if (rules.gantry_tilt_attribute && *rules.gantry_tilt_attribute != 0.0) {
        out += ", GantryDetectorTilt " + number(*rules.gantry_tilt_attribute, 4) + " degrees";
    }
    out += "): the stack is sheared, as from a CT acquired with a tilted gantry, and has no "
           "regular voxel grid; resample it to an orthogonal grid first";
    return out;
}

} // namespace

std::string format_values(const double* values, std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
        if (i > 0) {
            out += '\\';
        }
        out += number(values[i], 6);
    }
    return out;
}

Result<StackGeometry> build_stack(const std::vector<SliceGeometry>& slices, std::size_t rows,
                                  std::size_t columns, const StackRules& rules) {
    const std::size_t n = slices.size();
    if (n == 0) {
        return Error{"no images"};
    }
    if (auto missing = missing_attributes(slices)) {
        return Error{*missing};
    }

    const auto orientations = group_by(n, [&](std::size_t a, std::size_t b) {
        return max_difference(*slices[a].orientation, *slices[b].orientation) <=
               orientation_tolerance;
    });
    if (orientations.size() > 1) {
        return Error{"mixed image orientations (" + std::to_string(orientations.size()) +
                     " different ImageOrientationPatient values): " +
                     describe_groups(orientations, slices,
                                     [&](std::size_t i) {
                                         return format_values(slices[i].orientation->data(), 6);
                                     }) +
                     "; a localizer or a second stack may be mixed into the series"};
    }
    const auto spacings = group_by(n, [&](std::size_t a, std::size_t b) {
        return max_difference(*slices[a].pixel_spacing, *slices[b].pixel_spacing) <=
               pixel_spacing_tolerance;
    });
    if (spacings.size() > 1) {
        return Error{"different pixel spacings (PixelSpacing): " +
                     describe_groups(spacings, slices, [&](std::size_t i) {
                         return format_values(slices[i].pixel_spacing->data(), 2);
                     })};
    }

    const SliceGeometry& reference = slices[0];
    const auto& o = *reference.orientation;
    Vec3d row{o[0], o[1], o[2]};
    Vec3d col{o[3], o[4], o[5]};
    if (std::abs(norm(row) - 1.0) > 1e-2 || std::abs(norm(col) - 1.0) > 1e-2 ||
        std::abs(dot(row, col)) > 1e-2) {
        return Error{"ImageOrientationPatient [" + format_values(o.data(), 6) + "] of " +
                     reference.label + " is not a pair of orthogonal unit vectors"};
    }
    const auto& ps = *reference.pixel_spacing;
    if (!(ps[0] > 0.0) || !(ps[1] > 0.0) || !std::isfinite(ps[0]) || !std::isfinite(ps[1])) {
        return Error{"PixelSpacing [" + format_values(ps.data(), 2) + "] of " + reference.label +
                     " is not a pair of positive numbers"};
    }
    row = scaled(row, 1.0 / norm(row));
    col = scaled(col, 1.0 / norm(col));
    Vec3d normal = cross(row, col);
    normal = scaled(normal, 1.0 / norm(normal));

    Sorted s;
    s.normal = normal;
    s.along.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        s.along[i] = dot(*slices[i].position, normal);
    }
    s.order.resize(n);
    std::iota(s.order.begin(), s.order.end(), std::size_t{0});
    std::stable_sort(s.order.begin(), s.order.end(),
                     [&](std::size_t a, std::size_t b) { return s.along[a] < s.along[b]; });
    for (const std::size_t i : s.order) {
        if (s.runs.empty() ||
            s.along[i] - s.along[s.runs.back()[0]] > duplicate_position_tolerance) {
            s.runs.push_back({i});
        } else {
            s.runs.back().push_back(i);
        }
    }

    // Every problem of the stack at once, the most fundamental first.
    std::vector<std::string> problems;
    if (auto p = tilt_problem(s, slices, rules)) {
        problems.push_back(std::move(*p));
    }
    if (auto p = duplicate_problem(s, slices)) {
        problems.push_back(std::move(*p));
    }
    if (auto p = gap_problem(s, slices, rules)) {
        problems.push_back(std::move(*p));
    }
    if (!problems.empty()) {
        return Error{join(problems, "; ")};
    }

    StackGeometry out;
    out.order = s.order;
    Geometry& g = out.geometry;
    g.dims = {columns, rows, n};
    g.spacing = {ps[1], ps[0], 1.0};
    const Vec3d& first = *slices[s.order.front()].position;
    g.origin = first;
    if (n == 1) {
        g.spacing[2] = reference.slice_thickness > 0.0 ? reference.slice_thickness : 1.0;
        g.direction = make_direction(row, col, normal);
        return out;
    }
    const Vec3d& last = *slices[s.order.back()].position;
    const Vec3d step = scaled(sub(last, first), 1.0 / static_cast<double>(n - 1));
    const double spacing = norm(step);
    // Every slice must sit where the regular grid puts it (catches drift and in-plane jumps
    // that the gap check along the normal cannot see).
    double worst = 0.0;
    std::size_t worst_k = 0;
    for (std::size_t k = 0; k < n; ++k) {
        const Vec3d expected = {first[0] + static_cast<double>(k) * step[0],
                                first[1] + static_cast<double>(k) * step[1],
                                first[2] + static_cast<double>(k) * step[2]};
        const double deviation = norm(sub(*slices[s.order[k]].position, expected));
        if (deviation > worst) {
            worst = deviation;
            worst_k = k;
        }
    }
    if (worst > rules.spacing_tolerance * spacing) {
        return Error{
            "slice positions are not on a regular grid: " + slices[s.order[worst_k]].label +
            " at " + format_values(slices[s.order[worst_k]].position->data(), 3) + " is " +
            mm(worst) + " from where uniform spacing of " + mm(spacing) + " places it (tolerance " +
            mm(rules.spacing_tolerance * spacing) + ")"};
    }
    g.spacing[2] = spacing;
    g.direction = make_direction(row, col, scaled(step, 1.0 / spacing));
    return out;
}

} // namespace segnode::dicom::detail
