#include "segnode/core/config.hpp"

#include "config_detail.hpp"
#include "segnode/core/logging.hpp"
#include "segnode/core/uid.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <toml++/toml.h>

namespace segnode {

namespace config_detail {

std::string where(const std::string& file, const toml::source_region& src) {
    std::ostringstream out;
    out << file;
    if (src.begin.line > 0) {
        out << ':' << src.begin.line << ':' << src.begin.column;
    }
    return out.str();
}

// A key's setter validates the node and stores it; it returns an error reason or nothing.
using Setter = std::function<std::optional<std::string>(const toml::node&, Config&)>;

struct KeyDef {
    Setter set;
    const char* help;
};

std::optional<std::string> read_uint(const toml::node& node, std::int64_t lo, std::int64_t hi,
                                     unsigned& out) {
    const auto* v = node.as_integer();
    if (v == nullptr) {
        return "expected an integer";
    }
    const std::int64_t x = v->get();
    if (x < lo || x > hi) {
        return "value " + std::to_string(x) + " is out of range [" + std::to_string(lo) + ", " +
               std::to_string(hi) + "]";
    }
    out = static_cast<unsigned>(x);
    return std::nullopt;
}

std::optional<std::string> read_bool(const toml::node& node, bool& out) {
    const auto* v = node.as_boolean();
    if (v == nullptr) {
        return "expected true or false";
    }
    out = v->get();
    return std::nullopt;
}

std::optional<std::string> read_string(const toml::node& node, std::string& out) {
    const auto* v = node.as_string();
    if (v == nullptr) {
        return "expected a string";
    }
    out = v->get();
    return std::nullopt;
}

std::optional<std::string> ip_problem(const std::string& host) {
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
        return std::nullopt;
    }
    return "'" + host + "' is not an IP address (host names are not resolved)";
}

} // namespace config_detail

