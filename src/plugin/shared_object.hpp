// shared_object.hpp — one plugin or layer file, mapped from a private shadow copy.
//
// Why a copy: dlopen keys loaded objects by path and inode, so opening the same file twice
// (a reload of an unchanged build, two versions side by side) would return the first mapping;
// and a build that rewrites the file in place would change code under a running plugin. So
// the file is copied to a unique path, mapped from there with RTLD_NOW | RTLD_LOCAL (all
// symbols resolved up front, none leaking into the global scope), and the copy is unlinked at
// once: the mapping keeps it alive, and nothing is left behind if the process dies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ember/deploy.hpp"
#include "ember/result.hpp"

namespace ember::detail {

class SharedObject final {
 public:
  // Checks the file (exists, a regular file, not world-writable unless allowed, an ELF shared
  // object), copies it aside and maps it. `what` is "plugin" or "layer", for messages.
  static Result<std::unique_ptr<SharedObject>> open(const std::string& path,
                                                    const PluginOptions& options,
                                                    std::string_view what);
  ~SharedObject();
  SharedObject(const SharedObject&) = delete;
  SharedObject& operator=(const SharedObject&) = delete;

  [[nodiscard]] void* symbol(const char* name) const noexcept;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] const std::string& shadow_path() const noexcept { return shadow_path_; }
  // dlcloses the object; true if no mapping of it is left afterwards (dl_iterate_phdr). An
  // object that stays mapped is pinned by something: a thread_local with a destructor, a
  // STB_GNU_UNIQUE symbol, or another dlopen of it.
  bool close();

 private:
  SharedObject(std::string path, std::string shadow_path, void* handle)
      : path_(std::move(path)), shadow_path_(std::move(shadow_path)), handle_(handle) {}
  std::string path_;
  std::string shadow_path_;
  void* handle_;
};

// True if an object mapped from `path` is in the process's link map.
[[nodiscard]] bool is_mapped(const std::string& path);

}  // namespace ember::detail
