#include "env/scratch.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "core/str_cat.hpp"

namespace ember::detail {

namespace {

// Opens a directory for the walk or for fchmod; never through a symbolic link.
constexpr int kOpenDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

std::string strip_trailing_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

std::string join(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  return dir.back() == '/' ? cat(dir, name) : cat(dir, '/', name);
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// "<function>-<id>". The "-<id>" suffix also means the name is never "." or "..", and the
// sanitising means it has no '/': it always names a new entry directly under the root.
std::string scratch_name(std::string_view function, std::uint64_t instance_id) {
  std::string name;
  name.reserve(function.size() + 21);
  for (const char c : function) name.push_back(is_name_char(c) ? c : '_');
  name.push_back('-');
  name.append(std::to_string(instance_id));
  return name;
}

tl::unexpected<Error> errno_error(std::string_view kind, std::string_view path,
                                  std::string_view call, int err) {
  return fail(ErrorCode::kInternal,
              cat(kind, " '", path, "': ", call, " failed: ", std::strerror(err)));
}

// mkdir's mode is cut by the umask; a scratch directory must be exactly 0700 (usable by the
// handler, by nobody else). Through a descriptor opened without following links, so that a
// link swapped in for the new directory is not chmod'ed.
Result<void> set_mode_0700(std::string_view kind, const std::string& path) {
  const int fd = ::open(path.c_str(), kOpenDirFlags);
  if (fd < 0) return errno_error(kind, path, "open", errno);
  const int rc = ::fchmod(fd, 0700);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return errno_error(kind, path, "chmod", err);
  return {};
}

// Makes `path` and its missing parents with mode 0700. An existing `path` is left as it is.
Result<void> make_dirs(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0) return set_mode_0700("scratch root", path);
  const int err = errno;
  if (err == EEXIST) return {};
  const std::size_t slash = path.find_last_of('/');
  if (err != ENOENT || slash == std::string::npos || slash == 0) {
    return errno_error("scratch root", path, "mkdir", err);
  }
  if (auto parent = make_dirs(strip_trailing_slashes(path.substr(0, slash))); !parent) {
    return parent;
  }
  if (::mkdir(path.c_str(), 0700) == 0) return set_mode_0700("scratch root", path);
  if (errno == EEXIST) return {};  // made meanwhile by another instance
  return errno_error("scratch root", path, "mkdir", errno);
}

// The root must be a directory that nobody but this user (or root) can rename entries in:
// anyone who could would be able to swap an instance's directory for a link to elsewhere.
// A root such as /tmp (root's, sticky) is fine; a predictable $TMPDIR/ember-<pid> made
// beforehand by another user is not.
Result<void> check_root(const std::string& root) {
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0) return errno_error("scratch root", root, "stat", errno);
  if (!S_ISDIR(st.st_mode)) {
    return fail(ErrorCode::kInternal, cat("scratch root '", root, "': not a directory"));
  }
  const uid_t me = ::geteuid();
  if (st.st_uid != me && st.st_uid != 0) {
    return fail(ErrorCode::kInternal, cat("scratch root '", root, "': owned by uid ", st.st_uid,
                                          ", not by this user (uid ", me, ") nor root"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    return fail(ErrorCode::kInternal,
                cat("scratch root '", root, "': writable by others and not sticky"));
  }
  return {};
}

// One open directory of a walk.
struct Frame {
  DIR* dir = nullptr;
  std::string path;  // for messages
  std::string name;  // its name in the parent directory (empty for the top)
};

// Closes whatever a walk left open when it ends, by an exception (bad_alloc) too.
struct FrameStack {
  std::vector<Frame> frames;
  FrameStack() = default;
  FrameStack(const FrameStack&) = delete;
  FrameStack& operator=(const FrameStack&) = delete;
  ~FrameStack() {
    for (Frame& f : frames) {
      if (f.dir != nullptr) ::closedir(f.dir);
    }
  }
};

// Walks the tree below the directory open at `fd` (taken over), depth first, never following a
// symbolic link: every entry is looked at with fstatat(AT_SYMLINK_NOFOLLOW) and every
// subdirectory opened with openat(O_NOFOLLOW) relative to its parent, so a link swapped in
// during the walk is not followed either. Iterative, not recursive: a handler can nest
// directories deeper than a fiber stack could follow (one descriptor per level is held open).
// The visitor gets
//   file(parent_fd, name, stat, parent_path) for each entry that is not a directory,
//   leave(parent_fd, frame) for each subdirectory after everything in it,
//   error(path, call, errno) for what could not be looked at; the walk goes on.
template <typename Visitor>
void walk(int fd, const std::string& path, Visitor& visitor) {
  // Each frame is pushed before its directory is opened, so that nothing is open while an
  // allocation may throw and everything open is in `stack` (which closes it).
  FrameStack stack;
  try {
    stack.frames.push_back(Frame{nullptr, path, {}});
  } catch (...) {
    ::close(fd);
    throw;
  }
  stack.frames.back().dir = ::fdopendir(fd);
  if (stack.frames.back().dir == nullptr) {
    const int err = errno;
    ::close(fd);
    visitor.error(path, "opendir", err);
    return;
  }

  while (!stack.frames.empty()) {
    Frame& cur = stack.frames.back();
    errno = 0;
    const dirent* entry = ::readdir(cur.dir);
    if (entry == nullptr) {
      if (const int err = errno; err != 0) visitor.error(cur.path, "readdir", err);
      ::closedir(cur.dir);
      cur.dir = nullptr;
      const Frame done = std::move(cur);
      stack.frames.pop_back();
      if (!stack.frames.empty()) visitor.leave(::dirfd(stack.frames.back().dir), done);
      continue;
    }
    const char* name = entry->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;

    const int parent = ::dirfd(cur.dir);
    struct stat st {};
    if (::fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      const int err = errno;
      if (err != ENOENT) visitor.error(join(cur.path, name), "stat", err);  // ENOENT: gone
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      visitor.file(parent, name, st, cur.path);
      continue;
    }
    stack.frames.push_back(Frame{nullptr, join(cur.path, name), name});  // `cur` is stale now
    Frame& child = stack.frames.back();
    const int child_fd = ::openat(parent, name, kOpenDirFlags);
    if (child_fd < 0) {
      visitor.error(child.path, "open", errno);
      stack.frames.pop_back();
      continue;
    }
    child.dir = ::fdopendir(child_fd);
    if (child.dir == nullptr) {
      const int err = errno;
      ::close(child_fd);
      visitor.error(child.path, "opendir", err);
      stack.frames.pop_back();
    }
  }
}

struct ByteCounter {
  std::uint64_t total = 0;

  void file(int /*parent_fd*/, const char* /*name*/, const struct stat& st,
            const std::string& /*parent_path*/) {
    if (S_ISREG(st.st_mode)) total += static_cast<std::uint64_t>(st.st_size);
  }
  void leave(int /*parent_fd*/, const Frame& /*dir*/) {}
  void error(const std::string& /*path*/, const char* /*call*/, int /*err*/) {}
};

struct Remover {
  const std::string& dir;
  std::optional<Error> first_error;

  void file(int parent_fd, const char* name, const struct stat& /*st*/,
            const std::string& parent_path) {
    // A link is unlinked itself: its target is not touched.
    if (::unlinkat(parent_fd, name, 0) != 0 && errno != ENOENT) {
      const int err = errno;  // before join allocates
      error(join(parent_path, name), "unlink", err);
    }
  }
  void leave(int parent_fd, const Frame& sub) {
    if (::unlinkat(parent_fd, sub.name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      error(sub.path, "rmdir", errno);
    }
  }
  void error(const std::string& path, const char* call, int err) {
    if (first_error) return;
    first_error = Error{ErrorCode::kInternal, cat("scratch directory '", dir, "': ", call, " '",
                                                  path, "' failed: ", std::strerror(err))};
  }
};

}  // namespace

std::string default_scratch_root() {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp";
  return join(strip_trailing_slashes(std::move(base)), cat("ember-", ::getpid()));
}

Result<std::string> make_scratch_dir(const std::string& root, std::string_view function,
                                     std::uint64_t instance_id) {
  if (root.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                cat("scratch directory for '", function, "': the scratch root is empty"));
  }
  const std::string clean_root = strip_trailing_slashes(root);
  if (auto made = make_dirs(clean_root); !made) return tl::unexpected(std::move(made.error()));
  if (auto safe = check_root(clean_root); !safe) return tl::unexpected(std::move(safe.error()));

  std::string dir = join(clean_root, scratch_name(function, instance_id));
  if (::mkdir(dir.c_str(), 0700) != 0) {
    return errno_error("scratch directory", dir, "mkdir", errno);
  }
  if (auto mode = set_mode_0700("scratch directory", dir); !mode) {
    return tl::unexpected(std::move(mode.error()));
  }
  return dir;
}

std::uint64_t scratch_bytes_used(const std::string& dir) noexcept {
  ByteCounter counter;
  try {
    const int fd = ::open(dir.c_str(), kOpenDirFlags);
    if (fd < 0) return 0;  // missing, not a directory, or a link
    walk(fd, dir, counter);
  } catch (...) {
    // Only bad_alloc can get here; what was counted so far is the best answer left.
  }
  return counter.total;
}

Result<void> remove_scratch_dir(const std::string& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return errno_error("scratch directory", dir, "lstat", errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    return fail(ErrorCode::kInternal, cat("scratch directory '", dir, "': not a directory"));
  }
  const int fd = ::open(dir.c_str(), kOpenDirFlags);
  if (fd < 0) {
    if (errno == ENOENT) return {};
    return errno_error("scratch directory", dir, "open", errno);
  }
  Remover remover{dir, std::nullopt};
  walk(fd, dir, remover);
  if (remover.first_error) return tl::unexpected(std::move(*remover.first_error));
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    return errno_error("scratch directory", dir, "rmdir", errno);
  }
  return {};
}

Result<void> remove_root_if_empty(const std::string& root) {
  if (::rmdir(root.c_str()) == 0) return {};
  const int err = errno;
  if (err == ENOENT || err == ENOTEMPTY || err == EEXIST) return {};
  return errno_error("scratch root", root, "rmdir", err);
}

}  // namespace ember::detail
