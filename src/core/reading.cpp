#include "scout/core/reading.hpp"

#include <string>
#include <string_view>

namespace scout::core {

bool is_usable(const Entry& e, TimePoint now) {
  return e.sgv >= k_sgv_low_code && e.sgv <= k_sgv_high_code && e.date <= now + k_max_future_skew;
}

std::string describe_status_code(int sgv) {
  // Display codes and their meanings from nightscout/cgm-remote-monitor:lib/plugins/errorcodes.js
  // (code2Display and its comments). Nightscout shows an unlisted code N as "N??"; scout says
  // "code N", which reads better in a sentence.
  switch (sgv) {
    case 1:
      return "?SN (sensor not active)";
    case 2:
      return "?MD (minimal deviation)";
    case 3:
      return "?NA (no antenna)";
    case 5:
      return "?NC (sensor not calibrated)";
    case 6:
      return "?CD (counts deviation)";
    case 9:
      return "?AD (absolute deviation)";
    case 10:
      return "??? (power deviation)";
    case 12:
      return "?RF (bad RF)";
    default:
      return "code " + std::to_string(sgv);
  }
}

namespace {

// nightscout/cgm-remote-monitor:lib/plugins/direction.js dir2Char.
struct NameArrow {
  std::string_view name;
  const char* arrow;
};
constexpr NameArrow k_directions[] = {
    {"NONE", "⇼"},
    {"TripleUp", "⤊"},
    {"DoubleUp", "⇈"},
    {"SingleUp", "↑"},
    {"FortyFiveUp", "↗"},
    {"Flat", "→"},
    {"FortyFiveDown", "↘"},
    {"SingleDown", "↓"},
    {"DoubleDown", "⇊"},
    {"TripleDown", "⤋"},
    {"NOT COMPUTABLE", "-"},
    {"RATE OUT OF RANGE", "⇕"},
};

const NameArrow* find_direction(const std::string& direction) {
  for (const auto& entry : k_directions) {
    if (entry.name == direction) {
      return &entry;
    }
  }
  return nullptr;
}

}  // namespace

const char* direction_arrow(const std::string& direction) {
  const NameArrow* found = find_direction(direction);
  return found ? found->arrow : "-";  // unknown -> '-', as dir2Char does
}

bool is_direction_name(const std::string& direction) {
  return find_direction(direction) != nullptr;
}

}  // namespace scout::core
