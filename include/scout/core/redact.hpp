#pragma once
// Redaction for anything a person or a log may read (SPEC §6: phone numbers masked to their
// last 4 digits; secrets never).

#include <string>
#include <string_view>

namespace scout::core {

// "+33612345678" -> "…5678"; numbers of 4 digits or fewer become "…" followed by them.
std::string mask_phone(std::string_view number);

}  // namespace scout::core
