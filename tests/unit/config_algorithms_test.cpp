// [[algorithms]] and algorithms_dir: the external algorithm registration keys, their defaults
// per layout, and the errors `config check` reports with file:line:column.
#include "segnode/core/config.hpp"
#include "test_util.hpp"

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

const char* k_full = R"(
[[algorithms]]
name = "pm_body"
version = "1.9.4"
description = "plastimatch patient (body) segmentation"
command = ["plastimatch", "segment", "--input", "{input}", "--output-img", "{output}"]
input_format = "nrrd"
output = "labels.nrrd"
timeout_s = 900
memory_mb = 8192
env = { OMP_NUM_THREADS = "2" }

[algorithms.settings.lower_hu]
type = "float"
default = -300.0
min = -1024.0
max = 3071.0
help = "lower threshold"

[[algorithms.segments]]
label = 1
name = "Body"
category = ["SCT", "123037004", "Anatomical Structure"]
type = ["SCT", "38266002", "Entire body"]
color = [177, 122, 101]
)";

/// One [[algorithms]] entry with `extra` lines inserted after the command.
std::string algo(const std::string& extra, const std::string& command = R"(["prog", "{input}"])") {
    return "[[algorithms]]\nname = \"ext\"\nversion = \"1\"\ncommand = " + command + "\n" + extra +
           "\n[[algorithms.segments]]\nlabel = 1\nname = \"A\"\n";
}

} // namespace

TEST(ConfigAlgorithms, ReadsTheDocumentedEntry) {
    auto r = parse(k_full);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->algorithms.size(), 1U);
    const ExternalAlgorithmConfig& a = r->algorithms[0];
    EXPECT_EQ(a.name, "pm_body");
    EXPECT_EQ(a.version, "1.9.4");
    EXPECT_EQ(a.command.size(), 6U);
    EXPECT_EQ(a.command[3], "{input}");
    EXPECT_EQ(a.input_format, "nrrd");
    EXPECT_EQ(a.output, "labels.nrrd");
    EXPECT_EQ(a.timeout_s, 900U);
    EXPECT_EQ(a.memory_mb, 8192U);
    ASSERT_EQ(a.env.size(), 1U);
    EXPECT_EQ(a.env[0].first, "OMP_NUM_THREADS");
    EXPECT_EQ(a.env[0].second, "2");
    ASSERT_EQ(a.settings.size(), 1U);
    EXPECT_EQ(a.settings[0].key, "lower_hu");
    EXPECT_EQ(a.settings[0].type, "float");
    EXPECT_EQ(std::stod(a.settings[0].default_text), -300.0);
    EXPECT_EQ(a.settings[0].min, -1024.0);
    EXPECT_EQ(a.settings[0].max, 3071.0);
    ASSERT_EQ(a.segments.size(), 1U);
    EXPECT_EQ(a.segments[0].label, 1U);
    EXPECT_EQ(a.segments[0].category[1], "123037004");
    EXPECT_EQ(a.segments[0].type[2], "Entire body");
    EXPECT_EQ(a.segments[0].color[0], 177);
    EXPECT_EQ(a.layout, "plain");
    EXPECT_EQ(a.output_kind, "labelmap");
    EXPECT_EQ(a.max_parallel, 1U); // external algorithms run one at a time unless told
    EXPECT_EQ(a.where.rfind("test.toml:2:", 0), 0U) << a.where;
}

TEST(ConfigAlgorithms, LayoutDefaults) {
    auto kaapana = parse(algo("layout = \"kaapana\""));
    ASSERT_TRUE(kaapana.ok()) << kaapana.error().message;
    EXPECT_EQ(kaapana->algorithms[0].input_format, "nrrd");
    EXPECT_EQ(kaapana->algorithms[0].output, "*.nrrd");

    auto nnunet = parse(algo("layout = \"nnunet\""));
    ASSERT_TRUE(nnunet.ok()) << nnunet.error().message;
    EXPECT_EQ(nnunet->algorithms[0].input_format, "nifti_gz");
    EXPECT_EQ(nnunet->algorithms[0].output, "case.nii.gz");

    auto mercure = parse("[[algorithms]]\nname = \"m\"\nversion = \"1\"\ncommand = [\"x\"]\n"
                         "layout = \"mercure\"\n");
    ASSERT_TRUE(mercure.ok()) << mercure.error().message;
    EXPECT_EQ(mercure->algorithms[0].input_format, "dicom");
    EXPECT_EQ(mercure->algorithms[0].output_kind, "dicom");

    auto plain = parse(algo(""));
    ASSERT_TRUE(plain.ok()) << plain.error().message;
    // Uncompressed by default: gzip of a 512 x 512 x 300 CT costs seconds, the disk a moment.
    EXPECT_EQ(plain->algorithms[0].input_format, "nifti");
    EXPECT_EQ(plain->algorithms[0].output, "labels.nii");
}

