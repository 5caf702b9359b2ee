#pragma once
// Expected-style return values for anticipated failures (bad input, refused requests).
// Exceptions remain for programming errors and failures nothing can sensibly handle.
#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace segnode {

struct Error {
    std::string message;
};

template <typename T> class [[nodiscard]] Result {
public:
    Result(T value) : m_value(std::move(value)) {}     // NOLINT(google-explicit-constructor)
    Result(Error error) : m_value(std::move(error)) {} // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool ok() const { return std::holds_alternative<T>(m_value); }
    explicit operator bool() const { return ok(); }

    T& value() & {
        assert(ok());
        return std::get<T>(m_value);
    }
    const T& value() const& {
        assert(ok());
        return std::get<T>(m_value);
    }
    T&& value() && {
        assert(ok());
        return std::get<T>(std::move(m_value));
    }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    [[nodiscard]] const Error& error() const {
        assert(!ok());
        return std::get<Error>(m_value);
    }

private:
    std::variant<T, Error> m_value;
};

/// Result of an operation that yields nothing but may fail.
class [[nodiscard]] Status {
public:
    Status() = default;
    Status(Error error) : m_error(std::move(error)), m_failed(true) {} // NOLINT
    [[nodiscard]] bool ok() const { return !m_failed; }
    explicit operator bool() const { return ok(); }
    [[nodiscard]] const Error& error() const { return m_error; }

private:
    Error m_error;
    bool m_failed = false;
};

inline Status ok_status() {
    return {};
}

} // namespace segnode
