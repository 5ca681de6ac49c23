// Specification of scout/adapters/call_script.hpp: the NCCO (protocols.md §2.3) and TwiML (§4.4)
// that make a call speak the alarm and gather one key.

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <regex>
#include <string>
#include <vector>

#include "scout/adapters/call_script.hpp"

namespace {

namespace ad = scout::adapters;
using nlohmann::json;

constexpr auto k_alarm = "Alice: URGENT LOW, 52 mg/dL, falling.";
constexpr auto k_input_url = "https://scout.example/webhooks/vonage/input?call=c3&token=abc";

// A small XML well-formedness check, enough for TwiML: one declaration, balanced and properly
// nested elements, quoted attributes, no raw '<' or stray '&' in text or attribute values.
// Returns "" when well formed, else what is wrong; `root` gets the root element's name.
std::string xml_problem(const std::string& xml, std::string& root) {
  const std::string declaration = R"(<?xml version="1.0" encoding="UTF-8"?>)";
  if (xml.rfind(declaration, 0) != 0) {
    return "no XML declaration";
  }
  const std::regex entity{R"(^&(amp|lt|gt|quot|apos);)"};
  const auto entities_ok = [&](const std::string& text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '<') {
        return false;
      }
      if (text[i] == '&' && !std::regex_search(text.substr(i, 6), entity)) {
        return false;
      }
    }
    return true;
  };
  const std::regex open_tag{R"(^<([A-Za-z]+)((?:\s+[A-Za-z]+="[^"]*")*)\s*(/?)>)"};
  const std::regex attribute{R"([A-Za-z]+="([^"]*)\")"};
  std::vector<std::string> stack;
  std::size_t pos = declaration.size();
  bool root_closed = false;
  while (pos < xml.size()) {
    const auto lt = xml.find('<', pos);
    const std::string text = xml.substr(pos, lt == std::string::npos ? std::string::npos : lt - pos);
    if (!entities_ok(text)) {
      return "bad character data: " + text;
    }
    if (!text.empty() && stack.empty()) {
      return "text outside the root";
    }
    if (lt == std::string::npos) {
      break;
    }
    const auto gt = xml.find('>', lt);
    if (gt == std::string::npos) {
      return "unterminated tag";
    }
    const std::string tag = xml.substr(lt, gt - lt + 1);
    if (tag.rfind("</", 0) == 0) {
      const std::string name = tag.substr(2, tag.size() - 3);
      if (stack.empty() || stack.back() != name) {
        return "mismatched </" + name + ">";
      }
      stack.pop_back();
      root_closed = stack.empty();
    } else {
      std::smatch match;
      if (!std::regex_match(tag, match, open_tag)) {
        return "malformed tag " + tag;
      }
      if (root_closed || (stack.empty() && !root.empty())) {
        return "more than one root element";
      }
      const std::string attributes = match[2];
      for (std::sregex_iterator it{attributes.begin(), attributes.end(), attribute}, end;
           it != end; ++it) {
        if (!entities_ok((*it)[1])) {
          return "bad attribute value in " + tag;
        }
      }
      if (stack.empty()) {
        root = match[1];
      }
      if (match[3] != "/") {
        stack.push_back(match[1]);
      } else if (stack.empty()) {
        root_closed = true;
      }
    }
    pos = gt + 1;
  }
  if (!stack.empty()) {
    return "unclosed <" + stack.back() + ">";
  }
  return root.empty() ? "no root element" : "";
}

}  // namespace

TEST_CASE("call_speech greets, says the alarm and asks for a key when gathering", "[call_script]") {
  CHECK(ad::keypress_prompt() == "Press 1 to acknowledge. Press 2 to alert your contacts now.");
  CHECK(ad::call_speech(k_alarm, false) == "This is scout. Alice: URGENT LOW, 52 mg/dL, falling.");
  CHECK(ad::call_speech(k_alarm, true) ==
        "This is scout. Alice: URGENT LOW, 52 mg/dL, falling. Press 1 to acknowledge. Press 2 to "
        "alert your contacts now.");
}

TEST_CASE("vonage_ncco with gather: a barge-in talk spoken twice, then a one-digit DTMF input",
          "[call_script]") {
  const json ncco = ad::vonage_ncco(k_alarm, true, k_input_url);
  REQUIRE(ncco.is_array());
  REQUIRE(ncco.size() == 2);

  const json& talk = ncco[0];
  CHECK(talk.at("action") == "talk");
  CHECK(talk.at("text") == ad::call_speech(k_alarm, true));
  CHECK(talk.at("loop") == 2);
  CHECK(talk.at("bargeIn") == true);

  const json& input = ncco[1];
  CHECK(input.at("action") == "input");
  CHECK(input.at("type") == json::array({"dtmf"}));
  CHECK(input.at("dtmf").at("maxDigits") == 1);
  const int timeout = input.at("dtmf").at("timeOut").get<int>();
  CHECK(timeout >= 1);
  CHECK(timeout <= 10);
  CHECK(input.at("dtmf").at("timeOut") == 10);
  REQUIRE(input.at("eventUrl").is_array());
  CHECK(input.at("eventUrl") == json::array({k_input_url}));
  CHECK(input.at("eventMethod") == "POST");
  // The older flat shape (timeOut/maxDigits at the top of input) is not what scout sends.
  CHECK_FALSE(input.contains("maxDigits"));
}

TEST_CASE("vonage_ncco without gather: only the talk, no barge-in", "[call_script]") {
  const json ncco = ad::vonage_ncco(k_alarm, false, k_input_url);
  REQUIRE(ncco.is_array());
  REQUIRE(ncco.size() == 1);
  CHECK(ncco[0].at("action") == "talk");
  CHECK(ncco[0].at("text") == ad::call_speech(k_alarm, false));
  CHECK(ncco[0].at("loop") == 2);
  CHECK(ncco[0].value("bargeIn", false) == false);
  CHECK(ncco.dump().find("input") == std::string::npos);
}

