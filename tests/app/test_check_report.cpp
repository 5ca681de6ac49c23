// The pure parts of `scout check` (SPEC §1): status precedence, the first escalation step, the
// JSON shape and the human table.

#include <catch2/catch.hpp>

#include <sstream>

#include "scout/app/check.hpp"

using namespace scout;
using app::CheckStatus;

namespace {

core::Patient alice() {
  core::Patient p;
  p.name = "Alice";
  p.phone = "+33612345678";
  p.contacts = {{"Bob", "+33687654321"}, {"Carol", "+33611112222"}};
  p.settings.escalation.urgent = {{std::chrono::seconds{0}, {"patient"}, {}},
                                  {std::chrono::minutes{5}, {"contacts"}, {"contacts"}}};
  p.settings.escalation.warning = {{std::chrono::seconds{0}, {"patient", "Bob"}, {"Carol"}},
                                   {std::chrono::minutes{15}, {}, {"contacts"}}};
  return p;
}

const core::TimePoint k_now{std::chrono::milliseconds{1'716'580'000'000}};

core::Assessment reading(int sgv, const std::string& direction, std::optional<int> delta,
                         std::chrono::seconds age) {
  core::Assessment a;
  a.latest = core::Entry{k_now - age, sgv, direction};
  a.age = age;
  a.delta = delta;
  if (delta) a.mgdl_5_mins_ago = sgv - *delta;
  return a;
}

// What the service sends for `patient` from an empty state on this assessment (core::step's
// first transition, rendered as the Service renders), then the report of it.
app::PatientReport report(const core::Patient& patient, const core::Assessment& assessment,
                          core::GlucoseUnit unit) {
  core::Config config;
  config.units = unit;
  config.patients = {patient};
  const auto t = core::step(config, core::State{}, core::PatientAssessed{patient.name, assessment},
                            k_now);
  std::vector<app::Outbound> outbound;
  for (const auto& action : t.actions) {
    const auto& ps = t.state.patients.at(patient.name);
    if (const auto* call = std::get_if<core::PlaceCall>(&action)) {
      outbound.push_back({k_now, true, call->patient, call->alarm_id, call->to, call->to_label,
                          call->message, app::render(config, patient, ps, call->message, k_now)});
    } else if (const auto* sms = std::get_if<core::SendSms>(&action)) {
      outbound.push_back({k_now, false, sms->patient, sms->alarm_id, sms->to, sms->to_label,
                          sms->message, app::render(config, patient, ps, sms->message, k_now)});
    }
  }
  return app::make_report(patient, assessment, outbound, unit, k_now);
}

}  // namespace

TEST_CASE("check statuses combine as critical > unknown > warning > ok", "[app][check]") {
  CHECK(app::worse(CheckStatus::ok, CheckStatus::warning) == CheckStatus::warning);
  CHECK(app::worse(CheckStatus::warning, CheckStatus::unknown) == CheckStatus::unknown);
  CHECK(app::worse(CheckStatus::unknown, CheckStatus::critical) == CheckStatus::critical);
  CHECK(app::worse(CheckStatus::critical, CheckStatus::unknown) == CheckStatus::critical);
  CHECK(app::worse(CheckStatus::unknown, CheckStatus::warning) == CheckStatus::unknown);
  CHECK(app::worse(CheckStatus::ok, CheckStatus::ok) == CheckStatus::ok);
  CHECK(app::exit_code(CheckStatus::ok) == 0);
  CHECK(app::exit_code(CheckStatus::warning) == 1);
  CHECK(app::exit_code(CheckStatus::critical) == 2);
  CHECK(app::exit_code(CheckStatus::unknown) == 3);
}

TEST_CASE("would lists what the first step sends: calls, then SMS, by person with numbers",
          "[app][check]") {
  const auto patient = alice();
  auto urgent = reading(52, "SingleDown", -6, std::chrono::seconds{64});
  urgent.glucose = core::Alarm{core::AlarmKind::urgent_low, core::Severity::urgent};
  CHECK(report(patient, urgent, core::GlucoseUnit::mg_dl).would ==
        std::vector<app::WouldAction>{{"call", "patient", {"+33612345678"}}});
  auto low = reading(65, "Flat", 0, std::chrono::seconds{30});
  low.glucose = core::Alarm{core::AlarmKind::low, core::Severity::warning};
  CHECK(report(patient, low, core::GlucoseUnit::mg_dl).would ==
        std::vector<app::WouldAction>{{"call", "patient", {"+33612345678"}},
                                      {"call", "Bob", {"+33687654321"}},
                                      {"sms", "Carol", {"+33611112222"}}});
}

