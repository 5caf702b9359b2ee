#pragma once
// Routing: which rule, if any, takes a complete series, and the job it creates.
//
// Semantics (docs/pipeline.md): rules are tried in the order of the config file; the FIRST
// rule whose every given match key matches takes the series and creates one job. Match keys
// left out match anything, so a last rule with only an `algorithm` is a catch-all. A series
// no rule matches is the fallback case: it is marked `routed` with nothing to do, and a log
// line says so. A rule's destination is a named peer, or "sender": the [[peers]] entry whose
// AE title is the series' calling AE (preferring one whose host is the sender's address).
#include "segnode/algorithms/registry.hpp"
#include "segnode/core/config.hpp"
#include "segnode/core/result.hpp"
#include "segnode/dicom/store_scu.hpp"
#include "segnode/store/job_repo.hpp"
#include "segnode/store/receive_index.hpp"

#include <optional>
#include <string>
#include <vector>

namespace segnode::pipeline {

/// Checks what core cannot: each rule's algorithm exists and its settings are valid for it.
/// Errors name the file, line and column of the offending value.
Status validate_rules(const Config& config, const algorithms::Registry& registry);

/// Whether `rule` matches `series`; when it does not, `why` says which key failed.
bool rule_matches(const RuleConfig& rule, const store::SeriesRow& series, std::string* why);

/// The first matching rule, or nullptr.
const RuleConfig* first_match(const Config& config, const store::SeriesRow& series);

/// Resolves a destination ("sender" or a peer name) for a series.
Result<dicom::PeerAddress> resolve_destination(const Config& config, const std::string& destination,
                                               const store::SeriesRow& series);

/// A job spec for `series` running `algorithm` with `settings` (validated), sending
/// `outputs` to `destination`. The destination is resolved now; when it cannot be,
/// `unresolved` gets the reason (the job is then created failed, so the problem is visible).
Result<store::NewJob> make_job(const Config& config, const algorithms::Registry& registry,
                               const store::SeriesRow& series, const std::string& rule_name,
                               const std::string& algorithm,
                               const std::vector<std::pair<std::string, std::string>>& settings,
                               const std::vector<OutputKind>& outputs,
                               const std::string& destination, std::string& unresolved);

std::string outputs_text(const std::vector<OutputKind>& outputs);
/// Parses "seg", "rtstruct", "both" or "seg,rtstruct".
Result<std::vector<OutputKind>> parse_outputs(const std::string& text);
std::string settings_text(const std::vector<std::pair<std::string, std::string>>& settings);
std::vector<std::pair<std::string, std::string>> parse_settings_text(const std::string& text);

} // namespace segnode::pipeline
