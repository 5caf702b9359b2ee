#include "segnode/pipeline/routing.hpp"

#include <algorithm>
#include <cctype>
#include <regex>
#include <sstream>

namespace segnode::pipeline {
namespace {

bool iequals(const std::string& a, const std::string& b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
               return std::toupper(x) == std::toupper(y);
           });
}

} // namespace

Status validate_rules(const Config& config, const algorithms::Registry& registry) {
    for (std::size_t i = 0; i < config.rules.size(); ++i) {
        const RuleConfig& rule = config.rules[i];
        const std::string name = "rules[" + std::to_string(i) + "] (" + rule.name + ")";
        const algorithms::Algorithm* algorithm = registry.find(rule.algorithm);
        if (algorithm == nullptr) {
            std::string known;
            for (const std::string& n : registry.names()) {
                known += (known.empty() ? "" : ", ") + n;
            }
            return Error{rule.algorithm_where + ": " + name + ".algorithm: unknown algorithm '" +
                         rule.algorithm + "' (known: " + known + ")"};
        }
        if (auto parsed = algorithm->parse_settings(rule.settings); !parsed) {
            return Error{rule.settings_where + ": " + name +
                         ".settings: " + parsed.error().message};
        }
    }
    return ok_status();
}

bool rule_matches(const RuleConfig& rule, const store::SeriesRow& series, std::string* why) {
    auto fail = [why](std::string reason) {
        if (why != nullptr) {
            *why = std::move(reason);
        }
        return false;
    };
    if (!rule.called_ae.empty() && rule.called_ae != series.called_ae) {
        return fail("called AE " + series.called_ae + " is not " + rule.called_ae);
    }
    if (!rule.calling_ae.empty() && rule.calling_ae != series.calling_ae) {
        return fail("calling AE " + series.calling_ae + " is not " + rule.calling_ae);
    }
    if (!rule.modality.empty() && !iequals(rule.modality, series.attrs.modality)) {
        return fail("modality " + series.attrs.modality + " is not " + rule.modality);
    }
    if (!rule.body_part.empty() && !iequals(rule.body_part, series.attrs.body_part)) {
        return fail("body part '" + series.attrs.body_part + "' is not " + rule.body_part);
    }
    // SeriesDescription is LO (at most 64 characters), but a sender may send any length, and
    // std::regex_search recurses per character: ".*x" against 100 000 characters overflows
    // the stack. Such a value never matches.
    constexpr std::size_t max_description = 1024;
    if (!rule.series_description.empty() && series.attrs.description.size() > max_description) {
        return fail("series description is " + std::to_string(series.attrs.description.size()) +
                    " characters long (over " + std::to_string(max_description) +
                    "; LO allows 64): not matched against /" + rule.series_description + "/");
    }
    if (!rule.series_description.empty()) {
        // Validated when the config was read.
        const std::regex re(rule.series_description, std::regex::ECMAScript | std::regex::icase);
        if (!std::regex_search(series.attrs.description, re)) {
            return fail("series description '" + series.attrs.description + "' does not match /" +
                        rule.series_description + "/");
        }
    }
    if (series.instance_count < static_cast<std::int64_t>(rule.min_instances)) {
        return fail(std::to_string(series.instance_count) + " instances < min_instances " +
                    std::to_string(rule.min_instances));
    }
    return true;
}

const RuleConfig* first_match(const Config& config, const store::SeriesRow& series) {
    for (const RuleConfig& rule : config.rules) {
        if (rule_matches(rule, series, nullptr)) {
            return &rule;
        }
    }
    return nullptr;
}

Result<dicom::PeerAddress> resolve_destination(const Config& config, const std::string& destination,
                                               const store::SeriesRow& series) {
    const PeerConfig* chosen = nullptr;
    if (destination == "sender") {
        for (const PeerConfig& peer : config.peers) {
            if (peer.ae_title != series.calling_ae) {
                continue;
            }
            if (chosen == nullptr ||
                (peer.host == series.peer_address && chosen->host != series.peer_address)) {
                chosen = &peer;
            }
        }
        if (chosen == nullptr) {
            return Error{"destination \"sender\": no [[peers]] entry has AE title '" +
                         series.calling_ae + "' (the series came from " + series.calling_ae +
                         " at " + series.peer_address +
                         "; add it as a peer with its port so results can go back)"};
        }
    } else {
        chosen = config.find_peer(destination);
        if (chosen == nullptr) {
            return Error{"unknown peer '" + destination + "'"};
        }
    }
    return dicom::PeerAddress{chosen->ae_title, chosen->host, chosen->port};
}

Result<store::NewJob> make_job(const Config& config, const algorithms::Registry& registry,
                               const store::SeriesRow& series, const std::string& rule_name,
                               const std::string& algorithm_name,
                               const std::vector<std::pair<std::string, std::string>>& settings,
                               const std::vector<OutputKind>& outputs,
                               const std::string& destination, std::string& unresolved) {
    auto algorithm = registry.get(algorithm_name);
    if (!algorithm) {
        return algorithm.error();
    }
    if (auto parsed = (*algorithm)->parse_settings(settings); !parsed) {
        return parsed.error();
    }
    if (outputs.empty()) {
        return Error{"no outputs requested"};
    }
    store::NewJob job;
    job.series_id = series.id;
    job.series_uid = series.attrs.series_uid;
    job.rule = rule_name;
    job.algorithm = algorithm_name;
    job.algorithm_version = (*algorithm)->info().version;
    job.settings = settings_text(settings);
    job.outputs = outputs_text(outputs);
    job.destination = destination;
    unresolved.clear();
    if (destination == "none") {
        return job; // results stay on the node: nothing to resolve, nothing to send
    }
    if (auto peer = resolve_destination(config, destination, series)) {
        job.dest_ae = peer->ae_title;
        job.dest_host = peer->host;
        job.dest_port = peer->port;
    } else {
        unresolved = peer.error().message;
    }
    return job;
}

std::string outputs_text(const std::vector<OutputKind>& outputs) {
    std::string text;
    for (const OutputKind kind : outputs) {
        text += (text.empty() ? "" : ",") + std::string(to_string(kind));
    }
    return text;
}

Result<std::vector<OutputKind>> parse_outputs(const std::string& text) {
    if (text == "both") {
        return std::vector<OutputKind>{OutputKind::Seg, OutputKind::Rtstruct};
    }
    std::vector<OutputKind> kinds;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        OutputKind kind{};
        if (item == "seg") {
            kind = OutputKind::Seg;
        } else if (item == "rtstruct") {
            kind = OutputKind::Rtstruct;
        } else if (item == "labelmap") {
            kind = OutputKind::Labelmap;
        } else {
            return Error{"'" + item + "' is not an output (seg, rtstruct, labelmap, both)"};
        }
        if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) {
            kinds.push_back(kind);
        }
    }
    if (kinds.empty()) {
        return Error{"no outputs given (seg, rtstruct, labelmap, both)"};
    }
    return kinds;
}

std::string settings_text(const std::vector<std::pair<std::string, std::string>>& settings) {
    std::string text;
    for (const auto& [key, value] : settings) {
        text += key + "=" + value + "\n";
    }
    return text;
}

std::vector<std::pair<std::string, std::string>> parse_settings_text(const std::string& text) {
    // The inverse of settings_text(): one "key=value" line per setting.
    std::vector<std::pair<std::string, std::string>> settings;
    std::stringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (auto assignment = algorithms::parse_assignment(line)) {
            settings.push_back(std::move(assignment).value());
        }
    }
    return settings;
}

} // namespace segnode::pipeline
