#pragma once
// `scout drill PATIENT` (SPEC §1): a fire drill of a patient's whole urgent escalation, for real.
// The one Service runs on the real clock with the real providers, a reading of its own below the
// patient's urgent_low (so the urgent chain runs as it would at night), a state kept in memory
// (the service's state file and journal are not touched), and words that say it is a test:
// every call speaks and every SMS says DrillWords. With the config's listener (when its port is
// free, i.e. no service holds it) keypresses count: 1 acknowledges, 2 alerts the contacts;
// without it a person answering is the acknowledgement. The drill ends once the alarm is
// acknowledged, or every step has run once and every call has ended, or after the last step's
// `after` + 11 min; then it prints the story and who was reached.
#include <iosfwd>
#include <string>

#include "scout/core/message.hpp"

namespace scout::app {

struct DrillOptions {
  std::string config_path;
  std::string patient;
};

// What a drill's calls and SMS say, for `patient`.
std::string drill_words(const std::string& patient, const core::Message& message);

// Exit: 0 someone acknowledged; 1 nobody did (or a call or SMS could not be sent); 64 usage
// (unknown patient); 78 config.
int run_drill(const DrillOptions& options, std::ostream& out, std::ostream& err);

}  // namespace scout::app
