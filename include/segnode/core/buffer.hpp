#pragma once
// Large voxel buffers without page-fault storms.
//
// A fresh anonymous page costs a page fault on first touch; on virtual machines such as the
// ones segnode is deployed on (and measured on: see bench/README.md) that fault is expensive
// enough that merely zero-filling a new 157 MB volume took ~0.7 s, more than reading the
// whole series. Buffers of 4 MiB and more are therefore mapped with MAP_POPULATE, which lets
// the kernel fault every page in one pass (~0.08 s for the same 157 MB); smaller ones come
// from the ordinary allocator.
#include <cstddef>
#include <memory>
#include <new>
#include <sys/mman.h>
#include <vector>

namespace segnode {

template <class T> class PrefaultAllocator {
public:
    using value_type = T;
    static constexpr std::size_t k_threshold_bytes = std::size_t{4} << 20;

    PrefaultAllocator() noexcept = default;
    template <class U>
    PrefaultAllocator(const PrefaultAllocator<U>& /*other*/) noexcept {} // NOLINT

    [[nodiscard]] T* allocate(std::size_t n) {
        if (n > static_cast<std::size_t>(-1) / sizeof(T)) {
            throw std::bad_array_new_length();
        }
        const std::size_t bytes = n * sizeof(T);
        if (bytes < k_threshold_bytes) {
            return std::allocator<T>{}.allocate(n);
        }
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p == MAP_FAILED) {
            throw std::bad_alloc();
        }
        return static_cast<T*>(p);
    }

    void deallocate(T* p, std::size_t n) noexcept {
        const std::size_t bytes = n * sizeof(T);
        if (bytes < k_threshold_bytes) {
            std::allocator<T>{}.deallocate(p, n);
        } else {
            ::munmap(p, bytes);
        }
    }

    template <class U> bool operator==(const PrefaultAllocator<U>& /*other*/) const noexcept {
        return true;
    }
};

/// The buffer type of volumes and label maps (core/volume.hpp).
template <class T> using Buffer = std::vector<T, PrefaultAllocator<T>>;

/// A copy of `values` in a Buffer (for data made by code that knows nothing of Buffer).
template <class T> Buffer<T> to_buffer(const std::vector<T>& values) {
    return Buffer<T>(values.begin(), values.end());
}

} // namespace segnode
