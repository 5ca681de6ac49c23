// Specification of the shell-side helpers of scout/app/control.hpp: --since and the journal
// narration of `scout log` (SPEC §1).

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scout/app/control.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using scout::app::narrate_alarm;
using scout::app::parse_since;
using scout::core::TimePoint;

namespace {

// 2026-11-22T03:14:00Z
const TimePoint k_now{std::chrono::sys_days{std::chrono::year{2026} / 11 / 22}.time_since_epoch() +
                      3h + 14min};

TimePoint utc(int day, int hour, int minute) {
  return TimePoint{std::chrono::sys_days{std::chrono::year{2026} / 11 / day}.time_since_epoch() +
                   std::chrono::hours{hour} + std::chrono::minutes{minute}};
}

json line(const std::string& time, const std::string& type,
          std::vector<std::pair<std::string, std::string>> fields) {
  json j{{"time", time}, {"type", type}, {"patient", "Alice"}, {"alarm", "a3"}};
  for (auto& [k, v] : fields) j[k] = v;
  return j;
}

}  // namespace

TEST_CASE("log --since reads relative, clock and calendar times in the zone given", "[control]") {
  CHECK(*parse_since("-8h", k_now, "UTC") == k_now - 8h);
  CHECK(*parse_since("-2d", k_now, "UTC") == k_now - 48h);
  // HH:MM: the latest such time not after now.
  CHECK(*parse_since("02:00", k_now, "UTC") == utc(22, 2, 0));
  CHECK(*parse_since("22:00", k_now, "UTC") == utc(21, 22, 0));
  CHECK(*parse_since("yesterday 22:00", k_now, "UTC") == utc(21, 22, 0));
  CHECK(*parse_since("yesterday", k_now, "UTC") == utc(21, 0, 0));
  CHECK(*parse_since("today 01:30", k_now, "UTC") == utc(22, 1, 30));
  CHECK(*parse_since("2026-11-20", k_now, "UTC") == utc(20, 0, 0));
  CHECK(*parse_since("2026-11-20 22:15", k_now, "UTC") == utc(20, 22, 15));
  CHECK(*parse_since("2026-11-20T22:15", k_now, "UTC") == utc(20, 22, 15));
  // Local time of the zone: 22:00 in Paris (UTC+1 in November) is 21:00 UTC.
  CHECK(*parse_since("yesterday 22:00", k_now, "Europe/Paris") == utc(21, 21, 0));
  for (const std::string bad : {"", "last tuesday", "25:00", "2026-02-30", "-", "-xh", "12:60"}) {
    INFO(bad);
    const auto parsed = parse_since(bad, k_now, "UTC");
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().kind == scout::core::ErrorKind::usage);
    CHECK(parsed.error().message.find("yesterday 22:00") != std::string::npos);
  }
}

TEST_CASE("log narrates one alarm as one line: value, calls, outcomes, keypresses, the clear",
          "[control]") {
  const std::vector<json> entries{
      line("2026-11-22T02:13:05.000Z", "alarm_raised",
           {{"kind", "urgent_low"}, {"sgv", "52"}, {"direction", "SingleDown"}}),
      line("2026-11-22T02:13:05.100Z", "step", {{"step", "0"}}),
      line("2026-11-22T02:13:05.100Z", "call", {{"to_label", "patient"}, {"call", "c4"}}),
      line("2026-11-22T02:13:06.000Z", "call_placed", {{"to_label", "patient"}, {"call", "c4"}}),
      line("2026-11-22T02:13:51.000Z", "call_outcome",
           {{"to_label", "patient"}, {"progress", "unanswered"}}),
      line("2026-11-22T02:13:52.000Z", "call_placed", {{"to_label", "Bob"}, {"call", "c5"}}),
      line("2026-11-22T02:13:52.000Z", "sms", {{"to_label", "Carol"}, {"sms", "s6"}}),
      line("2026-11-22T02:13:53.000Z", "sms_sent", {{"sms", "s6"}}),
      line("2026-11-22T02:14:10.000Z", "call_outcome", {{"to_label", "Bob"}, {"progress", "answered"}}),
      line("2026-11-22T02:14:11.000Z", "call_outcome", {{"to_label", "Bob"}, {"progress", "human"}}),
      line("2026-11-22T02:14:20.000Z", "keypress", {{"to_label", "Bob"}, {"digits", "1"}}),
      line("2026-11-22T02:14:20.000Z", "acknowledged", {{"by", "Bob"}, {"snooze", "15m"}}),
      line("2026-11-22T02:41:00.000Z", "alarm_resolved", {{"sgv", "110"}, {"direction", "Flat"}}),
  };
  CHECK(narrate_alarm(entries, scout::core::GlucoseUnit::mg_dl, "UTC") ==
        "02:13 Alice URGENT LOW 52 mg/dL falling — called Alice — no answer — called Bob — "
        "texted Carol — answered — pressed 1 — acknowledged, snoozed 15m — 02:41 cleared at "
        "110 mg/dL steady");
  // In mmol/L, and in the patient's zone.
  CHECK(narrate_alarm(entries, scout::core::GlucoseUnit::mmol_l, "Europe/Paris").rfind(
            "03:13 Alice URGENT LOW 2.9 mmol/L falling", 0) == 0);
  // A data alarm names the last value.
  const std::vector<json> stale{
      line("2026-11-22T02:13:05.000Z", "alarm_raised", {{"kind", "stale"}, {"sgv", "42"}}),
      line("2026-11-22T02:20:00.000Z", "snoozed", {{"by", "mum"}, {"snooze", "30m"}, {"via", "shell"}}),
  };
  CHECK(narrate_alarm(stale, scout::core::GlucoseUnit::mg_dl, "UTC") ==
        "02:13 Alice NO DATA (last 42 mg/dL) — 02:20 snoozed 30m by mum");
}
