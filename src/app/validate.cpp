#include "scout/app/validate.hpp"

#include <ostream>

#include "scout/adapters/yaml_config.hpp"
#include "scout/app/cli.hpp"

namespace scout::app {

int run_validate(const std::string& config_path, std::ostream& out, std::ostream& err) {
  const auto env = adapters::system_config_environment();
  const auto path = config_path.empty() ? adapters::default_config_path(env) : config_path;
  const auto load = adapters::load_config(path, env);
  for (const auto& problem : load.problems) err << problem.to_string() << "\n";
  for (const auto& warning : load.warnings) err << "warning: " << warning.to_string() << "\n";
  if (!load.config) {
    err << path << ": " << load.problems.size() << " problem(s)\n";
    return k_exit_config;
  }
  const auto& config = *load.config;
  out << path << ": OK (" << config.patients.size() << " patient(s), " << config.providers.size()
      << " provider(s))\n";
  return k_exit_ok;
}

}  // namespace scout::app
