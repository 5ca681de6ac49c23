#include "scout/app/run.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <poll.h>
#include <sys/inotify.h>

#include "scout/adapters/command_spool.hpp"
#include "scout/adapters/wall_clock.hpp"
#include "scout/adapters/crypto.hpp"
#include "scout/adapters/listener.hpp"
#include "scout/adapters/providers.hpp"
#include "scout/adapters/state_store.hpp"
#include "scout/adapters/yaml_config.hpp"
#include "scout/app/cli.hpp"
#include "scout/app/seams.hpp"
#include "scout/app/service.hpp"
#include "scout/core/redact.hpp"

namespace scout::app {

namespace {

using namespace std::chrono_literals;

// Without a listener, calls in flight are polled this often (console outcomes, real providers).
constexpr auto k_call_poll_every = 5s;
// Worker threads carrying out calls and SMS: a provider retrying with backoff must not hold up
// the SMS to a contact.
constexpr int k_workers = 3;
// systemd's watchdog is fed at half of WATCHDOG_USEC (sd_watchdog_enabled(3): the unit's
// WatchdogSec=), and after every tick; without a watchdog, every 10 s does no harm.
core::Duration watchdog_every() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  if (usec == nullptr) return 10s;
  if (pid != nullptr && std::strtoll(pid, nullptr, 10) != static_cast<long long>(::getpid())) {
    return 10s;
  }
  const long long micros = std::strtoll(usec, nullptr, 10);
  if (micros <= 0) return 10s;
  return std::max<core::Duration>(core::Duration{micros / 2000}, 100ms);
}

// Loads the config as `scout validate` would report it; nullopt after printing the problems.
std::optional<core::Config> load_config_or_report(const std::string& config_path,
                                                  std::ostream& err) {
  const auto env = adapters::system_config_environment();
  const auto path = config_path.empty() ? adapters::default_config_path(env) : config_path;
  auto load = adapters::load_config(path, env);
  for (const auto& problem : load.problems) err << problem.to_string() << "\n";
  if (!load.config) {
    err << "scout: the config " << path << " is not valid (" << load.problems.size()
        << " problem(s))\n";
    return std::nullopt;
  }
  for (const auto& warning : load.warnings) {
    spdlog::warn("config: {}", warning.to_string());
  }
  return std::move(load.config);
}

// One GET with libcurl (heartbeat_url). Errors: network / http_status, never the URL's path
// (a heartbeat URL is a secret of sorts).
core::Status http_get(const std::string& url, core::Duration timeout) {
  CURL* easy = curl_easy_init();
  if (easy == nullptr) return core::fail(core::ErrorKind::internal, "curl_easy_init failed");
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(easy, CURLOPT_NOBODY, 0L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                   +[](char*, size_t size, size_t count, void*) -> size_t { return size * count; });
  const CURLcode code = curl_easy_perform(easy);
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(easy);
  if (code != CURLE_OK) {
    return core::fail(core::ErrorKind::network, std::string("heartbeat: ") + curl_easy_strerror(code));
  }
  if (status < 200 || status > 299) {
    return core::fail(core::ErrorKind::http_status,
                      "heartbeat: HTTP " + std::to_string(status));
  }
  return {};
}

// SIGTERM / SIGINT, received by a dedicated thread with sigtimedwait (the signals are blocked in
// every other thread), so that stopping is an ordinary flag and condition variable.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void(int)> on_signal) : on_signal_(std::move(on_signal)) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] {
      while (!done_) {
        timespec wait{0, 200'000'000};
        const int sig = sigtimedwait(&set_, nullptr, &wait);
        if (sig > 0) on_signal_(sig);
      }
    });
  }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;
  ~SignalWatcher() {
    done_ = true;
    thread_.join();
  }

 private:
  sigset_t set_{};
  std::function<void(int)> on_signal_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Wakes the run loop as soon as a request lands in the command spool (SPEC §4.13: applied
// within 1 s; with inotify, at once). Without inotify the loop still looks every second.
class SpoolWatcher {
 public:
  SpoolWatcher(const std::string& dir, std::function<void()> on_request)
      : on_request_(std::move(on_request)) {
    fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ < 0) return;
    if (::inotify_add_watch(fd_, dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
      spdlog::debug("cannot watch {}: {}; the spool is read every second", dir,
                    std::strerror(errno));
      ::close(fd_);
      fd_ = -1;
      return;
    }
    thread_ = std::thread([this] {
      alignas(inotify_event) char buffer[4096];
      while (!done_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 200) > 0) {
          while (::read(fd_, buffer, sizeof buffer) > 0) {
          }
          on_request_();
        }
      }
    });
  }
  SpoolWatcher(const SpoolWatcher&) = delete;
  SpoolWatcher& operator=(const SpoolWatcher&) = delete;
  ~SpoolWatcher() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  std::function<void()> on_request_;
  int fd_ = -1;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Applies every request waiting in the spool, in order, and answers each (SPEC §4.13).
