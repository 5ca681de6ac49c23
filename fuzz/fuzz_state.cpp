// libFuzzer target: the state file reader (JSON, then adapters::state_from_json) and the next
// due time of whatever it accepts (core::next_due), where an unbounded time would overflow.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "scout/adapters/state_store.hpp"
#include "scout/core/alarm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > scout::adapters::k_max_state_bytes) return 0;
  const auto document = nlohmann::json::parse(data, data + size, nullptr, false);
  if (document.is_discarded()) return 0;
  const auto state = scout::adapters::state_from_json(document);
  if (state) {
    scout::core::Config config;
    scout::core::Patient alice;
    alice.name = "Alice";
    alice.phone = "+15550000001";
    config.patients = {alice};
    const scout::core::TimePoint now{std::chrono::milliseconds{1716580000000}};
    (void)scout::core::next_due(config, *state, now);
    (void)scout::core::step(config, *state, scout::core::Tick{}, now);
  }
  return 0;
}