namespace {

using namespace config_detail;

template <typename Section>
Setter uint_in(Section Config::*section, unsigned Section::*field, std::int64_t lo,
               std::int64_t hi) {
    return [=](const toml::node& n, Config& c) { return read_uint(n, lo, hi, c.*section.*field); };
}

template <typename Section> Setter bool_in(Section Config::*section, bool Section::*field) {
    return [=](const toml::node& n, Config& c) { return read_bool(n, c.*section.*field); };
}

std::optional<std::string> set_allowed_callers(const toml::node& node, Config& c,
                                               const std::string& file) {
    const auto* arr = node.as_array();
    if (arr == nullptr) {
        return "expected an array of tables: [[dicom.allowed_callers]] with ae_title and host";
    }
    c.dicom.allowed_callers.clear();
    for (const auto& elem : *arr) {
        const auto* tbl = elem.as_table();
        if (tbl == nullptr) {
            return where(file, elem.source()) + ": expected a table with ae_title and host";
        }
        AllowedCaller caller;
        bool has_ae = false;
        for (const auto& [k, v] : *tbl) {
            const std::string key(k.str());
            const std::string at = where(file, v.source()) + ": dicom.allowed_callers." + key;
            if (key == "ae_title") {
                if (auto err = read_string(v, caller.ae_title)) {
                    return at + ": " + *err;
                }
                if (auto err = ae_title_problem(caller.ae_title)) {
                    return at + ": " + *err;
                }
                has_ae = true;
            } else if (key == "host") {
                if (auto err = read_string(v, caller.host)) {
                    return at + ": " + *err;
                }
                if (auto err = ip_problem(caller.host)) {
                    return at + ": " + *err;
                }
            } else {
                return where(file, k.source()) + ": dicom.allowed_callers." + key +
                       ": unknown key (known: ae_title, host)";
            }
        }
        if (!has_ae) {
            return where(file, elem.source()) + ": dicom.allowed_callers: entry has no ae_title";
        }
        c.dicom.allowed_callers.push_back(std::move(caller));
    }
    return std::nullopt;
}

const std::map<std::string, KeyDef>& key_table();

/// [http.tls]: cert_file and key_file, both or neither; paths resolved against the config
/// file's folder. Errors carry their own position.
std::optional<std::string> set_http_tls(const toml::node& node, Config& c,
                                        const std::string& file) {
    const auto* tbl = node.as_table();
    if (tbl == nullptr) {
        return where(file, node.source()) + ": http.tls: expected a table ([http.tls] with "
                                            "cert_file and key_file)";
    }
    c.http.tls_where = where(file, node.source());
    for (const auto& [k, v] : *tbl) {
        const std::string key = "http.tls." + std::string(k.str());
        const auto it = key_table().find(key);
        if (it == key_table().end()) {
            return where(file, k.source()) + ": unknown key '" + key +
                   "' (known: http.tls.cert_file, http.tls.key_file)";
        }
        if (auto err = it->second.set(v, c)) {
            return where(file, v.source()) + ": " + key + ": " + *err;
        }
        std::string& path =
            key == "http.tls.cert_file" ? c.http.tls_cert_file : c.http.tls_key_file;
        if (path.empty()) {
            return where(file, v.source()) + ": " + key + ": must not be empty";
        }
        if (std::filesystem::path(path).is_relative() && file != "<defaults>") {
            path = (std::filesystem::absolute(file).parent_path() / path).lexically_normal();
        }
    }
    if (c.http.tls_cert_file.empty() != c.http.tls_key_file.empty()) {
        return c.http.tls_where + ": http.tls: set both cert_file and key_file (or neither)";
    }
    return std::nullopt;
}

const std::map<std::string, KeyDef>& key_table() {
    static const std::map<std::string, KeyDef> table = {
        {"node.ae_title",
         {[](const toml::node& n, Config& c) -> std::optional<std::string> {
              if (auto e = read_string(n, c.node.ae_title)) {
                  return e;
              }
              return ae_title_problem(c.node.ae_title);
          },
          "AE title of this node"}},
        {"node.workdir",
         {[](const toml::node& n, Config& c) -> std::optional<std::string> {
              std::string s;
              if (auto e = read_string(n, s)) {
                  return e;
              }
              if (s.empty()) {
                  return "must not be empty";
              }
              c.node.workdir = s;
              return std::nullopt;
          },
          "working directory"}},
        {"node.shutdown_grace_s",
         {uint_in(&Config::node, &NodeConfig::shutdown_grace_s, 0, 3600), "shutdown grace"}},
        {"log.level",
         {[](const toml::node& n, Config& c) -> std::optional<std::string> {
              if (auto e = read_string(n, c.log.level)) {
                  return e;
              }
              if (!is_valid_log_level(c.log.level)) {
                  return "'" + c.log.level +
                         "' is not a log level (trace, debug, info, warn, error, critical, off)";
              }
              return std::nullopt;
          },
          "log level"}},
        {"log.file",
         {[](const toml::node& n, Config& c) { return read_string(n, c.log.file); }, "log file"}},
        {"dicom.bind_address",
         {[](const toml::node& n, Config& c) -> std::optional<std::string> {
              if (auto e = read_string(n, c.dicom.bind_address)) {
                  return e;
              }
              in_addr v4{};
              if (inet_pton(AF_INET, c.dicom.bind_address.c_str(), &v4) != 1) {
                  return "'" + c.dicom.bind_address +
                         "' is not an IPv4 address (use 0.0.0.0 for all interfaces)";
              }
              return std::nullopt;
          },
          "listen address"}},
        {"dicom.port",
         {[](const toml::node& n, Config& c) -> std::optional<std::string> {
              unsigned port = 0;
              if (auto e = read_uint(n, 1, 65535, port)) {
                  return e;
              }
              c.dicom.port = static_cast<std::uint16_t>(port);
              return std::nullopt;
          },
          "DICOM port"}},
        {"dicom.max_associations",
         {uint_in(&Config::dicom, &DicomConfig::max_associations, 1, 256), "max associations"}},
        {"dicom.max_pdu_bytes",
         {uint_in(&Config::dicom, &DicomConfig::max_pdu_bytes, 4096, 131072), "max PDU"}},
        {"dicom.acse_timeout_s",
         {uint_in(&Config::dicom, &DicomConfig::acse_timeout_s, 1, 3600), "ACSE timeout"}},
        {"dicom.dimse_timeout_s",
         {uint_in(&Config::dicom, &DicomConfig::dimse_timeout_s, 1, 3600), "DIMSE timeout"}},
        {"storage.fsync", {bool_in(&Config::storage, &StorageConfig::fsync), "fsync"}},
        {"storage.duplicate_policy",
         {[](const toml::node& n, Config& c) -> std::optional<std::string> {
              std::string s;
              if (auto e = read_string(n, s)) {
                  return e;
              }
              if (s == "keep_first") {
                  c.storage.duplicate_policy = DuplicatePolicy::KeepFirst;
              } else if (s == "replace") {
                  c.storage.duplicate_policy = DuplicatePolicy::Replace;
              } else {
                  return "'" + s + "' is not a duplicate policy (keep_first, replace)";
              }
              return std::nullopt;
          },
          "duplicate policy"}},
        {"series.quiet_period_s",
         {uint_in(&Config::series, &SeriesConfig::quiet_period_s, 1, 86400), "quiet period"}},
        {"series.complete_on_association_release",
         {bool_in(&Config::series, &SeriesConfig::complete_on_association_release),
          "complete on release"}},
        {"jobs.workers", {uint_in(&Config::jobs, &JobsConfig::workers, 1, 64), "workers"}},
        {"jobs.algorithm_threads",
         {uint_in(&Config::jobs, &JobsConfig::algorithm_threads, 0, 256), "threads per job"}},
        {"jobs.timeout_s", {uint_in(&Config::jobs, &JobsConfig::timeout_s, 1, 86400), "timeout"}},
        {"jobs.max_volume_mb",
         {uint_in(&Config::jobs, &JobsConfig::max_volume_mb, 1, 1048576), "volume guard"}},
        {"jobs.poll_interval_ms",
         {uint_in(&Config::jobs, &JobsConfig::poll_interval_ms, 10, 60000), "poll interval"}},
        {"send.attempts", {uint_in(&Config::send, &SendConfig::attempts, 1, 100), "attempts"}},
        {"send.initial_delay_s",
         {uint_in(&Config::send, &SendConfig::initial_delay_s, 0, 3600), "first retry delay"}},
        {"send.max_delay_s",
         {uint_in(&Config::send, &SendConfig::max_delay_s, 0, 86400), "max retry delay"}},
        {"send.connect_timeout_s",
         {uint_in(&Config::send, &SendConfig::connect_timeout_s, 1, 600), "connect timeout"}},
        {"send.dimse_timeout_s",
         {uint_in(&Config::send, &SendConfig::dimse_timeout_s, 1, 3600), "DIMSE timeout"}},
        {"output.uid_root",
         {[](const toml::node& n, Config& c) -> std::optional<std::string> {
              if (auto e = read_string(n, c.output.uid_root)) {
                  return e;
              }
              if (c.output.uid_root.empty()) {
                  return std::nullopt;
              }
              if (auto e = uid_problem(c.output.uid_root)) {
                  return "'" + c.output.uid_root + "' is not a UID root: " + *e;
              }
              // Room for "." + a 39-digit (128-bit) suffix.
              if (c.output.uid_root.size() > 24) {
                  return "'" + c.output.uid_root +
                         "' is longer than 24 characters: generated UIDs would exceed 64";
              }
              return std::nullopt;
          },
          "UID root"}},
        {"output.series_number",
         {uint_in(&Config::output, &OutputConfig::series_number, 1, 2147483647), "series number"}},
        {"output.manufacturer",
         {[](const toml::node& n, Config& c) -> std::optional<std::string> {
              if (auto e = read_string(n, c.output.manufacturer)) {
                  return e;
              }
              if (c.output.manufacturer.empty() || c.output.manufacturer.size() > 64 ||
                  c.output.manufacturer.find('\\') != std::string::npos) {
                  return "must be 1-64 characters without a backslash";
              }
              return std::nullopt;
          },
          "manufacturer"}},
        {"retention.keep_hours",
         {uint_in(&Config::retention, &RetentionConfig::keep_hours, 0, 876000), "keep hours"}},
        {"retention.min_free_mb",
         {uint_in(&Config::retention, &RetentionConfig::min_free_mb, 0, 104857600),
          "free space guard"}},
        {"retention.check_interval_s",
         {uint_in(&Config::retention, &RetentionConfig::check_interval_s, 1, 86400),
          "retention interval"}},
        {"http.enabled", {bool_in(&Config::http, &HttpConfig::enabled), "HTTP API on/off"}},
        {"http.bind_address",
         {[](const toml::node& n, Config& c) -> std::optional<std::string> {
              if (auto e = read_string(n, c.http.bind_address)) {
                  return e;
              }
              in_addr v4{};
              if (inet_pton(AF_INET, c.http.bind_address.c_str(), &v4) != 1) {
                  return "'" + c.http.bind_address +
                         "' is not an IPv4 address (use 0.0.0.0 for all interfaces)";
              }
              return std::nullopt;
          },
          "HTTP listen address"}},
        {"http.port",
         {[](const toml::node& n, Config& c) -> std::optional<std::string> {
              unsigned port = 0;
              if (auto e = read_uint(n, 1, 65535, port)) {
                  return e;
              }
              c.http.port = static_cast<std::uint16_t>(port);
              return std::nullopt;
          },
          "HTTP port"}},
        {"http.max_body_bytes",
         {uint_in(&Config::http, &HttpConfig::max_body_bytes, 1024, 1073741824),
          "request body limit"}},
        {"http.max_upload_mb",
         {uint_in(&Config::http, &HttpConfig::max_upload_mb, 1, 1048576),
          "STOW-RS upload limit (MiB)"}},
        {"http.max_header_bytes",
         {uint_in(&Config::http, &HttpConfig::max_header_bytes, 1024, 1048576),
          "request header limit"}},
        {"http.header_timeout_s",
         {uint_in(&Config::http, &HttpConfig::header_timeout_s, 1, 600), "header timeout"}},
        {"http.max_connections",
         {uint_in(&Config::http, &HttpConfig::max_connections, 1, 10000), "max connections"}},
        {"http.metrics_require_key",
         {bool_in(&Config::http, &HttpConfig::metrics_require_key), "metrics need a key"}},
        {"http.tls.cert_file",
         {[](const toml::node& n, Config& c) { return read_string(n, c.http.tls_cert_file); },
          "TLS certificate chain (PEM)"}},
        {"http.tls.key_file",
         {[](const toml::node& n, Config& c) { return read_string(n, c.http.tls_key_file); },
          "TLS private key (PEM)"}},
        {"series.late_instance_policy",
         {[](const toml::node& n, Config& c) -> std::optional<std::string> {
              std::string s;
              if (auto e = read_string(n, s)) {
                  return e;
              }
              if (s == "reopen") {
                  c.series.late_instance_policy = LateInstancePolicy::Reopen;
              } else if (s == "record") {
                  c.series.late_instance_policy = LateInstancePolicy::Record;
              } else {
                  return "'" + s + "' is not a late-instance policy (reopen, record)";
              }
              return std::nullopt;
          },
          "late instance policy"}},
    };
    return table;
}

std::string suggestion(const std::string& key) {
    // Suggest a known key in the same section with the smallest edit distance.
    auto distance = [](const std::string& a, const std::string& b) {
        std::vector<std::size_t> prev(b.size() + 1);
        std::vector<std::size_t> cur(b.size() + 1);
        for (std::size_t j = 0; j <= b.size(); ++j) {
            prev[j] = j;
        }
        for (std::size_t i = 1; i <= a.size(); ++i) {
            cur[0] = i;
            for (std::size_t j = 1; j <= b.size(); ++j) {
                cur[j] = std::min(
                    {prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0U : 1U)});
            }
            std::swap(prev, cur);
        }
        return prev[b.size()];
    };
    std::string best;
    std::size_t best_d = std::numeric_limits<std::size_t>::max();
    for (const auto& [known, def] : key_table()) {
        const std::size_t d = distance(key, known);
        if (d < best_d) {
            best_d = d;
            best = known;
        }
    }
    if (key == "dicom.allowed_callers" || key == "node.extra_ae_titles") {
        return {};
    }
    return best_d <= 3 ? " (did you mean '" + best + "'?)" : std::string{};
}

