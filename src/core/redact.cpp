#include "scout/core/redact.hpp"

namespace scout::core {

std::string mask_phone(std::string_view number) {
  std::string digits;
  for (const char c : number) {
    if (c >= '0' && c <= '9') digits += c;
  }
  const auto keep = digits.size() < 4 ? digits.size() : 4;
  return "\u2026" + digits.substr(digits.size() - keep);
}

}  // namespace scout::core
