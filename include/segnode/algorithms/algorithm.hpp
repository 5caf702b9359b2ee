#pragma once
// The algorithm interface: what an algorithm declares (name, version, settings schema, the
// segments it produces with their coded meaning) and how it is run (a CT volume and validated
// settings in, a label map of the same geometry out).
//
// The layer is plain C++ (no DCMTK, no ITK): the built-ins are loops over the voxel buffer.
#include "segnode/algorithms/settings.hpp"
#include "segnode/core/result.hpp"
#include "segnode/core/segment.hpp"
#include "segnode/core/volume.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace segnode::algorithms {

// CodedConcept and SegmentInfo live in core (segment.hpp): the dicom writers use them too.
using segnode::CodedConcept;
using segnode::SegmentInfo;

struct AlgorithmInfo {
    std::string name;    ///< registry key: lower case letters, digits, '_' and '-'
    std::string version; ///< for SEG Algorithm Identification (AlgorithmVersion), job records
    std::string description;
    std::vector<SettingSpec> settings;
    std::vector<SegmentInfo> segments;
    /// Runs of this algorithm at once across the job runner's workers; 0 = no limit beyond
    /// jobs.workers (built-ins). External algorithms default to 1 (one GPU model per card).
    unsigned max_parallel = 0;
    /// The algorithm's own time limit in seconds (external programs: timeout_s); 0 = none.
    /// A job's limit is jobs.timeout_s (loading, writing) plus this.
    unsigned timeout_s = 0;
};

/// std::nullopt when the info is well formed (name syntax, non-empty version, valid and
/// unique setting specs, at least one segment, unique labels 1..255, non-empty names and
/// codes), otherwise the reason.
std::optional<std::string> info_problem(const AlgorithmInfo& info);

/// How a run is carried out; the defaults suit a command-line run.
struct RunContext {
    unsigned threads = 0; ///< worker threads; 0 = std::thread::hardware_concurrency()
    std::stop_token stop; ///< a stop request ends the run with the error "cancelled"
    std::function<void(std::string_view)> log; ///< optional progress/diagnostic lines
};

class Algorithm {
public:
    explicit Algorithm(AlgorithmInfo info);
    virtual ~Algorithm() = default;
    Algorithm(const Algorithm&) = delete;
    Algorithm& operator=(const Algorithm&) = delete;
    Algorithm(Algorithm&&) = delete;
    Algorithm& operator=(Algorithm&&) = delete;

    [[nodiscard]] const AlgorithmInfo& info() const { return m_info; }
    [[nodiscard]] const std::string& name() const { return m_info.name; }

    /// Validates user settings against the schema (and the algorithm's cross-setting rules);
    /// errors are prefixed with the algorithm's name.
    [[nodiscard]] Result<Settings> parse_settings(const RawSettings& raw) const;

    /// Runs on a volume. `settings` may be partial (absent keys take their defaults) but is
    /// checked against the schema again. The volume is checked (geometry, buffer size) first,
    /// the result after: same dimensions, no label the algorithm does not declare; it gets the
    /// volume's geometry. Thread-safe: an Algorithm holds no per-run state.
    [[nodiscard]] Result<LabelMap> run(const CtVolume& volume, const Settings& settings,
                                       const RunContext& context = {}) const;

protected:
    /// Rules across settings (e.g. min <= max); called after per-key validation.
    [[nodiscard]] virtual Status check_settings(const Settings& settings) const;
    /// The algorithm proper; `volume` is consistent and `settings` complete and valid.
    [[nodiscard]] virtual Result<LabelMap> execute(const CtVolume& volume, const Settings& settings,
                                                   const RunContext& context) const = 0;

private:
    AlgorithmInfo m_info;
};

/// Number of threads a context asks for (at least 1).
unsigned thread_count(const RunContext& context);

/// Error "cancelled" when a stop was requested, otherwise OK.
Status check_cancelled(const RunContext& context);

} // namespace segnode::algorithms
