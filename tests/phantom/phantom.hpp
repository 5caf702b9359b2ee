// Synthetic CT phantom for tests and benchmarks.
//
// The anatomy is defined analytically in DICOM patient coordinates (LPS: +x patient left,
// +y posterior, +z superior) around the patient origin, which is also the centre of the
// generated volume. Labels:
//   0 air (outside the body), 1 soft tissue, 2 lung, 3 bone (spine, optional ribs),
//   4 table (a slab posterior to the body, separated from it by an air gap).
// Structure sizes scale with the field of view (and never get thinner than one voxel step
// where that matters: the table and the air gap), so small series such as 32x32x8 still
// contain every structure in every orientation.
//
// Geometry of a written series (PhantomGeometry): slice k (0-based, InstanceNumber k + 1,
// files[k]) has ImagePositionPatient = first_position + k * slice_step, where
// slice_step = +slice_spacing * normal for head first and -slice_spacing * normal for
// feet first (normal = row_dir x col_dir). Voxel (i column, j row, k slice) is at
//   position(k) + i * pixel_spacing * row_dir + j * pixel_spacing * col_dir
// and its stored value is round(truth HU + noise) + 1024 (RescaleIntercept -1024, slope 1).
// All geometry values are the ones written to the files (formatted as DS and parsed back).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace segnode::phantom {

using Vec3 = std::array<double, 3>;

enum class Orientation { Axial, Coronal, Sagittal, Oblique };
enum class TransferSyntax { ExplicitLittle, ImplicitLittle };

enum Label : int { Air = 0, SoftTissue = 1, Lung = 2, Bone = 3, Table = 4 };
inline constexpr int label_count = 5;

struct PhantomSpec {
    int rows = 64;
    int cols = 64;
    int slices = 20;
    double pixel_spacing = 0.8; // mm, same for rows and columns
    double slice_spacing = 2.5; // mm, also written as SliceThickness
    Orientation orientation = Orientation::Axial;
    // Feet first: PatientPosition FFS and slices numbered against the normal (see above).
    bool feet_first = false;
    std::string patient_id = "PHANTOM001";
    std::string patient_name = "Phantom^Test";
    std::string study_uid;              // empty: a new 2.25.<uuid> UID
    std::string series_uid;             // empty: a new 2.25.<uuid> UID
    std::string frame_of_reference_uid; // empty: a new 2.25.<uuid> UID
    int series_number = 1;
    std::string series_description = "Synthetic CT";
    std::string modality = "CT";
    std::string body_part = "CHEST";
    std::string study_date; // YYYYMMDD; empty: today
    TransferSyntax transfer_syntax = TransferSyntax::ExplicitLittle;
    bool shuffle_files = false; // file names in a seeded random order (!= spatial order)
    bool ribs = true;           // rib-like bone ring segments in bands along z
    std::uint64_t seed = 1;     // noise and shuffle (UIDs are always random)
    double noise_hu = 0.0;      // sigma of additive gaussian noise in HU
    unsigned threads = 0;       // worker threads for writing; 0: hardware concurrency
};

struct PhantomGeometry {
    Vec3 row_dir{};        // first three values of ImageOrientationPatient
    Vec3 col_dir{};        // last three values of ImageOrientationPatient
    Vec3 normal{};         // row_dir x col_dir
    Vec3 first_position{}; // ImagePositionPatient of slice 0
    Vec3 slice_step{};     // position(k + 1) - position(k), = +/- slice_spacing * normal
    double pixel_spacing = 0.0;
    double slice_spacing = 0.0;

    [[nodiscard]] Vec3 slice_position(int k) const;
    // Patient position of voxel (i column, j row, k slice).
    [[nodiscard]] Vec3 voxel_position(int i, int j, int k) const;
};

// The geometry write_ct_series uses for this spec (exactly the values it writes).
[[nodiscard]] PhantomGeometry compute_geometry(const PhantomSpec& spec);

// Image orientation cosines for an orientation (row_dir, col_dir), as written.
[[nodiscard]] std::array<double, 6> orientation_cosines(Orientation orientation);

// Analytic anatomy for a spec; construct once and call label() per point (fast path).
class Anatomy {
public:
    explicit Anatomy(const PhantomSpec& spec);
    [[nodiscard]] int label(double x_mm, double y_mm, double z_mm) const;

    // Layout in mm (patient coordinates), for tests that want known locations.
    [[nodiscard]] double body_semi_x() const { return m_body_a; }
    [[nodiscard]] double body_semi_y() const { return m_body_b; }
    [[nodiscard]] double body_centre_y() const { return m_body_yc; }
    [[nodiscard]] double table_y_min() const { return m_table_y0; }
    [[nodiscard]] double table_y_max() const { return m_table_y1; }
    // A point at the centre of the right lung / of the spine (any z).
    [[nodiscard]] Vec3 lung_centre() const;
    [[nodiscard]] Vec3 spine_centre() const;

private:
    double m_body_a = 0.0; // body semi-axis along x
    double m_body_b = 0.0; // body semi-axis along y
    double m_body_yc = 0.0;
    double m_table_x = 0.0; // table half-width along x
    double m_table_y0 = 0.0;
    double m_table_y1 = 0.0;
    bool m_ribs = true;
    double m_rib_period = 0.0; // along z
};

// Label at a patient position (DICOM LPS, mm).
[[nodiscard]] int truth_label(const PhantomSpec& spec, double x_mm, double y_mm, double z_mm);
// HU of a label: air -1000, soft tissue 40, lung -850, bone 700, table 200.
[[nodiscard]] double truth_hu(int label);
// HU (without noise) at a patient position.
[[nodiscard]] double truth_hu(const PhantomSpec& spec, double x_mm, double y_mm, double z_mm);

struct GeneratedSeries {
    std::string study_uid;
    std::string series_uid;
    std::string frame_of_reference_uid;
    std::vector<std::string> sop_instance_uids; // index k = spatial slice k
    std::vector<std::filesystem::path> files;   // index k = spatial slice k
};

// Writes one CT Image Storage file per slice into out_dir (created if needed), named
// IM0001.dcm ... in slice order, or in a seeded permutation with shuffle_files.
// Throws std::invalid_argument for a bad spec and std::runtime_error for a failed write.
GeneratedSeries write_ct_series(const PhantomSpec& spec, const std::filesystem::path& out_dir);

// Formats a value as a DICOM DS string of at most 16 characters (as precise as fits).
[[nodiscard]] std::string format_ds(double value);

// A new UID of the form 2.25.<decimal of a random version-4 UUID>.
[[nodiscard]] std::string generate_uid();

} // namespace segnode::phantom