TEST_CASE("an urgent alarm is critical, a warning alarm warning, a failed poll unknown",
          "[app][check]") {
  const auto patient = alice();
  auto urgent = reading(52, "SingleDown", -6, std::chrono::seconds{64});
  urgent.glucose = core::Alarm{core::AlarmKind::urgent_low, core::Severity::urgent};
  const auto r1 = report(patient, urgent, core::GlucoseUnit::mg_dl);
  CHECK(r1.status == CheckStatus::critical);
  CHECK(r1.message.find("Alice: URGENT LOW, 52 mg/dL, falling") == 0);

  auto warning = reading(65, "Flat", 0, std::chrono::seconds{30});
  warning.glucose = core::Alarm{core::AlarmKind::low, core::Severity::warning};
  CHECK(report(patient, warning, core::GlucoseUnit::mg_dl).status ==
        CheckStatus::warning);

  core::Assessment failed;
  failed.poll_error = core::Error{core::ErrorKind::timeout, "Nightscout timed out"};
  const auto r3 = report(patient, failed, core::GlucoseUnit::mg_dl);
  CHECK(r3.status == CheckStatus::unknown);
  CHECK(r3.error == "Nightscout timed out");
  CHECK(r3.would.empty());

  const auto fine = reading(120, "Flat", 1, std::chrono::seconds{30});
  CHECK(report(patient, fine, core::GlucoseUnit::mg_dl).status == CheckStatus::ok);
}

TEST_CASE("the JSON document has the SPEC §1 shape", "[app][check]") {
  const auto patient = alice();
  auto a = reading(52, "SingleDown", -6, std::chrono::seconds{64});
  a.glucose = core::Alarm{core::AlarmKind::urgent_low, core::Severity::urgent};
  const auto doc = app::render_json({report(patient, a, core::GlucoseUnit::mg_dl)},
                                    core::GlucoseUnit::mg_dl, k_now);
  CHECK(doc.at("status") == "critical");
  const auto& p = doc.at("patients").at(0);
  CHECK(p.at("name") == "Alice");
  CHECK(p.at("status") == "critical");
  CHECK(p.at("alarm") == "urgent_low");
  CHECK(p.at("sgv") == 52);
  CHECK(p.at("direction") == "SingleDown");
  CHECK(p.at("delta") == -6);
  CHECK(p.at("age_s") == 64);
  CHECK(p.at("would") == nlohmann::json::parse(R"([{"channel":"call","to":"patient"}])"));
  CHECK(p.at("error").is_null());
}

TEST_CASE("the JSON document has nulls where there is no usable reading", "[app][check]") {
  core::Assessment failed;
  failed.poll_error = core::Error{core::ErrorKind::network, "connection refused"};
  const auto doc =
      app::render_json({report(alice(), failed, core::GlucoseUnit::mg_dl)},
                       core::GlucoseUnit::mg_dl, k_now);
  CHECK(doc.at("status") == "unknown");
  const auto& p = doc.at("patients").at(0);
  CHECK(p.at("alarm").is_null());
  CHECK(p.at("sgv").is_null());
  CHECK(p.at("delta").is_null());
  CHECK(p.at("age_s").is_null());
  CHECK(p.at("direction").is_null());
  CHECK(p.at("error") == "connection refused");
}

TEST_CASE("the human table shows glucose in the configured unit and masks phone numbers",
          "[app][check]") {
  auto a = reading(52, "SingleDown", -6, std::chrono::seconds{64});
  a.glucose = core::Alarm{core::AlarmKind::urgent_low, core::Severity::urgent};
  const auto text = app::render_text(
      {report(alice(), a, core::GlucoseUnit::mmol_l)}, core::GlucoseUnit::mmol_l);
  CHECK(text.find("2.9 mmol/L") != std::string::npos);
  CHECK(text.find("\u2193") != std::string::npos);  // SingleDown arrow
  CHECK(text.find("-0.3") != std::string::npos);     // -6 mg/dL in mmol/L
  CHECK(text.find("call Alice (\u20265678)") != std::string::npos);
  CHECK(text.find("+33612345678") == std::string::npos);
  CHECK(text.find("status: CRITICAL") != std::string::npos);
}

