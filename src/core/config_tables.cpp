// The config's arrays: node.extra_ae_titles, [[peers]] and [[rules]]. Every error names the
// file, line and column of the offending value and the key inside its entry
// ("rules[2].series_description").
#include "config_detail.hpp"

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>
#include <sstream>

namespace segnode::config_detail {
namespace {

std::string upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
    return s;
}

std::optional<std::string> name_problem(const std::string& name) {
    if (name.empty() || name.size() > 64) {
        return "must be 1-64 characters";
    }
    for (const char ch : name) {
        if (std::isalnum(static_cast<unsigned char>(ch)) == 0 && ch != '-' && ch != '_' &&
            ch != '.') {
            return "'" + name + "' may contain only letters, digits, '-', '_' and '.'";
        }
    }
    return std::nullopt;
}

std::optional<std::string> host_problem(const std::string& host) {
    if (host.empty() || host.size() > 253) {
        return "must be an IP address or host name of 1-253 characters";
    }
    for (const char ch : host) {
        if (std::isalnum(static_cast<unsigned char>(ch)) == 0 && ch != '-' && ch != '.' &&
            ch != ':') {
            return "'" + host + "' is not an IP address or host name";
        }
    }
    return std::nullopt;
}

/// True when `text` has a run of more than 9 digits.
bool has_long_number(const std::string& text) {
    std::size_t run = 0;
    for (const char c : text) {
        run = std::isdigit(static_cast<unsigned char>(c)) != 0 ? run + 1 : 0;
        if (run > 9) {
            return true;
        }
    }
    return false;
}

/// Iterates an array of tables, calling `entry(table, index)`; shared shape errors.
template <typename Entry>
std::optional<std::string> for_each_table(const toml::node& node, const std::string& file,
                                          const std::string& what, Entry&& entry) {
    const auto* arr = node.as_array();
    if (arr == nullptr) {
        return where(file, node.source()) + ": " + what + ": expected an array of tables ([[" +
               what + "]])";
    }
    std::size_t index = 0;
    for (const auto& elem : *arr) {
        const auto* tbl = elem.as_table();
        if (tbl == nullptr) {
            return where(file, elem.source()) + ": " + what + "[" + std::to_string(index) +
                   "]: expected a table";
        }
        if (auto err = entry(*tbl, index)) {
            return err;
        }
        ++index;
    }
    return std::nullopt;
}

} // namespace

/// A TOML scalar as the text a `--set key=value` would carry.
std::optional<std::string> setting_text(const toml::node& node, std::string& out) {
    if (const auto* b = node.as_boolean()) {
        out = b->get() ? "true" : "false";
    } else if (const auto* i = node.as_integer()) {
        out = std::to_string(i->get());
    } else if (const auto* f = node.as_floating_point()) {
        std::ostringstream text;
        text.precision(17);
        text << f->get();
        out = text.str();
    } else if (const auto* s = node.as_string()) {
        out = s->get();
    } else {
        return "expected a boolean, number or string";
    }
    return std::nullopt;
}

std::optional<std::string> set_extra_ae_titles(const toml::node& node, Config& config) {
    const auto* arr = node.as_array();
    if (arr == nullptr) {
        return "expected an array of AE titles";
    }
    config.node.extra_ae_titles.clear();
    for (const auto& elem : *arr) {
        std::string ae;
        if (auto err = read_string(elem, ae)) {
            return *err;
        }
        if (auto err = ae_title_problem(ae)) {
            return *err;
        }
        config.node.extra_ae_titles.push_back(ae);
    }
    return std::nullopt;
}

