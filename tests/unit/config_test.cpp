#include "segnode/core/config.hpp"

#include <algorithm>
#include <fstream>
#include <gtest/gtest.h>

using namespace segnode;

namespace {

Result<Config> parse(const std::string& text) {
    return parse_config(text, "test.toml");
}

std::string error_of(const std::string& text) {
    auto r = parse(text);
    EXPECT_FALSE(r.ok()) << "expected an error for:\n" << text;
    return r.ok() ? std::string() : r.error().message;
}

} // namespace

TEST(Config, EmptyFileGivesDefaults) {
    auto r = parse("");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->node.ae_title, "SEGNODE");
    EXPECT_EQ(r->dicom.port, 11112);
    EXPECT_EQ(r->node.workdir, "./var");
    EXPECT_TRUE(r->storage.fsync);
    EXPECT_EQ(r->series.quiet_period_s, 30U);
    EXPECT_TRUE(r->dicom.allowed_callers.empty());
}

TEST(Config, ShippedSampleIsValidAndMatchesDefaults) {
    auto r = load_config(std::string(SEGNODE_SOURCE_DIR) + "/config/segnode.toml");
    ASSERT_TRUE(r.ok()) << r.error().message;
    const Config defaults;
    EXPECT_EQ(r->node.ae_title, defaults.node.ae_title);
    EXPECT_EQ(r->node.workdir, defaults.node.workdir);
    EXPECT_EQ(r->node.shutdown_grace_s, defaults.node.shutdown_grace_s);
    EXPECT_EQ(r->log.level, defaults.log.level);
    EXPECT_EQ(r->dicom.bind_address, defaults.dicom.bind_address);
    EXPECT_EQ(r->dicom.port, defaults.dicom.port);
    EXPECT_EQ(r->dicom.max_associations, defaults.dicom.max_associations);
    EXPECT_EQ(r->dicom.max_pdu_bytes, defaults.dicom.max_pdu_bytes);
    EXPECT_EQ(r->dicom.acse_timeout_s, defaults.dicom.acse_timeout_s);
    EXPECT_EQ(r->dicom.dimse_timeout_s, defaults.dicom.dimse_timeout_s);
    EXPECT_EQ(r->storage.fsync, defaults.storage.fsync);
    EXPECT_EQ(r->storage.duplicate_policy, defaults.storage.duplicate_policy);
    EXPECT_EQ(r->series.quiet_period_s, defaults.series.quiet_period_s);
    EXPECT_EQ(r->series.complete_on_association_release,
              defaults.series.complete_on_association_release);
    EXPECT_EQ(r->series.late_instance_policy, defaults.series.late_instance_policy);
    EXPECT_EQ(r->http.enabled, defaults.http.enabled);
    EXPECT_EQ(r->http.bind_address, defaults.http.bind_address);
    EXPECT_EQ(r->http.port, defaults.http.port);
    EXPECT_EQ(r->http.max_body_bytes, defaults.http.max_body_bytes);
    EXPECT_EQ(r->http.max_header_bytes, defaults.http.max_header_bytes);
    EXPECT_EQ(r->http.header_timeout_s, defaults.http.header_timeout_s);
    EXPECT_EQ(r->http.max_connections, defaults.http.max_connections);
    EXPECT_EQ(r->http.metrics_require_key, defaults.http.metrics_require_key);
}

TEST(ConfigHttp, DefaultsServeLoopbackOn8080) {
    auto r = parse("");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r->http.enabled);
    EXPECT_EQ(r->http.bind_address, "127.0.0.1");
    EXPECT_EQ(r->http.port, 8080);
    EXPECT_FALSE(r->http.metrics_require_key);
}

TEST(ConfigHttp, ReadsEveryKey) {
    auto r = parse(R"([http]
enabled = false
bind_address = "0.0.0.0"
port = 9090
max_body_bytes = 2048
max_header_bytes = 4096
header_timeout_s = 3
max_connections = 7
metrics_require_key = true
)");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(r->http.enabled);
    EXPECT_EQ(r->http.bind_address, "0.0.0.0");
    EXPECT_EQ(r->http.port, 9090);
    EXPECT_EQ(r->http.max_body_bytes, 2048U);
    EXPECT_EQ(r->http.max_header_bytes, 4096U);
    EXPECT_EQ(r->http.header_timeout_s, 3U);
    EXPECT_EQ(r->http.max_connections, 7U);
    EXPECT_TRUE(r->http.metrics_require_key);
}