TEST(ConfigAlgorithms, PlaceholderErrors) {
    EXPECT_NE(error_of(algo("", R"(["prog", "{inptu}"])"))
                  .find("test.toml:4:11: algorithms[0].command: '{inptu}': unknown placeholder "
                        "{inptu}"),
              std::string::npos)
        << error_of(algo("", R"(["prog", "{inptu}"])"));
    EXPECT_NE(error_of(algo("", R"(["prog", "--t={setting.nope}"])"))
                  .find("{setting.nope} names no declared setting"),
              std::string::npos);
    EXPECT_NE(error_of(algo("", R"(["prog", "{input"])")).find("without a closing '}'"),
              std::string::npos);
    // Literal braces and declared settings are fine.
    auto ok = parse("[[algorithms]]\nname = \"e\"\nversion = \"1\"\n"
                    "command = [\"python3\", \"-c\", \"print({{1: 2}})\", \"{setting.t}\"]\n"
                    "[algorithms.settings.t]\ntype = \"int\"\ndefault = 3\n"
                    "[[algorithms.segments]]\nlabel = 1\nname = \"A\"\n");
    EXPECT_TRUE(ok.ok()) << ok.error().message;
}

TEST(ConfigAlgorithms, SegmentErrors) {
    const std::string dup = "[[algorithms]]\nname = \"e\"\nversion = \"1\"\ncommand = [\"p\"]\n"
                            "[[algorithms.segments]]\nlabel = 2\nname = \"A\"\n"
                            "[[algorithms.segments]]\nlabel = 2\nname = \"B\"\n";
    EXPECT_NE(error_of(dup).find("test.toml:8:1: algorithms[0].segments[1].label: duplicate "
                                 "label 2 (also A)"),
              std::string::npos)
        << error_of(dup);
    const std::string zero = "[[algorithms]]\nname = \"e\"\nversion = \"1\"\ncommand = [\"p\"]\n"
                             "[[algorithms.segments]]\nlabel = 0\nname = \"A\"\n";
    EXPECT_NE(error_of(zero).find("test.toml:6:9: algorithms[0].segments[0].label: label 0 is "
                                  "the background"),
              std::string::npos)
        << error_of(zero);
    const std::string code = "[[algorithms]]\nname = \"e\"\nversion = \"1\"\ncommand = [\"p\"]\n"
                             "[[algorithms.segments]]\nlabel = 1\nname = \"A\"\n"
                             "category = [\"SCT\", \"123037004\"]\n";
    EXPECT_NE(error_of(code).find("test.toml:8:12: algorithms[0].segments[0].category: expected "
                                  "a code triplet"),
              std::string::npos)
        << error_of(code);
    const std::string colour = "[[algorithms]]\nname = \"e\"\nversion = \"1\"\ncommand = [\"p\"]\n"
                               "[[algorithms.segments]]\nlabel = 1\nname = \"A\"\n"
                               "color = [1, 2, 300]\n";
    EXPECT_NE(error_of(colour).find("color: expected [r, g, b] with values 0-255"),
              std::string::npos);
    const std::string none = "[[algorithms]]\nname = \"e\"\nversion = \"1\"\ncommand = [\"p\"]\n";
    EXPECT_NE(error_of(none).find("declare the segments it produces"), std::string::npos);
    EXPECT_NE(error_of(algo("output_kind = \"per_segment\""))
                  .find("label 1 has no 'file' (output_kind = \"per_segment\""),
              std::string::npos);
}

TEST(ConfigAlgorithms, SettingAndKeyErrors) {
    EXPECT_NE(error_of(algo("[algorithms.settings.t]\ntype = \"int\"\ndefault = 1.5"))
                  .find("algorithms[0].settings.t.default: does not match type = \"int\""),
              std::string::npos)
        << error_of(algo("[algorithms.settings.t]\ntype = \"int\"\ndefault = 1.5"));
    EXPECT_NE(error_of(algo("[algorithms.settings.t]\ntype = \"enum\"\ndefault = \"a\""))
                  .find("an enum setting needs 'choices'"),
              std::string::npos);
    EXPECT_NE(error_of(algo("[algorithms.settings.t]\ntype = \"decimal\"\ndefault = 1"))
                  .find("'decimal' is not one of: int, float, bool, string, enum"),
              std::string::npos);
    EXPECT_NE(error_of(algo("timeot_s = 5")).find("algorithms[0].timeot_s: unknown key"),
              std::string::npos);
    EXPECT_NE(error_of(algo("layout = \"slurm\""))
                  .find("'slurm' is not one of: plain, kaapana, "
                        "nnunet, mercure"),
              std::string::npos);
    EXPECT_NE(error_of(algo("env = { SEGNODE_INPUT = \"x\" }"))
                  .find("SEGNODE_* variables are set by segnode"),
              std::string::npos);
    EXPECT_NE(error_of(algo("output = \"../labels.nii\"")).find("without '..'"), std::string::npos);
    EXPECT_NE(error_of(algo("") + "\n" + algo("")).find("algorithm 'ext' is defined twice"),
              std::string::npos);
    EXPECT_NE(error_of("[[algorithms]]\nname = \"Body!\"\nversion = \"1\"\ncommand = [\"p\"]\n")
                  .find("may contain only lower case letters"),
              std::string::npos);
}

TEST(ConfigAlgorithms, AlgorithmsDirAddsOneEntryPerFile) {
    segnode::test::TempDir dir;
    std::filesystem::create_directories(dir.path() / "algorithms.d");
    std::ofstream(dir.path() / "algorithms.d" / "b.toml")
        << "[[algorithms]]\nname = \"second\"\nversion = \"2\"\ncommand = [\"p\"]\n"
           "segments_file = \"dataset.json\"\n";
    std::ofstream(dir.path() / "algorithms.d" / "a.toml") << algo("");
    std::ofstream(dir.path() / "algorithms.d" / "notes.txt") << "ignored";
    std::ofstream(dir.path() / "segnode.toml") << "algorithms_dir = \"algorithms.d\"\n" << k_full;
    auto r = load_config(dir.path() / "segnode.toml");
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->algorithms.size(), 3U);
    EXPECT_EQ(r->algorithms[0].name, "pm_body"); // the main file's first
    EXPECT_EQ(r->algorithms[1].name, "ext");     // then a.toml, b.toml
    EXPECT_EQ(r->algorithms[2].name, "second");
    // segments_file is resolved against the file that names it.
    EXPECT_EQ(r->algorithms[2].segments_file,
              (dir.path() / "algorithms.d" / "dataset.json").lexically_normal().string());

    // An error in a dropped-in file names that file and line.
    std::ofstream(dir.path() / "algorithms.d" / "c.toml")
        << "[[algorithms]]\nname = \"third\"\nversion = \"1\"\ncommand = [\"p\"]\n"
           "timeout_s = 0\n[[algorithms.segments]]\nlabel = 1\nname = \"A\"\n";
    auto bad = load_config(dir.path() / "segnode.toml");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("c.toml:5:13: algorithms[0].timeout_s: value 0 is out of "
                                       "range"),
              std::string::npos)
        << bad.error().message;

    // Two entries in one file are refused.
    std::ofstream(dir.path() / "algorithms.d" / "c.toml") << algo("") << algo("");
    auto two = load_config(dir.path() / "segnode.toml");
    ASSERT_FALSE(two.ok());
    EXPECT_NE(two.error().message.find("c.toml: expected exactly one [[algorithms]] entry"),
              std::string::npos)
        << two.error().message;
}

