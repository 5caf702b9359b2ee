#pragma once
// Closed planar contours of the regions of a 2-D label slice, for the RTSTRUCT writer. Plain
// C++ (no DCMTK), so it is testable and fast on its own.
//
// Convention (docs/seg_rtstruct.md, "RTSTRUCT"):
// - Coordinates are pixel indices of the slice: x along the columns (i), y along the rows (j).
//   Pixel (i, j) is the square [i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]; its centre is (i, j).
// - Contours follow the pixel EDGES (vertices at pixel corners, half-integer coordinates), not
//   the pixel centres. Every boundary edge between a region pixel and a non-region pixel (or
//   the image border) belongs to exactly one contour, so the even-odd rule over all contours of
//   the slice ("a pixel is inside when a ray from its centre crosses an odd number of contour
//   edges") gives back the region exactly: no pixel centre lies on or near (< 0.25 px) an edge.
// - Outer boundaries wind counter-clockwise in (x, y), i.e. have a positive signed (shoelace)
//   area; holes wind clockwise (negative area) and are separate contours; a region inside a
//   hole (an island) is again an outer boundary. In patient space counter-clockwise means
//   counter-clockwise seen from the tip of normal = row direction x column direction.
// - Connectivity: region pixels are 8-connected (pixels touching only at a corner belong to
//   one contour), the background is 4-connected. At such a corner (a "saddle" vertex) the
//   contour does not pass through the shared corner point twice: it is cut by two points
//   `saddle_offset` pixels before and after the corner, leaving a narrow diagonal channel.
//   Every contour is therefore a simple polygon and no two contours touch, while no pixel
//   centre changes sides (the cut triangles are far from every centre).
// - No collinear points: a vertex is emitted only where the direction changes.
// - `max_points` limits the points per contour (RTSTRUCT ContourData must stay under 64 KiB).
//   A slice whose contours exceed it is traced again in two halves of its rows, recursively;
//   the regions are cut along the pixel edge between two rows, so each half's contours are
//   ordinary pixel-edge contours of (region AND band) and the halves together rasterise to the
//   region exactly, with the even-odd rule or by union alike (the cut lies 0.5 px from the
//   nearest pixel centres).
#include "segnode/core/volume.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

namespace segnode::dicom {

/// How far (in pixels) the two points replacing a saddle corner lie from it.
inline constexpr double saddle_offset = 0.25;

struct ContourPoint {
    double x = 0.0; ///< column index (fractional; vertices at half-integers)
    double y = 0.0; ///< row index
};

struct Contour {
    /// Closed polygon: the last point connects back to the first, which is not repeated.
    std::vector<ContourPoint> points;
    /// Clockwise (negative area): the boundary of a hole in the region.
    bool hole = false;
};

struct ContourOptions {
    /// Most points per contour; 0: unlimited. Values below 4 are treated as 4 (a region in a
    /// one-row band is a set of rectangles, so the band splitting always terminates).
    std::size_t max_points = 0;
    /// extract_volume_contours: worker threads; 0: hardware threads, at most 4.
    unsigned threads = 0;
    /// extract_volume_contours: once stop is requested the workers take no further slice and
    /// the result is incomplete (the caller checks the token).
    std::stop_token stop;
};

/// Contours of the pixels of `slice` (width * height values, row-major: x fastest) equal to
/// `value`. Outer boundaries and holes in scan order (by the first vertex, lowest row first).
std::vector<Contour> extract_contours(std::span<const std::uint8_t> slice, std::size_t width,
                                      std::size_t height, std::uint8_t value,
                                      const ContourOptions& options = {});

/// The contours of one label in one slice.
struct LabelContours {
    std::uint8_t label = 0;
    std::vector<Contour> contours;
};

/// Contours of every non-zero label present in the slice, in increasing label order.
std::vector<LabelContours> extract_slice_contours(std::span<const std::uint8_t> slice,
                                                  std::size_t width, std::size_t height,
                                                  const ContourOptions& options = {});

/// Every slice k of `labels` (result[k]), slices processed in parallel.
std::vector<std::vector<LabelContours>> extract_volume_contours(const LabelMap& labels,
                                                                const ContourOptions& options = {});

/// Signed (shoelace) area in pixels: positive for outer boundaries, negative for holes.
double signed_area(std::span<const ContourPoint> points);

// ---- ContourData encoding (Decimal String) ----

/// Decimal String of `value`: fixed point with `decimals` (default 4, i.e. 0.1 um) decimals,
/// trailing zeros trimmed, "-0" written as "0"; falls back to fewer significant digits when
/// that would exceed the 16 characters DS allows. Appended to `out`.
void append_decimal_string(std::string& out, double value, int decimals = 4);

/// Longest Decimal String append_decimal_string can produce for |value| <= max_abs.
std::size_t max_decimal_string_length(double max_abs, int decimals = 4);

/// Most points a ContourData value may hold so that its encoded length (3 values per point,
/// backslash separated, padded to even length) stays <= 65534 bytes, when every coordinate
/// is at most `max_abs` in magnitude.
std::size_t contour_data_point_limit(double max_abs, int decimals = 4);

} // namespace segnode::dicom
