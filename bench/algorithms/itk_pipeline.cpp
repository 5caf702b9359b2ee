// The naive ITK pipeline (see itk_pipeline.hpp): the benchmark's only ITK translation unit.
#include "itk_pipeline.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <itkBinaryFillholeImageFilter.h>
#include <itkBinaryThresholdImageFilter.h>
#include <itkConnectedComponentImageFilter.h>
#include <itkImage.h>
#include <itkImageRegionConstIterator.h>
#include <itkImportImageFilter.h>
#include <itkMultiThreaderBase.h>
#include <itkOtsuThresholdImageFilter.h>
#include <itkRelabelComponentImageFilter.h>

namespace segnode::bench {

namespace {

using CtImage = itk::Image<std::int16_t, 3>;
using MaskImage = itk::Image<std::uint8_t, 3>;
using ComponentImage = itk::Image<std::uint32_t, 3>;
using Clock = std::chrono::steady_clock;

/// Times one stage: `update` is called and its wall time appended to `result`.
template <class Update> void timed(ItkPipelineResult& result, const char* name, Update update) {
    const auto start = Clock::now();
    update();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    result.stages.push_back({name, seconds});
    result.seconds += seconds;
}

std::uint64_t count_foreground(const MaskImage* mask) {
    std::uint64_t n = 0;
    itk::ImageRegionConstIterator<MaskImage> it(mask, mask->GetLargestPossibleRegion());
    for (it.GoToBegin(); !it.IsAtEnd(); ++it) {
        n += it.Get() != 0 ? 1U : 0U;
    }
    return n;
}

/// The volume's buffer as an ITK image, without copying (the importer does not own it).
CtImage::Pointer import_volume(const CtVolume& volume) {
    using Importer = itk::ImportImageFilter<std::int16_t, 3>;
    const Geometry& g = volume.geometry;
    Importer::SizeType size;
    Importer::SpacingType spacing;
    Importer::OriginType origin;
    Importer::DirectionType direction;
    for (unsigned a = 0; a < 3; ++a) {
        size[a] = g.dims[a];
        spacing[a] = g.spacing[a];
        origin[a] = g.origin[a];
        for (unsigned c = 0; c < 3; ++c) {
            direction(a, c) = g.direction[3 * a + c]; // columns = axis unit vectors, as in ITK
        }
    }
    Importer::IndexType start;
    start.Fill(0);
    Importer::RegionType region;
    region.SetIndex(start);
    region.SetSize(size);

    auto importer = Importer::New();
    importer->SetRegion(region);
    importer->SetSpacing(spacing);
    importer->SetOrigin(origin);
    importer->SetDirection(direction);
    // ITK wants a non-const pointer; with LetImageContainerManageMemory = false the buffer is
    // neither freed nor written by the read-only filters downstream.
    importer->SetImportPointer(const_cast<std::int16_t*>(volume.voxels.data()),
                               volume.voxels.size(), false);
    importer->Update();
    CtImage::Pointer image = importer->GetOutput();
    image->DisconnectPipeline();
    return image;
}

} // namespace

ItkPipelineResult run_itk_pipeline(const CtVolume& volume, const LabelMap* compare_otsu) {
    ItkPipelineResult result;

    CtImage::Pointer image;
    timed(result, "import (no copy)", [&] { image = import_volume(volume); });

    auto otsu = itk::OtsuThresholdImageFilter<CtImage, MaskImage>::New();
    otsu->SetInput(image);
    otsu->SetNumberOfHistogramBins(128);
    otsu->SetInsideValue(0); // inside = at or below the threshold
    otsu->SetOutsideValue(1);
    timed(result, "OtsuThreshold", [&] { otsu->Update(); });

    auto components = itk::ConnectedComponentImageFilter<MaskImage, ComponentImage>::New();
    components->SetInput(otsu->GetOutput());
    timed(result, "ConnectedComponent", [&] { components->Update(); });

    auto relabel = itk::RelabelComponentImageFilter<ComponentImage, ComponentImage>::New();
    relabel->SetInput(components->GetOutput());
    timed(result, "RelabelComponent", [&] { relabel->Update(); });

    auto largest = itk::BinaryThresholdImageFilter<ComponentImage, MaskImage>::New();
    largest->SetInput(relabel->GetOutput());
    largest->SetLowerThreshold(1);
    largest->SetUpperThreshold(1);
    largest->SetInsideValue(1);
    largest->SetOutsideValue(0);
    timed(result, "BinaryThreshold (label 1)", [&] { largest->Update(); });

    auto fill = itk::BinaryFillholeImageFilter<MaskImage>::New();
    fill->SetInput(largest->GetOutput());
    fill->SetForegroundValue(1);
    timed(result, "BinaryFillhole", [&] { fill->Update(); });

    // Outside the timing: what the stages produced.
    result.otsu_threshold = otsu->GetThreshold();
    result.otsu_voxels = count_foreground(otsu->GetOutput());
    result.components = components->GetObjectCount();
    result.result_voxels = count_foreground(fill->GetOutput());
    if (compare_otsu != nullptr && compare_otsu->voxels.size() == volume.voxels.size()) {
        const std::uint8_t* itk_mask = otsu->GetOutput()->GetBufferPointer();
        for (std::size_t n = 0; n < compare_otsu->voxels.size(); ++n) {
            result.otsu_mismatches +=
                (itk_mask[n] != 0) != (compare_otsu->voxels[n] != 0) ? 1U : 0U;
        }
    }
    return result;
}

unsigned itk_threads() {
    return itk::MultiThreaderBase::GetGlobalDefaultNumberOfThreads();
}

} // namespace segnode::bench