TEST(ConfigAlgorithms, MissingAlgorithmsDirIsAnError) {
    auto r = parse("algorithms_dir = \"/nonexistent/segnode-algorithms\"\n");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("'/nonexistent/segnode-algorithms' is not a directory"),
              std::string::npos)
        << r.error().message;
}

TEST(ConfigAlgorithms, SampleConfigExampleIsValidWhenUncommented) {
    std::ifstream in(std::string(SEGNODE_SOURCE_DIR) + "/config/segnode.toml");
    std::string line;
    std::string block;
    bool inside = false;
    while (std::getline(in, line)) {
        if (line == "# [[algorithms]]") {
            inside = true;
        }
        if (inside) {
            if (line.rfind('#', 0) != 0) {
                break;
            }
            block += (line.size() > 2 ? line.substr(2) : std::string()) + "\n";
        }
    }
    ASSERT_FALSE(block.empty()) << "the sample config has no commented [[algorithms]] example";
    auto r = parse(block);
    ASSERT_TRUE(r.ok()) << r.error().message << "\n" << block;
    ASSERT_EQ(r->algorithms.size(), 1U);
    EXPECT_EQ(r->algorithms[0].name, "pm_body");
    EXPECT_EQ(r->algorithms[0].settings.size(), 1U);
    EXPECT_EQ(r->algorithms[0].segments.size(), 1U);
}