TEST_CASE("vonage_ncco keeps the talk text within 1500 characters, cut at a word",
          "[call_script]") {
  std::string long_text;
  while (long_text.size() < 3000) {
    long_text += "falling ";
  }
  long_text += "end";
  for (const bool gather : {true, false}) {
    const json ncco = ad::vonage_ncco(long_text, gather, k_input_url);
    const std::string text = ncco[0].at("text").get<std::string>();
    CHECK(text.size() <= 1500);
    CHECK(text.size() > 1400);
    CHECK(text.rfind("This is scout. falling", 0) == 0);
    if (gather) {
      // The prompt survives the cut.
      CHECK(text.size() >= ad::keypress_prompt().size());
      CHECK(text.substr(text.size() - ad::keypress_prompt().size()) == ad::keypress_prompt());
    }
    // Cut at a word: the alarm part ends in a whole "falling".
    const std::string alarm_part =
        gather ? text.substr(0, text.size() - ad::keypress_prompt().size() - 1) : text;
    CHECK(alarm_part.substr(alarm_part.size() - 7) == "falling");
  }

  const json say = ad::vonage_ncco_say(long_text);
  CHECK(say[0].at("text").get<std::string>().size() <= 1500);

  // A text without spaces is cut on a UTF-8 character boundary.
  std::string no_spaces;
  while (no_spaces.size() < 2000) {
    no_spaces += "\xC3\xA9";  // é
  }
  const std::string cut = ad::vonage_ncco_say(no_spaces)[0].at("text").get<std::string>();
  CHECK(cut.size() <= 1500);
  CHECK(cut.size() % 2 == 0);
  CHECK_NOTHROW(json(cut).dump());  // valid UTF-8 (dump throws on invalid sequences)
}

TEST_CASE("vonage_ncco_say speaks once and has no input", "[call_script]") {
  const json ncco = ad::vonage_ncco_say("Acknowledged. Goodbye.");
  CHECK(ncco == json::parse(R"([{"action":"talk","text":"Acknowledged. Goodbye."}])"));
}

TEST_CASE("twilio_twiml with gather is the documented well-formed document", "[call_script]") {
  const std::string action = "https://scout.example/webhooks/twilio/gather?call=c3&token=x";
  const std::string twiml = ad::twilio_twiml(k_alarm, true, action);
  CHECK(twiml ==
        R"(<?xml version="1.0" encoding="UTF-8"?>)"
        R"(<Response><Gather input="dtmf" numDigits="1" timeout="10" )"
        R"(action="https://scout.example/webhooks/twilio/gather?call=c3&amp;token=x" method="POST">)"
        R"(<Say loop="2">This is scout. Alice: URGENT LOW, 52 mg/dL, falling. Press 1 to )"
        R"(acknowledge. Press 2 to alert your contacts now.</Say></Gather>)"
        R"(<Say>No key pressed. Goodbye.</Say></Response>)");
  std::string root;
  CHECK(xml_problem(twiml, root) == "");
  CHECK(root == "Response");
}

TEST_CASE("twilio_twiml without gather only says the alarm twice", "[call_script]") {
  const std::string twiml = ad::twilio_twiml(k_alarm, false, "ignored");
  CHECK(twiml == R"(<?xml version="1.0" encoding="UTF-8"?><Response><Say loop="2">This is scout. )"
                 R"(Alice: URGENT LOW, 52 mg/dL, falling.</Say></Response>)");
  std::string root;
  CHECK(xml_problem(twiml, root) == "");
  CHECK(root == "Response");
}

TEST_CASE("TwiML escapes text and URLs so hostile input stays well formed", "[call_script]") {
  const std::string hostile = R"(Bob & "Eve" <Hangup/> it's > 5)";
  const std::string twiml = ad::twilio_twiml(hostile, true, R"(https://x/"><Hangup/>&a=1)");
  std::string root;
  CHECK(xml_problem(twiml, root) == "");
  CHECK(root == "Response");
  CHECK(twiml.find("<Hangup/>") == std::string::npos);
  CHECK(twiml.find("Bob &amp; &quot;Eve&quot; &lt;Hangup/&gt; it&apos;s &gt; 5") !=
        std::string::npos);

  const std::string say = ad::twilio_twiml_say(hostile);
  root.clear();
  CHECK(xml_problem(say, root) == "");
  CHECK(root == "Response");
  CHECK(say.find("<Say>Bob &amp;") != std::string::npos);

  // The checker itself rejects what it should.
  root.clear();
  CHECK(xml_problem(R"(<?xml version="1.0" encoding="UTF-8"?><Response><Say>a & b</Say></Response>)",
                    root) != "");
  root.clear();
  CHECK(xml_problem(R"(<?xml version="1.0" encoding="UTF-8"?><Response><Say></Response></Say>)",
                    root) != "");
}

TEST_CASE("twilio_twiml_say says the text once and hangs up", "[call_script]") {
  CHECK(ad::twilio_twiml_say("Acknowledged. Goodbye.") ==
        R"(<?xml version="1.0" encoding="UTF-8"?><Response><Say>Acknowledged. Goodbye.</Say>)"
        R"(<Hangup/></Response>)");
}

TEST_CASE("xml_escape replaces the five XML special characters", "[call_script]") {
  CHECK(ad::xml_escape(R"(a&b<c>d"e'f)") == "a&amp;b&lt;c&gt;d&quot;e&apos;f");
  CHECK(ad::xml_escape("plain") == "plain");
  CHECK(ad::xml_escape("") == "");
}
