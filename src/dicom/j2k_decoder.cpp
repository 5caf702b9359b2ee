#include "j2k_decoder.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <openjpeg.h>

namespace segnode::dicom::detail {
namespace {

constexpr std::array<std::uint8_t, 4> j2k_signature = {0xFF, 0x4F, 0xFF, 0x51}; // SOC, SIZ
constexpr std::array<std::uint8_t, 12> jp2_signature = {0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50,
                                                        0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A};

bool starts_with(std::span<const std::uint8_t> data, std::span<const std::uint8_t> prefix) {
    return data.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), data.begin());
}

/// An input stream over bytes in memory (OpenJPEG reads, skips and seeks through it).
struct MemoryStream {
    std::span<const std::uint8_t> data;
    std::size_t pos = 0;
};

OPJ_SIZE_T stream_read(void* buffer, OPJ_SIZE_T bytes, void* user) {
    auto* s = static_cast<MemoryStream*>(user);
    if (s->pos >= s->data.size()) {
        return static_cast<OPJ_SIZE_T>(-1); // end of stream
    }
    const std::size_t n = std::min<std::size_t>(bytes, s->data.size() - s->pos);
    std::memcpy(buffer, s->data.data() + s->pos, n);
    s->pos += n;
    return n;
}

OPJ_OFF_T stream_skip(OPJ_OFF_T bytes, void* user) {
    auto* s = static_cast<MemoryStream*>(user);
    if (bytes < 0) {
        const auto back = static_cast<std::size_t>(-bytes);
        if (back > s->pos) {
            return -1;
        }
        s->pos -= back;
        return bytes;
    }
    const std::size_t n =
        std::min<std::size_t>(static_cast<std::size_t>(bytes), s->data.size() - s->pos);
    s->pos += n;
    return static_cast<OPJ_OFF_T>(n);
}

OPJ_BOOL stream_seek(OPJ_OFF_T to, void* user) {
    auto* s = static_cast<MemoryStream*>(user);
    if (to < 0 || static_cast<std::uint64_t>(to) > s->data.size()) {
        return OPJ_FALSE;
    }
    s->pos = static_cast<std::size_t>(to);
    return OPJ_TRUE;
}

/// OpenJPEG's error messages for one decode (the first few, trimmed).
struct Messages {
    std::string text;
};

void on_error(const char* message, void* user) {
    auto* m = static_cast<Messages*>(user);
    std::string line(message != nullptr ? message : "");
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) {
        line.pop_back();
    }
    if (line.empty() || m->text.size() > 400) {
        return;
    }
    m->text += (m->text.empty() ? "" : "; ") + line;
}

void on_ignored(const char* /*message*/, void* /*user*/) {}

struct CodecDeleter {
    void operator()(opj_codec_t* c) const { opj_destroy_codec(c); }
};
struct StreamDeleter {
    void operator()(opj_stream_t* s) const { opj_stream_destroy(s); }
};
struct ImageDeleter {
    void operator()(opj_image_t* i) const { opj_image_destroy(i); }
};

std::string sign_text(bool is_signed) {
    return is_signed ? "signed" : "unsigned";
}

/// Copies the decoded samples into `out` as stored values; counts samples that BitsStored and
/// PixelRepresentation cannot hold (unless the bit patterns are taken as the header says).
template <class Raw>
std::size_t store_samples(const OPJ_INT32* src, Raw* dst, std::size_t count,
                          const J2kFrameFormat& f, bool reinterpret) {
    const auto shift = static_cast<unsigned>(f.high_bit + 1 - f.bits_stored);
    const std::uint32_t mask =
        f.bits_stored >= 32 ? 0xFFFFFFFFU : (std::uint32_t{1} << f.bits_stored) - 1U;
    const std::int64_t lo = f.is_signed ? -(std::int64_t{1} << (f.bits_stored - 1)) : 0;
    const std::int64_t hi = f.is_signed ? (std::int64_t{1} << (f.bits_stored - 1)) - 1
                                        : (std::int64_t{1} << f.bits_stored) - 1;
    std::size_t outside = 0;
    for (std::size_t p = 0; p < count; ++p) {
        const std::int32_t v = src[p];
        outside += static_cast<std::size_t>(!reinterpret && (v < lo || v > hi));
        dst[p] = static_cast<Raw>((static_cast<std::uint32_t>(v) & mask) << shift);
    }
    return outside;
}

} // namespace

std::string openjpeg_version() {
    return std::string("OpenJPEG ") + opj_version();
}

bool looks_like_j2k(std::span<const std::uint8_t> data) {
    return starts_with(data, j2k_signature) || starts_with(data, jp2_signature);
}

