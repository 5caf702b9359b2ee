// Stop tokens of the series loader and the SEG/RTSTRUCT writers: a token stopped before the
// call returns "cancelled" at once and writes nothing; a token stopped from another thread
// ends a 512 x 512 x 300 load (and a 117-segment write) early, with no output file left.
#include "label_maps.hpp"
#include "phantom.hpp"
#include "segnode/dicom/environment.hpp"
#include "segnode/dicom/rtstruct_writer.hpp"
#include "segnode/dicom/seg_writer.hpp"
#include "segnode/dicom/series_loader.hpp"
#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <gtest/gtest.h>
#include <mutex>
#include <stop_token>
#include <thread>

namespace segnode::dicom {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using segnode::test::TempDir;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<SegmentInfo> tissue_segments(unsigned count) {
    std::vector<SegmentInfo> segments;
    for (unsigned l = 1; l <= count; ++l) {
        segments.push_back({static_cast<std::uint8_t>(l),
                            "Segment " + std::to_string(l),
                            {"85756007", "SCT", "Tissue"},
                            {"85756007", "SCT", "Tissue"},
                            {static_cast<std::uint8_t>(l * 37), 80, 120}});
    }
    return segments;
}

/// A 512 x 512 x 300 phantom series and its loaded volume, shared by the tests of this file
/// (writing it takes a few seconds).
class Large : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        ASSERT_TRUE(init_dicom_environment().ok());
        s_dir = new TempDir;
        phantom::PhantomSpec spec;
        spec.rows = 512;
        spec.cols = 512;
        spec.slices = 300;
        phantom::write_ct_series(spec, s_dir->path() / "ct");
    }
    static void TearDownTestSuite() {
        delete s_dir;
        s_dir = nullptr;
    }
    static fs::path series_dir() { return s_dir->path() / "ct"; }
    static fs::path out(const char* name) { return s_dir->path() / name; }

    static TempDir* s_dir;
};
TempDir* Large::s_dir = nullptr;

TEST_F(Large, PreStoppedLoadReturnsCancelled) {
    std::stop_source source;
    source.request_stop();
    LoadOptions options;
    options.stop = source.get_token();
    std::size_t progress_calls = 0;
    options.progress = [&](std::size_t, std::size_t) { ++progress_calls; };
    const auto start = Clock::now();
    const auto r = load_series_dir(series_dir(), options);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "cancelled");
    EXPECT_EQ(progress_calls, 0U);
    EXPECT_LT(seconds_since(start), 0.5);
}

TEST_F(Large, StopFromAnotherThreadEndsA300SliceLoadEarly) {
    std::stop_source source;
    LoadOptions options;
    options.stop = source.get_token();
    std::mutex mutex;
    std::condition_variable changed;
    std::size_t done = 0;
    std::size_t total = 0;
    options.progress = [&](std::size_t n, std::size_t of) {
        const std::lock_guard lock(mutex);
        done = n;
        total = of;
        changed.notify_all();
    };
    Result<LoadedSeries> result = Error{"not run"};
    Clock::time_point finished;
    std::jthread loader([&] {
        result = load_series_dir(series_dir(), options);
        finished = Clock::now();
        const std::lock_guard lock(mutex);
        changed.notify_all();
    });
    Clock::time_point requested;
    std::size_t done_at_request = 0;
    {
        std::unique_lock lock(mutex);
        // Stop once 20 of the 300 files are decoded (or the loader ended by itself).
        changed.wait(lock, [&] { return done >= 20 || finished != Clock::time_point{}; });
        done_at_request = done;
        requested = Clock::now();
        source.request_stop(); // from this thread, while the loader's workers run
    }
    loader.join();
    ASSERT_FALSE(result.ok()) << "the load finished before the stop request";
    EXPECT_EQ(result.error().message, "cancelled");
    const double latency = std::chrono::duration<double>(finished - requested).count();
    std::printf("load stopped after %zu of %zu files; returned %.3f s after the request\n", done,
                total, latency);
    EXPECT_GE(done_at_request, 20U);
    EXPECT_LT(done, 300U);
    EXPECT_LT(latency, 0.5);
}

