// segnode-bench-export: the image IO layer on a 512 x 512 x 300 CT (README.md in bench/).
//
//   segnode-bench-export [--dicom DIR] [--runs N] [--out DIR]
//
// The volume is generated (a body ellipse of soft tissue with noise, lungs, a spine and a
// table in air, so that gzip sees CT-like data), or loaded from a DICOM series directory with
// --dicom. Timed, `runs` times each, median printed: write_volume (int16) to .nii, .nii.gz and
// .nrrd, and read_label_image of a uint8 label map (body, lungs, bone) from .nii.gz and .nrrd.
// Files go to --out (default: ./bench-export),
// which is removed afterwards. Every timing is the whole call, file written or read.
#include "segnode/dicom/environment.hpp"
#include "segnode/dicom/series_loader.hpp"
#include "segnode/imageio/image_io.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace segnode;

double seconds_of(const std::function<bool()>& fn, bool& ok) {
    const auto start = std::chrono::steady_clock::now();
    ok = fn();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Timing {
    double median = 0;
    double min = 0;
    double max = 0;
};

Timing summarise(std::vector<double> times) {
    std::sort(times.begin(), times.end());
    return {times[times.size() / 2], times.front(), times.back()};
}

/// 16-bit noise from a linear congruential generator: deterministic and cheap.
class Noise {
public:
    int next(int amplitude) {
        m_state = m_state * 6364136223846793005ULL + 1442695040888963407ULL;
        const auto u =
            static_cast<int>((m_state >> 33U) % static_cast<std::uint64_t>(2 * amplitude + 1));
        return u - amplitude;
    }

private:
    std::uint64_t m_state = 42;
};

CtVolume generate_volume() {
    Geometry g;
    g.dims = {512, 512, 300};
    g.spacing = {0.78125, 0.78125, 1.25};
    g.origin = {-200, -200, -375};
    CtVolume volume = make_volume<std::int16_t>(g, -1000);
    Noise noise;
    for (std::size_t k = 0; k < g.dims[2]; ++k) {
        for (std::size_t j = 0; j < g.dims[1]; ++j) {
            for (std::size_t i = 0; i < g.dims[0]; ++i) {
                const double x = (static_cast<double>(i) - 256.0) / 220.0;
                const double y = (static_cast<double>(j) - 240.0) / 150.0;
                int hu = -1000;
                if (x * x + y * y < 1.0) {
                    hu = 40;
                    const double lx = (std::abs(x) - 0.45) / 0.3;
                    const double ly = (y + 0.1) / 0.55;
                    if (lx * lx + ly * ly < 1.0) {
                        hu = -850;
                    }
                    const double sx = x / 0.1;
                    const double sy = (y - 0.6) / 0.15;
                    if (sx * sx + sy * sy < 1.0) {
                        hu = 700;
                    }
                } else if (j > 420 && j < 430 && i > 60 && i < 452) {
                    hu = 200; // table
                }
                volume.at(i, j, k) = static_cast<std::int16_t>(hu + noise.next(20));
            }
        }
    }
    return volume;
}

/// 1 body (HU > -500), 2 lungs (-950 < HU < -700 inside the body's bounding rows), 3 bone.
LabelMap labels_of(const CtVolume& volume) {
    LabelMap labels = make_volume<std::uint8_t>(volume.geometry, 0);
    for (std::size_t n = 0; n < volume.voxels.size(); ++n) {
        const int hu = volume.voxels[n];
        labels.voxels[n] = hu > 500 ? 3 : (hu > -500 ? 1 : (hu > -950 && hu < -700 ? 2 : 0));
    }
    return labels;
}

double megabytes(const fs::path& path) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    return ec ? 0.0 : static_cast<double>(size) / 1e6;
}

} // namespace

int main(int argc, char** argv) {
    std::string dicom_dir;
    fs::path out = fs::current_path() / "bench-export";
    int runs = 5;
    for (int n = 1; n < argc; ++n) {
        const std::string_view arg = argv[n];
        if (arg == "--dicom" && n + 1 < argc) {
            dicom_dir = argv[++n];
        } else if (arg == "--runs" && n + 1 < argc) {
            runs = std::max(1, std::atoi(argv[++n]));
        } else if (arg == "--out" && n + 1 < argc) {
            out = argv[++n];
        } else {
            std::fprintf(stderr,
                         "usage: segnode-bench-export [--dicom DIR] [--runs N] [--out DIR]\n");
            return 2;
        }
    }

    CtVolume volume;
    std::string source = "generated";
    if (!dicom_dir.empty()) {
        if (auto env = dicom::init_dicom_environment(); !env) {
            std::fprintf(stderr, "bench-export: %s\n", env.error().message.c_str());
            return 1;
        }
        auto loaded = dicom::load_series_dir(dicom_dir);
        if (!loaded) {
            std::fprintf(stderr, "bench-export: cannot load %s: %s\n", dicom_dir.c_str(),
                         loaded.error().message.c_str());
            return 1;
        }
        volume = std::move(loaded->volume);
        source = dicom_dir;
    } else {
        volume = generate_volume();
    }
    const LabelMap labels = labels_of(volume);
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec) {
        std::fprintf(stderr, "bench-export: cannot create %s: %s\n", out.c_str(),
                     ec.message().c_str());
        return 1;
    }
    const auto& d = volume.geometry.dims;
    std::printf("volume %zux%zux%zu int16 (%s), %d runs each, median [min, max]\n", d[0], d[1],
                d[2], source.c_str(), runs);

    bool failed = false;
    const auto report = [&](const std::string& what, const fs::path& file,
                            const std::function<bool()>& fn) {
        std::vector<double> times;
        for (int r = 0; r < runs; ++r) {
            bool ok = false;
            times.push_back(seconds_of(fn, ok));
            if (!ok) {
                failed = true;
                return;
            }
        }
        const Timing t = summarise(times);
        std::printf("%-34s %7.3f s  [%.3f, %.3f]  %7.1f MB\n", what.c_str(), t.median, t.min, t.max,
                    megabytes(file));
        std::fflush(stdout);
    };

    for (const auto format :
         {imageio::ImageFormat::Nifti, imageio::ImageFormat::NiftiGz, imageio::ImageFormat::Nrrd}) {
        const fs::path file = out / ("volume" + std::string(imageio::extension(format)));
        report("write_volume int16 " + file.filename().string(), file, [&] {
            const Status status = imageio::write_volume(volume, file, "segnode bench");
            if (!status) {
                std::fprintf(stderr, "bench-export: %s\n", status.error().message.c_str());
            }
            return status.ok();
        });
    }
    for (const auto format : {imageio::ImageFormat::NiftiGz, imageio::ImageFormat::Nrrd}) {
        const fs::path file = out / ("labels" + std::string(imageio::extension(format)));
        if (const Status status = imageio::write_labels(labels, file); !status) {
            std::fprintf(stderr, "bench-export: %s\n", status.error().message.c_str());
            failed = true;
            continue;
        }
        report("read_label_image uint8 " + file.filename().string(), file, [&] {
            const auto read = imageio::read_label_image(file);
            if (!read) {
                std::fprintf(stderr, "bench-export: %s\n", read.error().message.c_str());
                return false;
            }
            if (read->voxels.size() != labels.voxels.size()) {
                std::fprintf(stderr, "bench-export: %s: wrong voxel count\n", file.c_str());
                return false;
            }
            return true;
        });
    }
    fs::remove_all(out, ec);
    return failed ? 1 : 0;
}
