#include "segnode/dicom/receive_handler.hpp"

#include <array>
#include <cstdio>
#include <cstring>
#include <memory>

namespace segnode::dicom {

std::uintmax_t file_dataset_offset(const std::filesystem::path& file, std::string& error) {
    // Part 10 layout: 128-byte preamble, "DICM", then (0002,0000) UL 4 <group length>
    // in explicit VR little endian: 12 bytes whose last 4 hold the length of the rest.
    std::array<unsigned char, 144> head{};
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(file.c_str(), "rb"), &std::fclose);
    if (!f) {
        error = file.string() + ": cannot open";
        return 0;
    }
    if (std::fread(head.data(), 1, head.size(), f.get()) != head.size()) {
        error = file.string() + ": too short for a DICOM file";
        return 0;
    }
    if (std::memcmp(&head[128], "DICM", 4) != 0 || head[132] != 0x02 || head[133] != 0x00 ||
        head[134] != 0x00 || head[135] != 0x00 || head[136] != 'U' || head[137] != 'L') {
        error = file.string() + ": no file meta group length after the DICM prefix";
        return 0;
    }
    const std::uint32_t length = static_cast<std::uint32_t>(head[140]) |
                                 (static_cast<std::uint32_t>(head[141]) << 8U) |
                                 (static_cast<std::uint32_t>(head[142]) << 16U) |
                                 (static_cast<std::uint32_t>(head[143]) << 24U);
    return 144U + length;
}

} // namespace segnode::dicom