Result<Config> from_table(const toml::table& root, const std::string& file) {
    Config config;
    config.source = file;
    static const std::vector<std::string> sections = {
        "node", "log", "dicom", "storage", "series", "jobs", "send", "output", "retention", "http"};
    for (const auto& [sk, sv] : root) {
        const std::string section(sk.str());
        if (section == "algorithms") {
            if (auto err = set_algorithms(sv, config, file)) {
                return Error{*err};
            }
            continue;
        }
        if (section == "algorithms_dir") {
            if (auto err = set_algorithms_dir(sv, config, file)) {
                return Error{*err};
            }
            continue;
        }
        if (section == "peers" || section == "rules") {
            auto err =
                section == "peers" ? set_peers(sv, config, file) : set_rules(sv, config, file);
            if (err) {
                return Error{*err};
            }
            continue;
        }
        if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
            return Error{where(file, sk.source()) + ": unknown section '" + section +
                         "' (known: node, log, dicom, storage, series, jobs, send, output, "
                         "retention, algorithms_dir, [[peers]], [[rules]], [[algorithms]])"};
        }
        const auto* tbl = sv.as_table();
        if (tbl == nullptr) {
            return Error{where(file, sv.source()) + ": '" + section + "' must be a table"};
        }
        for (const auto& [k, v] : *tbl) {
            const std::string key = section + "." + std::string(k.str());
            if (key == "node.extra_ae_titles") {
                if (auto err = set_extra_ae_titles(v, config)) {
                    return Error{where(file, v.source()) + ": " + key + ": " + *err};
                }
                continue;
            }
            if (key == "http.tls") {
                if (auto err = set_http_tls(v, config, file)) {
                    return Error{*err};
                }
                continue;
            }
            if (key == "dicom.allowed_callers") {
                if (auto err = set_allowed_callers(v, config, file)) {
                    // Errors from inside the array already carry their own position.
                    if (err->rfind(file, 0) == 0) {
                        return Error{*err};
                    }
                    return Error{where(file, v.source()) + ": " + key + ": " + *err};
                }
                continue;
            }
            const auto it = key_table().find(key);
            if (it == key_table().end()) {
                return Error{where(file, k.source()) + ": unknown key '" + key + "'" +
                             suggestion(key)};
            }
            if (auto err = it->second.set(v, config)) {
                return Error{where(file, v.source()) + ": " + key + ": " + *err};
            }
        }
    }
    if (auto err = load_algorithms_dir(config)) {
        return Error{*err};
    }
    if (auto err = check_algorithm_names(config)) {
        return Error{*err};
    }
    if (auto err = check_cross_references(config)) {
        return Error{*err};
    }
    return config;
}

} // namespace

