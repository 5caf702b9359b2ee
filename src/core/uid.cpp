#include "segnode/core/uid.hpp"

#include <array>
#include <cstdint>
#include <random>

namespace segnode {

std::optional<std::string> uid_problem(std::string_view uid) {
    if (uid.empty()) {
        return std::string("UID is empty");
    }
    if (uid.size() > 64) {
        return "UID is " + std::to_string(uid.size()) + " characters long (at most 64)";
    }
    std::size_t component_start = 0;
    for (std::size_t i = 0; i <= uid.size(); ++i) {
        if (i == uid.size() || uid[i] == '.') {
            const std::size_t len = i - component_start;
            if (len == 0) {
                return std::string("UID has an empty component (leading, trailing or double dot)");
            }
            if (len > 1 && uid[component_start] == '0') {
                return std::string("UID component has a leading zero");
            }
            component_start = i + 1;
        } else if (uid[i] < '0' || uid[i] > '9') {
            return "UID contains a character other than digits and dots at position " +
                   std::to_string(i + 1);
        }
    }
    return std::nullopt;
}

std::string generate_uuid_uid() {
    // 128 random bits with the UUID version (4) and variant bits set, printed as one decimal
    // integer below the 2.25 root (PS3.5 B.2).
    static thread_local std::mt19937_64 engine{std::random_device{}()};
    std::uint64_t hi = engine();
    std::uint64_t lo = engine();
    hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
    lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
    // Convert the 128-bit value to decimal by repeated division of 32-bit limbs.
    std::array<std::uint32_t, 4> limbs = {
        static_cast<std::uint32_t>(hi >> 32), static_cast<std::uint32_t>(hi),
        static_cast<std::uint32_t>(lo >> 32), static_cast<std::uint32_t>(lo)};
    std::string digits;
    auto is_zero = [&] { return limbs[0] == 0 && limbs[1] == 0 && limbs[2] == 0 && limbs[3] == 0; };
    while (!is_zero()) {
        std::uint64_t rem = 0;
        for (auto& limb : limbs) {
            const std::uint64_t cur = (rem << 32) | limb;
            limb = static_cast<std::uint32_t>(cur / 10);
            rem = cur % 10;
        }
        digits.push_back(static_cast<char>('0' + rem));
    }
    return "2.25." + std::string(digits.rbegin(), digits.rend());
}

} // namespace segnode