void apply_spool(const adapters::CommandSpool& spool, Service& service, Clock& clock) {
  for (const auto& request : spool.pending()) {
    core::CommandOutcome outcome;
    if (request.command) {
      spdlog::info("command {} from {} for {}", core::to_string(request.command->kind),
                   request.command->by.empty() ? "shell" : request.command->by,
                   request.command->patient);
      outcome = service.command(*request.command);
    } else {
      spdlog::warn("command request {} refused: {}", request.id, request.error);
      outcome.lines.push_back("refused: " + request.error);
    }
    if (auto finished = spool.finish(request.id, outcome, clock.now()); !finished) {
      spdlog::error("command request {}: {}", request.id, finished.error().message);
    }
  }
}

// What `scout status` reads about the service itself (CommandSpool::write_status).
nlohmann::json status_document(const Service& service, const core::Config& config, bool once,
                               core::TimePoint at) {
  nlohmann::json patients = nlohmann::json::object();
  for (const auto& assessed : service.last_assessments()) {
    nlohmann::json one{{"polled_at", at.time_since_epoch().count()}, {"error", nullptr}};
    if (assessed.assessment.poll_error) one["error"] = assessed.assessment.poll_error->message;
    patients[assessed.patient] = std::move(one);
  }
  return nlohmann::json{{"version", 1},
                        {"mode", once ? "once" : "run"},
                        {"pid", static_cast<long long>(::getpid())},
                        {"tick_at", at.time_since_epoch().count()},
                        {"interval_ms", config.poll.interval.count()},
                        {"saved", service.state_saved()},
                        {"patients", std::move(patients)}};
}

class Runner {
 public:
  Runner(const core::Config& config, const RunOptions& options, std::ostream& console_out)
      : config_(config), options_(options), console_out_(console_out) {}

  int run();

 private:
  void wake() {
    {
      const std::lock_guard lock{wake_mutex_};
      woken_ = true;
    }
    wake_cv_.notify_all();
  }

  const core::Config& config_;
  const RunOptions& options_;
  std::ostream& console_out_;
  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
  bool woken_ = false;
  std::atomic<bool> stop_{false};
};

