// libFuzzer target: one webhook request through the listener's whole answer path
// (adapters::answer_webhook: routing, 64 KiB limit, Vonage/Twilio authentication, JSON and form
// decoding). The input is split into target, Authorization, X-Twilio-Signature and body at the
// first three '\n'. The URL token is known to the fuzzer (a seed carries it), so decoding past
// authentication is reached too; the handler answers every keypress with a repeat prompt.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "scout/adapters/listener.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::string_view parts[3];
  for (auto& part : parts) {
    const auto newline = rest.find('\n');
    part = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view{} : rest.substr(newline + 1);
  }
  scout::adapters::WebhookSecrets secrets;
  secrets.public_url = "https://scout.example";
  secrets.url_token = "0123456789abcdef0123456789abcdef";
  secrets.twilio_auth_token = "12345";
  const scout::adapters::WebhookHandler handler = [](const scout::core::Event& event)
      -> std::optional<scout::core::KeypressReply> {
    if (std::holds_alternative<scout::core::Keypress>(event)) {
      return scout::core::KeypressReply{scout::core::KeypressReply::Kind::repeat_prompt,
                                        "Alice: URGENT LOW, 52 mg/dL."};
    }
    return std::nullopt;
  };
  scout::adapters::WebhookRequest request;
  request.target = std::string{parts[0]};
  request.authorization = std::string{parts[1]};
  if (!parts[2].empty()) request.twilio_signature = std::string{parts[2]};
  request.body = std::string{rest};
  request.remote = "fuzz";
  const auto answer = scout::adapters::answer_webhook(secrets, handler, "POST", std::move(request));
  (void)answer;
  return 0;
}
