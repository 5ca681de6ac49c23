#include "scout/app/seams.hpp"

#include <chrono>

#include "scout/adapters/nightscout.hpp"

namespace scout::app {

core::TimePoint SystemClock::now() const {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

std::vector<FetchResult> NightscoutSource::fetch(const std::vector<const core::Patient*>& patients) {
  std::vector<core::NightscoutSite> sites;
  sites.reserve(patients.size());
  for (const auto* patient : patients) sites.push_back(patient->nightscout);
  return adapters::fetch_all(sites, timeout_);
}

}  // namespace scout::app
