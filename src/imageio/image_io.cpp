// Image files through ITK's NIfTI and NRRD image IO: segnode's only ITK translation unit.
// Files are read and written through the ImageIO objects directly (no ImageFileReader or
// ImageFileWriter), so a volume is written straight from its buffer and a label file is read
// into one buffer of its own component type, then widened and checked in one pass.
#include "segnode/imageio/image_io.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <itkImage.h>
#include <itkImageIOBase.h>
#include <itkImportImageContainer.h>
#include <itkMetaDataObject.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkNiftiImageIO.h>
#include <itkNrrdImageIO.h>
#include <itkResampleImageFilter.h>
#include <limits>
#include <sys/mman.h>
#include <system_error>
#include <type_traits>
#include <unistd.h>
#include <vector>
#include <zlib.h>

namespace segnode::imageio {

namespace {

namespace fs = std::filesystem;
using itk::IOComponentEnum;

itk::ImageIOBase::Pointer make_image_io(ImageFormat format) {
    if (format == ImageFormat::Nrrd) {
        return itk::NrrdImageIO::New().GetPointer();
    }
    return itk::NiftiImageIO::New().GetPointer();
}

/// A hidden name beside `path` (of format `format`) ending in `ext`: the image IO chooses
/// the file type by the extension.
fs::path temporary_name(const fs::path& path, ImageFormat format, std::string_view ext) {
    static std::atomic<unsigned> counter{0};
    const std::string name = path.filename().string();
    const std::string stem = name.substr(0, name.size() - extension(format).size());
    return path.parent_path() / ("." + stem + ".tmp" + std::to_string(::getpid()) + "-" +
                                 std::to_string(counter.fetch_add(1)) + std::string(ext));
}

/// Compresses `from` into the gzip file `to` with zlib level 1. ITK 5.2's NIfTI writer
/// ignores the compression level and writes level 6, which takes ~14 s for a 512 x 512 x 300
/// CT; level 1 is several times faster and the file only slightly larger.
Status gzip_file(const fs::path& from, const fs::path& to) {
    std::FILE* in = std::fopen(from.c_str(), "rb");
    if (in == nullptr) {
        return Error{"cannot open " + from.string() + ": " + std::strerror(errno)};
    }
    gzFile out = gzopen(to.c_str(), "wb1");
    if (out == nullptr) {
        const int saved_errno = errno;
        std::fclose(in);
        return Error{"cannot create " + to.string() + ": " + std::strerror(saved_errno)};
    }
    gzbuffer(out, 1U << 20U);
    std::vector<char> buffer(std::size_t{4} << 20U);
    bool ok = true;
    std::size_t n = 0;
    while (ok && (n = std::fread(buffer.data(), 1, buffer.size(), in)) > 0) {
        ok = gzwrite(out, buffer.data(), static_cast<unsigned>(n)) == static_cast<int>(n);
    }
    ok = ok && std::ferror(in) == 0;
    std::fclose(in);
    if (gzclose(out) != Z_OK || !ok) {
        return Error{"cannot compress " + from.string() + " into " + to.string()};
    }
    return ok_status();
}

std::string single_line(std::string_view text) {
    std::string out(text);
    std::replace_if(
        out.begin(), out.end(), [](char ch) { return ch == '\n' || ch == '\r'; }, ' ');
    return out;
}

/// ITK 5.2's NIfTI writer leaves the header's descrip field empty (it only reads it), so the
/// field (NIfTI-1: 80 bytes at offset 148) is filled in afterwards, before any compression.
Status set_nifti_description(const fs::path& file, const std::string& description) {
    std::FILE* f = std::fopen(file.c_str(), "r+b");
    if (f == nullptr) {
        return Error{"cannot open " + file.string() +
                     " to set its description: " + std::strerror(errno)};
    }
    std::int32_t sizeof_hdr = 0;
    std::array<char, 80> field{};
    std::memcpy(field.data(), description.data(), std::min(description.size(), field.size() - 1));
    const bool ok = std::fread(&sizeof_hdr, sizeof sizeof_hdr, 1, f) == 1 && sizeof_hdr == 348 &&
                    std::fseek(f, 148, SEEK_SET) == 0 &&
                    std::fwrite(field.data(), 1, field.size(), f) == field.size();
    const int saved_errno = errno;
    if (std::fclose(f) != 0 || !ok) {
        return Error{"cannot set the description of " + file.string() +
                     (sizeof_hdr != 348 ? ": not a NIfTI-1 header"
                                        : ": " + std::string(std::strerror(saved_errno)))};
    }
    return ok_status();
}

template <class T> Status check_volume(const Volume<T>& volume, const fs::path& path) {
    if (auto problem = geometry_problem(volume.geometry)) {
        return Error{path.string() +
                     ": cannot write an image whose geometry is unusable: " + *problem};
    }
    if (!volume.consistent()) {
        return Error{path.string() + ": cannot write " + std::to_string(volume.voxels.size()) +
                     " voxels for dimensions " + std::to_string(volume.geometry.dims[0]) + "x" +
                     std::to_string(volume.geometry.dims[1]) + "x" +
                     std::to_string(volume.geometry.dims[2])};
    }
    return ok_status();
}

/// Writes one scalar buffer with its geometry to a temporary file beside `path`, then renames
/// it into place. NIfTI and NRRD are written uncompressed, ".nii.gz" with gzip level 1.
Status write_image(const void* data, IOComponentEnum component, const Geometry& geometry,
                   const fs::path& path, std::string_view description) {
    const std::string name = path.string();
    const auto format = format_of(path);
    if (!format) {
        return Error{name + ": unknown image file extension (write .nii, .nii.gz or .nrrd)"};
    }
    const std::string file_name = path.filename().string();
    if (!file_name.ends_with(extension(*format))) {
        // ".nhdr" (detached header and data file) or an upper-case extension: the temporary
        // file and the rename below rely on the canonical extension.
        return Error{name + ": cannot write this extension (write .nii, .nii.gz or .nrrd)"};
    }
    const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        return Error{name + ": cannot write: directory " + dir.string() + " does not exist"};
    }
    // ".nii.gz": ITK writes an uncompressed NIfTI, compressed afterwards (see gzip_file).
    const bool gzip = *format == ImageFormat::NiftiGz;
    const fs::path tmp = temporary_name(path, *format, gzip ? ".nii" : extension(*format));
    try {
        itk::ImageIOBase::Pointer io = make_image_io(*format);
        io->SetNumberOfDimensions(3);
        for (unsigned a = 0; a < 3; ++a) {
            io->SetDimensions(a, geometry.dims[a]);
            io->SetSpacing(a, geometry.spacing[a]);
            io->SetOrigin(a, geometry.origin[a]);
            const Vec3d axis = axis_direction(geometry, a);
            io->SetDirection(a, std::vector<double>(axis.begin(), axis.end()));
        }
        io->SetPixelType(itk::IOPixelEnum::SCALAR);
        io->SetComponentType(component);
        io->SetNumberOfComponents(1);
        io->SetUseCompression(false);
        if (!description.empty()) {
            itk::MetaDataDictionary dictionary;
            itk::EncapsulateMetaData<std::string>(dictionary, "ITK_FileNotes",
                                                  single_line(description));
            io->SetMetaDataDictionary(dictionary);
        }
        itk::ImageIORegion region(3);
        for (unsigned a = 0; a < 3; ++a) {
            region.SetIndex(a, 0);
            region.SetSize(a, geometry.dims[a]);
        }
        io->SetIORegion(region);
        io->SetFileName(tmp.string());
        io->Write(data);
    } catch (const itk::ExceptionObject& e) {
        fs::remove(tmp, ec);
        return Error{name + ": cannot write: " + e.GetDescription()};
    } catch (const std::exception& e) {
        fs::remove(tmp, ec);
        return Error{name + ": cannot write: " + e.what()};
    }
    if (!fs::is_regular_file(tmp, ec)) {
        return Error{name + ": cannot write: the image IO left no file " + tmp.string()};
    }
    if (*format != ImageFormat::Nrrd && !description.empty()) {
        if (auto status = set_nifti_description(tmp, single_line(description)); !status) {
            fs::remove(tmp, ec);
            return Error{name + ": " + status.error().message};
        }
    }
    fs::path finished = tmp;
    if (gzip) {
        finished = temporary_name(path, *format, extension(*format));
        const Status status = gzip_file(tmp, finished);
        fs::remove(tmp, ec);
        if (!status) {
            fs::remove(finished, ec);
            return Error{name + ": " + status.error().message};
        }
    }
    fs::rename(finished, path, ec);
    if (ec) {
        fs::remove(finished, ec);
        return Error{name + ": cannot rename " + finished.string() +
                     " into place: " + ec.message()};
    }
    return ok_status();
}

// ------------------------------------------------------------------ reading

std::string value_text(double value) {
    std::array<char, 40> buffer{};
    std::snprintf(buffer.data(), buffer.size(), "%.9g", value);
    return buffer.data();
}

/// Widens `count` values of type T to uint16, checking each; the first offending voxel (in
/// index order) is named with its value and index.
template <class T>
Status widen(const void* raw, const Geometry& geometry, Buffer<std::uint16_t>& out,
             const std::string& name) {
    // `raw` may alias `out` (see read_label_image_impl): each value is read before out[n] is
    // written, and out[n] never covers a value not yet read.
    const T* in = static_cast<const T*>(raw);
    const std::size_t count = out.size();
    const auto error = [&](std::size_t n, const char* problem) -> Status {
        const std::size_t i = n % geometry.dims[0];
        const std::size_t j = (n / geometry.dims[0]) % geometry.dims[1];
        const std::size_t k = n / (geometry.dims[0] * geometry.dims[1]);
        const std::string value = std::is_floating_point_v<T>
                                      ? value_text(static_cast<double>(in[n]))
                                      : std::to_string(in[n]);
        return Error{name + ": value " + value + " at voxel (" + std::to_string(i) + ", " +
                     std::to_string(j) + ", " + std::to_string(k) + ") " + problem +
                     "; labels must be integers 0..65535"};
    };
    for (std::size_t n = 0; n < count; ++n) {
        const T v = in[n];
        if constexpr (std::is_floating_point_v<T>) {
            if (!std::isfinite(v) || v != std::floor(v)) {
                return error(n, "is not an integer");
            }
        }
        if constexpr (std::is_signed_v<T>) {
            if (v < 0) {
                return error(n, "is negative");
            }
        }
        if constexpr (std::numeric_limits<T>::max() > 65535 || std::is_floating_point_v<T>) {
            if (v > T{65535}) {
                return error(n, "is above 65535");
            }
        }
        out[n] = static_cast<std::uint16_t>(v);
    }
    return ok_status();
}

Status widen_component(IOComponentEnum type, const void* raw, const Geometry& geometry,
                       Buffer<std::uint16_t>& out, const std::string& name) {
    switch (type) {
    case IOComponentEnum::UCHAR:
        return widen<unsigned char>(raw, geometry, out, name);
    case IOComponentEnum::CHAR:
        return widen<signed char>(raw, geometry, out, name);
    case IOComponentEnum::USHORT:
        return widen<unsigned short>(raw, geometry, out, name);
    case IOComponentEnum::SHORT:
        return widen<short>(raw, geometry, out, name);
    case IOComponentEnum::UINT:
        return widen<unsigned int>(raw, geometry, out, name);
    case IOComponentEnum::INT:
        return widen<int>(raw, geometry, out, name);
    case IOComponentEnum::ULONG:
        return widen<unsigned long>(raw, geometry, out, name);
    case IOComponentEnum::LONG:
        return widen<long>(raw, geometry, out, name);
    case IOComponentEnum::ULONGLONG:
        return widen<unsigned long long>(raw, geometry, out, name);
    case IOComponentEnum::LONGLONG:
        return widen<long long>(raw, geometry, out, name);
    case IOComponentEnum::FLOAT:
        return widen<float>(raw, geometry, out, name);
    case IOComponentEnum::DOUBLE:
        return widen<double>(raw, geometry, out, name);
    default:
        return Error{name + ": unsupported voxel type " +
                     itk::ImageIOBase::GetComponentTypeAsString(type)};
    }
}

/// A wide label map narrowed to 0..255; the first larger value is named with its voxel.
Result<LabelMap> narrow(const WideLabelMap& wide, const std::string& name) {
    LabelMap out;
    out.geometry = wide.geometry;
    out.voxels.resize(wide.voxels.size());
    for (std::size_t n = 0; n < wide.voxels.size(); ++n) {
        const std::uint16_t v = wide.voxels[n];
        if (v > 255) {
            const auto& d = wide.geometry.dims;
            return Error{name + ": value " + std::to_string(v) + " at voxel (" +
                         std::to_string(n % d[0]) + ", " + std::to_string((n / d[0]) % d[1]) +
                         ", " + std::to_string(n / (d[0] * d[1])) +
                         ") is above 255; segment labels are 1..255"};
        }
        out.voxels[n] = static_cast<std::uint8_t>(v);
    }
    return out;
}

template <class Map> Result<Map> read_label_image_impl(const fs::path& path) {
    const std::string name = path.string();
    const auto format = format_of(path);
    if (!format) {
        return Error{name + ": unknown image file extension (read .nii, .nii.gz, .nrrd or .nhdr)"};
    }
    std::error_code ec;
    if (!fs::exists(path, ec)) {
        return Error{name + ": no such file"};
    }
    if (!fs::is_regular_file(path, ec)) {
        return Error{name + ": not a regular file"};
    }
    itk::ImageIOBase::Pointer io = make_image_io(*format);
    if (!io->CanReadFile(name.c_str())) {
        return Error{name + ": not a readable " +
                     std::string(*format == ImageFormat::Nrrd ? "NRRD" : "NIfTI") + " file"};
    }
    io->SetFileName(name);
    io->ReadImageInformation();

    const unsigned dimensions = io->GetNumberOfDimensions();
    if (dimensions < 3) {
        return Error{name + ": a " + std::to_string(dimensions) +
                     "D image; a 3D label image is expected"};
    }
    for (unsigned d = 3; d < dimensions; ++d) {
        if (io->GetDimensions(d) != 1) {
            return Error{name + ": a " + std::to_string(dimensions) + "D image with size " +
                         std::to_string(io->GetDimensions(d)) + " in dimension " +
                         std::to_string(d + 1) + "; one 3D volume is expected"};
        }
    }
    if (io->GetNumberOfComponents() != 1) {
        return Error{name + ": " + std::to_string(io->GetNumberOfComponents()) +
                     " components per voxel; a label image has one"};
    }

    Map labels;
    Geometry& g = labels.geometry;
    for (unsigned a = 0; a < 3; ++a) {
        g.dims[a] = io->GetDimensions(a);
        g.spacing[a] = io->GetSpacing(a);
        g.origin[a] = io->GetOrigin(a);
        const std::vector<double> axis = io->GetDirection(a);
        for (unsigned r = 0; r < 3; ++r) {
            g.direction[3 * r + a] = r < axis.size() ? axis[r] : 0.0;
        }
    }
    if (auto problem = geometry_problem(g)) {
        return Error{name + ": unusable geometry: " + *problem};
    }

    itk::ImageIORegion region(dimensions);
    for (unsigned d = 0; d < dimensions; ++d) {
        region.SetIndex(d, 0);
        region.SetSize(d, io->GetDimensions(d));
    }
    io->SetIORegion(region);
    const std::size_t count = *voxel_count(g);
    const std::size_t bytes = static_cast<std::size_t>(io->GetImageSizeInBytes());
    if (bytes != count * io->GetComponentSize()) {
        return Error{name + ": " + std::to_string(bytes) + " bytes of voxel data for " +
                     std::to_string(count) + " voxels"};
    }
    const IOComponentEnum type = io->GetComponentType();
    if constexpr (std::is_same_v<Map, LabelMap>) {
        if (type != IOComponentEnum::UCHAR) {
            auto wide = read_label_image_impl<WideLabelMap>(path);
            return wide ? narrow(*wide, name) : Result<LabelMap>(wide.error());
        }
        labels.voxels.resize(count);    // prefaulted in one pass (core/buffer.hpp)
        io->Read(labels.voxels.data()); // uint8: read in place, every value is a valid label
        return labels;
    } else {
        labels.voxels.resize(count); // prefaulted in one pass (core/buffer.hpp)
        if (type == IOComponentEnum::USHORT) {
            io->Read(labels.voxels.data()); // already the target type: no copy, nothing to check
            return labels;
        }
        // Values of one or two bytes are read into the label buffer itself and widened in place
        // (one byte: into its upper half, widened front to back, so each value is read before
        // its bytes are overwritten); wider values need a buffer of their own.
        Buffer<unsigned char> wide_raw;
        unsigned char* raw = reinterpret_cast<unsigned char*>(labels.voxels.data());
        if (io->GetComponentSize() == 1) {
            raw += count;
        } else if (io->GetComponentSize() > 2) {
            wide_raw.resize(bytes);
            raw = wide_raw.data();
        }
        io->Read(raw);
        if (auto status = widen_component(type, raw, g, labels.voxels, name); !status) {
            return status.error();
        }
        return labels;
    }
}

// ------------------------------------------------------------------ resampling

using WideImage = itk::Image<std::uint16_t, 3>;

void set_geometry(WideImage* image, const Geometry& g) {
    WideImage::RegionType region;
    WideImage::SpacingType spacing;
    WideImage::PointType origin;
    WideImage::DirectionType direction;
    for (unsigned a = 0; a < 3; ++a) {
        region.SetSize(a, g.dims[a]);
        region.SetIndex(a, 0);
        spacing[a] = g.spacing[a];
        origin[a] = g.origin[a];
        for (unsigned c = 0; c < 3; ++c) {
            direction(a, c) = g.direction[3 * a + c]; // same layout: columns = axes
        }
    }
    image->SetRegions(region);
    image->SetSpacing(spacing);
    image->SetOrigin(origin);
    image->SetDirection(direction);
}

} // namespace

