// watch.hpp — reload plugins whose files change on disk (PluginOptions::watch).
//
// One thread per engine, made on first use: inotify on each watched file's directory (build
// tools and deploy scripts replace files by writing or renaming, and a directory watch sees
// both), debounced on the engine's clock: a plugin reloads once no change to its file has been
// seen for its watch_debounce. The reload runs on this thread.
#pragma once

#include <absl/time/time.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ember::detail {

class PluginHost;

class PluginWatch final {
 public:
  explicit PluginWatch(PluginHost& host);
  ~PluginWatch();  // stops and joins the thread
  PluginWatch(const PluginWatch&) = delete;
  PluginWatch& operator=(const PluginWatch&) = delete;

  void add(const std::string& plugin, const std::string& path, absl::Duration debounce);
  void forget(const std::string& plugin);

 private:
  struct Watched {
    std::string plugin;
    std::string file;  // base name in its directory
    int wd = -1;
    std::int64_t debounce_ns = 0;
    std::int64_t last_change = -1;  // engine time of the last change seen; -1: none pending
  };
  void run();

  PluginHost& host_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: stop
  std::mutex mu_;     // guards watched_ and stop_ (std::mutex: TSan sees it; see plugin_host.hpp)
  std::vector<Watched> watched_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ember::detail
