// scratch.hpp — per-instance scratch directories: what Lambda gives each execution environment
// as /tmp.
//
// Each instance of a function gets its own directory, <root>/<function>-<instance id>, made
// fresh (mode 0700) when the instance starts and removed with everything in it when it ends.
// The root, by default $TMPDIR/ember-<pid>, is shared by the process's instances and removed
// when the last of them is gone.
//
//   const std::string root = ember::detail::default_scratch_root();
//   auto dir = ember::detail::make_scratch_dir(root, "resize-image", 7);  // root/resize-image-7
//   if (!dir) return tl::unexpected(dir.error());
//   ...  // the handler writes under *dir
//   std::uint64_t bytes = ember::detail::scratch_bytes_used(*dir);
//   (void)ember::detail::remove_scratch_dir(*dir);
//   (void)ember::detail::remove_root_if_empty(root);
//
// Symbolic links the handler leaves in its directory are never followed: not when counting
// bytes, not when removing (a link is removed, its target is left alone). Both walk the tree
// without recursion, relative to open directories (so paths longer than PATH_MAX are fine),
// holding one descriptor per level of nesting: a tree nested deeper than the process has
// descriptors left is not walked to the bottom (bytes are undercounted, remove fails). Every
// function is thread-safe (no shared state) as long as no two calls work on the same directory at
// once. Errors carry ErrorCode::kInternal and a message naming the path and the failed call, e.g.
// "scratch directory '/x/y': mkdir failed: Permission denied".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ember/result.hpp"

namespace ember::detail {

// $TMPDIR (when set and absolute, else "/tmp") joined with "ember-<pid>", e.g. "/tmp/ember-4242".
// Reads the environment: do not call it while another thread may call setenv.
[[nodiscard]] std::string default_scratch_root();

// Makes root/<function>-<instance_id> with mode 0700 and returns its path. The root (and its
// missing parents) is made first with mode 0700 when missing. The directory itself must not
// exist yet. `function` is sanitised: every character outside [A-Za-z0-9._-] becomes '_'.
// Errors (kInternal): root not a directory, or unsafe (writable by others without the sticky
// bit, or owned by another user than this one or root: someone else could swap the scratch
// directory for a link); a mkdir failure (the directory exists already, permissions, ...).
// kInvalidArgument: an empty root.
[[nodiscard]] Result<std::string> make_scratch_dir(const std::string& root,
                                                   std::string_view function,
                                                   std::uint64_t instance_id);

// The sum of st_size of the regular files under `dir`, at any depth; symbolic links are not
// followed (neither to files nor to directories). 0 when `dir` is missing or is not a
// directory (a link to one included). Unreadable parts are skipped. Never throws.
[[nodiscard]] std::uint64_t scratch_bytes_used(const std::string& dir) noexcept;

// Removes `dir` and everything under it without following symbolic links: a link inside is
// removed, its target is untouched. A missing `dir` is success. Removes what it can; errors
// name the first path that could not be removed, or `dir` when it is not a directory (a link
// to one included).
[[nodiscard]] Result<void> remove_scratch_dir(const std::string& dir);

// Removes `root` when it is an empty directory. Success too when it is missing or not empty
// (other instances still have their directories there).
[[nodiscard]] Result<void> remove_root_if_empty(const std::string& root);

}  // namespace ember::detail
