#include "scout/app/seams.hpp"

#include <chrono>

#include "scout/adapters/nightscout.hpp"
#include "scout/adapters/wall_clock.hpp"

namespace scout::app {

core::TimePoint SystemClock::now() const { return adapters::wall_clock_now(); }

core::Duration SystemClock::monotonic() const {
  return std::chrono::duration_cast<core::Duration>(
      std::chrono::steady_clock::now().time_since_epoch());
}

std::vector<FetchResult> NightscoutSource::fetch(const std::vector<const core::Patient*>& patients) {
  std::vector<FetchResult> all(patients.size(),
                               FetchResult{core::fail(core::ErrorKind::internal, "no answer")});
  fetch_each(patients, [&](Answers&& answers) {
    for (auto& [i, answer] : answers) {
      if (i < all.size()) all[i] = std::move(answer);
    }
  });
  return all;
}

void NightscoutSource::fetch_each(const std::vector<const core::Patient*>& patients,
                                  const std::function<void(Answers&&)>& on_answers) {
  sites_.clear();
  sites_.reserve(patients.size());
  for (const auto* patient : patients) sites_.push_back(patient->nightscout);
  const auto requests = recent_.requests(sites_, clock_.now());
  poller_.fetch_each(requests, timeout_, [&](auto&& answers) {
    for (auto& [i, answer] : answers) answer = recent_.fold(i, std::move(answer));
    on_answers(std::move(answers));
  });
}

}  // namespace scout::app
