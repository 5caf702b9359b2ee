#include "segnode/core/clock.hpp"

#include <cstdio>
#include <ctime>
#include <gtest/gtest.h>
#include <random>

using segnode::format_utc_ms;

namespace {

/// The reference: the C library's gmtime_r.
std::string libc_utc_ms(std::int64_t ms) {
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char text[64];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms % 1000));
    return text;
}

} // namespace

TEST(Clock, FormatsKnownInstants) {
    EXPECT_EQ(format_utc_ms(0), "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(format_utc_ms(951782400999), "2000-02-29T00:00:00.999Z");
    EXPECT_EQ(format_utc_ms(1709164800000), "2024-02-29T00:00:00.000Z");
    EXPECT_EQ(format_utc_ms(4102444799999), "2099-12-31T23:59:59.999Z");
}

TEST(Clock, AgreesWithGmtimeOverTwoCenturies) {
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<std::int64_t> any(0, 7258118399999); // 1970 .. 2199
    for (int i = 0; i < 200000; ++i) {
        const std::int64_t ms = any(rng);
        ASSERT_EQ(format_utc_ms(ms), libc_utc_ms(ms)) << ms;
    }
    EXPECT_EQ(format_utc_ms(segnode::now_ms()).size(), 24U);
}
