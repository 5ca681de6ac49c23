#pragma once
// Simulated CGM source and telephony for `scout replay`, `scout check` and the tests: the same
// Service runs on them as on the real adapters, on a ManualClock.
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "scout/app/seams.hpp"
#include "scout/core/alarm.hpp"
#include "scout/core/reading.hpp"

namespace scout::app {

// Serves recorded entries as Nightscout would at the clock's now: per patient, the newest
// adapters::k_entries_count entries dated at or before now, newest first. A patient without
// entries gets an empty answer. Patients are matched by name.
class ReplaySource final : public CgmSource {
 public:
  ReplaySource(const Clock& clock, std::map<std::string, std::vector<core::Entry>> entries);
  std::vector<FetchResult> fetch(const std::vector<const core::Patient*>& patients) override;
  // Makes the next fetches of `patient` fail with `error` until `until` (a Nightscout outage).
  void fail_until(const std::string& patient, core::TimePoint until, core::Error error);

 private:
  const Clock& clock_;
  std::map<std::string, std::vector<core::Entry>> entries_;  // oldest first
  std::map<std::string, std::pair<core::TimePoint, core::Error>> outages_;
};

// How a simulated person answers a call (SPEC §1 `replay --answer`).
enum class Answer {
  never,    // rings out: unanswered after 45 s
  ack,      // a person answers after 15 s and presses 1 after 30 s; ends at 40 s
  noack,    // a person answers after 15 s, presses nothing (no input at 30 s); ends at 40 s
  machine,  // voicemail picks up after 20 s
  busy,     // busy after 5 s
};
const char* to_string(Answer answer);
std::optional<Answer> answer_from_string(std::string_view name);

// Telephony that places nothing: it records every call and SMS and schedules, per number, the
// webhook events the answering pattern produces (listener mode), to be delivered by the driver
// at their time through Service::deliver. poll_call answers with the last progress reached by the
// clock's now (mode without a listener). Thread-safe.
class SimulatedTelephony final : public Telephony {
 public:
  SimulatedTelephony(const Clock& clock, std::map<std::string, Answer> by_number,
                     Answer otherwise);
  core::Result<adapters::Sent> place_call(const adapters::CallRequest& request) override;
  core::Result<adapters::Sent> send_sms(const std::string& to, const std::string& text) override;
  adapters::ProviderResult<adapters::CallStatus> poll_call(const std::string& provider,
                                                           const std::string& call_id) override;
  // Among the calls this telephony placed: the newest to request.to since request.decided_at −
  // adapters::k_lookup_slack whose id is not known. Fails while down.
  core::Result<std::optional<adapters::Sent>> find_call(
      const adapters::CallRequest& request) override;

  // The earliest scheduled event, if any (time, event); take_next removes it.
  std::optional<core::TimePoint> next_event_at() const;
  std::optional<core::Event> take_next();
  // Makes every request fail (a provider outage) while `down` is true.
  void set_down(bool down);

 private:
  struct Scheduled {
    core::TimePoint at;
    std::uint64_t seq;
    core::Event event;
  };
  struct Later {
    bool operator()(const Scheduled& a, const Scheduled& b) const {
      return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
  };
  struct Progress {
    core::TimePoint at;
    core::CallProgress progress;
    std::string digits;
  };
  const Clock& clock_;
  std::map<std::string, Answer> by_number_;
  Answer otherwise_;
  mutable std::mutex mutex_;
  std::priority_queue<Scheduled, std::vector<Scheduled>, Later> events_;
  std::map<std::string, std::vector<Progress>> timeline_;  // call id -> what happens when
  struct Placed {
    std::string id;
    std::string to;
    core::TimePoint at;
  };
  std::vector<Placed> placed_;  // every call placed, oldest first
  std::uint64_t seq_ = 0;
  std::uint64_t ids_ = 0;
  bool down_ = false;
};

}  // namespace scout::app
