#include "scout/core/units.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace scout::core {

namespace {

// JavaScript's Math.round: the nearest integer, ties toward +infinity (so -2.5 -> -2, 2.5 -> 3).
// Nightscout rounds every displayed and converted value with it (lib/units.js). Written with
// floor and an exact difference rather than floor(x + 0.5), which misrounds 0.49999999999999994.
double js_round(double x) {
  const double down = std::floor(x);
  return (x - down >= 0.5) ? down + 1.0 : down;
}

// Saturating conversion to a 64-bit integer; NaN gives 0. Keeps the formatting functions free of
// undefined behaviour for absurd inputs.
std::int64_t to_int64(double x) {
  if (std::isnan(x)) {
    return 0;
  }
  // 2^63 is exactly representable; anything at or beyond it does not fit.
  constexpr double k_limit = 9223372036854775808.0;
  if (x >= k_limit) {
    return std::numeric_limits<std::int64_t>::max();
  }
  if (x < -k_limit) {
    return std::numeric_limits<std::int64_t>::min();
  }
  return static_cast<std::int64_t>(x);
}

// "2.9" from 29 tenths, "-0.3" from -3; one decimal as JavaScript's toFixed(1).
std::string format_tenths(std::int64_t tenths) {
  const bool negative = tenths < 0;
  // Magnitude as unsigned so that INT64_MIN does not overflow.
  const std::uint64_t magnitude =
      negative ? std::uint64_t{0} - static_cast<std::uint64_t>(tenths) : static_cast<std::uint64_t>(tenths);
  // Appended piece by piece: `"-" + std::string` trips g++ 12's false -Wrestrict at -O3.
  std::string out;
  if (negative) out += '-';
  out += std::to_string(magnitude / 10);
  out += '.';
  out += std::to_string(magnitude % 10);
  return out;
}

// "+" before a non-negative number's text (its own "-" otherwise). Not `"+" + text`: g++ 12
// raises a false -Wrestrict on that at -O3.
std::string signed_text(bool non_negative, std::string text) {
  if (non_negative) text.insert(text.begin(), '+');
  return text;
}

std::int64_t mmol_tenths(double mgdl) { return to_int64(js_round(mgdl / k_mmol_to_mgdl * 10.0)); }

constexpr const char* k_duration_form =
    "expected whole numbers with units h, m, s or ms, largest unit first, e.g. 45s, 15m, 2h, "
    "1h30m";

struct DurationUnit {
  std::string_view name;
  int rank;                 // larger units rank higher; groups must strictly decrease
  std::int64_t millis;      // length of one unit
};

constexpr DurationUnit k_duration_units[] = {
    {"h", 3, 3'600'000},
    {"m", 2, 60'000},
    {"s", 1, 1'000},
    {"ms", 0, 1},
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

const char* to_string(GlucoseUnit unit) {
  switch (unit) {
    case GlucoseUnit::mg_dl:
      return "mg/dL";
    case GlucoseUnit::mmol_l:
      return "mmol/L";
  }
  return "invalid";
}

int to_mgdl(double value, GlucoseUnit unit) {
  // nightscout/cgm-remote-monitor:lib/units.js mmolToMgdl: Math.round(mmol * MMOL_TO_MGDL).
  const double mgdl = unit == GlucoseUnit::mmol_l ? value * k_mmol_to_mgdl : value;
  const double rounded = js_round(mgdl);
  if (std::isnan(rounded)) {
    return 0;
  }
  if (rounded >= static_cast<double>(std::numeric_limits<int>::max())) {
    return std::numeric_limits<int>::max();
  }
  if (rounded <= static_cast<double>(std::numeric_limits<int>::min())) {
    return std::numeric_limits<int>::min();
  }
  return static_cast<int>(rounded);
}

std::string format_glucose(double mgdl, GlucoseUnit unit) {
  switch (unit) {
    case GlucoseUnit::mg_dl:
      return std::to_string(to_int64(js_round(mgdl)));
    case GlucoseUnit::mmol_l:
      // nightscout/cgm-remote-monitor:lib/units.js mgdlToMMOL:
      // (Math.round(mgdl / MMOL_TO_MGDL * 10) / 10).toFixed(1). Rounding to whole tenths first
      // and printing the integer avoids binary-fraction artefacts in the decimal.
      return format_tenths(mmol_tenths(mgdl));
  }
  return "invalid";
}

std::string format_delta(double mgdl, GlucoseUnit unit) {
  // nightscout/cgm-remote-monitor:lib/plugins/delta.js: display = (value >= 0 ? '+' : '') + value,
  // so a delta that rounds to zero shows as "+0" (JavaScript's -0 >= 0 holds too).
  switch (unit) {
    case GlucoseUnit::mg_dl: {
      const std::int64_t value = to_int64(js_round(mgdl));
      return signed_text(value >= 0, std::to_string(value));
    }
    case GlucoseUnit::mmol_l: {
      const std::int64_t tenths = mmol_tenths(mgdl);
      return signed_text(tenths >= 0, format_tenths(tenths));
    }
  }
  return "invalid";
}

std::string format_delta_between(double recent_mgdl, double previous_mgdl, GlucoseUnit unit) {
  if (unit == GlucoseUnit::mg_dl) return format_delta(recent_mgdl - previous_mgdl, unit);
  // bgnow.js: roundBGToDisplayFormat(scaleMgdl(recent) - scaleMgdl(mean5MinsAgo)), where
  // scaleMgdl already rounds each value to one decimal (lib/units.js mgdlToMMOL).
  const std::int64_t tenths = mmol_tenths(recent_mgdl) - mmol_tenths(previous_mgdl);
  return signed_text(tenths >= 0, format_tenths(tenths));
}

Result<Duration> parse_duration(std::string_view text) {
  const auto bad = [text](const std::string& what) {
    return fail(ErrorKind::config, "invalid duration \"" + std::string(text) + "\": " + what +
                                       "; " + k_duration_form);
  };
  if (text.empty()) {
    return bad("it is empty");
  }

  constexpr std::int64_t k_max = std::numeric_limits<Duration::rep>::max();
  std::int64_t total = 0;
  int previous_rank = 4;  // above every unit
  std::string_view previous_unit;
  std::size_t i = 0;
  while (i < text.size()) {
    // <integer>
    const char first = text[i];
    if (first == '-') {
      return bad("negative durations are not allowed");
    }
    if (!is_digit(first)) {
      if (is_letter(first)) {
        return bad("missing number before unit at position " + std::to_string(i + 1));
      }
      return bad("unexpected character '" + std::string(1, first) + "' at position " +
                 std::to_string(i + 1));
    }
    std::int64_t number = 0;
    const std::size_t number_start = i;
    while (i < text.size() && is_digit(text[i])) {
      const int digit = text[i] - '0';
      if (number > (k_max - digit) / 10) {
        return bad("the number is too large");
      }
      number = number * 10 + digit;
      ++i;
    }
    const std::string_view number_text = text.substr(number_start, i - number_start);
    if (i == text.size()) {
      return bad("missing unit after " + std::string(number_text));
    }
    if (text[i] == '.' || text[i] == ',') {
      return bad("fractions are not allowed, combine units instead (1h30m, not 1.5h)");
    }
    if (!is_letter(text[i])) {
      return bad("unexpected character '" + std::string(1, text[i]) + "' at position " +
                 std::to_string(i + 1));
    }

    // <unit>: the whole run of letters, so that "15min" names "min" as the unknown unit.
    const std::size_t unit_start = i;
    while (i < text.size() && is_letter(text[i])) {
      ++i;
    }
    const std::string_view unit_text = text.substr(unit_start, i - unit_start);
    const DurationUnit* unit = nullptr;
    for (const auto& candidate : k_duration_units) {
      if (candidate.name == unit_text) {
        unit = &candidate;
      }
    }
    if (unit == nullptr) {
      return bad("unknown unit \"" + std::string(unit_text) + "\"");
    }
    if (unit->rank == previous_rank) {
      return bad("unit \"" + std::string(unit_text) + "\" appears twice");
    }
    if (unit->rank > previous_rank) {
      return bad("units out of order, \"" + std::string(unit_text) + "\" after \"" +
                 std::string(previous_unit) + "\"");
    }
    previous_rank = unit->rank;
    previous_unit = unit->name;

    if (number > k_max / unit->millis) {
      return bad("the value is too large");
    }
    const std::int64_t millis = number * unit->millis;
    if (total > k_max - millis) {
      return bad("the value is too large");
    }
    total += millis;
  }
  return Duration{total};
}

std::string format_duration(Duration d) {
  const std::int64_t total_ms = d.count();
  if (total_ms < 0) {
    // Negate in seconds, which cannot overflow (|INT64_MIN| / 1000 fits).
    std::string out(1, '-');
    out += format_duration(Duration{-(total_ms / 1000) * 1000});
    return out;
  }
  const std::int64_t seconds = total_ms / 1000;
  if (seconds == 0) {
    return "0s";
  }
  const std::int64_t hours = seconds / 3600;
  const std::int64_t minutes = seconds % 3600 / 60;
  const std::int64_t rest = seconds % 60;
  std::string text;
  if (hours != 0) {
    text += std::to_string(hours) + "h";
  }
  if (minutes != 0) {
    text += std::to_string(minutes) + "m";
  }
  if (rest != 0) {
    text += std::to_string(rest) + "s";
  }
  return text;
}

std::string format_age(Duration age) {
  // A reading dated slightly in the future (clock skew, SPEC §3 allows 5 minutes) is "0s" old.
  const std::int64_t seconds = age.count() < 0 ? 0 : age.count() / 1000;
  if (seconds < 120) {
    return std::to_string(seconds) + "s";
  }
  const std::int64_t minutes = seconds / 60;
  if (minutes < 60) {
    return std::to_string(minutes) + " min";
  }
  const std::int64_t hours = minutes / 60;
  const std::int64_t rest = minutes % 60;
  std::string text = std::to_string(hours) + " h";
  if (rest != 0) {
    text += ' ';
    text += std::to_string(rest);
    text += " min";
  }
  return text;
}

}  // namespace scout::core
