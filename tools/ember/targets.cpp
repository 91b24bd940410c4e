// Plugin files from a path, payloads from files, errors to stderr: what the subcommands share.
#include <absl/strings/str_join.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "cli.hpp"
#include "text.hpp"

namespace ember::cli {

namespace fs = std::filesystem;

void print_error(std::string_view command, std::string_view message) {
  std::cerr << "ember " << command << ": " << message << "\n" << std::flush;
}

namespace {

// Everything up to end of file; false (errno set) if a read failed.
bool read_all(int fd, std::string& out) {
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      out.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0) {
      return true;
    } else if (errno != EINTR) {
      return false;
    }
  }
}

}  // namespace

Result<std::string> read_payload(const PayloadSource& source) {
  if (source.text) return *source.text;
  if (!source.file) return std::string();
  std::string payload;
  if (*source.file == "-") {
    if (!read_all(STDIN_FILENO, payload)) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("cannot read the payload from stdin: ", std::strerror(errno)));
    }
    return payload;
  }
  const int fd = ::open(source.file->c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || !read_all(fd, payload)) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    return fail(error == ENOENT ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument,
                cat("cannot read payload file \"", *source.file, "\": ", std::strerror(error)));
  }
  ::close(fd);
  return payload;
}

Result<TargetFiles> target_files(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    return fail(ErrorCode::kNotFound, cat("\"", path, "\": no such file or directory"));
  }
  TargetFiles out;
  if (fs::is_regular_file(status)) {
    out.files.push_back(path);
    return out;
  }
  if (!fs::is_directory(status)) {
    return fail(ErrorCode::kInvalidArgument,
                cat("\"", path, "\" is neither a plugin file nor a directory"));
  }
  out.directory = true;
  fs::directory_iterator it(path, ec);
  if (ec) {
    return fail(ErrorCode::kInvalidArgument,
                cat("cannot read directory \"", path, "\": ", ec.message()));
  }
  for (const fs::directory_entry& entry : it) {
    std::error_code entry_ec;
    if (entry.path().extension() == ".so" && entry.is_regular_file(entry_ec)) {
      out.files.push_back(entry.path().string());
    }
  }
  std::sort(out.files.begin(), out.files.end());
  return out;
}

Result<LoadOutcome> load_target(Engine& engine, const std::string& path,
                                const PluginOptions& options) {
  auto files = target_files(path);
  if (!files) return tl::unexpected(std::move(files.error()));
  LoadOutcome outcome;
  for (const std::string& file : files->files) {
    // Inspect first: a layer is not loaded as a plugin (the loader loads it for the plugins
    // that require it), and a file that is neither says why before anything is loaded.
    auto manifest = engine.inspect_plugin(file, options);
    Result<PluginInfo> loaded = tl::unexpected(Error{});
    if (!manifest) {
      loaded = tl::unexpected(std::move(manifest.error()));
    } else if (manifest->kind == PluginManifest::Kind::kLayer) {
      if (!files->directory) {
        return fail(ErrorCode::kInvalidArgument,
                    cat("\"", file, "\" is layer \"", manifest->name,
                        "\", not a plugin: give a plugin that requires it"));
      }
      outcome.layers.push_back(file);
      continue;
    } else {
      loaded = engine.load_plugin(file, options);
    }
    if (!loaded) {
      if (!files->directory) return tl::unexpected(std::move(loaded.error()));
      outcome.failures.push_back(std::move(loaded.error()));
      continue;
    }
    outcome.loaded.push_back(std::move(*loaded));
  }
  if (files->directory && outcome.loaded.empty()) {
    std::string why = cat("no plugin in directory \"", path, "\" could be loaded");
    if (files->files.empty()) why = cat("directory \"", path, "\" holds no *.so file");
    for (const Error& e : outcome.failures) append(&why, "\n  ", e.message);
    return fail(ErrorCode::kNotFound, std::move(why));
  }
  return outcome;
}

std::optional<FunctionHandle> load_function(Engine& engine, std::string_view command,
                                            const std::string& target, const std::string& function,
                                            const PluginOptions& options) {
  if (auto ok = engine.status(); !ok) {
    print_error(command, ok.error().message);
    return std::nullopt;
  }
  auto loaded = load_target(engine, target, options);
  if (!loaded) {
    print_error(command, loaded.error().message);
    return std::nullopt;
  }
  for (const Error& e : loaded->failures) print_error(command, cat("skipped: ", e.message));
  auto fn = engine.function(function);
  if (!fn) {
    std::vector<std::string> names;
    for (const FunctionInfo& f : engine.functions()) names.push_back(f.name);
    print_error(command, cat("no function \"", function, "\" in \"", target, "\" (functions: ",
                             names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
    return std::nullopt;
  }
  return *fn;
}

}  // namespace ember::cli
