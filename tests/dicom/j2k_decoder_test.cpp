// The JPEG 2000 frame decoder (OpenJPEG) on codestreams of known samples, and the grouping of
// encapsulated fragments into frames. The series-level cases (phantoms in JPEG 2000, fragments,
// multi-frame) are in series_loader_test.cpp; the real corpus in real_data_test.cpp.
#include "encapsulated_frames.hpp"
#include "j2k_decoder.hpp"
#include "j2k_encode.hpp"

#include <cstring>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <random>
#include <string>
#include <vector>

namespace segnode::dicom::detail {
namespace {

using test::encode_j2k;
using test::J2kEncodeOptions;
using ::testing::HasSubstr;

constexpr unsigned width = 37; // odd sizes: no accidental multiple of a code block
constexpr unsigned height = 23;

std::vector<std::int32_t> random_samples(std::int32_t lo, std::int32_t hi, unsigned seed,
                                         std::size_t count = std::size_t{width} * height) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::int32_t> dist(lo, hi);
    std::vector<std::int32_t> out(count);
    for (auto& v : out) {
        v = dist(rng);
    }
    // The extremes, so that sign and precision handling is exercised at the edges.
    out[0] = lo;
    out[1] = hi;
    return out;
}

J2kFrameFormat format(std::uint16_t bits_allocated, std::uint16_t bits_stored, bool is_signed,
                      std::uint16_t high_bit = 0) {
    return {.rows = height,
            .columns = width,
            .bits_allocated = bits_allocated,
            .bits_stored = bits_stored,
            .high_bit = high_bit == 0 ? static_cast<std::uint16_t>(bits_stored - 1) : high_bit,
            .is_signed = is_signed};
}

/// The stored value of a 16-bit sample as the loader reads it (BitsStored wide, sign-extended).
std::int32_t stored_value(std::uint16_t raw, const J2kFrameFormat& f) {
    const unsigned shift = f.high_bit + 1U - f.bits_stored;
    const auto value = static_cast<std::int32_t>((raw >> shift) & ((1U << f.bits_stored) - 1U));
    const std::int32_t sign = f.is_signed ? (1 << (f.bits_stored - 1)) : 0;
    return (value ^ sign) - sign;
}

TEST(J2kDecoder, VersionNamesOpenJpeg) {
    EXPECT_THAT(openjpeg_version(), HasSubstr("OpenJPEG 2."));
}

TEST(J2kDecoder, LosslessIsExactForEveryPixelFormat) {
    struct Case {
        unsigned precision;
        bool is_signed;
        std::uint16_t bits_allocated;
        std::int32_t lo;
        std::int32_t hi;
    };
    const Case cases[] = {
        {12, false, 16, 0, 4095},      // CT, unsigned 12 bit
        {16, false, 16, 0, 65535},     // full unsigned 16 bit
        {16, true, 16, -32768, 32767}, // signed 16 bit
        {12, true, 16, -2048, 2047},   // signed 12 bit
        {8, false, 8, 0, 255},         // 8 bits allocated
        {7, true, 8, -64, 63},         // signed, fewer bits than allocated
    };
    unsigned seed = 1;
    for (const Case& c : cases) {
        SCOPED_TRACE(std::to_string(c.precision) + (c.is_signed ? " signed" : " unsigned"));
        const auto samples = random_samples(c.lo, c.hi, seed++);
        const auto stream = encode_j2k(samples, width, height,
                                       {.precision = c.precision, .is_signed = c.is_signed});
        const auto f =
            format(c.bits_allocated, static_cast<std::uint16_t>(c.precision), c.is_signed);
        std::vector<std::uint16_t> out(samples.size() + 1, 0xABCD);
        for (const unsigned threads : {1U, 3U}) {
            const auto info = decode_j2k_frame(stream, f, out.data(), threads);
            ASSERT_TRUE(info.ok()) << info.error().message;
            EXPECT_EQ(info->precision, c.precision);
            EXPECT_EQ(info->is_signed, c.is_signed);
            EXPECT_FALSE(info->sign_from_header);
            for (std::size_t p = 0; p < samples.size(); ++p) {
                const std::int32_t got =
                    c.bits_allocated == 8
                        ? stored_value(reinterpret_cast<const std::uint8_t*>(out.data())[p], f)
                        : stored_value(out[p], f);
                ASSERT_EQ(got, samples[p]) << "sample " << p;
            }
        }
        const std::vector<std::uint16_t> pristine(out.size(), 0xABCD);
        const std::size_t used = samples.size() * c.bits_allocated / 8;
        EXPECT_EQ(std::memcmp(reinterpret_cast<const std::uint8_t*>(out.data()) + used,
                              reinterpret_cast<const std::uint8_t*>(pristine.data()) + used,
                              out.size() * 2 - used),
                  0)
            << "wrote past the frame";
    }
}

TEST(J2kDecoder, HighBitAboveBitsStoredPlacesTheValueAsUncompressedDataWould) {
    const auto samples = random_samples(0, 4095, 11);
    const auto stream = encode_j2k(samples, width, height, {.precision = 12});
    const auto f = format(16, 12, false, 13);
    std::vector<std::uint16_t> out(samples.size());
    ASSERT_TRUE(decode_j2k_frame(stream, f, out.data(), 1).ok());
    for (std::size_t p = 0; p < samples.size(); ++p) {
        ASSERT_EQ(out[p], samples[p] << 2) << p;
    }
}

TEST(J2kDecoder, JP2FileIsDecodedToo) {
    const auto samples = random_samples(0, 4095, 3);
    const auto stream = encode_j2k(samples, width, height, {.precision = 12, .jp2 = true});
    std::vector<std::uint16_t> out(samples.size());
    const auto info = decode_j2k_frame(stream, format(16, 12, false), out.data(), 1);
    ASSERT_TRUE(info.ok()) << info.error().message;
    EXPECT_TRUE(info->jp2);
    EXPECT_EQ(std::vector<std::int32_t>(out.begin(), out.end()), samples);
}

TEST(J2kDecoder, SignednessUnlikeTheHeaderFollowsTheHeaderAtTheSamePrecision) {
    // Unsigned 16-bit codestream in a PixelRepresentation 1 image: the bit patterns are the
    // signed values the header describes (what pydicom and GDCM do).
    const std::vector<std::int32_t> samples(std::size_t{width} * height, 65535);
    const auto stream = encode_j2k(samples, width, height, {.precision = 16});
    const auto f = format(16, 16, true);
    std::vector<std::uint16_t> out(samples.size());
    const auto info = decode_j2k_frame(stream, f, out.data(), 1);
    ASSERT_TRUE(info.ok()) << info.error().message;
    EXPECT_TRUE(info->sign_from_header);
    EXPECT_EQ(stored_value(out[0], f), -1);
}

TEST(J2kDecoder, ValuesBeyondBitsStoredAreRefused) {
    // A 16-bit codestream whose values exceed what BitsStored 12 holds.
    const auto samples = random_samples(0, 5000, 5);
    const auto stream = encode_j2k(samples, width, height, {.precision = 16});
    std::vector<std::uint16_t> out(samples.size());
    const auto info = decode_j2k_frame(stream, format(16, 12, false), out.data(), 1);
    ASSERT_FALSE(info.ok());
    EXPECT_THAT(info.error().message, HasSubstr("do not fit BitsStored 12"));
    EXPECT_THAT(info.error().message, HasSubstr("16-bit unsigned samples"));
}

TEST(J2kDecoder, LossyCodestreamDecodesCloseToTheOriginal) {
    std::vector<std::int32_t> samples(std::size_t{width} * height);
    for (unsigned y = 0; y < height; ++y) {
        for (unsigned x = 0; x < width; ++x) {
            samples[y * width + x] = static_cast<std::int32_t>(1000 + 20 * x + 10 * y);
        }
    }
    const auto stream = encode_j2k(samples, width, height, {.precision = 12, .lossy = true});
    std::vector<std::uint16_t> out(samples.size());
    ASSERT_TRUE(decode_j2k_frame(stream, format(16, 12, false), out.data(), 1).ok());
    double error = 0.0;
    for (std::size_t p = 0; p < samples.size(); ++p) {
        error += std::abs(static_cast<double>(out[p]) - samples[p]);
    }
    // 10:1 on a 12-bit ramp: close, but not exact.
    EXPECT_GT(error, 0.0);
    EXPECT_LT(error / static_cast<double>(samples.size()), 64.0);
}

TEST(J2kDecoder, ColourIsRefusedWithTheComponentCount) {
    const auto samples = random_samples(0, 255, 9, std::size_t{width} * height * 3);
    const auto stream = encode_j2k(samples, width, height, {.precision = 8, .components = 3});
    std::vector<std::uint16_t> out(std::size_t{width} * height);
    const auto info = decode_j2k_frame(stream, format(8, 8, false), out.data(), 1);
    ASSERT_FALSE(info.ok());
    EXPECT_THAT(info.error().message, HasSubstr("3 components"));
    EXPECT_THAT(info.error().message, HasSubstr("only single-component grayscale"));
}

TEST(J2kDecoder, SizeOrPrecisionUnlikeTheHeaderIsRefused) {
    const auto samples = random_samples(0, 4095, 4);
    const auto stream = encode_j2k(samples, width, height, {.precision = 12});
    std::vector<std::uint16_t> out(std::size_t{width + 1} * height);
    auto f = format(16, 12, false);
    f.columns = width + 1;
    const auto wrong_size = decode_j2k_frame(stream, f, out.data(), 1);
    ASSERT_FALSE(wrong_size.ok());
    EXPECT_THAT(wrong_size.error().message,
                HasSubstr("is 37 x 23 but the header says Columns 38, Rows 23"));
    const auto wide = encode_j2k(random_samples(0, 255, 4), width, height, {.precision = 12});
    const auto too_wide = decode_j2k_frame(wide, format(8, 8, false), out.data(), 1);
    ASSERT_FALSE(too_wide.ok());
    EXPECT_THAT(too_wide.error().message, HasSubstr("12-bit samples, more than BitsAllocated 8"));
}

TEST(J2kDecoder, TruncatedOrForeignDataIsAnErrorNotAnImage) {
    const auto samples = random_samples(0, 4095, 8);
    const auto stream = encode_j2k(samples, width, height, {.precision = 12});
    std::vector<std::uint16_t> out(samples.size());
    const auto f = format(16, 12, false);
    const std::span<const std::uint8_t> half(stream.data(), stream.size() / 2);
    const auto truncated = decode_j2k_frame(half, f, out.data(), 1);
    ASSERT_FALSE(truncated.ok());
    EXPECT_THAT(truncated.error().message, HasSubstr("OpenJPEG"));
    const std::vector<std::uint8_t> jpeg{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10};
    const auto foreign = decode_j2k_frame(jpeg, f, out.data(), 1);
    ASSERT_FALSE(foreign.ok());
    EXPECT_THAT(foreign.error().message, HasSubstr("not a JPEG 2000 codestream: it starts with "
                                                   "FF D8 FF E0"));
    const auto empty = decode_j2k_frame({}, f, out.data(), 1);
    ASSERT_FALSE(empty.ok());
    EXPECT_THAT(empty.error().message, HasSubstr("empty frame"));
}

// --- fragments -> frames -------------------------------------------------------------------

std::vector<Bytes> fragments_of(const std::vector<std::vector<std::uint8_t>>& storage) {
    std::vector<Bytes> out;
    for (const auto& s : storage) {
        out.emplace_back(s);
    }
    return out;
}

bool starts_with_soc(Bytes b) {
    return b.size() >= 2 && b[0] == 0xFF && b[1] == 0x4F;
}

TEST(EncapsulatedFrames, SingleFrameTakesEveryFragment) {
    const std::vector<std::vector<std::uint8_t>> s{{0xFF, 0x4F}, {1, 2}, {3}};
    const auto ranges = group_fragments(fragments_of(s), {}, 1, starts_with_soc);
    ASSERT_TRUE(ranges.ok());
    ASSERT_EQ(ranges->size(), 1U);
    EXPECT_EQ((*ranges)[0].first, 0U);
    EXPECT_EQ((*ranges)[0].last, 3U);
    std::vector<std::uint8_t> joined;
    const Bytes frame = frame_bytes(fragments_of(s), (*ranges)[0], joined);
    EXPECT_EQ(std::vector<std::uint8_t>(frame.begin(), frame.end()),
              (std::vector<std::uint8_t>{0xFF, 0x4F, 1, 2, 3}));
}

TEST(EncapsulatedFrames, OffsetTableGroupsSeveralFragmentsPerFrame) {
    // Frame 1: fragments 0, 1 (4 + 2 bytes); frame 2: fragment 2; frame 3: fragments 3, 4.
    const std::vector<std::vector<std::uint8_t>> s{
        {0xFF, 0x4F, 0, 0}, {9, 9}, {0xFF, 0x4F}, {0xFF, 0x4F, 7}, {0xFF, 0x4F}};
    // Item offsets: 0, 12, 22, 32, 43.
    const auto ranges = group_fragments(fragments_of(s), {0, 22, 32}, 3, starts_with_soc);
    ASSERT_TRUE(ranges.ok()) << ranges.error().message;
    ASSERT_EQ(ranges->size(), 3U);
    EXPECT_EQ((*ranges)[0].first, 0U);
    EXPECT_EQ((*ranges)[0].last, 2U);
    EXPECT_EQ((*ranges)[1].first, 2U);
    EXPECT_EQ((*ranges)[1].last, 3U);
    EXPECT_EQ((*ranges)[2].first, 3U);
    EXPECT_EQ((*ranges)[2].last, 5U); // the SOC at the start of fragment 4 does not matter
}

TEST(EncapsulatedFrames, WithoutOffsetTableOneFragmentPerFrameOrCodestreamStarts) {
    const std::vector<std::vector<std::uint8_t>> one_each{{0xFF, 0x4F}, {0xFF, 0x4F}};
    const auto simple = group_fragments(fragments_of(one_each), {}, 2, starts_with_soc);
    ASSERT_TRUE(simple.ok());
    EXPECT_EQ((*simple)[1].first, 1U);
    const std::vector<std::vector<std::uint8_t>> split{{0xFF, 0x4F}, {5}, {0xFF, 0x4F}, {6}, {7}};
    const auto by_marker = group_fragments(fragments_of(split), {}, 2, starts_with_soc);
    ASSERT_TRUE(by_marker.ok()) << by_marker.error().message;
    EXPECT_EQ((*by_marker)[0].last, 2U);
    EXPECT_EQ((*by_marker)[1].first, 2U);
    EXPECT_EQ((*by_marker)[1].last, 5U);
}

TEST(EncapsulatedFrames, WhatDoesNotAddUpIsAnError) {
    const std::vector<std::vector<std::uint8_t>> s{{0xFF, 0x4F}, {5}, {6}};
    EXPECT_THAT(group_fragments(fragments_of(s), {}, 4, starts_with_soc).error().message,
                HasSubstr("3 fragments for 4 frames: fewer fragments than frames"));
    EXPECT_THAT(group_fragments(fragments_of(s), {}, 2, starts_with_soc).error().message,
                HasSubstr("no Basic Offset Table, and 1 fragments start a codestream"));
    EXPECT_THAT(group_fragments(fragments_of(s), {0, 5}, 2, starts_with_soc).error().message,
                HasSubstr("entry 2 (offset 5) is not the start"));
    EXPECT_THAT(group_fragments(fragments_of(s), {0}, 2, starts_with_soc).error().message,
                HasSubstr("the Basic Offset Table has 1 entries for 2 frames"));
}

} // namespace
} // namespace segnode::dicom::detail
