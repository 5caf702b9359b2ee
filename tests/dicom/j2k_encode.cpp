#include "j2k_encode.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <openjpeg.h>
#include <stdexcept>

namespace segnode::test {
namespace {

struct Sink {
    std::vector<std::uint8_t> bytes;
    std::size_t pos = 0;
};

OPJ_SIZE_T sink_write(void* buffer, OPJ_SIZE_T n, void* user) {
    auto* s = static_cast<Sink*>(user);
    if (s->pos + n > s->bytes.size()) {
        s->bytes.resize(s->pos + n);
    }
    std::memcpy(s->bytes.data() + s->pos, buffer, n);
    s->pos += n;
    return n;
}

OPJ_OFF_T sink_skip(OPJ_OFF_T n, void* user) {
    auto* s = static_cast<Sink*>(user);
    s->pos = static_cast<std::size_t>(static_cast<OPJ_OFF_T>(s->pos) + n);
    if (s->pos > s->bytes.size()) {
        s->bytes.resize(s->pos);
    }
    return n;
}

OPJ_BOOL sink_seek(OPJ_OFF_T to, void* user) {
    auto* s = static_cast<Sink*>(user);
    s->pos = static_cast<std::size_t>(to);
    if (s->pos > s->bytes.size()) {
        s->bytes.resize(s->pos);
    }
    return OPJ_TRUE;
}

} // namespace

std::vector<std::uint8_t> encode_j2k(const std::vector<std::int32_t>& samples, unsigned width,
                                     unsigned height, const J2kEncodeOptions& options) {
    const std::size_t count = std::size_t{width} * height;
    if (samples.size() != count * options.components) {
        throw std::invalid_argument("encode_j2k: wrong number of samples");
    }
    std::vector<opj_image_cmptparm_t> parameters(options.components);
    for (auto& p : parameters) {
        std::memset(&p, 0, sizeof(p));
        p.dx = 1;
        p.dy = 1;
        p.w = width;
        p.h = height;
        p.prec = options.precision;
        p.sgnd = options.is_signed ? 1 : 0;
    }
    std::unique_ptr<opj_image_t, void (*)(opj_image_t*)> image(
        opj_image_create(options.components, parameters.data(),
                         options.components == 1 ? OPJ_CLRSPC_GRAY : OPJ_CLRSPC_SRGB),
        opj_image_destroy);
    if (!image) {
        throw std::runtime_error("opj_image_create failed");
    }
    image->x1 = width;
    image->y1 = height;
    for (unsigned c = 0; c < options.components; ++c) {
        std::copy_n(samples.begin() + static_cast<std::ptrdiff_t>(c * count), count,
                    image->comps[c].data);
    }
    opj_cparameters_t cp;
    opj_set_default_encoder_parameters(&cp);
    cp.tcp_numlayers = 1;
    cp.cp_disto_alloc = 1;
    cp.tcp_rates[0] = options.lossy ? 10.0F : 0.0F;
    cp.irreversible = options.lossy ? 1 : 0;
    cp.tcp_mct = options.components == 3 ? 1 : 0;
    cp.numresolution = 3;
    std::unique_ptr<opj_codec_t, void (*)(opj_codec_t*)> codec(
        opj_create_compress(options.jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K), opj_destroy_codec);
    if (!codec || !opj_setup_encoder(codec.get(), &cp, image.get())) {
        throw std::runtime_error("opj_setup_encoder failed");
    }
    Sink sink;
    std::unique_ptr<opj_stream_t, void (*)(opj_stream_t*)> stream(
        opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_FALSE), opj_stream_destroy);
    opj_stream_set_user_data(stream.get(), &sink, nullptr);
    opj_stream_set_write_function(stream.get(), sink_write);
    opj_stream_set_skip_function(stream.get(), sink_skip);
    opj_stream_set_seek_function(stream.get(), sink_seek);
    if (!opj_start_compress(codec.get(), image.get(), stream.get()) ||
        !opj_encode(codec.get(), stream.get()) || !opj_end_compress(codec.get(), stream.get())) {
        throw std::runtime_error("OpenJPEG encoding failed");
    }
    return sink.bytes;
}

} // namespace segnode::test
