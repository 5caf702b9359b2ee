// The parts of image_io.hpp that need no ITK: format names and extensions, geometry
// comparison and description.
#include "segnode/imageio/image_io.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace segnode::imageio {

namespace {

bool ends_with_ci(std::string_view text, std::string_view suffix) {
    if (text.size() < suffix.size()) {
        return false;
    }
    const std::string_view tail = text.substr(text.size() - suffix.size());
    return std::equal(tail.begin(), tail.end(), suffix.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) ==
               std::tolower(static_cast<unsigned char>(b));
    });
}

/// "%.6g": short enough for a log line, precise enough to see a difference in a message.
std::string number(double value) {
    std::array<char, 32> buffer{};
    std::snprintf(buffer.data(), buffer.size(), "%.6g", value);
    return buffer.data();
}

std::string dims_text(const Geometry& g) {
    return std::to_string(g.dims[0]) + "x" + std::to_string(g.dims[1]) + "x" +
           std::to_string(g.dims[2]);
}

std::string spacing_text(const Geometry& g) {
    return number(g.spacing[0]) + "x" + number(g.spacing[1]) + "x" + number(g.spacing[2]);
}

std::string origin_text(const Geometry& g) {
    return "(" + number(g.origin[0]) + ", " + number(g.origin[1]) + ", " + number(g.origin[2]) +
           ")";
}

/// Rows of the matrix separated by ";": the axis unit vectors are its columns.
std::string direction_text(const Geometry& g) {
    std::string out = "(";
    for (std::size_t n = 0; n < 9; ++n) {
        out += number(g.direction[n]);
        out += n == 8 ? ")" : (n % 3 == 2 ? "; " : ", ");
    }
    return out;
}

template <std::size_t N>
bool within(const std::array<double, N>& a, const std::array<double, N>& b, double tolerance) {
    for (std::size_t n = 0; n < N; ++n) {
        // Written so that NaN on either side counts as a difference.
        if (!(std::abs(a[n] - b[n]) <= tolerance)) {
            return false;
        }
    }
    return true;
}

} // namespace

std::string_view to_string(ImageFormat format) {
    switch (format) {
    case ImageFormat::Nifti:
        return "nifti";
    case ImageFormat::NiftiGz:
        return "nifti_gz";
    case ImageFormat::Nrrd:
        return "nrrd";
    }
    return "unknown";
}

std::optional<ImageFormat> parse_image_format(std::string_view name) {
    for (const auto format : {ImageFormat::Nifti, ImageFormat::NiftiGz, ImageFormat::Nrrd}) {
        if (to_string(format) == name) {
            return format;
        }
    }
    return std::nullopt;
}

std::string_view extension(ImageFormat format) {
    switch (format) {
    case ImageFormat::Nifti:
        return ".nii";
    case ImageFormat::NiftiGz:
        return ".nii.gz";
    case ImageFormat::Nrrd:
        return ".nrrd";
    }
    return "";
}

std::optional<ImageFormat> format_of(const std::filesystem::path& path) {
    const std::string name = path.filename().string();
    // The whole extension must follow a non-empty stem: ".nii" alone is no image file name.
    const auto has = [&name](std::string_view suffix) {
        return name.size() > suffix.size() && ends_with_ci(name, suffix);
    };
    if (has(".nii.gz")) {
        return ImageFormat::NiftiGz;
    }
    if (has(".nii")) {
        return ImageFormat::Nifti;
    }
    if (has(".nrrd") || has(".nhdr")) {
        return ImageFormat::Nrrd;
    }
    return std::nullopt;
}

std::optional<std::string> geometry_mismatch(const Geometry& expected, const Geometry& actual,
                                             double tolerance_mm) {
    std::string out;
    const auto add = [&out](const std::string& what, const std::string& a, const std::string& b) {
        out += (out.empty() ? "" : "; ") + what + " " + a + " vs " + b;
    };
    if (expected.dims != actual.dims) {
        add("dims", dims_text(expected), dims_text(actual));
    }
    if (!within(expected.spacing, actual.spacing, tolerance_mm)) {
        add("spacing", spacing_text(expected), spacing_text(actual));
    }
    if (!within(expected.origin, actual.origin, tolerance_mm)) {
        add("origin", origin_text(expected), origin_text(actual));
    }
    if (!within(expected.direction, actual.direction, 1e-3)) {
        add("direction", direction_text(expected), direction_text(actual));
    }
    if (out.empty()) {
        return std::nullopt;
    }
    return out;
}

std::string describe(const Geometry& geometry) {
    return dims_text(geometry) + " voxels, spacing " + spacing_text(geometry) + " mm, origin " +
           origin_text(geometry) + " mm, direction " + direction_text(geometry);
}

} // namespace segnode::imageio
