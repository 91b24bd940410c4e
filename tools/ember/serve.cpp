// ember serve: an HTTP gateway (ember::http, Lambda's Invoke API) over every plugin of a
// directory. Loaded plugins reload when their file changes (PluginOptions::watch); plugins
// copied into the directory later are loaded as they arrive: an inotify watch on the directory
// (IN_CLOSE_WRITE, IN_MOVED_TO), each new *.so loaded once it has been quiet for 250 ms. A
// plugin that cannot be loaded is tried again when its file changes, or when a layer file
// arrives (it may have been missing its layer).
// SIGINT or SIGTERM stops the gateway, then shuts the engine down with a drain.
#include <iostream>
#include <string>

#include "cli.hpp"

#ifdef EMBER_CLI_HAVE_HTTP
#include <absl/strings/match.h>
#include <absl/strings/str_join.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <utility>

#include "ember/http.hpp"
#include "text.hpp"
#endif  // EMBER_CLI_HAVE_HTTP

namespace ember::cli {

#ifndef EMBER_CLI_HAVE_HTTP

int run_serve(const ServeArgs&) {
  print_error("serve",
              "unavailable: this ember was built without the HTTP gateway "
              "(ember::http; configure with -DEMBER_BUILD_HTTP=ON and cpp-httplib installed)");
  return kExitFailure;
}

#else

namespace {

constexpr std::string_view kCommand = "serve";
using Clock = std::chrono::steady_clock;
// A file is loaded once no write to it has been seen for this long (a copy in progress may
// close and reopen it).
constexpr auto kQuiet = std::chrono::milliseconds(250);

// A file descriptor closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

// Blocks SIGINT and SIGTERM in this thread — and so in every thread started after — so that
// they arrive through a signalfd the main loop polls; restores the mask when done.
class BlockedStopSignals {
 public:
  BlockedStopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~BlockedStopSignals() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  BlockedStopSignals(const BlockedStopSignals&) = delete;
  BlockedStopSignals& operator=(const BlockedStopSignals&) = delete;
  [[nodiscard]] const sigset_t& set() const { return set_; }

 private:
  sigset_t set_{};
  sigset_t old_{};
};

// The plugins of the served directory: which files are loaded (the engine watches those), and
// loading the others when they appear or change.
class ServedDirectory {
 public:
  ServedDirectory(Engine& engine, std::string dir, PluginOptions options)
      : engine_(engine), dir_(std::move(dir)), options_(std::move(options)) {}

  // Loads a plugin file unless it is loaded already (then the engine's own watch reloads it)
  // or is a layer (the loader loads layers for the plugins that need them). Says what it did
  // on stderr. Returns true for a layer.
  bool consider(const std::string& file) {
    if (loaded_.contains(file)) return false;
    auto manifest = engine_.inspect_plugin(file, options_);
    if (!manifest) {
      failed_.insert(file);
      print_error(kCommand, cat("not loaded: ", manifest.error().message));
      return false;
    }
    if (manifest->kind == PluginManifest::Kind::kLayer) return true;
    auto info = engine_.load_plugin(file, options_);
    if (!info) {
      failed_.insert(file);
      print_error(kCommand, cat("not loaded: ", info.error().message));
      return false;
    }
    failed_.erase(file);
    loaded_.insert(file);
    std::vector<std::string> names;
    for (const PublishedFunction& f : info->functions) names.push_back(f.name);
    std::cerr << "ember serve: loaded plugin " << info->name << " " << info->version << " from "
              << file << ": " << absl::StrJoin(names, ", ") << "\n"
              << std::flush;
    return false;
  }

  // Tries again the plugins that could not be loaded (a layer one of them needs has come).
  void retry_failed() {
    for (const std::string& file : std::exchange(failed_, {})) consider(file);
  }

  void scan() {
    auto files = target_files(dir_);
    if (!files) {
      print_error(kCommand, files.error().message);
      return;
    }
    for (const std::string& file : files->files) consider(file);
  }

  [[nodiscard]] std::size_t loaded() const { return loaded_.size(); }

