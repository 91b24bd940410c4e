#include "plugin/shared_object.hpp"

#include <absl/random/random.h>
#include <absl/strings/str_format.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/str_cat.hpp"

namespace ember::detail {

namespace {

std::string shadow_dir(const PluginOptions& o) {
  if (!o.shadow_dir.empty()) return o.shadow_dir;
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

// What dlopen does not check: a truncated object whose segments reach past the end of the
// file is mapped anyway, and touching the missing pages raises SIGBUS in the host. So the
// header and every loadable segment must lie within the file.
Result<void> check_elf(const std::string& path, std::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return fail(ErrorCode::kPluginInvalid,
                cat(what, " '", path, "': cannot open: ", std::strerror(errno)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return fail(ErrorCode::kPluginInvalid,
                cat(what, " '", path, "': cannot stat: ", std::strerror(errno)));
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  Elf64_Ehdr header;
  const ssize_t n = ::pread(fd, &header, sizeof header, 0);
  if (n < 4 || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) {
    return fail(ErrorCode::kPluginInvalid, cat(what, " '", path, "': not an ELF file (",
                                               n < 4 ? "too short" : "bad magic", ")"));
  }
  if (n < static_cast<ssize_t>(sizeof header)) {
    return fail(ErrorCode::kPluginInvalid,
                cat(what, " '", path, "': truncated ELF file (", size, " bytes)"));
  }
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_type != ET_DYN) {
    return fail(ErrorCode::kPluginInvalid,
                cat(what, " '", path, "': not a 64-bit ELF shared object"));
  }
  auto truncated = [&](std::string_view part) {
    return fail(ErrorCode::kPluginInvalid, cat(what, " '", path, "': truncated ELF file (", size,
                                               " bytes; its ", part, " lies past the end)"));
  };
  if (header.e_phentsize != sizeof(Elf64_Phdr) || header.e_phnum == 0 ||
      header.e_phoff + std::uint64_t{header.e_phnum} * sizeof(Elf64_Phdr) > size) {
    return truncated("program header table");
  }
  for (unsigned i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (::pread(fd, &ph, sizeof ph, static_cast<off_t>(header.e_phoff + i * sizeof ph)) !=
        static_cast<ssize_t>(sizeof ph)) {
      return truncated("program header table");
    }
    if ((ph.p_type == PT_LOAD || ph.p_type == PT_DYNAMIC) &&
        (ph.p_offset > size || ph.p_filesz > size - ph.p_offset)) {
      return truncated(cat("segment ", i));
    }
  }
  return {};
}

// Copies `from` to a new file `to` (which must not exist), readable and executable by us only.
// Not std::filesystem::copy_file: that copies the source's mode, and a world-writable copy in
// a shared /tmp could be rewritten by someone else between our checks and dlopen.
Result<void> copy_file(const std::string& from, const std::string& to) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return fail(ErrorCode::kPluginInvalid, std::strerror(errno));
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
  if (out < 0) {
    const int e = errno;
    ::close(in);
    return fail(ErrorCode::kPluginInvalid, std::strerror(e));
  }
  char buffer[16 << 10];  // small: a load may run on a handler's fiber stack
  Result<void> result;
  for (;;) {
    const ssize_t n = ::read(in, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      result = fail(ErrorCode::kPluginInvalid, std::strerror(errno));
      break;
    }
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out, buffer + done, static_cast<std::size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        result = fail(ErrorCode::kPluginInvalid, std::strerror(errno));
        break;
      }
      done += w;
    }
    if (!result) break;
  }
  ::close(in);
  if (::close(out) != 0 && result) result = fail(ErrorCode::kPluginInvalid, std::strerror(errno));
  if (!result) ::unlink(to.c_str());
  return result;
}

}  // namespace

Result<std::unique_ptr<SharedObject>> SharedObject::open(const std::string& path,
                                                         const PluginOptions& options,
                                                         std::string_view what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return fail(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kPluginInvalid,
                cat(what, " '", path, "': ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(ErrorCode::kPluginInvalid, cat(what, " '", path, "': not a regular file"));
  }
  if ((st.st_mode & S_IWOTH) != 0 && !options.allow_world_writable) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return fail(ErrorCode::kInvalidArgument,
                cat(what, " '", path, "': the file is world-writable (mode ", mode,
                    "); refusing to run it (PluginOptions.allow_world_writable)"));
  }

  // Copy first, then check the copy: what is checked is exactly what gets mapped, however the
  // original changes meanwhile.
  namespace fs = std::filesystem;
  const std::string base = fs::path(path).filename().string();
  const std::string shadow =
      cat(shadow_dir(options), "/ember-", ::getpid(), "-",
          absl::StrFormat("%016x", absl::Uniform<std::uint64_t>(absl::BitGen())), "-", base);
  if (auto ok = copy_file(path, shadow); !ok) {
    return fail(ErrorCode::kPluginInvalid,
                cat(what, " '", path, "': cannot make a shadow copy at '", shadow,
                    "': ", ok.error().message, " (PluginOptions.shadow_dir)"));
  }
  struct Unlink {
    const std::string& file;
    ~Unlink() { ::unlink(file.c_str()); }  // the mapping, if any, keeps the copy alive
  } unlink_copy{shadow};
  if (auto ok = check_elf(shadow, what); !ok) {
    // Name the original, not our copy.
    std::string message = ok.error().message;
    if (const std::size_t at = message.find(shadow); at != std::string::npos)
      message.replace(at, shadow.size(), path);
    return fail(ErrorCode::kPluginInvalid, std::move(message));
  }
  ::dlerror();
  void* handle = ::dlopen(shadow.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = ::dlerror();
    return fail(ErrorCode::kPluginInvalid,
                cat(what, " '", path, "': dlopen failed: ", err != nullptr ? err : "unknown"));
  }
  return std::unique_ptr<SharedObject>(new SharedObject(path, shadow, handle));
}

SharedObject::~SharedObject() {
  if (handle_ != nullptr) close();
}

void* SharedObject::symbol(const char* name) const noexcept {
  return handle_ != nullptr ? ::dlsym(handle_, name) : nullptr;
}

bool SharedObject::close() {
  if (handle_ == nullptr) return !is_mapped(shadow_path_);
  ::dlclose(handle_);
  handle_ = nullptr;
  return !is_mapped(shadow_path_);
}

bool is_mapped(const std::string& path) {
  struct Search {
    const std::string* path;
    bool found = false;
  } search{&path};
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        if (info->dlpi_name != nullptr && *s->path == info->dlpi_name) {
          s->found = true;
          return 1;
        }
        return 0;
      },
      &search);
  return search.found;
}

}  // namespace ember::detail
