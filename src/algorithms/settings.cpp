#include "segnode/algorithms/settings.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>
#include <stdexcept>
#include <system_error>

namespace segnode::algorithms {

namespace {

std::string quoted(std::string_view text) {
    return "'" + std::string(text) + "'";
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string format_number(double value) {
    if (std::floor(value) == value && std::abs(value) < 1e15) {
        return std::to_string(static_cast<long long>(value));
    }
    char buf[32];
    const int n = std::snprintf(buf, sizeof buf, "%.10g", value);
    return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

bool key_syntax_ok(std::string_view key) {
    if (key.empty() || key.size() > 64) {
        return false;
    }
    return std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
}

bool value_matches_type(const SettingValue& value, SettingType type) {
    switch (type) {
    case SettingType::Bool:
        return std::holds_alternative<bool>(value);
    case SettingType::Int:
        return std::holds_alternative<std::int64_t>(value);
    case SettingType::Double:
        return std::holds_alternative<double>(value);
    case SettingType::String:
    case SettingType::Enum:
        return std::holds_alternative<std::string>(value);
    }
    return false;
}

std::string_view type_noun(SettingType type) {
    switch (type) {
    case SettingType::Bool:
        return "a boolean (true/false)";
    case SettingType::Int:
        return "an integer";
    case SettingType::Double:
        return "a number";
    case SettingType::String:
        return "a string";
    case SettingType::Enum:
        return "one of the allowed values";
    }
    return "a value";
}

// Range/allowed-value check of a typed value; std::nullopt when fine.
std::optional<std::string> constraint_problem(const SettingSpec& spec, const SettingValue& value) {
    if (spec.type == SettingType::Int || spec.type == SettingType::Double) {
        const double v = spec.type == SettingType::Int
                             ? static_cast<double>(std::get<std::int64_t>(value))
                             : std::get<double>(value);
        if ((spec.minimum && v < *spec.minimum) || (spec.maximum && v > *spec.maximum)) {
            return format_setting_value(value) + " is out of range " + describe_constraint(spec);
        }
    } else if (spec.type == SettingType::Enum) {
        const auto& s = std::get<std::string>(value);
        if (std::find(spec.allowed.begin(), spec.allowed.end(), s) == spec.allowed.end()) {
            return quoted(s) + " is not " + describe_constraint(spec);
        }
    }
    return std::nullopt;
}

std::string known_keys(const std::vector<SettingSpec>& schema) {
    if (schema.empty()) {
        return "this algorithm has no settings";
    }
    std::vector<std::string> keys;
    keys.reserve(schema.size());
    for (const auto& spec : schema) {
        keys.push_back(spec.key);
    }
    std::sort(keys.begin(), keys.end());
    std::string out = "known settings: ";
    for (std::size_t i = 0; i < keys.size(); ++i) {
        out += (i ? ", " : "") + keys[i];
    }
    return out;
}

const SettingSpec* find_spec(const std::vector<SettingSpec>& schema, std::string_view key) {
    for (const auto& spec : schema) {
        if (spec.key == key) {
            return &spec;
        }
    }
    return nullptr;
}

[[noreturn]] void throw_missing(std::string_view key, std::string_view wanted) {
    throw std::logic_error("setting '" + std::string(key) + "' is not a " + std::string(wanted) +
                           " setting of this algorithm's schema");
}

} // namespace

std::string_view to_string(SettingType type) {
    switch (type) {
    case SettingType::Bool:
        return "bool";
    case SettingType::Int:
        return "int";
    case SettingType::Double:
        return "double";
    case SettingType::String:
        return "string";
    case SettingType::Enum:
        return "enum";
    }
    return "?";
}

SettingSpec bool_setting(std::string key, bool default_value, std::string help) {
    SettingSpec spec;
    spec.key = std::move(key);
    spec.type = SettingType::Bool;
    spec.default_value = default_value;
    spec.help = std::move(help);
    return spec;
}

SettingSpec int_setting(std::string key, std::int64_t default_value, std::int64_t minimum,
                        std::int64_t maximum, std::string help) {
    SettingSpec spec;
    spec.key = std::move(key);
    spec.type = SettingType::Int;
    spec.default_value = default_value;
    spec.minimum = static_cast<double>(minimum);
    spec.maximum = static_cast<double>(maximum);
    spec.help = std::move(help);
    return spec;
}

SettingSpec double_setting(std::string key, double default_value, double minimum, double maximum,
                           std::string help) {
    SettingSpec spec;
    spec.key = std::move(key);
    spec.type = SettingType::Double;
    spec.default_value = default_value;
    spec.minimum = minimum;
    spec.maximum = maximum;
    spec.help = std::move(help);
    return spec;
}

SettingSpec string_setting(std::string key, std::string default_value, std::string help) {
    SettingSpec spec;
    spec.key = std::move(key);
    spec.type = SettingType::String;
    spec.default_value = std::move(default_value);
    spec.help = std::move(help);
    return spec;
}

SettingSpec enum_setting(std::string key, std::string default_value,
                         std::vector<std::string> allowed, std::string help) {
    SettingSpec spec;
    spec.key = std::move(key);
    spec.type = SettingType::Enum;
    spec.default_value = std::move(default_value);
    spec.allowed = std::move(allowed);
    spec.help = std::move(help);
    return spec;
}

std::string format_setting_value(const SettingValue& value) {
    if (const auto* b = std::get_if<bool>(&value)) {
        return *b ? "true" : "false";
    }
    if (const auto* i = std::get_if<std::int64_t>(&value)) {
        return std::to_string(*i);
    }
    if (const auto* d = std::get_if<double>(&value)) {
        return format_number(*d);
    }
    return std::get<std::string>(value);
}

std::string describe_constraint(const SettingSpec& spec) {
    if (spec.type == SettingType::Enum) {
        std::string out = "one of: ";
        for (std::size_t i = 0; i < spec.allowed.size(); ++i) {
            out += (i ? ", " : "") + spec.allowed[i];
        }
        return out;
    }
    if (spec.type == SettingType::Int || spec.type == SettingType::Double) {
        if (spec.minimum && spec.maximum) {
            return "[" + format_number(*spec.minimum) + ", " + format_number(*spec.maximum) + "]";
        }
        if (spec.minimum) {
            return ">= " + format_number(*spec.minimum);
        }
        if (spec.maximum) {
            return "<= " + format_number(*spec.maximum);
        }
    }
    return {};
}

std::optional<std::string> spec_problem(const SettingSpec& spec) {
    if (!key_syntax_ok(spec.key)) {
        return "setting key " + quoted(spec.key) +
               " must be 1-64 characters of lower case letters, digits and '_'";
    }
    if (!value_matches_type(spec.default_value, spec.type)) {
        return "setting " + quoted(spec.key) + ": default is not of type " +
               std::string(to_string(spec.type));
    }
    if (spec.type == SettingType::Double) {
        if (!std::isfinite(std::get<double>(spec.default_value))) {
            return "setting " + quoted(spec.key) + ": default is not finite";
        }
    }
    if (spec.type == SettingType::Enum && spec.allowed.empty()) {
        return "setting " + quoted(spec.key) + ": enum without allowed values";
    }
    if (spec.minimum && spec.maximum && *spec.minimum > *spec.maximum) {
        return "setting " + quoted(spec.key) + ": minimum above maximum";
    }
    if (auto problem = constraint_problem(spec, spec.default_value)) {
        return "setting " + quoted(spec.key) + ": default " + *problem;
    }
    return std::nullopt;
}

Result<std::pair<std::string, std::string>> parse_assignment(std::string_view text) {
    const auto eq = text.find('=');
    if (eq == std::string_view::npos) {
        return Error{"setting " + quoted(text) + " is not of the form key=value"};
    }
    std::string key(text.substr(0, eq));
    if (key.empty()) {
        return Error{"setting " + quoted(text) + " has an empty key"};
    }
    return std::pair<std::string, std::string>{std::move(key), std::string(text.substr(eq + 1))};
}

Result<RawSettings> parse_assignments(const std::vector<std::string>& texts) {
    RawSettings raw;
    for (const std::string& text : texts) {
        auto assignment = parse_assignment(text);
        if (!assignment) {
            return assignment.error();
        }
        raw.push_back(std::move(assignment).value());
    }
    return raw;
}

Result<SettingValue> parse_setting_value(const SettingSpec& spec, std::string_view text) {
    const std::string prefix = spec.key + ": ";
    auto wrong_type = [&] {
        return Error{prefix + "expected " + std::string(type_noun(spec.type)) + ", got " +
                     quoted(text)};
    };
    SettingValue value;
    switch (spec.type) {
    case SettingType::Bool: {
        const std::string v = lower(text);
        if (v == "true" || v == "1" || v == "yes" || v == "on") {
            value = true;
        } else if (v == "false" || v == "0" || v == "no" || v == "off") {
            value = false;
        } else {
            return wrong_type();
        }
        break;
    }
    case SettingType::Int: {
        std::string_view t = text;
        if (!t.empty() && t.front() == '+') {
            t.remove_prefix(1);
        }
        std::int64_t v = 0;
        const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (ec == std::errc::result_out_of_range) {
            return Error{prefix + quoted(text) + " is out of range " + describe_constraint(spec)};
        }
        if (t.empty() || ec != std::errc{} || ptr != t.data() + t.size()) {
            return wrong_type();
        }
        value = v;
        break;
    }
    case SettingType::Double: {
        std::string_view t = text;
        if (!t.empty() && t.front() == '+') {
            t.remove_prefix(1);
        }
        double v = 0.0;
        const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (t.empty() || ec != std::errc{} || ptr != t.data() + t.size()) {
            return wrong_type();
        }
        if (!std::isfinite(v)) {
            return Error{prefix + "expected a finite number, got " + quoted(text)};
        }
        value = v;
        break;
    }
    case SettingType::String:
    case SettingType::Enum:
        value = std::string(text);
        break;
    }
    if (auto problem = constraint_problem(spec, value)) {
        return Error{prefix + *problem};
    }
    return value;
}

Result<Settings> parse_settings(const std::vector<SettingSpec>& schema, const RawSettings& raw) {
    Settings settings;
    std::set<std::string, std::less<>> given;
    for (const auto& [key, text] : raw) {
        const SettingSpec* spec = find_spec(schema, key);
        if (spec == nullptr) {
            return Error{"unknown setting " + quoted(key) + " (" + known_keys(schema) + ")"};
        }
        if (!given.insert(key).second) {
            return Error{"setting " + quoted(key) + " given twice"};
        }
        auto value = parse_setting_value(*spec, text);
        if (!value) {
            return value.error();
        }
        settings.set(key, std::move(value).value());
    }
    for (const auto& spec : schema) {
        if (!settings.contains(spec.key)) {
            settings.set(spec.key, spec.default_value);
        }
    }
    return settings;
}

Result<Settings> complete_settings(const std::vector<SettingSpec>& schema,
                                   const Settings& settings) {
    Settings out;
    for (const auto& [key, value] : settings.values()) {
        const SettingSpec* spec = find_spec(schema, key);
        if (spec == nullptr) {
            return Error{"unknown setting " + quoted(key) + " (" + known_keys(schema) + ")"};
        }
        if (!value_matches_type(value, spec->type)) {
            return Error{key + ": expected " + std::string(type_noun(spec->type)) + ", got " +
                         quoted(format_setting_value(value))};
        }
        if (spec->type == SettingType::Double && !std::isfinite(std::get<double>(value))) {
            return Error{key + ": expected a finite number"};
        }
        if (auto problem = constraint_problem(*spec, value)) {
            return Error{key + ": " + *problem};
        }
        out.set(key, value);
    }
    for (const auto& spec : schema) {
        if (!out.contains(spec.key)) {
            out.set(spec.key, spec.default_value);
        }
    }
    return out;
}

bool Settings::get_bool(std::string_view key) const {
    const auto* v = find(key);
    if (v == nullptr || !std::holds_alternative<bool>(*v)) {
        throw_missing(key, "bool");
    }
    return std::get<bool>(*v);
}

std::int64_t Settings::get_int(std::string_view key) const {
    const auto* v = find(key);
    if (v == nullptr || !std::holds_alternative<std::int64_t>(*v)) {
        throw_missing(key, "int");
    }
    return std::get<std::int64_t>(*v);
}

double Settings::get_double(std::string_view key) const {
    const auto* v = find(key);
    if (v == nullptr || !std::holds_alternative<double>(*v)) {
        throw_missing(key, "double");
    }
    return std::get<double>(*v);
}

const std::string& Settings::get_string(std::string_view key) const {
    const auto* v = find(key);
    if (v == nullptr || !std::holds_alternative<std::string>(*v)) {
        throw_missing(key, "string");
    }
    return std::get<std::string>(*v);
}

bool Settings::contains(std::string_view key) const {
    return m_values.find(key) != m_values.end();
}

const SettingValue* Settings::find(std::string_view key) const {
    const auto it = m_values.find(key);
    return it == m_values.end() ? nullptr : &it->second;
}

void Settings::set(std::string key, SettingValue value) {
    m_values.insert_or_assign(std::move(key), std::move(value));
}

std::string Settings::to_string() const {
    std::string out;
    for (const auto& [key, value] : m_values) {
        if (!out.empty()) {
            out += ' ';
        }
        out += key + "=" + format_setting_value(value);
    }
    return out;
}

} // namespace segnode::algorithms