TEST_F(Large, PreStoppedWritersWriteNothing) {
    auto series = load_series_dir(series_dir());
    ASSERT_TRUE(series.ok()) << series.error().message;
    const auto& d = series->volume.geometry.dims;
    LabelMap labels{series->volume.geometry,
                    segnode::to_buffer(phantom::many_label_map(d[0], d[1], d[2], 117))};
    std::stop_source source;
    source.request_stop();
    DerivedObjectOptions options;
    options.stop = source.get_token();

    auto seg = write_seg(*series, labels, tissue_segments(117), options, out("pre.seg.dcm"));
    ASSERT_FALSE(seg.ok());
    EXPECT_EQ(seg.error().message, "cancelled");
    EXPECT_FALSE(fs::exists(out("pre.seg.dcm")));

    auto rt = write_rtstruct(*series, labels, tissue_segments(117), options, out("pre.rt.dcm"));
    ASSERT_FALSE(rt.ok());
    EXPECT_EQ(rt.error().message, "cancelled");
    EXPECT_FALSE(fs::exists(out("pre.rt.dcm")));
}

/// Runs `write` with a token stopped `delay` after the start; returns the outcome and how long
/// after the request the call returned (negative: it returned before the request).
template <class Write>
std::pair<Result<WrittenObject>, double> stop_after(std::chrono::milliseconds delay, Write write) {
    std::stop_source source;
    Result<WrittenObject> result = Error{"not run"};
    Clock::time_point finished;
    Clock::time_point requested;
    {
        std::jthread writer([&] {
            result = write(source.get_token());
            finished = Clock::now();
        });
        std::this_thread::sleep_for(delay);
        requested = Clock::now();
        source.request_stop();
    }
    return {std::move(result), std::chrono::duration<double>(finished - requested).count()};
}

TEST_F(Large, StopDuringA117SegmentWriteRemovesTheFile) {
    auto series = load_series_dir(series_dir());
    ASSERT_TRUE(series.ok()) << series.error().message;
    const auto& d = series->volume.geometry.dims;
    LabelMap labels{series->volume.geometry,
                    segnode::to_buffer(phantom::many_label_map(d[0], d[1], d[2], 117))};
    const auto segments = tissue_segments(117);
    // Several delays: the SEG takes ~0.5 s and the RTSTRUCT ~1 s here; whichever point each
    // request lands on, the call returns "cancelled" promptly and leaves no file (or, when it
    // came too late, the object is complete).
    int cancelled = 0;
    for (const int ms : {20, 150, 300}) {
        for (const bool seg : {true, false}) {
            const fs::path file = out(seg ? "stop.seg.dcm" : "stop.rt.dcm");
            auto [r, latency] = stop_after(std::chrono::milliseconds(ms), [&](std::stop_token t) {
                DerivedObjectOptions options;
                options.stop = t;
                return seg ? write_seg(*series, labels, segments, options, file)
                           : write_rtstruct(*series, labels, segments, options, file);
            });
            std::printf("%s stopped after %d ms: %s, returned %.3f s after the request\n",
                        seg ? "SEG" : "RTSTRUCT", ms,
                        r.ok() ? "completed" : r.error().message.c_str(), latency);
            if (r.ok()) {
                EXPECT_TRUE(fs::exists(file));
                EXPECT_LT(latency, 0.1) << "completed long after the stop request";
            } else {
                ++cancelled;
                EXPECT_EQ(r.error().message, "cancelled");
                EXPECT_FALSE(fs::exists(file));
                EXPECT_LT(latency, 0.5);
            }
            std::error_code ec;
            fs::remove(file, ec);
        }
    }
    EXPECT_GE(cancelled, 2); // at least the 20 ms requests land inside the calls
}

} // namespace
} // namespace segnode::dicom
