#pragma once
// Helpers shared by the config reader's files (config.cpp: scalar keys; config_tables.cpp:
// the arrays of tables [[peers]] and [[rules]]). Every reader returns an error reason or
// nothing; callers prefix it with file:line:column and the key.
#include "segnode/core/config.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <toml++/toml.h>

namespace segnode::config_detail {

std::string where(const std::string& file, const toml::source_region& src);

std::optional<std::string> read_uint(const toml::node& node, std::int64_t lo, std::int64_t hi,
                                     unsigned& out);
std::optional<std::string> read_bool(const toml::node& node, bool& out);
std::optional<std::string> read_string(const toml::node& node, std::string& out);
std::optional<std::string> ip_problem(const std::string& host);
/// A TOML scalar (boolean, number, string) as the text a `--set key=value` would carry.
std::optional<std::string> setting_text(const toml::node& node, std::string& out);

/// [[peers]]: replaces config.peers. Errors carry their own position.
std::optional<std::string> set_peers(const toml::node& node, Config& config,
                                     const std::string& file);
/// [[rules]]: replaces config.rules. Errors carry their own position.
std::optional<std::string> set_rules(const toml::node& node, Config& config,
                                     const std::string& file);
/// [[algorithms]]: appends to config.algorithms. Errors carry their own position.
std::optional<std::string> set_algorithms(const toml::node& node, Config& config,
                                          const std::string& file);
/// algorithms_dir: stored absolute (relative paths are taken from the config file's folder).
std::optional<std::string> set_algorithms_dir(const toml::node& node, Config& config,
                                              const std::string& file);
/// Appends the [[algorithms]] entry of each *.toml file of config.algorithms_dir.
std::optional<std::string> load_algorithms_dir(Config& config);
/// External algorithm names are unique.
std::optional<std::string> check_algorithm_names(const Config& config);
/// node.extra_ae_titles: an array of AE titles.
std::optional<std::string> set_extra_ae_titles(const toml::node& node, Config& config);
/// Checks across sections once everything is read: rules name known peers, AE titles are
/// unique, rules' called_ae is one of ours.
std::optional<std::string> check_cross_references(const Config& config);

} // namespace segnode::config_detail
