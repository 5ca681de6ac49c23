#pragma once
// Text encodings shared by the HTTP adapters (Nightscout client, providers, webhook listener,
// crypto). Pure functions, no I/O.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scout::adapters {

// Decoded application/x-www-form-urlencoded pairs (or query parameters), in wire order.
using FormFields = std::vector<std::pair<std::string, std::string>>;

// Lower-case hex of `bytes` ("\x01\xab" -> "01ab").
std::string hex_lower(std::string_view bytes);

// Percent-encodes every byte but RFC 3986's unreserved characters (ALPHA DIGIT - . _ ~), with
// upper-case hex. Right for a query value, a path segment and a form field alike.
std::string percent_encode(std::string_view text);

// name=value pairs joined with '&', each side percent_encode'd (a space becomes %20).
std::string form_encode(const FormFields& fields);

// Percent-decoding with '+' as a space (WHATWG urlencoded parsing). A '%' not followed by two hex
// digits stays as it is, as Python's unquote_plus leaves it (twilio-python validates over values
// decoded that way, protocols.md §4.6).
std::string form_decode(std::string_view text);

// Splits on '&' (empty pieces skipped) and each piece at its first '=' ("a" alone is a=""),
// form_decode'ing both sides. Never fails.
FormFields parse_form(std::string_view text);

}  // namespace scout::adapters