TEST_CASE("the overall status is the worst patient's, ok when there is no patient",
          "[app][check]") {
  const auto patient = alice();
  auto low = reading(65, "Flat", 0, std::chrono::seconds{30});
  low.glucose = core::Alarm{core::AlarmKind::low, core::Severity::warning};
  core::Assessment failed;
  failed.poll_error = core::Error{core::ErrorKind::timeout, "timed out"};
  const auto warning = report(patient, low, core::GlucoseUnit::mg_dl);
  const auto unknown = report(patient, failed, core::GlucoseUnit::mg_dl);
  CHECK(app::overall_status({}) == CheckStatus::ok);
  CHECK(app::overall_status({warning}) == CheckStatus::warning);
  CHECK(app::overall_status({warning, unknown}) == CheckStatus::unknown);
  CHECK(app::overall_status({unknown, warning}) == CheckStatus::unknown);
}

TEST_CASE("the human table shows the sensor's LOW without a unit", "[app][check]") {
  auto a = reading(39, "Flat", std::nullopt, std::chrono::seconds{30});
  a.glucose = core::Alarm{core::AlarmKind::urgent_low, core::Severity::urgent};
  const auto text = app::render_text(
      {report(alice(), a, core::GlucoseUnit::mg_dl)}, core::GlucoseUnit::mg_dl);
  CHECK(text.find("Alice    LOW  ") != std::string::npos);
  CHECK(text.find("LOW mg/dL") == std::string::npos);
}

TEST_CASE("the streamed JSON is the document's dump, byte for byte", "[app][check]") {
  const auto patient = alice();
  auto urgent = reading(52, "SingleDown", -6, std::chrono::seconds{64});
  urgent.glucose = core::Alarm{core::AlarmKind::urgent_low, core::Severity::urgent};
  urgent.forecast = {{k_now + std::chrono::minutes{5}, 47}, {k_now + std::chrono::minutes{10}, 43}};
  urgent.cadence = std::chrono::minutes{5};
  core::Assessment failed;
  failed.poll_error = core::Error{core::ErrorKind::network, "refused \"here\"\nand\xff there"};
  auto fine = reading(120, "Flat", 1, std::chrono::seconds{30});
  auto bob = patient;
  bob.name = "B\xc3\xb6" "b \xfe";  // UTF-8, then a byte that is not

  const auto unit = core::GlucoseUnit::mmol_l;
  const std::vector<app::PatientReport> reports = {
      report(patient, urgent, unit), report(patient, failed, unit), report(bob, fine, unit)};
  const auto dump = [](const nlohmann::json& doc) {
    return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  for (std::size_t n = 0; n <= reports.size(); ++n) {
    const std::vector<app::PatientReport> some(reports.begin(),
                                               reports.begin() + static_cast<long>(n));
    INFO(n << " patient(s)");
    std::ostringstream streamed;
    app::write_json(streamed, some, unit, k_now);
    CHECK(streamed.str() == dump(app::render_json(some, unit, k_now)));

    // SPEC §6: a service that cannot save makes the document unknown at least, with the reason.
    auto doc = app::render_json(some, unit, k_now);
    doc["service_error"] = "cannot save \"state\"";
    doc["status"] = app::to_string(app::worse(app::overall_status(some), CheckStatus::unknown));
    std::ostringstream with_error;
    app::write_json(with_error, some, unit, k_now, std::string{"cannot save \"state\""});
    CHECK(with_error.str() == dump(doc));
  }
  std::ostringstream all;
  app::write_json(all, reports, unit, k_now);
  const auto parsed = nlohmann::json::parse(all.str());
  CHECK(parsed.at("status") == "critical");
  CHECK(parsed.at("patients").size() == 3);
  CHECK(parsed.at("patients").at(0).at("forecast").size() == 2);
  CHECK(parsed.at("patients").at(1).at("error") == "refused \"here\"\nand\xef\xbf\xbd there");
}
