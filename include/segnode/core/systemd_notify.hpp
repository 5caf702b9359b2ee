#pragma once
#include <string_view>

namespace segnode {

/// Sends a datagram to $NOTIFY_SOCKET (sd_notify protocol) when running under systemd with
/// Type=notify; does nothing otherwise. Returns false only when sending failed.
bool systemd_notify(std::string_view state);

} // namespace segnode
