#include "encapsulated_frames.hpp"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"

#include <algorithm>
#include <string>

namespace segnode::dicom::detail {

Result<std::vector<FragmentRange>> group_fragments(const std::vector<Bytes>& fragments,
                                                   const std::vector<std::uint32_t>& offset_table,
                                                   std::uint32_t frames,
                                                   const std::function<bool(Bytes)>& starts_frame) {
    const std::size_t n = fragments.size();
    const std::string counts = std::to_string(n) + " fragment" + (n == 1 ? "" : "s") + " for " +
                               std::to_string(frames) + " frame" + (frames == 1 ? "" : "s");
    if (frames == 0) {
        return Error{"no frames"};
    }
    if (n < frames) {
        return Error{"the encapsulated pixel data hold " + counts +
                     ": fewer fragments than frames"};
    }
    std::vector<FragmentRange> out;
    out.reserve(frames);
    if (frames == 1) {
        out.push_back({0, n});
        return out;
    }
    if (!offset_table.empty()) {
        if (offset_table.size() != frames) {
            return Error{"the Basic Offset Table has " + std::to_string(offset_table.size()) +
                         " entries for " + std::to_string(frames) + " frames"};
        }
        // Item offsets: each fragment item is an 8-byte tag and length plus its value.
        std::vector<std::uint64_t> item_offset(n);
        std::uint64_t offset = 0;
        for (std::size_t i = 0; i < n; ++i) {
            item_offset[i] = offset;
            offset += 8 + fragments[i].size();
        }
        for (std::uint32_t f = 0; f < frames; ++f) {
            const auto it = std::lower_bound(item_offset.begin(), item_offset.end(),
                                             std::uint64_t{offset_table[f]});
            const auto i = static_cast<std::size_t>(it - item_offset.begin());
            if (it == item_offset.end() || *it != offset_table[f] ||
                (f == 0 ? i != 0 : i <= out.back().first)) {
                return Error{"the Basic Offset Table does not match the fragment items (" + counts +
                             "): entry " + std::to_string(f + 1) + " (offset " +
                             std::to_string(offset_table[f]) +
                             ") is not the start of the next frame's first item"};
            }
            if (f > 0) {
                out.back().last = i;
            }
            out.push_back({i, n});
        }
        return out;
    }
    if (n == frames) {
        for (std::size_t i = 0; i < n; ++i) {
            out.push_back({i, i + 1});
        }
        return out;
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (starts_frame && starts_frame(fragments[i])) {
            if (!out.empty()) {
                out.back().last = i;
            }
            out.push_back({i, n});
        }
    }
    if (out.size() != frames || out.front().first != 0) {
        return Error{"cannot tell which fragments make up each frame: " + counts +
                     ", no Basic Offset Table, and " + std::to_string(out.size()) +
                     " fragments start a codestream"};
    }
    return out;
}

Result<Fragments> read_fragments(DcmPixelSequence& sequence) {
    Fragments out;
    const unsigned long items = sequence.card();
    if (items == 0) {
        return Error{"the encapsulated pixel data have no Basic Offset Table item"};
    }
    for (unsigned long i = 0; i < items; ++i) {
        DcmPixelItem* item = nullptr;
        OFCondition cond = sequence.getItem(item, i);
        if (cond.bad() || item == nullptr) {
            return Error{"cannot read pixel data item " + std::to_string(i) + ": " + cond.text()};
        }
        Uint8* bytes = nullptr;
        const Uint32 length = item->getLength();
        if (length > 0) {
            cond = item->getUint8Array(bytes);
            if (cond.bad() || bytes == nullptr) {
                return Error{"cannot read pixel data item " + std::to_string(i) + ": " +
                             (cond.bad() ? cond.text() : "no value")};
            }
        }
        const Bytes value(bytes, length);
        if (i == 0) {
            if (length % 4 != 0) {
                return Error{"the Basic Offset Table has " + std::to_string(length) +
                             " bytes, not a multiple of 4"};
            }
            for (std::size_t p = 0; p + 4 <= value.size(); p += 4) {
                out.offset_table.push_back(static_cast<std::uint32_t>(value[p]) |
                                           (static_cast<std::uint32_t>(value[p + 1]) << 8U) |
                                           (static_cast<std::uint32_t>(value[p + 2]) << 16U) |
                                           (static_cast<std::uint32_t>(value[p + 3]) << 24U));
            }
        } else {
            out.fragments.push_back(value);
        }
    }
    return out;
}

Bytes frame_bytes(const std::vector<Bytes>& fragments, FragmentRange range,
                  std::vector<std::uint8_t>& joined) {
    if (range.last == range.first + 1) {
        return fragments[range.first];
    }
    joined.clear();
    for (std::size_t i = range.first; i < range.last; ++i) {
        joined.insert(joined.end(), fragments[i].begin(), fragments[i].end());
    }
    return joined;
}

} // namespace segnode::dicom::detail
