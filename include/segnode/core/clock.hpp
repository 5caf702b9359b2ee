#pragma once
#include <cstdint>
#include <string>

namespace segnode {

/// Milliseconds since the Unix epoch (system clock); what the database stores.
std::int64_t now_ms();

/// "2026-11-21T19:53:07.123Z" for a Unix-epoch millisecond value.
std::string format_utc_ms(std::int64_t epoch_ms);

} // namespace segnode
