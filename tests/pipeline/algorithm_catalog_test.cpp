// make_registry(config): built-ins plus external algorithms, and the checks that need more than
// the config file (built-in names, programs on PATH, setting ranges, segments_file contents);
// the run contract of an external algorithm seen from inside the program (environment,
// placeholders, settings.json, task.json) and its read-back rules, on a small phantom.
#include "segnode/pipeline/algorithm_catalog.hpp"
#include "segnode/pipeline/external_algorithm.hpp"
#include "test_util.hpp"

#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace segnode;
using segnode::test::TempDir;

namespace {

Config config_with(const std::string& toml, const std::filesystem::path& dir) {
    const auto file = dir / "segnode.toml";
    std::ofstream(file) << toml;
    auto config = load_config(file);
    EXPECT_TRUE(config.ok()) << (config.ok() ? "" : config.error().message);
    return config.ok() ? *config : Config{};
}

std::string entry(const std::string& name, const std::string& command,
                  const std::string& extra = "") {
    return "[[algorithms]]\nname = \"" + name + "\"\nversion = \"1.0\"\ncommand = " + command +
           "\n" + extra + "\n";
}

const std::string k_segment = "[[algorithms.segments]]\nlabel = 1\nname = \"Thing\"\n";

/// A 12 x 10 x 6 volume with an oblique direction, HU = i + 10 j + 100 k.
dicom::LoadedSeries small_series() {
    dicom::LoadedSeries s;
    Geometry g;
    g.dims = {12, 10, 6};
    g.spacing = {0.8, 0.9, 2.5};
    g.origin = {-40.0, 12.5, 100.0};
    const double c = std::cos(0.3);
    const double n = std::sin(0.3);
    g.direction = make_direction({c, n, 0}, {-n, c, 0}, {0, 0, 1});
    s.volume = make_volume<std::int16_t>(g, 0);
    for (std::size_t k = 0; k < 6; ++k) {
        for (std::size_t j = 0; j < 10; ++j) {
            for (std::size_t i = 0; i < 12; ++i) {
                s.volume.at(i, j, k) = static_cast<std::int16_t>(i + 10 * j + 100 * k);
            }
        }
    }
    s.study_uid = "1.2.3";
    s.series_uid = "1.2.3.4";
    s.frame_of_reference_uid = "1.2.3.5";
    s.modality = "CT";
    return s;
}

} // namespace

TEST(AlgorithmCatalog, BuiltinsPlusExternals) {
    TempDir dir;
    const Config config = config_with(
        entry("ext_one", R"(["/bin/true"])", "max_parallel = 2\ntimeout_s = 30") + k_segment,
        dir.path());
    auto registry = pipeline::make_registry(config);
    ASSERT_TRUE(registry.ok()) << registry.error().message;
    EXPECT_NE(registry->find("body"), nullptr);
    const auto* ext = registry->find("ext_one");
    ASSERT_NE(ext, nullptr);
    EXPECT_EQ(ext->info().max_parallel, 2U);
    EXPECT_EQ(ext->info().timeout_s, 30U);
    ASSERT_EQ(ext->info().segments.size(), 1U);
    // No codes given: SCT 85756007 "Tissue", and a colour from the palette.
    EXPECT_EQ(ext->info().segments[0].type.value, "85756007");
    EXPECT_EQ(ext->info().segments[0].category.meaning, "Tissue");
    EXPECT_NE(ext->info().segments[0].rgb, (std::array<std::uint8_t, 3>{0, 0, 0}));
    EXPECT_NE(dynamic_cast<const pipeline::ExternalAlgorithm*>(ext), nullptr);
}