Status write_volume(const CtVolume& volume, const std::filesystem::path& path,
                    std::string_view description) {
    if (auto status = check_volume(volume, path); !status) {
        return status;
    }
    return write_image(volume.voxels.data(), IOComponentEnum::SHORT, volume.geometry, path,
                       description);
}

Status write_labels(const LabelMap& labels, const std::filesystem::path& path,
                    std::string_view description) {
    if (auto status = check_volume(labels, path); !status) {
        return status;
    }
    return write_image(labels.voxels.data(), IOComponentEnum::UCHAR, labels.geometry, path,
                       description);
}

Result<WideLabelMap> read_label_image(const std::filesystem::path& path) {
    try {
        return read_label_image_impl<WideLabelMap>(path);
    } catch (const itk::ExceptionObject& e) {
        return Error{path.string() + ": cannot read: " + e.GetDescription()};
    } catch (const std::exception& e) {
        return Error{path.string() + ": cannot read: " + e.what()};
    }
}

WideLabelMap resample_nearest(const WideLabelMap& labels, const Geometry& target) {
    WideLabelMap out;
    out.geometry = target;
    if (const auto n = voxel_count(target)) {
        out.voxels.resize(*n);
    }
    if (out.voxels.empty() || !labels.consistent() || labels.voxels.empty() ||
        geometry_problem(labels.geometry) || geometry_problem(target)) {
        return out;
    }
    auto input = WideImage::New();
    set_geometry(input, labels.geometry);
    auto container = WideImage::PixelContainer::New();
    // The source buffer is only read; the container does not own it.
    container->SetImportPointer(const_cast<std::uint16_t*>(labels.voxels.data()),
                                labels.voxels.size(), false);
    input->SetPixelContainer(container);

    auto reference = WideImage::New();
    set_geometry(reference, target);

    using Filter = itk::ResampleImageFilter<WideImage, WideImage, double>;
    auto filter = Filter::New();
    filter->SetInput(input);
    filter->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<WideImage, double>::New());
    filter->SetOutputParametersFromImage(reference);
    filter->SetDefaultPixelValue(0);
    filter->Update();
    const WideImage* result = filter->GetOutput();
    std::memcpy(out.voxels.data(), result->GetBufferPointer(),
                out.voxels.size() * sizeof(std::uint16_t));
    return out;
}

Result<LabelMap> read_label_map(const std::filesystem::path& path) {
    try {
        return read_label_image_impl<LabelMap>(path);
    } catch (const itk::ExceptionObject& e) {
        return Error{path.string() + ": cannot read: " + e.GetDescription()};
    } catch (const std::exception& e) {
        return Error{path.string() + ": cannot read: " + e.what()};
    }
}

} // namespace segnode::imageio
