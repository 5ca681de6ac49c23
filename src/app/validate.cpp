#include "scout/app/validate.hpp"

#include <chrono>
#include <ostream>
#include <sstream>

#include "scout/adapters/nightscout.hpp"
#include "scout/adapters/providers.hpp"
#include "scout/adapters/wall_clock.hpp"
#include "scout/adapters/yaml_config.hpp"
#include "scout/app/cli.hpp"
#include "scout/core/evaluate.hpp"
#include "scout/core/reading.hpp"
#include "scout/core/redact.hpp"
#include "scout/core/units.hpp"

namespace scout::app {

namespace {

using namespace std::chrono_literals;

// SPEC §1 `validate --online`: each Nightscout and each provider, asked once; nothing is
// placed or sent. Returns the number of problems; prints one line per check.
int check_online(const core::Config& config, const std::string& path, std::ostream& out,
                 std::ostream& err) {
  int problems = 0;
  const core::TimePoint now = adapters::wall_clock_now();
  std::vector<core::NightscoutSite> sites;
  for (const auto& patient : config.patients) sites.push_back(patient.nightscout);
  const auto answers = adapters::fetch_all(sites, config.poll.timeout);
  for (std::size_t i = 0; i < config.patients.size(); ++i) {
    const core::Patient& patient = config.patients[i];
    const std::string who = path + ": patients[" + std::to_string(i) + "] (" + patient.name + ")";
    const std::string site = adapters::redacted_site_url(patient.nightscout);
    const auto& answer = answers[i];
    if (!answer) {
      err << who << ": " << answer.error().message << "\n";
      ++problems;
      continue;
    }
    // A public site serves entries to anyone: only verifyauth tells whether the credentials
    // scout holds are accepted (protocols.md §1.5).
    const bool has_credentials = !patient.nightscout.token.empty() ||
                                 !patient.nightscout.api_secret.empty();
    std::string auth = "no credentials configured (the site is public)";
    if (has_credentials) {
      const auto verified = adapters::verify_auth(patient.nightscout, config.poll.timeout);
      if (!verified) {
        err << who << ": cannot ask " << site << "/api/v1/verifyauth: "
            << verified.error().message << "\n";
        ++problems;
        continue;
      }
      if (verified->message != "OK") {
        err << who << ": Nightscout at " << site << " does not accept the "
            << (patient.nightscout.token.empty() ? "api_secret" : "token")
            << " (verifyauth: " << verified->message
            << "); its readings are public today, but scout would read nothing once the site is "
               "locked down: fix the credentials\n";
        ++problems;
        continue;
      }
      auth = "credentials accepted";
    }
    // Readings recent: the newest usable one within stale.warn.
    std::optional<core::Entry> newest;
    for (const auto& entry : *answer) {
      if (core::is_usable(entry, now) && (!newest || entry.date > newest->date)) newest = entry;
    }
    std::ostringstream line;
    line << path << ": " << patient.name << ": Nightscout " << site << " reachable, " << auth;
    if (!newest) {
      out << line.str() << "\n";
      err << "warning: " << who << ": no usable reading in the newest " << answer->size()
          << " entries: scout would raise a stale or sensor_error alarm now\n";
      continue;
    }
    const core::Duration age = now - newest->date;
    line << ", newest reading " << core::format_age(age) << " ago (" 
         << core::format_glucose(newest->sgv, config.units) << " " << core::to_string(config.units)
         << ")";
    out << line.str() << "\n";
    if (age > patient.settings.stale.warn) {
      err << "warning: " << who << ": the newest reading is " << core::format_age(age)
          << ", older than stale.warn (" << core::format_duration(patient.settings.stale.warn)
          << "): scout would raise a stale alarm now; is the uploader running?\n";
    }
  }

  // Providers: a read-only request that needs the same credentials as a call.
  auto providers = adapters::make_providers(config, std::nullopt, adapters::HttpSettings{}, out);
  for (std::size_t i = 0; i < providers.size() && i < config.providers.size(); ++i) {
    const core::Provider& provider = config.providers[i];
    const std::string who = path + ": providers[" + std::to_string(i) + "] (" +
                            core::to_string(provider.type) + ")";
    if (provider.type == core::ProviderType::console) {
      out << who << ": console, nothing to check\n";
      continue;
    }
    const auto listed = providers[i]->find_calls(provider.from, now - 1min);
    if (!listed) {
      err << who << ": " << listed.error().error.message << "\n";
      ++problems;
      continue;
    }
    out << who << ": credentials accepted ("
        << (provider.type == core::ProviderType::vonage
                ? "Voice API: application_id and private key; the SMS api_key/api_secret are "
                  "proven only by sending: scout notify --channel sms"
                : "account_sid and auth_token")
        << ")\n";
  }
  return problems;
}

}  // namespace

int run_validate(const std::string& config_path, std::ostream& out, std::ostream& err,
                 bool online) {
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
  if (online) {
    if (const int problems = check_online(config, path, out, err); problems > 0) {
      err << path << ": valid, but " << problems << " problem(s) online\n";
      return k_exit_config;
    }
  }
  out << path << ": OK (" << config.patients.size() << " patient(s), " << config.providers.size()
      << " provider(s)" << (online ? ", checked online" : "") << ")\n";
  return k_exit_ok;
}

}  // namespace scout::app
