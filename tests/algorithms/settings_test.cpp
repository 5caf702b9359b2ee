// Settings schemas and validation, the algorithm interface and the registry.
#include "segnode/algorithms/algorithm.hpp"
#include "segnode/algorithms/builtin.hpp"
#include "segnode/algorithms/registry.hpp"
#include "segnode/algorithms/settings.hpp"

#include <gtest/gtest.h>
#include <stdexcept>
#include <string>

namespace segnode::algorithms {
namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::vector<SettingSpec> sample_schema() {
    return {
        bool_setting("flag", false, "a flag"),
        int_setting("count", 2, 0, 10, "a count"),
        double_setting("level", -400.0, -1024.0, 3071.0, "a level"),
        string_setting("label", "x", "a label"),
        enum_setting("mode", "fast", {"fast", "exact"}, "a mode"),
    };
}

TEST(Settings, DefaultsWhenNothingIsGiven) {
    auto s = parse_settings(sample_schema(), {});
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_FALSE(s->get_bool("flag"));
    EXPECT_EQ(s->get_int("count"), 2);
    EXPECT_DOUBLE_EQ(s->get_double("level"), -400.0);
    EXPECT_EQ(s->get_string("label"), "x");
    EXPECT_EQ(s->get_string("mode"), "fast");
    EXPECT_EQ(s->to_string(), "count=2 flag=false label=x level=-400 mode=fast");
}

TEST(Settings, ParsesEveryType) {
    auto s = parse_settings(sample_schema(), {{"flag", "yes"},
                                              {"count", "+7"},
                                              {"level", "-500.5"},
                                              {"label", "a b=c"},
                                              {"mode", "exact"}});
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_TRUE(s->get_bool("flag"));
    EXPECT_EQ(s->get_int("count"), 7);
    EXPECT_DOUBLE_EQ(s->get_double("level"), -500.5);
    EXPECT_EQ(s->get_string("label"), "a b=c");
    EXPECT_EQ(s->get_string("mode"), "exact");
    for (const char* text : {"true", "TRUE", "1", "on"}) {
        EXPECT_TRUE(parse_settings(sample_schema(), {{"flag", text}})->get_bool("flag"));
    }
    for (const char* text : {"false", "0", "No", "off"}) {
        EXPECT_FALSE(parse_settings(sample_schema(), {{"flag", text}})->get_bool("flag"));
    }
    EXPECT_DOUBLE_EQ(parse_settings(sample_schema(), {{"level", "1e3"}})->get_double("level"),
                     1000.0);
}

TEST(Settings, UnknownKeyIsNamedWithTheKnownKeys) {
    auto s = parse_settings(sample_schema(), {{"count", "1"}, {"colour", "red"}});
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().message,
              "unknown setting 'colour' (known settings: count, flag, label, level, mode)");
}

TEST(Settings, WrongTypesAreNamed) {
    const std::vector<std::pair<RawSettings, std::string>> cases{
        {{{"count", "1.5"}}, "count: expected an integer, got '1.5'"},
        {{{"count", ""}}, "count: expected an integer, got ''"},
        {{{"count", "3x"}}, "count: expected an integer, got '3x'"},
        {{{"flag", "maybe"}}, "flag: expected a boolean (true/false), got 'maybe'"},
        {{{"level", "abc"}}, "level: expected a number, got 'abc'"},
        {{{"level", "nan"}}, "level: expected a finite number, got 'nan'"},
        {{{"level", "-inf"}}, "level: expected a finite number, got '-inf'"},
    };
    for (const auto& [raw, message] : cases) {
        auto s = parse_settings(sample_schema(), raw);
        ASSERT_FALSE(s.ok()) << message;
        EXPECT_EQ(s.error().message, message);
    }
}

TEST(Settings, OutOfRangeAndNotAllowedAreNamed) {
    const std::vector<std::pair<RawSettings, std::string>> cases{
        {{{"count", "11"}}, "count: 11 is out of range [0, 10]"},
        {{{"count", "-1"}}, "count: -1 is out of range [0, 10]"},
        {{{"count", "99999999999999999999"}},
         "count: '99999999999999999999' is out of range [0, 10]"},
        {{{"level", "5000"}}, "level: 5000 is out of range [-1024, 3071]"},
        {{{"level", "-1024.5"}}, "level: -1024.5 is out of range [-1024, 3071]"},
        {{{"mode", "slow"}}, "mode: 'slow' is not one of: fast, exact"},
    };
    for (const auto& [raw, message] : cases) {
        auto s = parse_settings(sample_schema(), raw);
        ASSERT_FALSE(s.ok()) << message;
        EXPECT_EQ(s.error().message, message);
    }
    // Bounds are inclusive.
    EXPECT_TRUE(parse_settings(sample_schema(), {{"count", "10"}, {"level", "-1024"}}).ok());
}

