#pragma once
// segnode configuration: one TOML file, every key known to a table in config.cpp, every value
// validated, errors reported as "file:line:column: key: reason". config/segnode.toml is the
// fully commented sample and carries the same defaults as the structs below.
#include "segnode/core/result.hpp"

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace segnode {

struct AllowedCaller {
    std::string ae_title; ///< calling AE title that may associate
    std::string host;     ///< IP address it must come from; empty = any address
};

enum class DuplicatePolicy { KeepFirst, Replace };
enum class LateInstancePolicy { Reopen, Record };

struct NodeConfig {
    std::string ae_title = "SEGNODE";
    /// Further called AE titles answered on the same port, so a PACS can target one rule
    /// (one algorithm) per AE title; node.ae_title is also the calling AE of send-back.
    std::vector<std::string> extra_ae_titles;
    std::filesystem::path workdir = "./var";
    unsigned shutdown_grace_s = 30; ///< how long in-flight associations may run on at shutdown
};

struct LogConfig {
    std::string level = "info";
    std::string file; ///< empty: stderr only
};

struct DicomConfig {
    std::string bind_address = "0.0.0.0";
    std::uint16_t port = 11112;
    unsigned max_associations = 16;
    unsigned max_pdu_bytes = 131072;
    unsigned acse_timeout_s = 30;
    unsigned dimse_timeout_s = 60;
    std::vector<AllowedCaller> allowed_callers; ///< empty: any calling AE is accepted
};

struct StorageConfig {
    bool fsync = true;
    DuplicatePolicy duplicate_policy = DuplicatePolicy::KeepFirst;
};

struct SeriesConfig {
    unsigned quiet_period_s = 30;
    bool complete_on_association_release = false;
    LateInstancePolicy late_instance_policy = LateInstancePolicy::Reopen;
};

/// A DICOM node segnode sends results to (and may echo).
struct PeerConfig {
    std::string name;     ///< referenced by rules' `destination`
    std::string ae_title; ///< its (called) AE title
    std::string host;     ///< IP address or host name
    std::uint16_t port = 104;
    std::string where; ///< file:line:column of the entry, for later checks
};

/// Job outputs: DICOM SEG, RTSTRUCT, and a label map (labels.nii.gz + segments.json, kept on
/// the node for download, never sent).
enum class OutputKind { Seg, Rtstruct, Labelmap };

/// One routing rule: match keys (all given must match) and the action.
struct RuleConfig {
    std::string name;
    // match (empty / 0: any)
    std::string called_ae;
    std::string calling_ae;
    std::string modality;           ///< compared case-insensitively
    std::string series_description; ///< ECMAScript regex, searched, case-insensitive
    std::string body_part;          ///< BodyPartExamined, compared case-insensitively
    unsigned min_instances = 0;
    // action
    std::string algorithm;
    std::vector<std::pair<std::string, std::string>> settings; ///< overrides, as text
    std::vector<OutputKind> outputs{OutputKind::Seg};
    std::string destination = "sender"; ///< a peer name, or "sender"
    /// file:line:column of the rule, its algorithm and settings, for checks that need the
    /// algorithm registry (done above core).
    std::string where;
    std::string algorithm_where;
    std::string settings_where;
};

struct JobsConfig {
    unsigned workers = 2;           ///< jobs processed at once (2 keeps 2 cores busy)
    unsigned algorithm_threads = 0; ///< threads per job; 0 = hardware threads
    unsigned timeout_s = 1800;      ///< per job (load + algorithm + writers), not send-back
    unsigned max_volume_mb = 2048;  ///< larger volumes (int16 voxels) are refused
    unsigned poll_interval_ms = 500;
};

struct SendConfig {
    unsigned attempts = 6;        ///< send attempts per job before it fails
    unsigned initial_delay_s = 2; ///< first retry delay; doubles each attempt
    unsigned max_delay_s = 300;   ///< cap of the retry delay
    unsigned connect_timeout_s = 10;
    unsigned dimse_timeout_s = 60;
};

struct OutputConfig {
    std::string uid_root; ///< empty: 2.25 UUID-derived UIDs
    unsigned series_number = 9901;
    std::string manufacturer = "segnode";
};

struct RetentionConfig {
    unsigned keep_hours = 168;      ///< finished work older than this is removed; 0 = never
    unsigned min_free_mb = 1024;    ///< below this free space new C-STOREs are refused
    unsigned check_interval_s = 60; ///< how often retention runs
};

/// The HTTP API ([http]); docs/api.md.
struct HttpConfig {
    bool enabled = true;
    std::string bind_address = "127.0.0.1"; ///< IPv4
    std::uint16_t port = 8080;
    unsigned max_body_bytes = 1048576; ///< larger request bodies: 413
    unsigned max_upload_mb = 1024;     ///< STOW-RS upload bodies (streamed to disk): 413 above
    unsigned max_header_bytes = 16384; ///< larger request headers: 431
    unsigned header_timeout_s = 10;    ///< a client must send its headers within this time
    unsigned max_connections = 64;     ///< connections beyond this are closed at once
    bool metrics_require_key = false;  ///< false: /metrics needs no key from a loopback peer
    /// [http.tls]: both set: HTTPS only (PEM certificate chain and private key; absolute,
    /// relative paths are taken from the config file's folder). Both empty: plain HTTP.
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string tls_where; ///< file:line:column of [http.tls], for the check that both are set
};

/// One setting of an external algorithm's schema, as written in [algorithms.settings.NAME].
/// Checked here for shape; the algorithms layer turns it into a SettingSpec and checks it.
struct ExternalSettingConfig {
    std::string key;
    std::string type;         ///< int | float | bool | string | enum
    std::string default_text; ///< the default as `--set` text ("" when absent)
    bool has_default = false;
    std::optional<double> min;
    std::optional<double> max;
    std::vector<std::string> choices; ///< enum
    std::string help;
    std::string where;
};

/// A coded concept as written in the config: [scheme, value, meaning].
using CodeTriplet = std::array<std::string, 3>;

/// One segment an external algorithm declares ([[algorithms.segments]]).
struct ExternalSegmentConfig {
    unsigned label = 0;
    std::string name;
    CodeTriplet category;
    CodeTriplet type;
    bool has_category = false;
    bool has_type = false;
    std::array<std::uint8_t, 3> color{};
    bool has_color = false;
    std::string file; ///< output_kind = "per_segment": the mask file under {out_dir}
    std::string where;
};

/// An external algorithm: any program segnode runs on a series ([[algorithms]] in the config,
/// or one per file in algorithms_dir). docs/algorithms.md is the contract.
struct ExternalAlgorithmConfig {
    std::string name;
    std::string version;
    std::string description;
    std::vector<std::string> command; ///< argv with {placeholders}; run with execve, no shell
    std::string input_format;         ///< nifti | nifti_gz | nrrd | dicom; "" = layout default
    std::string output;               ///< label map under {out_dir}; "" = layout default
    unsigned timeout_s = 3600;
    unsigned memory_mb = 0; ///< 0: no limit
    unsigned kill_grace_s = 10;
    std::vector<std::pair<std::string, std::string>> env;
    std::vector<ExternalSettingConfig> settings;
    std::vector<ExternalSegmentConfig> segments;
    std::string segments_file;    ///< absolute (resolved against the config file's directory)
    std::string layout = "plain"; ///< plain | kaapana | nnunet | mercure
    std::string output_kind;      ///< labelmap | per_segment | dicom; "" = layout default
    unsigned max_parallel = 1;
    bool resample = false;
    std::string undeclared_labels = "fail"; ///< fail | ignore
    bool keep_work_dir = false;             ///< keep jobs/<id>/work after a successful run
    std::string where;                      ///< file:line:column of the entry
};

struct Config {
    std::string source = "<defaults>"; ///< file the config came from
    NodeConfig node;
    LogConfig log;
    DicomConfig dicom;
    StorageConfig storage;
    SeriesConfig series;
    JobsConfig jobs;
    SendConfig send;
    OutputConfig output;
    RetentionConfig retention;
    HttpConfig http;
    std::vector<PeerConfig> peers;
    std::vector<RuleConfig> rules;
    /// Directory whose *.toml files each hold one [[algorithms]] entry ("" = none); absolute.
    std::string algorithms_dir;
    /// [[algorithms]] of the file, then those of algorithms_dir in file-name order.
    std::vector<ExternalAlgorithmConfig> algorithms;

    [[nodiscard]] const PeerConfig* find_peer(std::string_view name) const;
    /// node.ae_title followed by node.extra_ae_titles.
    [[nodiscard]] std::vector<std::string> called_ae_titles() const;
};

/// Command-line overrides for the most common keys; validated like the file's values.
struct ConfigOverrides {
    std::optional<std::string> ae_title;
    std::optional<unsigned> port;
    std::optional<std::string> workdir;
    std::optional<std::string> log_level;
};

/// Reads and validates a TOML config file.
Result<Config> load_config(const std::filesystem::path& file);
/// Parses and validates TOML text; `source_name` is used in error messages.
Result<Config> parse_config(std::string_view text, const std::string& source_name);
/// Applies command-line overrides; errors name the option.
Status apply_overrides(Config& config, const ConfigOverrides& overrides);

/// Problem with an AE title (1-16 characters of the DICOM default repertoire, no backslash,
/// not all spaces), or std::nullopt if valid.
std::optional<std::string> ae_title_problem(std::string_view ae);

std::string_view to_string(DuplicatePolicy policy);
std::string_view to_string(LateInstancePolicy policy);
std::string_view to_string(OutputKind kind);

} // namespace segnode
