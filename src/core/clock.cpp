#include "segnode/core/clock.hpp"

#include <chrono>
#include <fmt/format.h>

namespace segnode {

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string format_utc_ms(std::int64_t epoch_ms) {
    // Civil date from days since the epoch (H. Hinnant's algorithm): no gmtime_r, whose
    // time-zone lock and fmt formatting made up a sixth of the HTTP job listing's CPU.
    const auto floor_div = [](std::int64_t a, std::int64_t b) {
        return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
    };
    const std::int64_t secs = floor_div(epoch_ms, 1000);
    const auto ms = static_cast<int>(epoch_ms - secs * 1000);
    const std::int64_t days = floor_div(secs, 86400);
    const auto sod = static_cast<int>(secs - days * 86400);
    const std::int64_t z = days + 719468;
    const std::int64_t era = floor_div(z, 146097);
    const std::int64_t doe = z - era * 146097;
    const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const std::int64_t mp = (5 * doy + 2) / 153;
    const auto day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    const auto month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
    if (year < 0 || year > 9999) {
        return fmt::format("{}ms", epoch_ms); // outside what the database ever holds
    }
    char text[] = "0000-00-00T00:00:00.000Z";
    const auto put = [&text](int pos, int width, std::int64_t value) {
        for (int i = pos + width - 1; i >= pos; --i) {
            text[i] = static_cast<char>('0' + value % 10);
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, sod / 3600);
    put(14, 2, sod / 60 % 60);
    put(17, 2, sod % 60);
    put(20, 3, ms);
    return std::string(text, sizeof text - 1);
}

} // namespace segnode
