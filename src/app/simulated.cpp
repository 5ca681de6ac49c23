#include "scout/app/simulated.hpp"

#include <algorithm>
#include <array>

#include "scout/adapters/nightscout.hpp"

namespace scout::app {

using namespace std::chrono_literals;

ReplaySource::ReplaySource(const Clock& clock,
                           std::map<std::string, std::vector<core::Entry>> entries)
    : clock_(clock), entries_(std::move(entries)) {
  for (auto& [name, list] : entries_) {
    std::stable_sort(list.begin(), list.end(),
                     [](const core::Entry& a, const core::Entry& b) { return a.date < b.date; });
  }
}

void ReplaySource::fail_until(const std::string& patient, core::TimePoint until,
                              core::Error error) {
  outages_[patient] = {until, std::move(error)};
}

std::vector<FetchResult> ReplaySource::fetch(const std::vector<const core::Patient*>& patients) {
  const core::TimePoint now = clock_.now();
  std::vector<FetchResult> out;
  out.reserve(patients.size());
  for (const auto* patient : patients) {
    if (const auto outage = outages_.find(patient->name);
        outage != outages_.end() && now < outage->second.first) {
      out.emplace_back(tl::unexpected(outage->second.second));
      continue;
    }
    std::vector<core::Entry> served;
    if (const auto it = entries_.find(patient->name); it != entries_.end()) {
      const auto& list = it->second;
      const auto newer = std::upper_bound(
          list.begin(), list.end(), now,
          [](core::TimePoint t, const core::Entry& e) { return t < e.date; });
      const auto count =
          std::min<std::ptrdiff_t>(newer - list.begin(), adapters::k_entries_count);
      served.assign(std::make_reverse_iterator(newer), std::make_reverse_iterator(newer - count));
    }
    out.emplace_back(std::move(served));
  }
  return out;
}

const char* to_string(Answer answer) {
  switch (answer) {
    case Answer::never:
      return "never";
    case Answer::ack:
      return "ack";
    case Answer::noack:
      return "noack";
    case Answer::machine:
      return "machine";
    case Answer::busy:
      return "busy";
  }
  return "never";
}

std::optional<Answer> answer_from_string(std::string_view name) {
  constexpr std::array all{Answer::never, Answer::ack, Answer::noack, Answer::machine,
                           Answer::busy};
  for (const auto answer : all) {
    if (name == to_string(answer)) return answer;
  }
  return std::nullopt;
}

SimulatedTelephony::SimulatedTelephony(const Clock& clock, std::map<std::string, Answer> by_number,
                                       Answer otherwise)
    : clock_(clock), by_number_(std::move(by_number)), otherwise_(otherwise) {}

void SimulatedTelephony::set_down(bool down) {
  const std::lock_guard lock{mutex_};
  down_ = down;
}

core::Result<adapters::Sent> SimulatedTelephony::place_call(const adapters::CallRequest& request) {
  const std::lock_guard lock{mutex_};
  if (down_) return core::fail(core::ErrorKind::network, "simulated: provider down");
  const core::TimePoint now = clock_.now();
  const std::string id = "sim-" + std::to_string(++ids_);
  const auto it = by_number_.find(request.to);
  const Answer answer = it == by_number_.end() ? otherwise_ : it->second;
  using P = core::CallProgress;
  std::vector<Progress> steps;
  switch (answer) {
    case Answer::never:
      steps = {{now + 45s, P::unanswered, ""}};
      break;
    case Answer::ack:
      steps = {{now + 15s, P::human, ""}, {now + 30s, P::human, "1"}, {now + 40s, P::completed, ""}};
      break;
    case Answer::noack:
      steps = {{now + 15s, P::human, ""}, {now + 30s, P::human, "-"}, {now + 40s, P::completed, ""}};
      break;
    case Answer::machine:
      steps = {{now + 20s, P::machine, ""}};
      break;
    case Answer::busy:
      steps = {{now + 5s, P::busy, ""}};
      break;
  }
  for (const auto& step : steps) {
    core::Event event;
    if (step.digits == "1" || step.digits == "-") {
      // A keypress webhook; "-" is the gather timing out with no key (digits "").
      event = core::Keypress{request.call_key, id, step.digits == "1" ? "1" : ""};
      if (!request.gather) continue;  // nothing is gathered: no input webhook
    } else {
      event = core::CallUpdate{request.call_key, id, step.progress, "simulated"};
    }
    events_.push(Scheduled{step.at, ++seq_, std::move(event)});
  }
  timeline_[id] = std::move(steps);
  placed_.push_back(Placed{id, request.to, now});
  return adapters::Sent{"simulated", id};
}

core::Result<std::optional<adapters::Sent>> SimulatedTelephony::find_call(
    const adapters::CallRequest& request) {
  const std::lock_guard lock{mutex_};
  if (down_) return core::fail(core::ErrorKind::network, "simulated: provider down");
  for (auto it = placed_.rbegin(); it != placed_.rend(); ++it) {
    if (it->to != request.to || it->at < request.decided_at - adapters::k_lookup_slack) continue;
    const auto& known = request.known_call_ids;
    if (std::find(known.begin(), known.end(), it->id) != known.end()) continue;
    return std::optional<adapters::Sent>{adapters::Sent{"simulated", it->id}};
  }
  return std::optional<adapters::Sent>{};
}

core::Result<adapters::Sent> SimulatedTelephony::send_sms(const std::string&, const std::string&) {
  const std::lock_guard lock{mutex_};
  if (down_) return core::fail(core::ErrorKind::network, "simulated: provider down");
  return adapters::Sent{"simulated", "sim-sms-" + std::to_string(++ids_)};
}

adapters::ProviderResult<adapters::CallStatus> SimulatedTelephony::poll_call(
    const std::string&, const std::string& call_id) {
  const std::lock_guard lock{mutex_};
  adapters::CallStatus status;
  const auto it = timeline_.find(call_id);
  if (it == timeline_.end()) return status;  // ringing
  const core::TimePoint now = clock_.now();
  for (const auto& step : it->second) {
    if (step.at > now) break;
    status.progress = step.progress;
    if (step.digits == "1") status.digits = "1";
  }
  return status;
}

std::optional<core::TimePoint> SimulatedTelephony::next_event_at() const {
  const std::lock_guard lock{mutex_};
  if (events_.empty()) return std::nullopt;
  return events_.top().at;
}

std::optional<core::Event> SimulatedTelephony::take_next() {
  const std::lock_guard lock{mutex_};
  if (events_.empty()) return std::nullopt;
  core::Event event = events_.top().event;
  events_.pop();
  return event;
}

}  // namespace scout::app