int Runner::run() {
  // First, before any thread exists: every thread inherits the blocked SIGTERM/SIGINT.
  SignalWatcher signals([this](int sig) {
    spdlog::info("{} received: finishing the tick, saving the state, exiting",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
    stop_ = true;
    wake();
  });
  const bool listening = config_.listener.has_value() && !options_.once;
  const std::string state_path = options_.state_path.empty() ? config_.state_file
                                                             : options_.state_path;
  adapters::StateStore store(state_path);
  auto loaded = store.load();
  core::State state;
  if (!loaded) {
    // SPEC §6: a state that cannot be read does not stop monitoring.
    spdlog::error("cannot use the state file: {}; scout monitors from an empty state in memory "
                  "and saves as soon as it can", loaded.error().message);
  } else {
    if (loaded->problem) {
      spdlog::error("{}; it was moved to {} and scout starts with a clean state",
                    *loaded->problem, loaded->moved_to);
    }
    state = std::move(loaded->state);
  }
  if (state.webhook_token.empty()) state.webhook_token = adapters::random_hex(16);
  bool saved_at_start = true;
  if (auto saved = store.save(state); !saved) {
    // SPEC §6: keep monitoring from memory, say so loudly, save again as soon as it can.
    spdlog::error("cannot write the state file: {}; scout keeps its state in memory and saves "
                  "again as soon as it can (a restart now would forget escalations in progress)",
                  saved.error().message);
    saved_at_start = false;
  }
  FileStateStorage storage(store);
  FileJournal journal(config_.journal_file);

  const core::Provider* vonage = nullptr;
  const core::Provider* twilio = nullptr;
  for (const auto& provider : config_.providers) {
    if (provider.type == core::ProviderType::vonage && vonage == nullptr) vonage = &provider;
    if (provider.type == core::ProviderType::twilio && twilio == nullptr) twilio = &provider;
  }
  std::optional<adapters::WebhookBase> webhooks;
  if (listening) {
    webhooks = adapters::WebhookBase{config_.listener->public_url, ""};
    if (vonage != nullptr && vonage->signature_secret.empty()) {
      webhooks->token = state.webhook_token;
    }
  }
  adapters::ProviderChain chain(
      adapters::make_providers(config_, webhooks, adapters::HttpSettings{}, console_out_),
      adapters::RetryPolicy{},
      [](std::chrono::milliseconds wait) { std::this_thread::sleep_for(wait); });
  ProviderTelephony telephony(chain);
  SystemClock clock;
  NightscoutSource nightscout(config_.poll.timeout, clock);

  ServiceOptions service_options;
  service_options.listening = listening;
  service_options.workers = options_.once ? 0 : k_workers;
  service_options.on_change = [this] { wake(); };
  service_options.log_ticks = true;
  const std::string webhook_token = state.webhook_token;
  Service service(config_, std::move(state), clock, nightscout, telephony, storage, journal,
                  service_options);
  if (!saved_at_start) service.mark_unsaved();

  // SPEC §4.13: requests from `scout ack|snooze|unsnooze`.
  adapters::CommandSpool spool(state_path);
  if (auto ready = spool.prepare(); !ready) {
    spdlog::error("the command spool: {}; scout ack/snooze/unsnooze cannot reach this service",
                  ready.error().message);
  }
  const auto tick_and_report = [&] {
    service.tick();
    if (auto written = spool.write_status(
            status_document(service, config_, options_.once, clock.now()));
        !written) {
      spdlog::debug("status: {}", written.error().message);
    }
    spool.prune_results(clock.now());
  };

  std::unique_ptr<adapters::WebhookListener> listener;
  if (listening) {
    adapters::WebhookSecrets secrets;
    secrets.public_url = config_.listener->public_url;
    secrets.url_token = webhook_token;
    secrets.vonage_signature_secret = vonage != nullptr ? vonage->signature_secret : "";
    secrets.twilio_auth_token = twilio != nullptr ? twilio->auth_token : "";
    auto started = adapters::start_listener(
        *config_.listener, secrets,
        [&service](const core::Event& event) { return service.deliver(event); });
    if (!started) {
      spdlog::error("cannot start the webhook listener: {}", started.error().message);
      service.stop();
      return started.error().kind == core::ErrorKind::config ? k_exit_config : k_exit_fatal;
    }
    listener = std::move(*started);
    spdlog::info("listening for webhooks on {}://{}:{} (public URL {})",
                 config_.listener->tls ? "https" : "http", config_.listener->bind_host,
                 listener->port(), config_.listener->public_url);
  } else if (config_.listener && options_.once) {
    spdlog::info("--once: no webhook listener; call outcomes are asked from the provider and "
                 "answering a call acknowledges it");
  }

  std::string provider_names;
  for (const auto& provider : config_.providers) {
    if (!provider_names.empty()) provider_names += ", ";
    provider_names += core::to_string(provider.type);
  }
  spdlog::info("scout {} watching {} patient(s) every {}; providers: {}; state {}",
               options_.once ? "--once" : "run", config_.patients.size(),
               core::format_duration(config_.poll.interval), provider_names, state_path);

  const auto heartbeat = [&] {
    if (config_.heartbeat_url.empty()) return;
    if (auto pinged = http_get(config_.heartbeat_url, config_.poll.timeout); !pinged) {
      spdlog::warn("{}", pinged.error().message);
    }
  };

  if (options_.once) {
    // Cron mode (SPEC §4.11): read and assess everyone first, then learn what became of earlier
    // calls, then run what is due; everything is carried out before exiting.
    apply_spool(spool, service, clock);
    tick_and_report();
    heartbeat();
    service.stop();
    if (auto saved = service.save(); !saved) {
      spdlog::error("cannot save the state: {}", saved.error().message);
      return k_exit_fatal;
    }
    return k_exit_ok;
  }

  auto next_poll = clock.now();
  auto last_call_poll = clock.now();
  auto last_watchdog = clock.now();
  bool ready = false;
  bool status_sent = false;
  bool status_saved = true;
  const core::Duration watchdog_period = watchdog_every();
  SpoolWatcher spool_watcher(spool.commands_dir(), [this] { wake(); });
  while (!stop_) {
    const auto now = clock.now();
    // The wall clock went back (NTP, an RTC-less board): poll now rather than wait it out.
    if (next_poll - now > config_.poll.interval) next_poll = now;
    if (last_call_poll > now) last_call_poll = now - k_call_poll_every;
    apply_spool(spool, service, clock);
    if (now >= next_poll) {
      tick_and_report();
      last_call_poll = clock.now();
      heartbeat();
      if (!ready) {
        sd_notify_send("READY=1");
        ready = true;
      }
      sd_notify_send("WATCHDOG=1");  // SPEC §7: every tick (and every 10 s, below)
      const bool saved = service.state_saved();
      if (saved != status_saved || !status_sent) {
        sd_notify_send(saved ? "STATUS=watching " + std::to_string(config_.patients.size()) +
                                   " patient(s)"
                             : "STATUS=cannot save the state to " + state_path +
                                   "; monitoring from memory");
        status_saved = saved;
        status_sent = true;
      }
      last_watchdog = clock.now();
      next_poll += config_.poll.interval;
      if (next_poll <= clock.now()) next_poll = clock.now() + config_.poll.interval;
    }
    // Every pass of the loop, not every poll: poll.interval may be longer than WatchdogSec.
    if (const auto fed = clock.now();
        ready && (fed - last_watchdog >= watchdog_period || fed < last_watchdog)) {
      sd_notify_send("WATCHDOG=1");
      last_watchdog = fed;
    }
    if (!listening && clock.now() - last_call_poll >= k_call_poll_every) {
      service.poll_calls();
      last_call_poll = clock.now();
    }
    service.advance();
    (void)service.flush();  // a failure is logged by the engine (once a minute) and retried
    // Sleep until the next poll, the next due time, or a wake-up; at most 1 s at a time so
    // that a wall-clock jump cannot stall the loop.
    auto wake_at = next_poll;
    if (const auto due = service.next_due(); due) wake_at = std::min(wake_at, *due);
    if (!listening && service.calls_in_flight()) {
      wake_at = std::min(wake_at, last_call_poll + std::chrono::duration_cast<core::Duration>(
                                                       k_call_poll_every));
    }
    if (ready) wake_at = std::min(wake_at, last_watchdog + watchdog_period);
    const auto wait = std::clamp<core::Duration>(wake_at - clock.now(), 0ms, 1000ms);
    std::unique_lock lock{wake_mutex_};
    wake_cv_.wait_for(lock, wait, [this] { return woken_ || stop_.load(); });
    woken_ = false;
  }

  sd_notify_send("STOPPING=1");
  if (listener) listener->stop();
  service.stop();
  if (auto saved = service.save(); !saved) {
    spdlog::error("cannot save the state: {}", saved.error().message);
    return k_exit_fatal;
  }
  spdlog::info("state saved to {}; bye", state_path);
  return k_exit_ok;
}

}  // namespace

