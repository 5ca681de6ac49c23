#include "scout/core/message.hpp"

#include <string>

namespace scout::core {

std::string direction_words(const std::string& direction) {
  // Names from nightscout/cgm-remote-monitor:lib/plugins/direction.js (dir2Char).
  if (direction == "TripleDown") return "falling very fast";
  if (direction == "DoubleDown") return "falling fast";
  if (direction == "SingleDown") return "falling";
  if (direction == "FortyFiveDown") return "falling slowly";
  if (direction == "Flat") return "steady";
  if (direction == "FortyFiveUp") return "rising slowly";
  if (direction == "SingleUp") return "rising";
  if (direction == "DoubleUp") return "rising fast";
  if (direction == "TripleUp") return "rising very fast";
  return "";
}

std::string alarm_title(const Alarm& alarm) {
  switch (alarm.kind) {
    case AlarmKind::urgent_low:
      return "URGENT LOW";
    case AlarmKind::urgent_low_soon:
      return "URGENT LOW SOON";
    case AlarmKind::low:
      return "LOW";
    case AlarmKind::urgent_high:
      return "URGENT HIGH";
    case AlarmKind::high:
      return "HIGH";
    case AlarmKind::stale:
      return "NO DATA";
    case AlarmKind::unreachable:
      return "NIGHTSCOUT UNREACHABLE";
    case AlarmKind::sensor_error:
      return "SENSOR ERROR";
  }
  return "ALARM";
}

namespace {

std::string value_with_unit(int sgv, GlucoseUnit unit) {
  // Sensor limits are said as the sensor shows them (Nightscout lib/sandbox.js displayBg).
  if (sgv == k_sgv_low_code) return "below the sensor's range (LOW)";
  if (sgv == k_sgv_high_code) return "above the sensor's range (HIGH)";
  return format_glucose(sgv, unit) + " " + to_string(unit);
}

std::string minutes_text(Duration d) {
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(d).count();
  if (minutes < 1) return "less than a minute";
  if (minutes < 120) return std::to_string(minutes) + " min";
  std::string text = std::to_string(minutes / 60) + " h";
  if (minutes % 60 != 0) {
    text += " ";
    text += std::to_string(minutes % 60);
    text += " min";
  }
  return text;
}

}  // namespace

std::string alarm_message(const std::string& patient_name, const Alarm& alarm,
                          const Assessment& assessment, const AlarmSettings& settings,
                          GlucoseUnit unit, const std::string& since_local) {
  std::string text = patient_name + ": " + alarm_title(alarm);
  switch (alarm.kind) {
    case AlarmKind::urgent_low:
    case AlarmKind::urgent_low_soon:
    case AlarmKind::low:
    case AlarmKind::urgent_high:
    case AlarmKind::high: {
      if (!assessment.latest) break;
      text += ", " + value_with_unit(assessment.latest->sgv, unit);
      const auto words = direction_words(assessment.latest->direction);
      if (!words.empty()) text += ", " + words;
      if (alarm.kind == AlarmKind::urgent_low_soon) {
        // The lowest forecast point inside the horizon is what triggered the alarm.
        int lowest = assessment.latest->sgv;
        for (const auto& point : assessment.forecast) {
          if (point.at - assessment.latest->date <= settings.predict.horizon && point.mgdl < lowest) {
            lowest = point.mgdl;
          }
        }
        text += ", forecast " + value_with_unit(lowest, unit) + " within " +
                minutes_text(settings.predict.horizon);
      } else if (assessment.age) {
        text += ", " + minutes_text(*assessment.age) + " ago";
      }
      break;
    }
    case AlarmKind::stale:
      if (assessment.latest && assessment.age) {
        text += ", no new glucose data for " + minutes_text(*assessment.age) + ", last value " +
                value_with_unit(assessment.latest->sgv, unit);
      } else {
        text += ", no glucose data at all from Nightscout";
      }
      if (assessment.status_code) {
        text += "; the sensor reports " + describe_status_code(*assessment.status_code);
      }
      break;
    case AlarmKind::unreachable:
      text += ", scout cannot reach " + patient_name + "'s Nightscout since " + since_local;
      break;
    case AlarmKind::sensor_error:
      text += ", the sensor reports " +
              (assessment.status_code ? describe_status_code(*assessment.status_code)
                                      : std::string("an error")) +
              " since " + since_local;
      if (assessment.latest) {
        text += ", last value " + value_with_unit(assessment.latest->sgv, unit);
      }
      break;
  }
  return text + ".";
}

}  // namespace scout::core
