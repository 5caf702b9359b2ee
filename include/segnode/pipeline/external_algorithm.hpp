#pragma once
// External algorithms: any program registered in the config ([[algorithms]]) run on a series
// with the run contract of docs/algorithms.md — a fresh work directory with in/, out/,
// settings.json and task.json; {placeholders} in the command; a clean environment with the
// SEGNODE_* variables (and the Kaapana or mercure ones for those layouts); execve, no shell;
// timeout, memory limit, cancellation and shutdown through process supervision (process.hpp);
// the result read back with ITK's image IO and checked against the source grid and the
// declared labels, or — output_kind = "dicom" — SEG/RTSTRUCT objects the program wrote
// itself, checked to reference the source study, series and frame of reference.
#include "segnode/algorithms/algorithm.hpp"
#include "segnode/core/config.hpp"
#include "segnode/core/result.hpp"
#include "segnode/dicom/series_loader.hpp"
#include "segnode/pipeline/process.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace segnode::pipeline {

/// What a run knows about its input; written to task.json.
struct ExternalTask {
    std::int64_t job_id = 0; ///< 0: an offline `segnode run`
    std::string calling_ae;  ///< who sent the series ("" offline)
    std::string series_description;
};

struct ExternalOutcome {
    /// output_kind labelmap / per_segment: the label map on the source grid, declared labels only.
    std::optional<LabelMap> labels;
    /// output_kind dicom: the SEG/RTSTRUCT files the program wrote (under the work dir),
    /// each checked to reference the source.
    std::vector<std::filesystem::path> dicom_objects;
    /// Plain remarks for the job log: resampling, ignored labels, an empty result.
    std::vector<std::string> notes;
    ProcessResult process;
};

class ExternalAlgorithm final : public algorithms::Algorithm {
public:
    ExternalAlgorithm(algorithms::AlgorithmInfo info, ExternalAlgorithmConfig config);

    [[nodiscard]] const ExternalAlgorithmConfig& config() const { return m_config; }
    [[nodiscard]] bool writes_dicom() const { return m_config.output_kind == "dicom"; }

    /// Runs the program on `source` in `work_dir` (emptied first). The work dir is left in
    /// place: the caller removes it (remove_work_dir) once it has taken what it needs.
    /// Errors: "cancelled" when context.stop was triggered; otherwise what went wrong, with the
    /// exit status or signal and the last lines of stderr for a failed program.
    [[nodiscard]] Result<ExternalOutcome> run_external(const dicom::LoadedSeries& source,
                                                       const ExternalTask& task,
                                                       const algorithms::Settings& settings,
                                                       const std::filesystem::path& work_dir,
                                                       const algorithms::RunContext& context) const;

protected:
    /// The volume-only path (Algorithm::run): a temporary work dir; input_format "dicom" and
    /// output_kind "dicom" need the series' files and are refused here.
    [[nodiscard]] Result<LabelMap> execute(const CtVolume& volume,
                                           const algorithms::Settings& settings,
                                           const algorithms::RunContext& context) const override;

private:
    ExternalAlgorithmConfig m_config;
};

/// Removes a run's work directory (errors are logged, not returned).
void remove_work_dir(const std::filesystem::path& work_dir);

/// The PATH an external program gets (its env's PATH, else segnode's, else a default).
std::string program_path(const ExternalAlgorithmConfig& config);

} // namespace segnode::pipeline
