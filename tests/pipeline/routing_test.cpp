// Routing rules: which keys match, first-match order, destination resolution and the checks
// that need the algorithm registry.
#include "segnode/algorithms/registry.hpp"
#include "segnode/pipeline/routing.hpp"

#include <gtest/gtest.h>

namespace segnode::test {
namespace {

store::SeriesRow chest_ct() {
    store::SeriesRow s;
    s.id = 7;
    s.attrs.series_uid = "1.2.3";
    s.attrs.modality = "CT";
    s.attrs.description = "Thorax 1.0 B31f";
    s.attrs.body_part = "chest";
    s.calling_ae = "PACS";
    s.called_ae = "SEG_LUNGS";
    s.peer_address = "10.0.0.5";
    s.instance_count = 120;
    return s;
}

Config parse(const std::string& text) {
    auto c = parse_config(text, "r.toml");
    EXPECT_TRUE(c.ok()) << c.error().message;
    return c.ok() ? *c : Config{};
}

TEST(Routing, EachMatchKeyCanRejectASeries) {
    const auto series = chest_ct();
    RuleConfig rule;
    rule.algorithm = "lungs";
    std::string why;
    EXPECT_TRUE(pipeline::rule_matches(rule, series, &why)) << "no keys: matches anything";

    auto reject = [&](RuleConfig r, const std::string& expected) {
        std::string reason;
        EXPECT_FALSE(pipeline::rule_matches(r, series, &reason)) << expected;
        EXPECT_NE(reason.find(expected), std::string::npos) << reason;
    };
    RuleConfig r = rule;
    r.called_ae = "SEG_BODY";
    reject(r, "called AE SEG_LUNGS is not SEG_BODY");
    r = rule;
    r.calling_ae = "CT1";
    reject(r, "calling AE PACS is not CT1");
    r = rule;
    r.modality = "MR";
    reject(r, "modality CT is not MR");
    r = rule;
    r.body_part = "ABDOMEN";
    reject(r, "body part 'chest' is not ABDOMEN");
    r = rule;
    r.series_description = "^abdomen";
    reject(r, "does not match /^abdomen/");
    {
        // A sender's 100 000-character SeriesDescription: not matched, and no stack overflow in
        // std::regex_search (it recurses per character).
        auto long_description = series;
        long_description.attrs.description = std::string(100000, 'a');
        r = rule;
        r.series_description = ".*x";
        std::string reason;
        EXPECT_FALSE(pipeline::rule_matches(r, long_description, &reason));
        EXPECT_NE(reason.find("series description is 100000 characters long"), std::string::npos)
            << reason;
    }
    r = rule;
    r.min_instances = 121;
    reject(r, "120 instances < min_instances 121");

    r = rule; // and all of them at once, matching (case-insensitive where documented)
    r.called_ae = "SEG_LUNGS";
    r.calling_ae = "PACS";
    r.modality = "ct";
    r.body_part = "CHEST";
    r.series_description = "thorax|chest";
    r.min_instances = 120;
    EXPECT_TRUE(pipeline::rule_matches(r, series, &why)) << why;
}

TEST(Routing, FirstMatchWinsAndNoMatchIsNull) {
    const Config config = parse(R"TOML(
[node]
extra_ae_titles = ["SEG_LUNGS"]
[[rules]]
name = "mr"
modality = "MR"
algorithm = "otsu"
[[rules]]
name = "lungs-ae"
called_ae = "SEG_LUNGS"
algorithm = "lungs"
[[rules]]
name = "any-ct"
modality = "CT"
algorithm = "body"
)TOML");
    auto series = chest_ct();
    ASSERT_NE(pipeline::first_match(config, series), nullptr);
    EXPECT_EQ(pipeline::first_match(config, series)->name, "lungs-ae");
    series.called_ae = "SEGNODE";
    EXPECT_EQ(pipeline::first_match(config, series)->name, "any-ct");
    series.attrs.modality = "PT";
    EXPECT_EQ(pipeline::first_match(config, series), nullptr);
}

TEST(Routing, SenderDestinationPrefersThePeerAtTheSendersAddress) {
    const Config config = parse(R"TOML(
[[peers]]
name = "pacs-b"
ae_title = "PACS"
host = "10.0.0.9"
port = 104
[[peers]]
name = "pacs-a"
ae_title = "PACS"
host = "10.0.0.5"
port = 11112
[[peers]]
name = "ris"
ae_title = "RIS"
host = "10.0.0.7"
port = 104
)TOML");
    auto series = chest_ct();
    auto dest = pipeline::resolve_destination(config, "sender", series);
    ASSERT_TRUE(dest.ok()) << dest.error().message;
    EXPECT_EQ(dest->host, "10.0.0.5");
    EXPECT_EQ(dest->port, 11112);
    series.peer_address = "10.9.9.9"; // no host match: the first peer with that AE title
    EXPECT_EQ(pipeline::resolve_destination(config, "sender", series)->host, "10.0.0.9");
    EXPECT_EQ(pipeline::resolve_destination(config, "ris", series)->ae_title, "RIS");
    series.calling_ae = "STRANGER";
    auto missing = pipeline::resolve_destination(config, "sender", series);
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message.find("no [[peers]] entry has AE title 'STRANGER'"),
              std::string::npos);
}

TEST(Routing, ValidateRulesNamesFileAndLineOfUnknownAlgorithmsAndBadSettings) {
    const auto registry = algorithms::make_builtin_registry();
    Config config = parse("[[rules]]\nname = \"x\"\nalgorithm = \"lung\"\n");
    auto st = pipeline::validate_rules(config, registry);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("r.toml:3:13: rules[0] (x).algorithm: unknown algorithm "
                                      "'lung' (known: otsu, threshold, body, lungs, bone)"),
              std::string::npos)
        << st.error().message;

    config = parse("[[rules]]\nalgorithm = \"threshold\"\nsettings = { min_hu = \"high\" }\n");
    st = pipeline::validate_rules(config, registry);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("r.toml:3:12: rules[0] (rule1).settings: "),
              std::string::npos)
        << st.error().message;
    EXPECT_NE(st.error().message.find("min_hu"), std::string::npos);

    config = parse("[[rules]]\nalgorithm = \"threshold\"\nsettings = { min_hu = 300 }\n");
    EXPECT_TRUE(pipeline::validate_rules(config, registry).ok());
}

TEST(Routing, OutputsAndSettingsText) {
    EXPECT_EQ(pipeline::outputs_text({OutputKind::Seg, OutputKind::Rtstruct}), "seg,rtstruct");
    EXPECT_EQ(pipeline::parse_outputs("both")->size(), 2U);
    EXPECT_EQ(*pipeline::parse_outputs("rtstruct"), std::vector<OutputKind>{OutputKind::Rtstruct});
    EXPECT_EQ(*pipeline::parse_outputs("seg,labelmap"),
              (std::vector<OutputKind>{OutputKind::Seg, OutputKind::Labelmap}));
    EXPECT_EQ(pipeline::outputs_text({OutputKind::Labelmap, OutputKind::Seg}), "labelmap,seg");
    EXPECT_FALSE(pipeline::parse_outputs("nifti").ok());
    EXPECT_FALSE(pipeline::parse_outputs("seg,png").ok());
    const std::vector<std::pair<std::string, std::string>> settings{{"a", "1"}, {"b", "x=y"}};
    EXPECT_EQ(pipeline::parse_settings_text(pipeline::settings_text(settings)), settings);
}

} // namespace
} // namespace segnode::test