 private:
  Engine& engine_;
  const std::string dir_;
  const PluginOptions options_;
  std::set<std::string> loaded_;  // loaded: the engine watches them
  std::set<std::string> failed_;  // could not be loaded; retried when they change or a layer comes
};

// Reads the inotify events waiting and notes each *.so written or moved in as due for a look
// after kQuiet. Returns false if events were lost (the queue overflowed): rescan everything.
bool read_events(int fd, const std::string& dir, std::map<std::string, Clock::time_point>& due) {
  alignas(inotify_event) char buffer[16384];
  bool complete = true;
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;  // EAGAIN: all read
    for (ssize_t at = 0; at < n;) {
      inotify_event event;
      std::memcpy(&event, buffer + at, sizeof event);
      if ((event.mask & IN_Q_OVERFLOW) != 0) complete = false;
      if (event.len > 0) {
        const std::string name(buffer + at + sizeof(inotify_event));  // NUL-padded
        if (absl::EndsWith(name, ".so")) due[cat(dir, "/", name)] = Clock::now() + kQuiet;
      }
      at += static_cast<ssize_t>(sizeof(inotify_event) + event.len);
    }
  }
  return complete;
}

}  // namespace

int run_serve(const ServeArgs& args) {
  auto target = target_files(args.dir);
  if (!target) {
    print_error(kCommand, target.error().message);
    return kExitFailure;
  }
  if (!target->directory) {
    print_error(kCommand, cat("\"", args.dir, "\" is not a directory"));
    return kExitFailure;
  }
  BlockedStopSignals blocked;  // before any thread starts, so that none takes the signals
  Fd signals(::signalfd(-1, &blocked.set(), SFD_CLOEXEC));
  if (signals.get() < 0) {
    print_error(kCommand, cat("signalfd: ", std::strerror(errno)));
    return kExitFailure;
  }
  // Watch before the first scan, so that a file copied in meanwhile is not missed.
  Fd watch(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (watch.get() < 0 ||
      ::inotify_add_watch(watch.get(), args.dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    print_error(kCommand, cat("cannot watch \"", args.dir, "\" (", std::strerror(errno),
                              "): plugins copied in later will not be loaded"));
  }

  Engine engine;
  if (auto ok = engine.status(); !ok) {
    print_error(kCommand, ok.error().message);
    return kExitFailure;
  }
  ServedDirectory served(engine, args.dir, {.watch = true, .report_logs = args.log});
  served.scan();
  if (served.loaded() == 0) {
    std::cerr << "ember serve: no plugin loaded yet; copy one into " << args.dir << "\n"
              << std::flush;
  }
  auto gateway = http::Gateway::start(
      engine, {.host = args.host, .port = args.port, .allow_remote = args.allow_remote});
  if (!gateway) {
    print_error(kCommand, gateway.error().message);
    return kExitFailure;
  }
  std::cout << "ember serve: listening on " << (*gateway)->url() << "\n" << std::flush;

  std::map<std::string, Clock::time_point> due;  // files to look at, and when
  int stop_signal = 0;
  bool failed = false;
  while (stop_signal == 0 && !failed) {
    int timeout_ms = -1;
    if (!due.empty()) {
      const auto earliest =
          std::min_element(due.begin(), due.end(), [](const auto& a, const auto& b) {
            return a.second < b.second;
          })->second;
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(earliest - Clock::now());
      timeout_ms = static_cast<int>(std::max<std::chrono::milliseconds::rep>(0, wait.count()));
    }
    pollfd fds[2] = {{signals.get(), POLLIN, 0}, {watch.get(), POLLIN, 0}};
    const int n = ::poll(fds, watch.get() >= 0 ? 2 : 1, timeout_ms);
    if (n < 0 && errno != EINTR) {
      print_error(kCommand, cat("poll: ", std::strerror(errno)));
      failed = true;
      continue;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo info{};
      if (::read(signals.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        stop_signal = static_cast<int>(info.ssi_signo);
      }
    }
    if (watch.get() >= 0 && (fds[1].revents & POLLIN) != 0 &&
        !read_events(watch.get(), args.dir, due)) {
      served.scan();
    }
    bool layer_came = false;
    for (auto it = due.begin(); it != due.end() && stop_signal == 0;) {
      if (it->second > Clock::now()) {
        ++it;
        continue;
      }
      layer_came |= served.consider(it->first);
      it = due.erase(it);
    }
    if (layer_came) served.retry_failed();
  }

  std::cerr << "ember serve: " << (stop_signal != 0 ? strsignal(stop_signal) : "stopping")
            << ": shutting down (draining for up to " << absl::FormatDuration(args.drain) << ")\n"
            << std::flush;
  (*gateway)->stop();
  engine.shutdown(args.drain);
  return failed ? kExitFailure : kExitOk;
}

#endif  // EMBER_CLI_HAVE_HTTP

}  // namespace ember::cli