const PeerConfig* Config::find_peer(std::string_view name) const {
    for (const PeerConfig& peer : peers) {
        if (peer.name == name) {
            return &peer;
        }
    }
    return nullptr;
}

std::vector<std::string> Config::called_ae_titles() const {
    std::vector<std::string> titles{node.ae_title};
    titles.insert(titles.end(), node.extra_ae_titles.begin(), node.extra_ae_titles.end());
    return titles;
}

std::optional<std::string> ae_title_problem(std::string_view ae) {
    if (ae.empty()) {
        return "AE title must not be empty";
    }
    if (ae.size() > 16) {
        return "AE title '" + std::string(ae) + "' is longer than 16 characters";
    }
    bool all_space = true;
    for (const char ch : ae) {
        const auto u = static_cast<unsigned char>(ch);
        if (u < 0x20 || u > 0x7e || ch == '\\') {
            return "AE title '" + std::string(ae) +
                   "' contains a control character, backslash or non-ASCII byte";
        }
        all_space = all_space && ch == ' ';
    }
    if (all_space) {
        return "AE title must not be all spaces";
    }
    return std::nullopt;
}

Result<Config> parse_config(std::string_view text, const std::string& source_name) {
    try {
        const toml::table root = toml::parse(text, source_name);
        return from_table(root, source_name);
    } catch (const toml::parse_error& e) {
        return Error{where(source_name, e.source()) + ": " + std::string(e.description())};
    }
}

