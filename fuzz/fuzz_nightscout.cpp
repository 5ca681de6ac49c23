// libFuzzer target: the Nightscout entries parser (adapters::parse_entries) and the evaluation
// of what it returns (core::evaluate): any answer body gives entries or an error, never a
// crash, a hang or an alarm from nonsense.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "scout/adapters/nightscout.hpp"
#include "scout/core/evaluate.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto entries = scout::adapters::parse_entries(body);
  if (entries) {
    scout::core::PollOutcome outcome;
    outcome.entries = std::move(*entries);
    const scout::core::TimePoint now{std::chrono::milliseconds{1716580000000}};
    const auto assessment = scout::core::evaluate(outcome, scout::core::AlarmSettings{}, now, 0);
    (void)assessment;
  }
  return 0;
}
