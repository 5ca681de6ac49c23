#include "scout/core/config.hpp"

#include <cctype>

namespace scout::core {

Thresholds apply(const Thresholds& base, const ThresholdOverrides& overrides) {
  Thresholds out = base;
  if (overrides.urgent_low) {
    out.urgent_low = *overrides.urgent_low;
  }
  if (overrides.low) {
    out.low = *overrides.low;
  }
  if (overrides.high) {
    out.high = *overrides.high;
  }
  if (overrides.urgent_high) {
    out.urgent_high = *overrides.urgent_high;
  }
  return out;
}

bool in_window(const ScheduleEntry& entry, int minute_of_day) {
  if (entry.start_minute < entry.end_minute) {
    return entry.start_minute <= minute_of_day && minute_of_day < entry.end_minute;
  }
  if (entry.start_minute > entry.end_minute) {
    // Wraps midnight: "22:00-07:00" holds from 22:00 to 23:59 and from 00:00 to 06:59.
    return minute_of_day >= entry.start_minute || minute_of_day < entry.end_minute;
  }
  // An empty window (validation rejects it) never matches.
  return false;
}

Thresholds thresholds_at(const AlarmSettings& settings, int minute_of_day) {
  Thresholds out = settings.thresholds;
  for (const ScheduleEntry& entry : settings.schedule) {
    if (in_window(entry, minute_of_day)) {
      out = apply(out, entry.thresholds);
    }
  }
  return out;
}

const char* to_string(AckMode mode) {
  switch (mode) {
    case AckMode::keypress:
      return "keypress";
    case AckMode::answer:
      return "answer";
  }
  return "invalid";
}

const char* to_string(ProviderType type) {
  switch (type) {
    case ProviderType::vonage:
      return "vonage";
    case ProviderType::twilio:
      return "twilio";
    case ProviderType::console:
      return "console";
  }
  return "invalid";
}

bool is_e164(std::string_view number) {
  // ITU-T E.164: at most 15 digits, country code first (never 0). scout writes them with '+'.
  if (number.size() < 3 || number.size() > 16 || number.front() != '+') {
    return false;
  }
  if (number[1] == '0') {
    return false;
  }
  for (std::size_t i = 1; i < number.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(number[i])) == 0) {
      return false;
    }
  }
  return true;
}

}  // namespace scout::core
