#pragma once
// Algorithm settings: a schema per algorithm, and validated values parsed from the text
// key=value pairs a user gives (`segnode run --set min_hu=-500`, a routing rule in the config).
// Every run validates its settings: unknown keys, duplicate keys, values of the wrong type and
// values out of range are errors that name the key.
#include "segnode/core/result.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace segnode::algorithms {

enum class SettingType { Bool, Int, Double, String, Enum };

/// "bool", "int", "double", "string" or "enum".
std::string_view to_string(SettingType type);

/// A typed value: bool for Bool, std::int64_t for Int, double for Double, std::string for
/// String and Enum.
using SettingValue = std::variant<bool, std::int64_t, double, std::string>;

/// One setting of an algorithm's schema.
struct SettingSpec {
    std::string key; ///< lower case letters, digits and '_'
    SettingType type = SettingType::String;
    SettingValue default_value;
    std::optional<double> minimum;    ///< Int and Double: inclusive lower bound
    std::optional<double> maximum;    ///< Int and Double: inclusive upper bound
    std::vector<std::string> allowed; ///< Enum: the allowed values
    std::string help;
};

// Schema helpers.
SettingSpec bool_setting(std::string key, bool default_value, std::string help);
SettingSpec int_setting(std::string key, std::int64_t default_value, std::int64_t minimum,
                        std::int64_t maximum, std::string help);
SettingSpec double_setting(std::string key, double default_value, double minimum, double maximum,
                           std::string help);
SettingSpec string_setting(std::string key, std::string default_value, std::string help);
SettingSpec enum_setting(std::string key, std::string default_value,
                         std::vector<std::string> allowed, std::string help);

/// Text of a value as a user would write it ("true", "-500", "0.5", "otsu").
std::string format_setting_value(const SettingValue& value);

/// Human-readable constraint of a spec: "[0, 100]", "one of: a, b", "" when unconstrained.
std::string describe_constraint(const SettingSpec& spec);

/// std::nullopt when the spec is well formed (key syntax, default of the right type and
/// within range or allowed), otherwise the reason.
std::optional<std::string> spec_problem(const SettingSpec& spec);

/// Settings as given by a user: key and value text, in the order given.
using RawSettings = std::vector<std::pair<std::string, std::string>>;

/// Splits "key=value" (the first '=' separates; the value may be empty, the key may not).
Result<std::pair<std::string, std::string>> parse_assignment(std::string_view text);
/// parse_assignment of each text, in order (e.g. repeated --set options); the first error.
Result<RawSettings> parse_assignments(const std::vector<std::string>& texts);

/// Validated settings: one typed value per key of a schema.
/// Getters throw std::logic_error for a key that is absent or of another type: the algorithm
/// asked for something its schema does not declare, a programming error.
class Settings {
public:
    [[nodiscard]] bool get_bool(std::string_view key) const;
    [[nodiscard]] std::int64_t get_int(std::string_view key) const;
    [[nodiscard]] double get_double(std::string_view key) const;
    /// For String and Enum settings.
    [[nodiscard]] const std::string& get_string(std::string_view key) const;

    [[nodiscard]] bool contains(std::string_view key) const;
    [[nodiscard]] const SettingValue* find(std::string_view key) const;
    void set(std::string key, SettingValue value);
    [[nodiscard]] const std::map<std::string, SettingValue, std::less<>>& values() const {
        return m_values;
    }
    /// "key=value key=value ..." in key order, for logs and job records.
    [[nodiscard]] std::string to_string() const;

private:
    std::map<std::string, SettingValue, std::less<>> m_values;
};

/// Parses one value for a spec; the error message is "<key>: <reason>".
Result<SettingValue> parse_setting_value(const SettingSpec& spec, std::string_view text);

/// Validates user settings against a schema; keys not given get their defaults.
/// Errors: "unknown setting 'x' (known settings: a, b, c)", "setting 'x' given twice",
/// "x: expected an integer, got '1.5'", "x: 5000 is out of range [-1024, 3071]", ...
Result<Settings> parse_settings(const std::vector<SettingSpec>& schema, const RawSettings& raw);

/// Checks already typed settings against a schema and fills in defaults for absent keys
/// (used by Algorithm::run so that hand-built Settings are checked as well).
Result<Settings> complete_settings(const std::vector<SettingSpec>& schema,
                                   const Settings& settings);

} // namespace segnode::algorithms
