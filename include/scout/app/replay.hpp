#pragma once
// `scout replay` (SPEC §1): the real Service on a simulated clock over a patient's history, with
// simulated telephony that answers as told, and the report a parent reads before a night
// depends on it.
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scout/app/service.hpp"
#include "scout/app/simulated.hpp"
#include "scout/core/alarm.hpp"
#include "scout/core/config.hpp"
#include "scout/core/reading.hpp"

namespace scout::app {

// Below this (mg/dL) a run of readings is a level-2 low episode (shared/data/cgm/README.md).
inline constexpr int k_episode_below_mgdl = 54;
// An episode lasts at least this long (last reading - first reading + cadence).
inline constexpr core::Duration k_episode_min_length = std::chrono::minutes{15};
// An acknowledgement this long before an episode's onset counts for it (a low alarm answered
// just before the value crossed 54).
inline constexpr core::Duration k_ack_lookback = std::chrono::minutes{30};

// One level-2 low episode: consecutive usable readings < 54 mg/dL lasting >= 15 min, counted as
// shared/data/cgm/README.md (convert.py `stats`) counts them: the cadence is the median spacing
// in whole minutes; a gap longer than max(15 min, 1.5 x cadence) ends a run; a run lasts
// (end - start) + cadence.
struct LowEpisode {
  core::TimePoint start{};  // onset: the first reading < 54
  core::TimePoint end{};    // the last reading < 54
  int nadir = 0;            // mg/dL
  // The first acknowledgement of a low-side glucose alarm from start - 30 min on:
  // (its time - start), negative when before the onset, and by whom ("patient" or a name).
  std::optional<core::Duration> ack_after;
  std::string ack_by;
  // The first call of a low-side alarm from start - 30 min on (time - start).
  std::optional<core::Duration> called_after;
};

// Every episode of `entries` (any order; unusable entries and repeated dates ignored), oldest
// first. Empty for fewer than two usable readings.
std::vector<LowEpisode> find_low_episodes(const std::vector<core::Entry>& entries);

// Who answers how: "patient" or a contact's name -> Answer. Anyone not named: `otherwise`.
struct AnswerPlan {
  std::map<std::string, Answer> by_person;
  Answer otherwise = Answer::never;
};

// Parses "patient=never,Bob=ack,Carol=noack" ("*=ack" sets everyone else). Errors (config):
// an unknown answer or a malformed item, naming it.
core::Result<AnswerPlan> parse_answers(const std::string& text);

struct ReplayDay {
  std::string date;                         // YYYY-MM-DD in the patient's timezone
  std::map<std::string, int> alarms;        // kind -> alarms raised that day
  std::map<std::string, int> calls;         // person -> calls
  std::map<std::string, int> sms;           // person -> SMS
};

struct ReplayResult {
  core::TimePoint first{};  // first simulated tick
  core::TimePoint last{};   // last simulated tick
  double days = 0;
  int calls = 0;
  int sms = 0;
  std::vector<Outbound> messages;           // every call and SMS, in order, with its text
  std::vector<core::JournalEntry> journal;  // every journal entry, in order
  std::vector<LowEpisode> episodes;
  std::vector<ReplayDay> per_day;
};

struct ReplaySettings {
  // The first tick is at `from` (default: the first entry), the last at or before `to`
  // (default: the last entry). Ticks every config.poll.interval.
  std::optional<core::TimePoint> from;
  std::optional<core::TimePoint> to;
  // A webhook listener answers (keypress acknowledgements); false: polling, ack = answer.
  bool listening = true;
};

// Runs the Service over `entries` of `patient` (one of `config`'s patients) with simulated
// telephony answering as `answers` says. Deterministic. Every loop is bounded: at most 10,000
// wake-ups between two ticks.
ReplayResult replay(const core::Config& config, const core::Patient& patient,
                    const std::vector<core::Entry>& entries, const AnswerPlan& answers,
                    const ReplaySettings& settings);

// The report: text for people, or the JSON document with the same facts.
std::string replay_text(const ReplayResult& result, const core::Patient& patient);
nlohmann::json replay_json(const ReplayResult& result, const core::Patient& patient);

struct ReplayOptions {
  std::string config_path;
  std::string patient;       // "" = the only patient (an error with several)
  std::string from;          // ISO date/time (UTC unless it says otherwise) or -14d / -36h
  std::string to;
  std::string entries_file;  // a Nightscout entries export (JSON array)
  std::string answer;        // parse_answers text
  std::string format = "text";
};

// The command: exit 0 on a report, 64 usage, 66 entries unreadable, 78 config invalid,
// 1 Nightscout could not be read.
int run_replay(const ReplayOptions& options, std::ostream& out, std::ostream& err);

}  // namespace scout::app