TEST(AlgorithmCatalog, ErrorsNameTheEntry) {
    TempDir dir;
    auto clash = pipeline::make_registry(
        config_with(entry("otsu", R"(["/bin/true"])") + k_segment, dir.path()));
    ASSERT_FALSE(clash.ok());
    EXPECT_NE(clash.error().message.find("segnode.toml:1:1: algorithms[0] (otsu).name: 'otsu' is "
                                         "the name of a built-in algorithm"),
              std::string::npos)
        << clash.error().message;

    auto missing = pipeline::make_registry(
        config_with(entry("ext", R"(["segnode-no-such-model"])") + k_segment, dir.path()));
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message.find("program 'segnode-no-such-model' not found in PATH"),
              std::string::npos)
        << missing.error().message;

    std::ofstream(dir.path() / "not-exec.sh") << "#!/bin/sh\n";
    auto not_exec = pipeline::make_registry(
        config_with(entry("ext", "[\"" + (dir.path() / "not-exec.sh").string() + "\"]") + k_segment,
                    dir.path()));
    ASSERT_FALSE(not_exec.ok());
    EXPECT_NE(not_exec.error().message.find("does not exist or is not executable"),
              std::string::npos)
        << not_exec.error().message;

    auto range = pipeline::make_registry(config_with(
        entry("ext", R"(["/bin/true"])",
              "[algorithms.settings.t]\ntype = \"int\"\ndefault = 50\nmin = 0\nmax = 10") +
            k_segment,
        dir.path()));
    ASSERT_FALSE(range.ok());
    EXPECT_NE(range.error().message.find("settings.t"), std::string::npos) << range.error().message;
}

TEST(AlgorithmCatalog, SegmentsFromDcmqiJson) {
    TempDir dir;
    std::ofstream(dir.path() / "meta.json") << R"({
      "ContentCreatorName": "x",
      "segmentAttributes": [[
        {"labelID": 1, "SegmentDescription": "Liver",
         "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "123037004",
           "CodingSchemeDesignator": "SCT", "CodeMeaning": "Anatomical Structure"},
         "SegmentedPropertyTypeCodeSequence": {"CodeValue": "10200004",
           "CodingSchemeDesignator": "SCT", "CodeMeaning": "Liver"},
         "recommendedDisplayRGBValue": [221, 130, 101]},
        {"labelID": 5, "SegmentLabel": "Spleen"}
      ]]})";
    auto segments = pipeline::read_segments_file((dir.path() / "meta.json").string());
    ASSERT_TRUE(segments.ok()) << segments.error().message;
    ASSERT_EQ(segments->size(), 2U);
    EXPECT_EQ((*segments)[0].name, "Liver");
    EXPECT_EQ((*segments)[0].type.value, "10200004");
    EXPECT_EQ((*segments)[0].rgb, (std::array<std::uint8_t, 3>{221, 130, 101}));
    EXPECT_EQ((*segments)[1].label, 5);
    EXPECT_EQ((*segments)[1].name, "Spleen");
    EXPECT_EQ((*segments)[1].type.meaning, "Tissue");
}

TEST(AlgorithmCatalog, SegmentsFromNnunetDatasetJson) {
    TempDir dir;
    std::ofstream(dir.path() / "v2.json")
        << R"({"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": 2}})";
    auto v2 = pipeline::read_segments_file((dir.path() / "v2.json").string());
    ASSERT_TRUE(v2.ok()) << v2.error().message;
    ASSERT_EQ(v2->size(), 2U);
    EXPECT_EQ((*v2)[0].name, "liver");
    EXPECT_EQ((*v2)[1].label, 2);
    EXPECT_EQ((*v2)[1].category.value, "85756007");

    std::ofstream(dir.path() / "v1.json") << R"({"labels": {"0": "background", "3": "kidney"}})";
    auto v1 = pipeline::read_segments_file((dir.path() / "v1.json").string());
    ASSERT_TRUE(v1.ok()) << v1.error().message;
    ASSERT_EQ(v1->size(), 1U);
    EXPECT_EQ((*v1)[0].label, 3);
    EXPECT_EQ((*v1)[0].name, "kidney");

    std::ofstream(dir.path() / "bad.json") << R"({"labels": {"a": 300}})";
    auto bad = pipeline::read_segments_file((dir.path() / "bad.json").string());
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("label 300 is outside 1-255"), std::string::npos);
    std::ofstream(dir.path() / "neither.json") << R"({"x": 1})";
    EXPECT_NE(pipeline::read_segments_file((dir.path() / "neither.json").string())
                  .error()
                  .message.find("neither a dcmqi segmentation JSON"),
              std::string::npos);
    EXPECT_NE(pipeline::read_segments_file((dir.path() / "nope.json").string())
                  .error()
                  .message.find("cannot open segments_file"),
              std::string::npos);
}

