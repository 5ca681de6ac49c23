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
  std::vector<core::NightscoutSite> sites;
  sites.reserve(patients.size());
  for (const auto* patient : patients) sites.push_back(patient->nightscout);
  return adapters::fetch_all(sites, timeout_);
}

void NightscoutSource::fetch_each(const std::vector<const core::Patient*>& patients,
                                  const std::function<void(Answers&&)>& on_answers) {
  std::vector<core::NightscoutSite> sites;
  sites.reserve(patients.size());
  for (const auto* patient : patients) sites.push_back(patient->nightscout);
  adapters::fetch_each(sites, timeout_, [&](auto&& answers) { on_answers(std::move(answers)); });
}

}  // namespace scout::app