void sd_notify_send(const std::string& state) {
  const char* socket_path = std::getenv("NOTIFY_SOCKET");
  if (socket_path == nullptr || socket_path[0] == '\0') return;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::size_t length = std::strlen(socket_path);
  if (length >= sizeof(address.sun_path)) return;
  std::memcpy(address.sun_path, socket_path, length);
  if (address.sun_path[0] == '@') address.sun_path[0] = '\0';  // abstract namespace
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  const auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
  if (::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&address), size) < 0) {
    spdlog::debug("sd_notify {}: {}", state, std::strerror(errno));
  }
  ::close(fd);
}

int run_service(const RunOptions& options, std::ostream& console_out) {
  const auto config = load_config_or_report(options.config_path, std::cerr);
  if (!config) return k_exit_config;
  Runner runner(*config, options, console_out);
  return runner.run();
}

int run_notify(const NotifyOptions& options, std::ostream& out, std::ostream& console_out) {
  if (!core::is_e164(options.to)) {
    std::cerr << "scout notify: --to must be an E.164 number like +14155550100, got '"
              << options.to << "'\n";
    return k_exit_usage;
  }
  if (options.channel != "call" && options.channel != "sms") {
    std::cerr << "scout notify: --channel must be call or sms, got '" << options.channel << "'\n";
    return k_exit_usage;
  }
  const auto config = load_config_or_report(options.config_path, std::cerr);
  if (!config) return k_exit_config;
  core::Config chosen = *config;
  if (!options.provider.empty()) {
    std::erase_if(chosen.providers, [&](const core::Provider& p) {
      return options.provider != core::to_string(p.type);
    });
    if (chosen.providers.empty()) {
      std::cerr << "scout notify: --provider " << options.provider
                << " is not in the config's providers (";
      for (std::size_t i = 0; i < config->providers.size(); ++i) {
        std::cerr << (i ? ", " : "") << core::to_string(config->providers[i].type);
      }
      std::cerr << ")\n";
      return k_exit_usage;
    }
  }
  adapters::ProviderChain chain(
      adapters::make_providers(chosen, std::nullopt, adapters::HttpSettings{}, console_out),
      adapters::RetryPolicy{}, [](std::chrono::milliseconds wait) { std::this_thread::sleep_for(wait); });
  core::Result<adapters::Sent> sent;
  if (options.channel == "call") {
    const std::string text = options.text.empty()
                                 ? "This is a test call from scout. Calls work."
                                 : options.text;
    sent = chain.place_call(
        adapters::CallRequest{"notify", options.to, text, false, adapters::wall_clock_now(), {}});
  } else {
    const std::string text =
        options.text.empty() ? "scout: this is a test message. SMS work." : options.text;
    sent = chain.send_sms(options.to, text);
  }
  if (!sent) {
    std::cerr << "scout notify: every provider failed: " << sent.error().message << "\n";
    return k_exit_fatal;
  }
  out << (options.channel == "call" ? "call" : "SMS") << " to " << core::mask_phone(options.to)
      << " accepted by " << sent->provider << " (id " << sent->id << ")\n";
  return k_exit_ok;
}

}  // namespace scout::app
