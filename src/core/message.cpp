#include "scout/core/message.hpp"

#include <algorithm>
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

bool is_glucose_kind(AlarmKind kind) {
  return kind == AlarmKind::urgent_low || kind == AlarmKind::urgent_low_soon ||
         kind == AlarmKind::low || kind == AlarmKind::urgent_high || kind == AlarmKind::high;
}

}  // namespace

ReadingFacts facts_of(const Assessment& assessment, const AlarmSettings& settings) {
  ReadingFacts facts;
  facts.latest = assessment.latest;
  facts.forecast_low = assessment.forecast_low(settings.predict.horizon);
  facts.status_code = assessment.status_code;
  facts.status_code_since = assessment.status_code_since;
  facts.cadence = assessment.cadence;
  return facts;
}

ReadingFacts update_facts(const ReadingFacts& before, const Assessment& assessment,
                          const AlarmSettings& settings) {
  if (assessment.poll_error) return before;
  ReadingFacts facts = facts_of(assessment, settings);
  if (!facts.latest) {
    facts.latest = before.latest;
    facts.forecast_low = before.forecast_low;
  }
  if (!facts.cadence) facts.cadence = before.cadence;
  return facts;
}

namespace {

// "42 mg/dL 35 min ago" / "42 mg/dL less than a minute ago".
std::string value_and_age(const Entry& reading, GlucoseUnit unit, TimePoint now) {
  const Duration age = std::max(Duration::zero(), now - reading.date);
  return value_with_unit(reading.sgv, unit) + " " + minutes_text(age) + " ago";
}

// The last value and, when a glucose alarm holds meanwhile, which one (SPEC §4.9).
std::string last_value_text(const Message& message, const ReadingFacts& facts, GlucoseUnit unit,
                            TimePoint now, bool with_age) {
  if (!facts.latest) return "";
  const std::string value = with_age ? value_and_age(*facts.latest, unit, now)
                                     : value_with_unit(facts.latest->sgv, unit);
  if (message.paused) {
    return "; the last value, " + value + ", was " +
           (message.paused->kind == AlarmKind::urgent_low ||
                    message.paused->kind == AlarmKind::urgent_low_soon ||
                    message.paused->kind == AlarmKind::urgent_high
                ? "an "
                : "a ") +
           alarm_title(*message.paused);
  }
  return ", last value " + value;
}

std::string alarm_sentence(const std::string& patient_name, const Message& message,
                           const ReadingFacts& facts, const AlarmSettings& settings,
                           GlucoseUnit unit, TimePoint now, const std::string& since_local) {
  const Alarm& alarm = message.alarm;
  std::string text = patient_name + ": " + alarm_title(alarm);
  switch (alarm.kind) {
    case AlarmKind::urgent_low:
    case AlarmKind::urgent_low_soon:
    case AlarmKind::low:
    case AlarmKind::urgent_high:
    case AlarmKind::high: {
      if (!facts.latest) break;
      const Entry& latest = *facts.latest;
      text += ", " + value_with_unit(latest.sgv, unit);
      const auto words = direction_words(latest.direction);
      if (!words.empty()) text += ", " + words;
      text += ", " + minutes_text(std::max(Duration::zero(), now - latest.date)) + " ago";
      if (alarm.kind == AlarmKind::urgent_low_soon && facts.forecast_low) {
        text += ", forecast " + value_with_unit(*facts.forecast_low, unit) + " within " +
                minutes_text(settings.predict.horizon);
      }
      break;
    }
    case AlarmKind::stale:
      if (facts.latest) {
        const Duration age = std::max(Duration::zero(), now - facts.latest->date);
        text += ", no new glucose data for " + minutes_text(age);
        text += last_value_text(message, facts, unit, now, false);
      } else {
        text += ", no glucose data at all from Nightscout";
      }
      if (facts.status_code) {
        text += "; the sensor reports " + describe_status_code(*facts.status_code);
      }
      break;
    case AlarmKind::unreachable:
      text += ", scout cannot reach " + patient_name + "'s Nightscout since " + since_local;
      text += last_value_text(message, facts, unit, now, true);
      break;
    case AlarmKind::sensor_error:
      text += ", the sensor reports " +
              (facts.status_code ? describe_status_code(*facts.status_code)
                                 : std::string("an error")) +
              " since " + since_local;
      text += last_value_text(message, facts, unit, now, true);
      break;
  }
  return text + ".";
}

}  // namespace

std::string render_message(const std::string& patient_name, const Message& message,
                           const ReadingFacts& facts, const AlarmSettings& settings,
                           GlucoseUnit unit, TimePoint now, const std::string& since_local) {
  switch (message.purpose) {
    case MessagePurpose::resolved:
      return resolved_message(patient_name, message.alarm,
                              facts.latest ? std::optional<int>{facts.latest->sgv} : std::nullopt,
                              unit);
    case MessagePurpose::reminder:
      return alarm_sentence(patient_name, message, facts, settings, unit, now, since_local) +
             " Not acknowledged yet.";
    case MessagePurpose::held_back:
      return alarm_sentence(patient_name, message, facts, settings, unit, now, since_local) +
             " (scout did not call: " + message.held_detail + ")";
    case MessagePurpose::alarm:
      break;
  }
  return alarm_sentence(patient_name, message, facts, settings, unit, now, since_local);
}

std::string alarm_message(const std::string& patient_name, const Alarm& alarm,
                          const Assessment& assessment, const AlarmSettings& settings,
                          GlucoseUnit unit, TimePoint now, const std::string& since_local) {
  Message message;
  message.alarm = alarm;
  if (!is_glucose_kind(alarm.kind) && assessment.glucose) message.paused = assessment.glucose;
  return render_message(patient_name, message, facts_of(assessment, settings), settings, unit, now,
                        since_local);
}

std::string resolved_message(const std::string& patient_name, const Alarm& alarm,
                             std::optional<int> sgv, GlucoseUnit unit) {
  std::string text = patient_name;
  text += ": ";
  text += alarm_title(alarm);
  text += " is over";
  if (!is_glucose_kind(alarm.kind)) {
    text += ", readings are arriving again.";
    return text;
  }
  if (sgv) {
    text += ", now ";
    text += format_glucose(*sgv, unit);
    text += " ";
    text += to_string(unit);
  }
  text += ".";
  return text;
}

}  // namespace scout::core
