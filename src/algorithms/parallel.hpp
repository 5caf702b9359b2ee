#pragma once
// Minimal fork-join over an index range with std::thread (internal to the algorithms layer).
#include <algorithm>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace segnode::algorithms::detail {

/// Calls body(begin, end) on `threads` contiguous chunks of [0, count) in parallel (in the
/// calling thread when one chunk suffices) and rethrows the first exception of a chunk.
template <class Body> void parallel_for(std::size_t count, unsigned threads, const Body& body) {
    const std::size_t chunks = std::min<std::size_t>(std::max(threads, 1U), count);
    if (chunks <= 1) {
        if (count > 0) {
            body(std::size_t{0}, count);
        }
        return;
    }
    std::vector<std::exception_ptr> errors(chunks);
    std::vector<std::thread> workers;
    workers.reserve(chunks - 1);
    auto run_chunk = [&](std::size_t c) {
        const std::size_t begin = count * c / chunks;
        const std::size_t end = count * (c + 1) / chunks;
        try {
            body(begin, end);
        } catch (...) {
            errors[c] = std::current_exception();
        }
    };
    for (std::size_t c = 1; c < chunks; ++c) {
        workers.emplace_back(run_chunk, c);
    }
    run_chunk(0);
    for (auto& worker : workers) {
        worker.join();
    }
    for (const auto& error : errors) {
        if (error) {
            std::rethrow_exception(error);
        }
    }
}

} // namespace segnode::algorithms::detail