TEST(Settings, DuplicateKeyIsAnError) {
    auto s = parse_settings(sample_schema(), {{"count", "1"}, {"count", "2"}});
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().message, "setting 'count' given twice");
}

TEST(Settings, ParseAssignment) {
    auto a = parse_assignment("min_hu=-500");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->first, "min_hu");
    EXPECT_EQ(a->second, "-500");
    auto b = parse_assignment("label=a=b");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->second, "a=b");
    EXPECT_TRUE(parse_assignment("empty=").ok());
    EXPECT_FALSE(parse_assignment("min_hu").ok());
    EXPECT_FALSE(parse_assignment("=5").ok());
}

TEST(Settings, GettersThrowForKeysOutsideTheSchema) {
    auto s = parse_settings(sample_schema(), {});
    ASSERT_TRUE(s.ok());
    EXPECT_THROW((void)s->get_int("nope"), std::logic_error);
    EXPECT_THROW((void)s->get_int("flag"), std::logic_error);
    EXPECT_THROW((void)s->get_bool("count"), std::logic_error);
}

TEST(Settings, CompleteChecksHandBuiltSettings) {
    Settings partial;
    partial.set("count", std::int64_t{4});
    auto s = complete_settings(sample_schema(), partial);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(s->get_int("count"), 4);
    EXPECT_EQ(s->get_string("mode"), "fast");

    Settings wrong_type;
    wrong_type.set("count", 4.0);
    auto e = complete_settings(sample_schema(), wrong_type);
    ASSERT_FALSE(e.ok());
    EXPECT_TRUE(contains(e.error().message, "count: expected an integer")) << e.error().message;

    Settings out_of_range;
    out_of_range.set("count", std::int64_t{40});
    EXPECT_EQ(complete_settings(sample_schema(), out_of_range).error().message,
              "count: 40 is out of range [0, 10]");

    Settings unknown;
    unknown.set("what", true);
    EXPECT_TRUE(contains(complete_settings(sample_schema(), unknown).error().message,
                         "unknown setting 'what'"));
}

TEST(Settings, SpecProblems) {
    for (const auto& spec : sample_schema()) {
        EXPECT_FALSE(spec_problem(spec).has_value()) << spec.key;
    }
    EXPECT_TRUE(spec_problem(int_setting("Bad-Key", 0, 0, 1, "")).has_value());
    EXPECT_TRUE(spec_problem(int_setting("k", 5, 0, 1, "")).has_value());
    EXPECT_TRUE(spec_problem(enum_setting("k", "c", {"a", "b"}, "")).has_value());
    EXPECT_TRUE(spec_problem(enum_setting("k", "a", {}, "")).has_value());
    auto wrong = bool_setting("k", true, "");
    wrong.type = SettingType::Int;
    EXPECT_TRUE(spec_problem(wrong).has_value());
}

TEST(Registry, HoldsTheBuiltinsInOrder) {
    const Registry registry = make_builtin_registry();
    EXPECT_EQ(registry.names(),
              (std::vector<std::string>{"otsu", "threshold", "body", "lungs", "bone"}));
    for (const auto& algorithm : registry.algorithms()) {
        EXPECT_FALSE(info_problem(algorithm->info()).has_value()) << algorithm->name();
        EXPECT_FALSE(algorithm->info().description.empty());
        // Every built-in takes the shared post-processing settings.
        auto s = algorithm->parse_settings(
            {{"keep_largest", "1"}, {"fill_holes", "true"}, {"min_component_mm3", "10"}});
        EXPECT_TRUE(s.ok()) << algorithm->name();
        ASSERT_EQ(algorithm->info().segments.size(), 1U);
        EXPECT_EQ(algorithm->info().segments[0].label, 1);
        EXPECT_EQ(algorithm->info().segments[0].category.scheme, "SCT");
    }
    ASSERT_NE(registry.find("lungs"), nullptr);
    EXPECT_EQ(registry.find("lungs")->info().segments[0].type.value, "39607008");
    EXPECT_EQ(registry.find("body")->info().segments[0].type.value, "38266002");
    EXPECT_EQ(registry.find("bone")->info().segments[0].type.value, "272673000");
    EXPECT_EQ(registry.find("nope"), nullptr);
}

