// libFuzzer target: the config parser (adapters::parse_config) on any bytes. It must return
// problems or a config, never hang, crash or take memory out of proportion (SPEC §2; issue
// "Holds under faults": yaml-cpp's LoadAll never returned on ",\n").
#include <cstddef>
#include <cstdint>
#include <string>

#include "scout/adapters/yaml_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  scout::adapters::ConfigEnvironment env;  // no files, no environment: pure parsing
  env.read_file = [](const std::string&) { return std::optional<std::string>{"pem"}; };
  env.is_timezone = [](const std::string& zone) { return zone == "UTC"; };
  const auto load = scout::adapters::parse_config(text, "fuzz.yaml", env);
  (void)load;
  return 0;
}
