// Fuzz target: bytes -> the TOML config parser (parse_config, which load_config and
// `segnode config check` use). Any input must give a Config or an Error with a message;
// nothing may crash, hang or trip a sanitizer.
#include "segnode/core/config.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto config = segnode::parse_config(text, "fuzz.toml");
    if (!config && config.error().message.empty()) {
        std::abort(); // an error must say what is wrong
    }
    return 0;
}
