#include "segnode/algorithms/registry.hpp"

#include "segnode/algorithms/builtin.hpp"

#include <stdexcept>

namespace segnode::algorithms {

Status Registry::add(std::unique_ptr<Algorithm> algorithm) {
    if (!algorithm) {
        return Error{"cannot register a null algorithm"};
    }
    if (auto problem = info_problem(algorithm->info())) {
        return Error{*problem};
    }
    if (find(algorithm->name()) != nullptr) {
        return Error{"algorithm '" + algorithm->name() + "' is already registered"};
    }
    m_algorithms.push_back(std::move(algorithm));
    return ok_status();
}

const Algorithm* Registry::find(std::string_view name) const {
    for (const auto& algorithm : m_algorithms) {
        if (algorithm->name() == name) {
            return algorithm.get();
        }
    }
    return nullptr;
}

Result<const Algorithm*> Registry::get(std::string_view name) const {
    if (const Algorithm* algorithm = find(name)) {
        return algorithm;
    }
    std::string known;
    for (const auto& algorithm : m_algorithms) {
        known += (known.empty() ? "" : ", ") + algorithm->name();
    }
    return Error{"unknown algorithm '" + std::string(name) +
                 "' (known algorithms: " + (known.empty() ? "none" : known) + ")"};
}

std::vector<std::string> Registry::names() const {
    std::vector<std::string> out;
    out.reserve(m_algorithms.size());
    for (const auto& algorithm : m_algorithms) {
        out.push_back(algorithm->name());
    }
    return out;
}

Registry make_builtin_registry() {
    Registry registry;
    for (auto* make : {&make_otsu_algorithm, &make_threshold_algorithm, &make_body_algorithm,
                       &make_lungs_algorithm, &make_bone_algorithm}) {
        if (auto status = registry.add(make()); !status) {
            // A malformed built-in is a programming error caught by the tests.
            throw std::logic_error("built-in algorithm: " + status.error().message);
        }
    }
    return registry;
}

} // namespace segnode::algorithms