Result<J2kFrameInfo> decode_j2k_frame(std::span<const std::uint8_t> data,
                                      const J2kFrameFormat& format, void* out, unsigned threads) {
    J2kFrameInfo info;
    if (starts_with(data, jp2_signature)) {
        info.jp2 = true;
    } else if (!starts_with(data, j2k_signature)) {
        std::string head;
        for (std::size_t i = 0; i < std::min<std::size_t>(data.size(), 4); ++i) {
            std::array<char, 4> hex{};
            std::snprintf(hex.data(), hex.size(), "%02X", static_cast<unsigned>(data[i]));
            head += (i == 0 ? "" : " ") + std::string(hex.data());
        }
        return Error{"not a JPEG 2000 codestream: it starts with " +
                     (head.empty() ? std::string("nothing (empty frame)") : head) +
                     " instead of the SOC and SIZ markers FF 4F FF 51"};
    }
    if (format.bits_allocated != 8 && format.bits_allocated != 16) {
        return Error{"BitsAllocated " + std::to_string(format.bits_allocated) +
                     ": JPEG 2000 frames are decoded into 8 or 16 bits per sample"};
    }

    std::unique_ptr<opj_codec_t, CodecDeleter> codec(
        opj_create_decompress(info.jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K));
    std::unique_ptr<opj_stream_t, StreamDeleter> stream(
        opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE));
    if (!codec || !stream) {
        return Error{"OpenJPEG could not create a decoder"};
    }
    Messages messages;
    opj_set_error_handler(codec.get(), on_error, &messages);
    opj_set_warning_handler(codec.get(), on_ignored, nullptr);
    opj_set_info_handler(codec.get(), on_ignored, nullptr);
    MemoryStream source{data, 0};
    opj_stream_set_user_data(stream.get(), &source, nullptr);
    opj_stream_set_user_data_length(stream.get(), data.size());
    opj_stream_set_read_function(stream.get(), stream_read);
    opj_stream_set_skip_function(stream.get(), stream_skip);
    opj_stream_set_seek_function(stream.get(), stream_seek);

    opj_dparameters_t parameters;
    opj_set_default_decoder_parameters(&parameters);
    const auto failed = [&](const char* what) {
        return Error{std::string("OpenJPEG: ") + what +
                     (messages.text.empty() ? std::string() : ": " + messages.text)};
    };
    if (!opj_setup_decoder(codec.get(), &parameters)) {
        return failed("cannot set up the decoder");
    }
    // Strict: a truncated codestream is an error, not a partly decoded (blurred) image.
    opj_decoder_set_strict_mode(codec.get(), OPJ_TRUE);
    if (threads > 1 && opj_has_thread_support() != 0) {
        opj_codec_set_threads(codec.get(), static_cast<int>(std::min(threads, 64U)));
    }
    opj_image_t* raw_image = nullptr;
    if (!opj_read_header(stream.get(), codec.get(), &raw_image)) {
        std::unique_ptr<opj_image_t, ImageDeleter> discard(raw_image);
        return failed("cannot read the codestream header");
    }
    std::unique_ptr<opj_image_t, ImageDeleter> image(raw_image);
    if (image->numcomps != 1) {
        return Error{"the JPEG 2000 codestream has " + std::to_string(image->numcomps) +
                     " components (colour or a multiple component transform); only single-"
                     "component grayscale images can be segmented"};
    }
    const opj_image_comp_t& header = image->comps[0];
    if (header.dx != 1 || header.dy != 1) {
        return Error{"the JPEG 2000 codestream is subsampled (" + std::to_string(header.dx) +
                     " x " + std::to_string(header.dy) + ")"};
    }
    const std::uint32_t width = image->x1 - image->x0;
    const std::uint32_t height = image->y1 - image->y0;
    if (width != format.columns || height != format.rows) {
        return Error{"the JPEG 2000 codestream is " + std::to_string(width) + " x " +
                     std::to_string(height) + " but the header says Columns " +
                     std::to_string(format.columns) + ", Rows " + std::to_string(format.rows)};
    }
    info.precision = header.prec;
    info.is_signed = header.sgnd != 0;
    if (info.precision == 0 || info.precision > format.bits_allocated) {
        return Error{"the JPEG 2000 codestream has " + std::to_string(info.precision) +
                     "-bit samples, more than BitsAllocated " +
                     std::to_string(format.bits_allocated)};
    }
    if (!opj_decode(codec.get(), stream.get(), image.get())) {
        return failed("cannot decode the codestream");
    }
    if (!opj_end_decompress(codec.get(), stream.get())) {
        return failed("cannot finish decoding the codestream");
    }
    const opj_image_comp_t& comp = image->comps[0];
    if (comp.data == nullptr || comp.w != format.columns || comp.h != format.rows) {
        return Error{"OpenJPEG returned no image of " + std::to_string(format.columns) + " x " +
                     std::to_string(format.rows) + " samples"};
    }
    info.sign_from_header =
        info.is_signed != format.is_signed && info.precision == format.bits_stored;
    const std::size_t count = std::size_t{format.rows} * format.columns;
    const std::size_t outside = format.bits_allocated == 8
                                    ? store_samples(comp.data, static_cast<std::uint8_t*>(out),
                                                    count, format, info.sign_from_header)
                                    : store_samples(comp.data, static_cast<std::uint16_t*>(out),
                                                    count, format, info.sign_from_header);
    if (outside > 0) {
        return Error{std::to_string(outside) + " decoded samples do not fit BitsStored " +
                     std::to_string(format.bits_stored) + " (" + sign_text(format.is_signed) +
                     ", PixelRepresentation " + (format.is_signed ? "1" : "0") +
                     "); the codestream has " + std::to_string(info.precision) + "-bit " +
                     sign_text(info.is_signed) + " samples"};
    }
    return info;
}

} // namespace segnode::dicom::detail