TEST(Registry, UnknownNameListsTheKnownOnes) {
    const Registry registry = make_builtin_registry();
    auto a = registry.get("liver");
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.error().message,
              "unknown algorithm 'liver' (known algorithms: otsu, threshold, body, lungs, bone)");
    auto b = registry.get("otsu");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ((*b)->name(), "otsu");
}

TEST(Registry, RejectsDuplicatesAndMalformedInfos) {
    Registry registry = make_builtin_registry();
    auto status = registry.add(make_otsu_algorithm());
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().message, "algorithm 'otsu' is already registered");
    EXPECT_FALSE(registry.add(nullptr).ok());
    EXPECT_EQ(registry.size(), 5U);
}

TEST(AlgorithmInfo, Problems) {
    AlgorithmInfo good;
    good.name = "ext-1";
    good.version = "2";
    good.segments.push_back({1, "X", {"1", "SCT", "a"}, {"2", "SCT", "b"}, {1, 2, 3}});
    EXPECT_FALSE(info_problem(good).has_value());
    auto bad = good;
    bad.name = "Ext";
    EXPECT_TRUE(info_problem(bad).has_value());
    bad = good;
    bad.version.clear();
    EXPECT_TRUE(info_problem(bad).has_value());
    bad = good;
    bad.segments.clear();
    EXPECT_TRUE(info_problem(bad).has_value());
    bad = good;
    bad.segments[0].label = 0;
    EXPECT_TRUE(info_problem(bad).has_value());
    bad = good;
    bad.segments.push_back(bad.segments[0]);
    EXPECT_TRUE(info_problem(bad).has_value());
    bad = good;
    bad.segments[0].type.meaning.clear();
    EXPECT_TRUE(info_problem(bad).has_value());
    bad = good;
    bad.settings = {int_setting("a", 1, 0, 2, ""), int_setting("a", 1, 0, 2, "")};
    EXPECT_TRUE(info_problem(bad).has_value());
}

TEST(Algorithm, ParseSettingsNamesAlgorithmAndKey) {
    const Registry registry = make_builtin_registry();
    const Algorithm& threshold = *registry.find("threshold");
    auto unknown = threshold.parse_settings({{"min", "1"}});
    ASSERT_FALSE(unknown.ok());
    EXPECT_EQ(unknown.error().message,
              "threshold: unknown setting 'min' (known settings: fill_holes, keep_largest, "
              "max_hu, min_component_mm3, min_hu)");
    auto type = threshold.parse_settings({{"keep_largest", "two"}});
    ASSERT_FALSE(type.ok());
    EXPECT_EQ(type.error().message, "threshold: keep_largest: expected an integer, got 'two'");
    auto range = threshold.parse_settings({{"min_component_mm3", "-1"}});
    ASSERT_FALSE(range.ok());
    EXPECT_EQ(range.error().message,
              "threshold: min_component_mm3: -1 is out of range [0, 1000000000000]");
    auto cross = threshold.parse_settings({{"min_hu", "100"}, {"max_hu", "-100"}});
    ASSERT_FALSE(cross.ok());
    EXPECT_EQ(cross.error().message, "threshold: min_hu (100) is above max_hu (-100)");
}

} // namespace
} // namespace segnode::algorithms

TEST(Settings, ParseAssignmentsKeepsOrderAndStopsAtTheFirstBadOne) {
    auto raw = segnode::algorithms::parse_assignments({"a=1", "b=x=y", "c="});
    ASSERT_TRUE(raw.ok()) << raw.error().message;
    const segnode::algorithms::RawSettings expected{{"a", "1"}, {"b", "x=y"}, {"c", ""}};
    EXPECT_EQ(*raw, expected);
    auto bad = segnode::algorithms::parse_assignments({"a=1", "oops", "=2"});
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("'oops' is not of the form key=value"), std::string::npos)
        << bad.error().message;
}