TEST(ExternalAlgorithm, RunContractSeenByTheProgram) {
    TempDir dir;
    // The program records its argv and environment, then thresholds the input with nibabel.
    const auto script = dir.path() / "prog.py";
    std::ofstream(script) << R"(import json, os, sys
import nibabel as nib, numpy as np
json.dump({"argv": sys.argv[1:], "env": dict(os.environ)},
          open(os.path.join(os.environ["SEGNODE_WORK_DIR"], "seen.json"), "w"))
img = nib.load(os.environ["SEGNODE_INPUT"])
s = json.load(open(os.environ["SEGNODE_SETTINGS"]))
labels = (np.asanyarray(img.dataobj) >= s["cut"]).astype(np.uint16) * 2
nib.save(nib.Nifti1Image(labels, img.affine), sys.argv[1])
)";
    const Config config = config_with(
        entry("contract",
              "[\"/usr/bin/python3\", \"" + script.string() +
                  "\", \"{output}\", \"--cut={setting.cut}\", \"{{literal}}\", \"{job_id}\"]",
              "env = { OMP_NUM_THREADS = \"3\" }\n[algorithms.settings.cut]\ntype = \"int\"\n"
              "default = 250\nmin = 0\nmax = 1000") +
            "[[algorithms.segments]]\nlabel = 2\nname = \"Upper\"\n",
        dir.path());
    auto registry = pipeline::make_registry(config);
    ASSERT_TRUE(registry.ok()) << registry.error().message;
    const auto* ext = dynamic_cast<const pipeline::ExternalAlgorithm*>(registry->find("contract"));
    ASSERT_NE(ext, nullptr);
    auto settings = ext->parse_settings({{"cut", "300"}});
    ASSERT_TRUE(settings.ok()) << settings.error().message;

    const dicom::LoadedSeries source = small_series();
    pipeline::ExternalTask task;
    task.job_id = 42;
    task.calling_ae = "MODALITY";
    const auto work = dir.path() / "work";
    std::vector<std::string> log;
    algorithms::RunContext context;
    context.log = [&log](std::string_view line) { log.emplace_back(line); };
    auto outcome = ext->run_external(source, task, *settings, work, context);
    ASSERT_TRUE(outcome.ok()) << outcome.error().message;
    ASSERT_TRUE(outcome->labels.has_value());

    // Labels: 2 where HU >= 300 (k >= 3), on the source's exact geometry.
    const LabelMap& labels = *outcome->labels;
    EXPECT_EQ(labels.geometry.dims, source.volume.geometry.dims);
    for (std::size_t i = 0; i < labels.voxels.size(); ++i) {
        ASSERT_EQ(labels.voxels[i], source.volume.voxels[i] >= 300 ? 2 : 0) << i;
    }

    const auto seen = nlohmann::json::parse(std::ifstream(work / "seen.json"));
    const std::vector<std::string> argv = seen["argv"];
    ASSERT_EQ(argv.size(), 4U);
    EXPECT_EQ(argv[0], (work / "out" / "labels.nii").string());
    EXPECT_EQ(argv[1], "--cut=300");
    EXPECT_EQ(argv[2], "{literal}");
    EXPECT_EQ(argv[3], "42");
    const auto& env = seen["env"];
    EXPECT_EQ(env["SEGNODE_INPUT"], (work / "in" / "image.nii").string());
    EXPECT_EQ(env["SEGNODE_SETTING_CUT"], "300");
    EXPECT_EQ(env["SEGNODE_JOB_ID"], "42");
    EXPECT_EQ(env["OMP_NUM_THREADS"], "3");
    // A clean environment: only what the contract names (python itself may add LC_CTYPE).
    for (const auto& [key, value] : env.items()) {
        const bool allowed = key.rfind("SEGNODE_", 0) == 0 || key == "PATH" || key == "HOME" ||
                             key == "LANG" || key == "OMP_NUM_THREADS" || key == "LC_CTYPE" ||
                             key == "CUDA_VISIBLE_DEVICES";
        EXPECT_TRUE(allowed) << "unexpected variable " << key;
    }
    const auto task_doc = nlohmann::json::parse(std::ifstream(work / "task.json"));
    EXPECT_EQ(task_doc["job_id"], 42);
    EXPECT_EQ(task_doc["calling_ae"], "MODALITY");
    EXPECT_EQ(task_doc["series_instance_uid"], "1.2.3.4");
    EXPECT_EQ(task_doc["geometry"]["dims"][0], 12);
    const auto settings_doc = nlohmann::json::parse(std::ifstream(work / "settings.json"));
    EXPECT_EQ(settings_doc["cut"], 300);
}