TEST(ConfigHttp, TlsNeedsBothFilesAndResolvesPaths) {
    auto r = parse_config("[http.tls]\ncert_file = \"/etc/c.pem\"\nkey_file = \"k.pem\"\n",
                          "/srv/conf/segnode.toml");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->http.tls_cert_file, "/etc/c.pem");
    EXPECT_EQ(r->http.tls_key_file, "/srv/conf/k.pem");
    EXPECT_TRUE(parse("").value().http.tls_cert_file.empty());

    auto msg = error_of("[http]\nport = 8443\n[http.tls]\ncert_file = \"/c.pem\"\n");
    EXPECT_NE(msg.find("test.toml:3:1: http.tls: set both cert_file and key_file"),
              std::string::npos)
        << msg;
    msg = error_of("[http.tls]\ncert_file = \"/c.pem\"\nkey = \"/k.pem\"\n");
    EXPECT_NE(msg.find("test.toml:3:1: unknown key 'http.tls.key'"), std::string::npos) << msg;
    msg = error_of("[http.tls]\ncert_file = 3\n");
    EXPECT_NE(msg.find("test.toml:2:13: http.tls.cert_file: expected a string"), std::string::npos)
        << msg;
}

TEST(ConfigHttp, ErrorsNameFileLineAndKey) {
    auto msg = error_of("[http]\nport = 0\n");
    EXPECT_NE(msg.find("test.toml:2:8: http.port: value 0 is out of range [1, 65535]"),
              std::string::npos)
        << msg;
    msg = error_of("[http]\n\nbind_address = \"localhost\"\n");
    EXPECT_NE(msg.find("test.toml:3:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("http.bind_address: 'localhost' is not an IPv4 address"), std::string::npos)
        << msg;
    msg = error_of("[http]\nheader_timeout_s = 0\n");
    EXPECT_NE(msg.find("http.header_timeout_s: value 0 is out of range [1, 600]"),
              std::string::npos)
        << msg;
    msg = error_of("[http]\nenabled = \"yes\"\n");
    EXPECT_NE(msg.find("http.enabled: expected true or false"), std::string::npos) << msg;
    msg = error_of("[http]\nmax_body_bytes = 10\n");
    EXPECT_NE(msg.find("http.max_body_bytes: value 10 is out of range"), std::string::npos) << msg;
    msg = error_of("[http]\nmax_conections = 3\n");
    EXPECT_NE(msg.find("did you mean 'http.max_connections'"), std::string::npos) << msg;
}

TEST(Config, ReadsEveryKey) {
    auto r = parse(R"(
[node]
ae_title = "NODE2"
workdir = "/srv/segnode"
shutdown_grace_s = 5
[log]
level = "debug"
file = "/tmp/x.log"
[dicom]
bind_address = "127.0.0.1"
port = 4242
max_associations = 3
max_pdu_bytes = 16384
acse_timeout_s = 7
dimse_timeout_s = 9
[[dicom.allowed_callers]]
ae_title = "PACS"
host = "10.0.0.1"
[[dicom.allowed_callers]]
ae_title = "CT1"
[storage]
fsync = false
duplicate_policy = "replace"
[series]
quiet_period_s = 2
complete_on_association_release = true
late_instance_policy = "record"
)");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->node.ae_title, "NODE2");
    EXPECT_EQ(r->node.workdir, "/srv/segnode");
    EXPECT_EQ(r->node.shutdown_grace_s, 5U);
    EXPECT_EQ(r->log.level, "debug");
    EXPECT_EQ(r->log.file, "/tmp/x.log");
    EXPECT_EQ(r->dicom.bind_address, "127.0.0.1");
    EXPECT_EQ(r->dicom.port, 4242);
    EXPECT_EQ(r->dicom.max_associations, 3U);
    EXPECT_EQ(r->dicom.max_pdu_bytes, 16384U);
    EXPECT_EQ(r->dicom.acse_timeout_s, 7U);
    EXPECT_EQ(r->dicom.dimse_timeout_s, 9U);
    ASSERT_EQ(r->dicom.allowed_callers.size(), 2U);
    EXPECT_EQ(r->dicom.allowed_callers[0].ae_title, "PACS");
    EXPECT_EQ(r->dicom.allowed_callers[0].host, "10.0.0.1");
    EXPECT_EQ(r->dicom.allowed_callers[1].host, "");
    EXPECT_FALSE(r->storage.fsync);
    EXPECT_EQ(r->storage.duplicate_policy, DuplicatePolicy::Replace);
    EXPECT_EQ(r->series.quiet_period_s, 2U);
    EXPECT_TRUE(r->series.complete_on_association_release);
    EXPECT_EQ(r->series.late_instance_policy, LateInstancePolicy::Record);
}

TEST(Config, UnknownKeyNamesFileLineAndSuggestion) {
    const auto msg = error_of("[dicom]\nport = 1\nmax_asociations = 4\n");
    EXPECT_NE(msg.find("test.toml:3:1:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unknown key 'dicom.max_asociations'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("did you mean 'dicom.max_associations'"), std::string::npos) << msg;
}

TEST(Config, UnknownSectionIsAnError) {
    const auto msg = error_of("\n[dicomm]\nport = 1\n");
    EXPECT_NE(msg.find("test.toml:2:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unknown section 'dicomm'"), std::string::npos) << msg;
}

TEST(Config, WrongTypeNamesKeyAndLine) {
    const auto msg = error_of("[dicom]\n\nport = \"11112\"\n");
    EXPECT_NE(msg.find("test.toml:3:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("dicom.port: expected an integer"), std::string::npos) << msg;
}

TEST(Config, RangesAreChecked) {
    EXPECT_NE(error_of("[dicom]\nport = 0\n").find("out of range [1, 65535]"), std::string::npos);
    EXPECT_NE(error_of("[dicom]\nport = 70000\n").find("out of range"), std::string::npos);
    EXPECT_NE(error_of("[dicom]\nmax_pdu_bytes = 1000\n").find("out of range"), std::string::npos);
    EXPECT_NE(error_of("[series]\nquiet_period_s = 0\n").find("out of range"), std::string::npos);
}

TEST(Config, EnumsAndAddressesAreValidated) {
    EXPECT_NE(error_of("[storage]\nduplicate_policy = \"newest\"\n").find("keep_first, replace"),
              std::string::npos);
    EXPECT_NE(error_of("[series]\nlate_instance_policy = \"x\"\n").find("reopen, record"),
              std::string::npos);
    EXPECT_NE(error_of("[log]\nlevel = \"loud\"\n").find("not a log level"), std::string::npos);
    EXPECT_NE(error_of("[dicom]\nbind_address = \"localhost\"\n").find("not an IPv4 address"),
              std::string::npos);
}

TEST(Config, AeTitlesAreValidated) {
    EXPECT_NE(error_of("[node]\nae_title = \"THIS_TITLE_IS_TOO_LONG\"\n").find("longer than 16"),
              std::string::npos);
    EXPECT_NE(error_of("[node]\nae_title = \"A\\\\B\"\n").find("backslash"), std::string::npos);
    EXPECT_NE(error_of("[node]\nae_title = \"   \"\n").find("all spaces"), std::string::npos);
    EXPECT_NE(error_of("[node]\nae_title = \"\"\n").find("empty"), std::string::npos);
}

TEST(Config, AllowedCallersErrorsPointIntoTheArray) {
    const auto msg = error_of("[[dicom.allowed_callers]]\nae_title = \"A\"\nhots = \"1.2.3.4\"\n");
    EXPECT_NE(msg.find("test.toml:3:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("dicom.allowed_callers.hots: unknown key"), std::string::npos) << msg;
    const auto no_ae = error_of("[[dicom.allowed_callers]]\nhost = \"1.2.3.4\"\n");
    EXPECT_NE(no_ae.find("no ae_title"), std::string::npos) << no_ae;
    const auto bad_host =
        error_of("[[dicom.allowed_callers]]\nae_title = \"A\"\nhost = \"pacs\"\n");
    EXPECT_NE(bad_host.find("not an IP address"), std::string::npos) << bad_host;
}

TEST(Config, SyntaxErrorsCarryPosition) {
    const auto msg = error_of("[node]\nae_title = \"SEG\n");
    EXPECT_EQ(msg.rfind("test.toml:2:", 0), 0U) << msg;
}

TEST(Config, LoadConfigReportsMissingFile) {
    auto r = load_config("/nonexistent/segnode.toml");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("/nonexistent/segnode.toml"), std::string::npos);
}

TEST(Config, OverridesAreValidated) {
    Config c;
    ConfigOverrides o;
    o.port = 4000;
    o.ae_title = "OTHER";
    o.workdir = "/tmp/w";
    o.log_level = "warn";
    ASSERT_TRUE(apply_overrides(c, o).ok());
    EXPECT_EQ(c.dicom.port, 4000);
    EXPECT_EQ(c.node.ae_title, "OTHER");
    EXPECT_EQ(c.node.workdir, "/tmp/w");
    EXPECT_EQ(c.log.level, "warn");

    ConfigOverrides bad_port;
    bad_port.port = 0;
    auto st = apply_overrides(c, bad_port);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("--port"), std::string::npos);
    ConfigOverrides bad_ae;
    bad_ae.ae_title = "WAY_TOO_LONG_AE_TITLE";
    st = apply_overrides(c, bad_ae);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("--ae-title"), std::string::npos);
    EXPECT_EQ(c.node.ae_title, "OTHER") << "a rejected override must not change the config";
}

TEST(ConfigRouting, ReadsPeersRulesAndPipelineSections) {
    auto r = parse(R"TOML(
[node]
extra_ae_titles = ["SEG_LUNGS", "SEG_BODY"]
[jobs]
workers = 2
timeout_s = 120
max_volume_mb = 512
[send]
attempts = 3
initial_delay_s = 1
max_delay_s = 8
[output]
uid_root = "1.2.826.0.1.3680043.9"
series_number = 777
[retention]
keep_hours = 0
min_free_mb = 50

[[peers]]
name = "pacs"
ae_title = "ORTHANC"
host = "127.0.0.1"
port = 4242

[[rules]]
name = "lungs"
called_ae = "SEG_LUNGS"
modality = "ct"
series_description = "(chest|thorax)"
min_instances = 20
algorithm = "lungs"
settings = { keep_largest = true, min_hu = -900, fraction = 0.25, mode = "fast" }
outputs = ["seg", "rtstruct"]
destination = "pacs"

[[rules]]
algorithm = "body"
)TOML");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->called_ae_titles(),
              (std::vector<std::string>{"SEGNODE", "SEG_LUNGS", "SEG_BODY"}));
    EXPECT_EQ(r->jobs.workers, 2U);
    EXPECT_EQ(r->send.max_delay_s, 8U);
    EXPECT_EQ(r->output.uid_root, "1.2.826.0.1.3680043.9");
    EXPECT_EQ(r->retention.min_free_mb, 50U);
    ASSERT_EQ(r->peers.size(), 1U);
    EXPECT_EQ(r->peers[0].port, 4242);
    ASSERT_NE(r->find_peer("pacs"), nullptr);
    EXPECT_EQ(r->find_peer("nope"), nullptr);
    ASSERT_EQ(r->rules.size(), 2U);
    const RuleConfig& lungs = r->rules[0];
    EXPECT_EQ(lungs.modality, "CT") << "modality is compared upper-case";
    EXPECT_EQ(lungs.min_instances, 20U);
    EXPECT_EQ(lungs.outputs, (std::vector<OutputKind>{OutputKind::Seg, OutputKind::Rtstruct}));
    const std::vector<std::pair<std::string, std::string>> settings{
        {"fraction", "0.25"}, {"keep_largest", "true"}, {"min_hu", "-900"}, {"mode", "fast"}};
    auto sorted = lungs.settings;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, settings);
    EXPECT_NE(lungs.algorithm_where.find("test.toml:"), std::string::npos);
    // Defaults of the second rule.
    EXPECT_EQ(r->rules[1].name, "rule2");
    EXPECT_EQ(r->rules[1].destination, "sender");
    EXPECT_EQ(r->rules[1].outputs, std::vector<OutputKind>{OutputKind::Seg});
}

TEST(ConfigRouting, ErrorsNameFileLineAndKey) {
    EXPECT_NE(error_of("[[rules]]\nalgorithm = \"body\"\ndestination = \"pacs\"\n")
                  .find("test.toml:1:1: rules[0] (rule1).destination: unknown peer 'pacs'"),
              std::string::npos);
    EXPECT_NE(error_of("[[rules]]\nalgorithm = \"body\"\nseries_description = \"(chest\"\n")
                  .find("test.toml:3:22: rules[0].series_description: '(chest' is not a valid "
                        "regular expression"),
              std::string::npos);
    // Found by fuzzing: thousands of '(' overflowed the stack in std::regex's compiler.
    EXPECT_NE(error_of("[[rules]]\nalgorithm = \"body\"\nseries_description = \"" +
                       std::string(6000, '(') + "\"\n")
                  .find("test.toml:3:22: rules[0].series_description: the regular expression is "
                        "6000 characters long; at most 256 are accepted"),
              std::string::npos);
    // Found by fuzzing (UBSan): libstdc++ overflows a long reading a 19-digit back-reference.
    EXPECT_NE(error_of("[[rules]]\nalgorithm = \"body\"\nseries_description = "
                       "\"c\\\\2222222222222222222\"\n")
                  .find("numbers in the regular expression have at most 9 digits"),
              std::string::npos);
    EXPECT_NE(error_of("[[rules]]\nalgorithm = \"body\"\nbody_prt = \"CHEST\"\n")
                  .find("test.toml:3:1: rules[0].body_prt: unknown key"),
              std::string::npos);
    EXPECT_NE(error_of("[[rules]]\nalgorithm = \"body\"\noutputs = [\"seg\", \"png\"]\n")
                  .find("'png' is not an output"),
              std::string::npos);
    EXPECT_NE(error_of("[[rules]]\nmodality = \"CT\"\n")
                  .find("test.toml:1:1: rules[0]: 'algorithm' is required"),
              std::string::npos);
    EXPECT_NE(error_of("[[rules]]\nalgorithm = \"body\"\ncalled_ae = \"OTHER\"\n")
                  .find("'OTHER' is not one of this node's AE titles"),
              std::string::npos);
    EXPECT_NE(error_of("[[peers]]\nname = \"pacs\"\nae_title = \"PACS\"\nhost = \"h\"\n")
                  .find("test.toml:1:1: peers[0]: name, ae_title, host and port are required"),
              std::string::npos);
    EXPECT_NE(error_of("[[peers]]\nname = \"a\"\nae_title = \"A\"\nhost = \"h\"\nport = 70000\n")
                  .find("test.toml:5:8: peers[0].port: value 70000 is out of range"),
              std::string::npos);
    EXPECT_NE(error_of("[[peers]]\nname = \"a\"\nae_title = \"A\"\nhost = \"h\"\nport = 1\n"
                       "[[peers]]\nname = \"a\"\nae_title = \"B\"\nhost = \"h\"\nport = 2\n")
                  .find("peer 'a' is defined twice"),
              std::string::npos);
    EXPECT_NE(error_of("[node]\nextra_ae_titles = [\"SEGNODE\"]\n").find("listed twice"),
              std::string::npos);
    EXPECT_NE(error_of("[output]\nuid_root = \"1.2.3.\"\n").find("output.uid_root"),
              std::string::npos);
    EXPECT_NE(error_of("[jobs]\nworkers = 0\n").find("test.toml:2:11: jobs.workers"),
              std::string::npos);
}