std::optional<std::string> set_peers(const toml::node& node, Config& config,
                                     const std::string& file) {
    config.peers.clear();
    return for_each_table(node, file, "peers", [&](const toml::table& tbl, std::size_t index) {
        PeerConfig peer;
        peer.where = where(file, tbl.source());
        const std::string prefix = "peers[" + std::to_string(index) + "]";
        bool has_ae = false;
        bool has_host = false;
        bool has_port = false;
        for (const auto& [k, v] : tbl) {
            const std::string key(k.str());
            const std::string at = where(file, v.source()) + ": " + prefix + "." + key + ": ";
            std::optional<std::string> err;
            if (key == "name") {
                err = read_string(v, peer.name);
                if (!err) {
                    err = name_problem(peer.name);
                }
            } else if (key == "ae_title") {
                err = read_string(v, peer.ae_title);
                if (!err) {
                    err = ae_title_problem(peer.ae_title);
                }
                has_ae = true;
            } else if (key == "host") {
                err = read_string(v, peer.host);
                if (!err) {
                    err = host_problem(peer.host);
                }
                has_host = true;
            } else if (key == "port") {
                unsigned port = 0;
                err = read_uint(v, 1, 65535, port);
                peer.port = static_cast<std::uint16_t>(port);
                has_port = true;
            } else {
                return std::optional<std::string>{where(file, k.source()) + ": " + prefix + "." +
                                                  key +
                                                  ": unknown key (known: name, ae_title, host, "
                                                  "port)"};
            }
            if (err) {
                return std::optional<std::string>{at + *err};
            }
        }
        if (peer.name.empty() || !has_ae || !has_host || !has_port) {
            return std::optional<std::string>{peer.where + ": " + prefix +
                                              ": name, ae_title, host and port are required"};
        }
        if (peer.name == "sender") {
            return std::optional<std::string>{
                peer.where + ": " + prefix +
                ".name: 'sender' is reserved (a rule's destination = \"sender\")"};
        }
        if (config.find_peer(peer.name) != nullptr) {
            return std::optional<std::string>{peer.where + ": " + prefix + ".name: peer '" +
                                              peer.name + "' is defined twice"};
        }
        config.peers.push_back(std::move(peer));
        return std::optional<std::string>{};
    });
}

