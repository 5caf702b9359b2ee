#pragma once
// The algorithms segnode knows, by name. Registration is explicit: make_builtin_registry()
// adds the built-ins; the pipeline adds external algorithms from the config with add().
#include "segnode/algorithms/algorithm.hpp"
#include "segnode/core/result.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace segnode::algorithms {

class Registry {
public:
    /// Adds an algorithm; errors for a malformed AlgorithmInfo or a name already registered.
    Status add(std::unique_ptr<Algorithm> algorithm);

    /// The algorithm of that name, or nullptr.
    [[nodiscard]] const Algorithm* find(std::string_view name) const;
    /// The algorithm of that name, or an error listing the known names.
    [[nodiscard]] Result<const Algorithm*> get(std::string_view name) const;

    /// Names in registration order.
    [[nodiscard]] std::vector<std::string> names() const;
    [[nodiscard]] std::size_t size() const { return m_algorithms.size(); }
    [[nodiscard]] const std::vector<std::unique_ptr<Algorithm>>& algorithms() const {
        return m_algorithms;
    }

private:
    std::vector<std::unique_ptr<Algorithm>> m_algorithms;
};

/// A registry holding the built-ins: otsu, threshold, body, lungs, bone.
Registry make_builtin_registry();

} // namespace segnode::algorithms
