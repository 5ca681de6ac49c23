#pragma once
// What a call says and how each provider is told to say it (SPEC §4.2, protocols.md §2.3, §4.4).
// Shared by the providers (the first script of a call) and the listener (the replies to a
// keypress). Pure text/JSON building; no I/O.
#include <string>

#include <nlohmann/json.hpp>

namespace scout::adapters {

// "Press 1 to acknowledge. Press 2 to alert your contacts now."
std::string keypress_prompt();

// The spoken script of an alarm call: "This is scout. " + text, and the prompt when `gather`.
std::string call_speech(const std::string& text, bool gather);

// Vonage NCCO (protocols.md §2.3): a `talk` action speaking call_speech twice (loop 2, bargeIn
// true when gather so a key interrupts it), then, when `gather`, an `input` action
// {type:["dtmf"], dtmf:{maxDigits:1, timeOut:10}, eventUrl:[input_url], eventMethod:"POST"}.
// Without gather: only the talk (text ≤ 1500 characters: longer text is cut at a word).
nlohmann::json vonage_ncco(const std::string& text, bool gather, const std::string& input_url);

// An NCCO that speaks `text` once and ends the call (replies to '1', '2', no input).
nlohmann::json vonage_ncco_say(const std::string& text);

// TwiML (protocols.md §4.4) for a call: with gather,
//   <Response><Gather input="dtmf" numDigits="1" timeout="10" action="ACTION" method="POST">
//   <Say loop="2">SPEECH</Say></Gather><Say>No key pressed. Goodbye.</Say></Response>
// without: <Response><Say loop="2">SPEECH</Say></Response>. Text and URL are XML-escaped;
// starts with <?xml version="1.0" encoding="UTF-8"?>.
std::string twilio_twiml(const std::string& text, bool gather, const std::string& action_url);

// TwiML that says `text` once and hangs up.
std::string twilio_twiml_say(const std::string& text);

// XML-escapes & < > " '.
std::string xml_escape(const std::string& text);

}  // namespace scout::adapters