std::optional<std::string> set_rules(const toml::node& node, Config& config,
                                     const std::string& file) {
    config.rules.clear();
    return for_each_table(node, file, "rules", [&](const toml::table& tbl, std::size_t index) {
        RuleConfig rule;
        rule.where = where(file, tbl.source());
        const std::string prefix = "rules[" + std::to_string(index) + "]";
        for (const auto& [k, v] : tbl) {
            const std::string key(k.str());
            const std::string at = where(file, v.source()) + ": " + prefix + "." + key + ": ";
            std::optional<std::string> err;
            if (key == "name") {
                err = read_string(v, rule.name);
                if (!err) {
                    err = name_problem(rule.name);
                }
            } else if (key == "called_ae" || key == "calling_ae") {
                std::string& field = key == "called_ae" ? rule.called_ae : rule.calling_ae;
                err = read_string(v, field);
                if (!err) {
                    err = ae_title_problem(field);
                }
            } else if (key == "modality" || key == "body_part") {
                std::string& field = key == "modality" ? rule.modality : rule.body_part;
                err = read_string(v, field);
                if (!err && field.empty()) {
                    err = "must not be empty (leave the key out to match any)";
                }
                field = upper(field);
            } else if (key == "series_description") {
                err = read_string(v, rule.series_description);
                // std::regex compiles (and matches) recursively: a long, deeply nested pattern
                // overflows the stack (found by tests/fuzz/fuzz_config: 6000 '(' crashed
                // `segnode config check`).
                constexpr std::size_t max_pattern = 256;
                if (!err && rule.series_description.size() > max_pattern) {
                    err = "the regular expression is " +
                          std::to_string(rule.series_description.size()) +
                          " characters long; at most " + std::to_string(max_pattern) +
                          " are accepted";
                } else if (!err && has_long_number(rule.series_description)) {
                    // libstdc++ reads back-references and {n,m} counts into a long without an
                    // overflow check (undefined behaviour, found by fuzzing with UBSan).
                    err = "'" + rule.series_description +
                          "': numbers in the regular expression have at most 9 digits";
                } else if (!err) {
                    try {
                        const std::regex re(rule.series_description,
                                            std::regex::ECMAScript | std::regex::icase);
                    } catch (const std::regex_error& e) {
                        err = "'" + rule.series_description +
                              "' is not a valid regular expression: " + e.what();
                    }
                }
            } else if (key == "min_instances") {
                err = read_uint(v, 0, 100000, rule.min_instances);
            } else if (key == "algorithm") {
                err = read_string(v, rule.algorithm);
                rule.algorithm_where = where(file, v.source());
            } else if (key == "settings") {
                rule.settings_where = where(file, v.source());
                const auto* settings = v.as_table();
                if (settings == nullptr) {
                    err = "expected a table, e.g. settings = { keep_largest = true }";
                } else {
                    for (const auto& [sk, sv] : *settings) {
                        std::string text;
                        if (auto e = setting_text(sv, text)) {
                            return std::optional<std::string>{where(file, sv.source()) + ": " +
                                                              prefix + ".settings." +
                                                              std::string(sk.str()) + ": " + *e};
                        }
                        rule.settings.emplace_back(std::string(sk.str()), text);
                    }
                }
            } else if (key == "outputs") {
                const auto* arr = v.as_array();
                if (arr == nullptr || arr->empty()) {
                    err =
                        R"(expected a non-empty array: ["seg"], ["rtstruct"] or ["seg", "rtstruct"])";
                } else {
                    rule.outputs.clear();
                    for (const auto& elem : *arr) {
                        std::string kind;
                        if ((err = read_string(elem, kind))) {
                            break;
                        }
                        OutputKind parsed{};
                        if (kind == "seg") {
                            parsed = OutputKind::Seg;
                        } else if (kind == "rtstruct") {
                            parsed = OutputKind::Rtstruct;
                        } else if (kind == "labelmap") {
                            parsed = OutputKind::Labelmap;
                        } else {
                            err = "'" + kind + "' is not an output (seg, rtstruct, labelmap)";
                            break;
                        }
                        if (std::find(rule.outputs.begin(), rule.outputs.end(), parsed) !=
                            rule.outputs.end()) {
                            err = "'" + kind + "' is listed twice";
                            break;
                        }
                        rule.outputs.push_back(parsed);
                    }
                }
            } else if (key == "destination") {
                err = read_string(v, rule.destination);
                if (!err && rule.destination.empty()) {
                    err = "must be a peer name or \"sender\"";
                }
            } else {
                return std::optional<std::string>{
                    where(file, k.source()) + ": " + prefix + "." + key +
                    ": unknown key (known: name, called_ae, calling_ae, modality, "
                    "series_description, body_part, min_instances, algorithm, settings, "
                    "outputs, destination)"};
            }
            if (err) {
                return std::optional<std::string>{at + *err};
            }
        }
        if (rule.algorithm.empty()) {
            return std::optional<std::string>{rule.where + ": " + prefix +
                                              ": 'algorithm' is required"};
        }
        if (rule.name.empty()) {
            rule.name = "rule" + std::to_string(index + 1);
        }
        for (const RuleConfig& other : config.rules) {
            if (other.name == rule.name) {
                return std::optional<std::string>{rule.where + ": " + prefix + ".name: rule '" +
                                                  rule.name + "' is defined twice"};
            }
        }
        config.rules.push_back(std::move(rule));
        return std::optional<std::string>{};
    });
}

std::optional<std::string> check_cross_references(const Config& config) {
    std::set<std::string> titles;
    for (const std::string& ae : config.called_ae_titles()) {
        if (!titles.insert(ae).second) {
            return config.source + ": node.extra_ae_titles: '" + ae +
                   "' is listed twice (or repeats node.ae_title)";
        }
    }
    for (std::size_t i = 0; i < config.rules.size(); ++i) {
        const RuleConfig& rule = config.rules[i];
        const std::string prefix =
            rule.where + ": rules[" + std::to_string(i) + "] (" + rule.name + ")";
        if (rule.destination != "sender" && config.find_peer(rule.destination) == nullptr) {
            std::string known;
            for (const PeerConfig& peer : config.peers) {
                known += (known.empty() ? "" : ", ") + peer.name;
            }
            return prefix + ".destination: unknown peer '" + rule.destination +
                   "' (known: " + (known.empty() ? std::string("no [[peers]] defined") : known) +
                   "; or \"sender\")";
        }
        if (!rule.called_ae.empty() && titles.count(rule.called_ae) == 0) {
            return prefix + ".called_ae: '" + rule.called_ae +
                   "' is not one of this node's AE titles (node.ae_title, "
                   "node.extra_ae_titles), so the rule could never match";
        }
    }
    return std::nullopt;
}

} // namespace segnode::config_detail
