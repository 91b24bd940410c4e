#include "plugin/watch.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/str_cat.hpp"
#include "plugin/plugin_host.hpp"

namespace ember::detail {

PluginWatch::PluginWatch(PluginHost& host) : host_(host) {
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (inotify_fd_ < 0 || wake_fd_ < 0) {
    host_.core().log(LogLevel::kError, "plugin-watch", "",
                     cat("cannot watch plugin files: ", std::strerror(errno)));
    return;
  }
  thread_ = std::thread([this] { run(); });
}

PluginWatch::~PluginWatch() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void PluginWatch::add(const std::string& plugin, const std::string& path, absl::Duration debounce) {
  if (inotify_fd_ < 0) return;
  namespace fs = std::filesystem;
  const fs::path p(path);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
  const int wd = ::inotify_add_watch(inotify_fd_, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO);
  if (wd < 0) {
    host_.core().log(LogLevel::kError, cat("plugin:", plugin), "",
                     cat("cannot watch ", dir, ": ", std::strerror(errno)));
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  watched_.push_back({plugin, p.filename().string(), wd, to_nanos(debounce), -1});
}

void PluginWatch::forget(const std::string& plugin) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(watched_, [&](const Watched& w) { return w.plugin == plugin; });
}

void PluginWatch::run() {
  alignas(inotify_event) char buffer[4096];
  for (;;) {
    bool pending = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      for (const Watched& w : watched_) pending |= w.last_change >= 0;
    }
    // While a reload is pending, look at the (engine's) clock every 10 ms; otherwise sleep
    // until a file event or stop.
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    ::poll(fds, 2, pending ? 10 : -1);
    const std::int64_t now = host_.core().time().now();
    std::vector<std::string> due;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      for (;;) {
        const ssize_t n = ::read(inotify_fd_, buffer, sizeof buffer);
        if (n <= 0) break;
        for (ssize_t off = 0; off < n;) {
          const auto* e = reinterpret_cast<const inotify_event*>(buffer + off);
          off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
          if (e->len == 0) continue;
          for (Watched& w : watched_) {
            if (w.wd == e->wd && w.file == e->name) w.last_change = now;
          }
        }
      }
      for (Watched& w : watched_) {
        if (w.last_change >= 0 && now - w.last_change >= w.debounce_ns) {
          w.last_change = -1;
          due.push_back(w.plugin);
        }
      }
    }
    for (const std::string& plugin : due) host_.on_file_changed(plugin);
  }
}

}  // namespace ember::detail
