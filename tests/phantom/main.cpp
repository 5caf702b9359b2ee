// segnode-phantom: writes a synthetic CT series and prints what it wrote as JSON.
#include "phantom.hpp"

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace {

constexpr int exit_error = 2;

} // namespace

int main(int argc, char** argv) {
    using segnode::phantom::Orientation;
    using segnode::phantom::TransferSyntax;

    segnode::phantom::PhantomSpec spec;
    std::string out_dir;
    CLI::App app{"Write a synthetic CT phantom series (one DICOM file per slice) and print the "
                 "UIDs and file paths as JSON on stdout."};
    app.add_option("--out", out_dir, "Output directory (created if needed)")->required();
    app.add_option("--rows", spec.rows, "Rows per image")->capture_default_str();
    app.add_option("--cols", spec.cols, "Columns per image")->capture_default_str();
    app.add_option("--slices", spec.slices, "Number of slices")->capture_default_str();
    app.add_option("--spacing", spec.pixel_spacing, "Pixel spacing in mm (rows and columns)")
        ->capture_default_str();
    app.add_option("--slice-spacing", spec.slice_spacing, "Slice spacing and thickness in mm")
        ->capture_default_str();
    const std::map<std::string, Orientation> orientations{{"axial", Orientation::Axial},
                                                          {"coronal", Orientation::Coronal},
                                                          {"sagittal", Orientation::Sagittal},
                                                          {"oblique", Orientation::Oblique}};
    app.add_option("--orientation", spec.orientation, "Image plane")
        ->transform(CLI::CheckedTransformer(orientations, CLI::ignore_case))
        ->option_text("axial|coronal|sagittal|oblique (default: axial)");
    app.add_flag("--feet-first", spec.feet_first,
                 "Patient position FFS; slices numbered against the plane normal");
    app.add_flag("--shuffle", spec.shuffle_files,
                 "Name the files in a seeded random order (InstanceNumber stays spatial)");
    app.add_flag("--no-ribs{false}", spec.ribs, "Leave out the rib-like bone segments");
    app.add_option("--seed", spec.seed, "Seed for noise and shuffling")->capture_default_str();
    app.add_option("--noise", spec.noise_hu, "Gaussian noise sigma in HU")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    const std::map<std::string, TransferSyntax> syntaxes{
        {"explicit", TransferSyntax::ExplicitLittle}, {"implicit", TransferSyntax::ImplicitLittle}};
    app.add_option("--transfer-syntax", spec.transfer_syntax, "Little endian transfer syntax")
        ->transform(CLI::CheckedTransformer(syntaxes, CLI::ignore_case))
        ->option_text("explicit|implicit (default: explicit)");
    app.add_option("--patient-id", spec.patient_id, "PatientID")->capture_default_str();
    app.add_option("--patient-name", spec.patient_name, "PatientName")->capture_default_str();
    app.add_option("--study-uid", spec.study_uid, "StudyInstanceUID (default: new UID)");
    app.add_option("--series-uid", spec.series_uid, "SeriesInstanceUID (default: new UID)");
    app.add_option("--frame-of-reference-uid", spec.frame_of_reference_uid,
                   "FrameOfReferenceUID (default: new UID)");
    app.add_option("--series-number", spec.series_number, "SeriesNumber")->capture_default_str();
    app.add_option("--description", spec.series_description, "SeriesDescription")
        ->capture_default_str();
    app.add_option("--modality", spec.modality, "Modality")->capture_default_str();
    app.add_option("--body-part", spec.body_part, "BodyPartExamined")->capture_default_str();
    app.add_option("--study-date", spec.study_date, "StudyDate YYYYMMDD (default: today)");
    app.add_option("--threads", spec.threads, "Writer threads (0: one per core)")
        ->capture_default_str();

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "segnode-phantom: " << e.what() << "\n"
                  << "Run with --help for usage.\n";
        return exit_error;
    }

    try {
        const auto series = segnode::phantom::write_ct_series(spec, out_dir);
        nlohmann::json out;
        out["study_uid"] = series.study_uid;
        out["series_uid"] = series.series_uid;
        out["frame_of_reference_uid"] = series.frame_of_reference_uid;
        auto files = nlohmann::json::array();
        for (const auto& file : series.files) {
            files.push_back(file.string());
        }
        out["files"] = std::move(files);
        out["sop_instance_uids"] = series.sop_instance_uids;
        std::cout << out.dump() << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "segnode-phantom: " << e.what() << "\n";
        return exit_error;
    }
    return 0;
}
