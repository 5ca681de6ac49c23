#include "scout/adapters/call_script.hpp"

#include <cstddef>
#include <string_view>

namespace scout::adapters {
namespace {

using nlohmann::json;

// Vonage talk: "text ≤ 1500 characters" (protocols.md §2.3). Counted in bytes, which is never
// fewer than characters, so the limit holds for any UTF-8 text.
constexpr std::size_t k_max_talk = 1500;
constexpr std::string_view k_greeting = "This is scout. ";
// The gather timeout in seconds: Vonage's input timeOut allows 0..10 (protocols.md §2.3).
constexpr int k_gather_timeout_s = 10;

// `text` cut to at most `limit` bytes, at the last space when there is one, else at a UTF-8
// character boundary; trailing spaces removed.
std::string cut_at_word(const std::string& text, std::size_t limit) {
  if (text.size() <= limit) {
    return text;
  }
  std::size_t end = text.rfind(' ', limit);
  if (end == std::string::npos || end == 0) {
    end = limit;
    // Do not split a multi-byte character: back up over continuation bytes (10xxxxxx).
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0u) == 0x80u) {
      --end;
    }
  }
  while (end > 0 && text[end - 1] == ' ') {
    --end;
  }
  return text.substr(0, end);
}

// The whole spoken script within k_max_talk: the alarm text is shortened so the greeting and
// the prompt always survive.
std::string bounded_speech(const std::string& text, bool gather) {
  std::string tail;
  if (gather) {
    tail = " ";
    tail += keypress_prompt();
  }
  const std::size_t fixed = k_greeting.size() + tail.size();
  std::string speech{k_greeting};
  speech += cut_at_word(text, k_max_talk > fixed ? k_max_talk - fixed : 0);
  speech += tail;
  return speech;
}

constexpr std::string_view k_xml_declaration = R"(<?xml version="1.0" encoding="UTF-8"?>)";

}  // namespace

std::string keypress_prompt() {
  return "Press 1 to acknowledge. Press 2 to alert your contacts now.";
}

std::string call_speech(const std::string& text, bool gather) {
  std::string speech{k_greeting};
  speech += text;
  if (gather) {
    speech += ' ';
    speech += keypress_prompt();
  }
  return speech;
}

json vonage_ncco(const std::string& text, bool gather, const std::string& input_url) {
  json talk{{"action", "talk"}, {"text", bounded_speech(text, gather)}, {"loop", 2}};
  if (!gather) {
    return json::array({talk});
  }
  // bargeIn: a key pressed while the text is spoken ends it and goes to the input, which must
  // be the next action (protocols.md §2.3).
  talk["bargeIn"] = true;
  json input{{"action", "input"},
             {"type", json::array({"dtmf"})},
             {"dtmf", {{"maxDigits", 1}, {"timeOut", k_gather_timeout_s}}},
             {"eventUrl", json::array({input_url})},
             {"eventMethod", "POST"}};
  return json::array({talk, input});
}

json vonage_ncco_say(const std::string& text) {
  return json::array({json{{"action", "talk"}, {"text", cut_at_word(text, k_max_talk)}}});
}

std::string twilio_twiml(const std::string& text, bool gather, const std::string& action_url) {
  const std::string say = R"(<Say loop="2">)" + xml_escape(bounded_speech(text, gather)) + "</Say>";
  std::string twiml{k_xml_declaration};
  twiml += "<Response>";
  if (gather) {
    twiml += R"(<Gather input="dtmf" numDigits="1" timeout=")";
    twiml += std::to_string(k_gather_timeout_s);
    twiml += R"(" action=")";
    twiml += xml_escape(action_url);
    twiml += R"(" method="POST">)";
    twiml += say;
    twiml += "</Gather><Say>No key pressed. Goodbye.</Say>";
  } else {
    twiml += say;
  }
  twiml += "</Response>";
  return twiml;
}

std::string twilio_twiml_say(const std::string& text) {
  std::string twiml{k_xml_declaration};
  twiml += "<Response><Say>";
  twiml += xml_escape(cut_at_word(text, k_max_talk));
  twiml += "</Say><Hangup/></Response>";
  return twiml;
}

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(c); break;
    }
  }
  return out;
}

}  // namespace scout::adapters