TEST(ExternalAlgorithm, PerSegmentMasksAndResampling) {
    TempDir dir;
    // TotalSegmentator-style: one mask per structure, written at half the resolution.
    const auto script = dir.path() / "masks.py";
    std::ofstream(script) << R"(import os
import nibabel as nib, numpy as np
img = nib.load(os.environ["SEGNODE_INPUT"])
hu = np.asanyarray(img.dataobj)[::2, ::2, :]
affine = img.affine.copy()
affine[:3, 0] *= 2
affine[:3, 1] *= 2
out = os.environ["SEGNODE_OUT_DIR"]
nib.save(nib.Nifti1Image((hu < 100).astype(np.uint8), affine), os.path.join(out, "low.nii.gz"))
nib.save(nib.Nifti1Image((hu >= 400).astype(np.uint8), affine), os.path.join(out, "high.nii.gz"))
)";
    const std::string toml = entry("masks", "[\"/usr/bin/python3\", \"" + script.string() + "\"]",
                                   "output_kind = \"per_segment\"\nresample = true") +
                             "[[algorithms.segments]]\nlabel = 1\nname = \"Low\"\n"
                             "file = \"low.nii.gz\"\n"
                             "[[algorithms.segments]]\nlabel = 2\nname = \"High\"\n"
                             "file = \"high.nii.gz\"\n";
    auto registry = pipeline::make_registry(config_with(toml, dir.path()));
    ASSERT_TRUE(registry.ok()) << registry.error().message;
    const auto* ext = dynamic_cast<const pipeline::ExternalAlgorithm*>(registry->find("masks"));
    ASSERT_NE(ext, nullptr);
    const dicom::LoadedSeries source = small_series();
    auto outcome = ext->run_external(source, {}, *ext->parse_settings({}), dir.path() / "w", {});
    ASSERT_TRUE(outcome.ok()) << outcome.error().message;
    ASSERT_EQ(outcome->notes.size(), 2U);
    EXPECT_NE(outcome->notes[0].find("resampled low.nii.gz"), std::string::npos);
    // Nearest neighbour from the half-resolution grid: voxel (i, j) takes (i/2*2, j/2*2)'s HU
    // (rounding to the nearest coarse voxel centre), so compare against that.
    const LabelMap& labels = *outcome->labels;
    std::size_t checked = 0;
    for (std::size_t k = 0; k < 6; ++k) {
        for (std::size_t j = 0; j < 10; j += 2) {
            for (std::size_t i = 0; i < 12; i += 2) {
                const int hu = source.volume.at(i, j, k);
                const int expected = hu >= 400 ? 2 : (hu < 100 ? 1 : 0);
                ASSERT_EQ(labels.at(i, j, k), expected) << i << "," << j << "," << k;
                ++checked;
            }
        }
    }
    EXPECT_EQ(checked, 6U * 5U * 6U);
}