Result<Config> load_config(const std::filesystem::path& file) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) {
        return Error{file.string() + ": config file not found or not a regular file"};
    }
    try {
        const toml::table root = toml::parse_file(file.string());
        return from_table(root, file.string());
    } catch (const toml::parse_error& e) {
        return Error{where(file.string(), e.source()) + ": " + std::string(e.description())};
    }
}

Status apply_overrides(Config& config, const ConfigOverrides& o) {
    if (o.ae_title) {
        if (auto e = ae_title_problem(*o.ae_title)) {
            return Error{"--ae-title: " + *e};
        }
        config.node.ae_title = *o.ae_title;
    }
    if (o.port) {
        if (*o.port < 1 || *o.port > 65535) {
            return Error{"--port: " + std::to_string(*o.port) + " is out of range [1, 65535]"};
        }
        config.dicom.port = static_cast<std::uint16_t>(*o.port);
    }
    if (o.workdir) {
        if (o.workdir->empty()) {
            return Error{"--workdir: must not be empty"};
        }
        config.node.workdir = *o.workdir;
    }
    if (o.log_level) {
        if (!is_valid_log_level(*o.log_level)) {
            return Error{"--log-level: '" + *o.log_level + "' is not a log level"};
        }
        config.log.level = *o.log_level;
    }
    return ok_status();
}

std::string_view to_string(DuplicatePolicy policy) {
    return policy == DuplicatePolicy::KeepFirst ? "keep_first" : "replace";
}

std::string_view to_string(LateInstancePolicy policy) {
    return policy == LateInstancePolicy::Reopen ? "reopen" : "record";
}

std::string_view to_string(OutputKind kind) {
    switch (kind) {
    case OutputKind::Seg:
        return "seg";
    case OutputKind::Rtstruct:
        return "rtstruct";
    case OutputKind::Labelmap:
        return "labelmap";
    }
    return "?";
}

} // namespace segnode
