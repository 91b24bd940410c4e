// Scratch directories: made fresh with mode 0700 under a safe root, function names sanitised,
// bytes counted and trees removed without ever following a symbolic link out of them.
#include "env/scratch.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>  // mkdtemp, setenv, unsetenv
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

namespace ember::detail {
namespace {

namespace fs = std::filesystem;

bool exists_no_follow(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return static_cast<unsigned>(st.st_mode & 07777);
}

void write_file(const std::string& path, std::size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  ASSERT_TRUE(out) << path;
  out << std::string(bytes, 'x');
}

void make_symlink(const std::string& target, const std::string& link) {
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0) << link << ": " << std::strerror(errno);
}

void make_dir(const std::string& path) {
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0) << path << ": " << std::strerror(errno);
}

// A fresh temporary directory per test (mkdtemp), removed with everything in it.
class ScratchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "ember-scratch-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << pattern << ": " << std::strerror(errno);
    tmp_ = pattern;
  }
  void TearDown() override {
    if (tmp_.empty()) return;
    std::error_code ec;
    fs::remove_all(tmp_, ec);  // does not follow symlinks either
  }
  // `name` inside the temporary directory (whether or not it exists).
  [[nodiscard]] std::string at(const std::string& name) const { return tmp_ + "/" + name; }

  std::string tmp_;
};

TEST_F(ScratchTest, MakeCreatesFunctionDashIdWithMode0700) {
  const auto dir = make_scratch_dir(tmp_, "resize-image", 7);
  ASSERT_TRUE(dir) << dir.error().message;
  EXPECT_EQ(*dir, at("resize-image-7"));
  EXPECT_TRUE(fs::is_directory(*dir));
  EXPECT_EQ(mode_of(*dir), 0700u);
}

TEST_F(ScratchTest, MakeCreatesAMissingRootAndItsParentsWithMode0700) {
  const std::string root = at("a/b/root");
  const auto dir = make_scratch_dir(root + "/", "fn", 1);  // a trailing slash is fine
  ASSERT_TRUE(dir) << dir.error().message;
  EXPECT_EQ(*dir, root + "/fn-1");
  EXPECT_EQ(mode_of(at("a")), 0700u);
  EXPECT_EQ(mode_of(at("a/b")), 0700u);
  EXPECT_EQ(mode_of(root), 0700u);
  EXPECT_EQ(mode_of(*dir), 0700u);

  // A second instance of another function shares the root.
  const auto other = make_scratch_dir(root, "fn", 2);
  ASSERT_TRUE(other) << other.error().message;
  EXPECT_EQ(*other, root + "/fn-2");
}

TEST_F(ScratchTest, ModeIs0700WhateverTheUmask) {
  const mode_t old = ::umask(0277);  // mkdir alone would give 0500
  const auto dir = make_scratch_dir(at("root"), "fn", 1);
  ::umask(old);
  ASSERT_TRUE(dir) << dir.error().message;
  EXPECT_EQ(mode_of(at("root")), 0700u);
  EXPECT_EQ(mode_of(*dir), 0700u);
}

TEST_F(ScratchTest, ASecondMakeOfTheSameInstanceFailsNamingThePath) {
  ASSERT_TRUE(make_scratch_dir(tmp_, "fn", 3));
  write_file(at("fn-3/kept"), 5);
  const auto again = make_scratch_dir(tmp_, "fn", 3);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kInternal);
  EXPECT_EQ(again.error().message,
            "scratch directory '" + at("fn-3") + "': mkdir failed: " + std::strerror(EEXIST));
  EXPECT_TRUE(exists_no_follow(at("fn-3/kept")));  // the first one is untouched
}

TEST_F(ScratchTest, AnExistingSymlinkInPlaceOfTheDirectoryIsNotReused) {
  make_dir(at("elsewhere"));
  make_symlink(at("elsewhere"), at("fn-4"));
  const auto dir = make_scratch_dir(tmp_, "fn", 4);
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().message.find(at("fn-4")), std::string::npos) << dir.error().message;
  EXPECT_EQ(mode_of(at("elsewhere")), 0755u);
}

TEST_F(ScratchTest, TheFunctionNameIsSanitised) {
  const auto dir = make_scratch_dir(tmp_, "../a/b:c d\xc3\xa9.V2_x-y", 9);
  ASSERT_TRUE(dir) << dir.error().message;
  EXPECT_EQ(*dir, at(".._a_b_c_d__.V2_x-y-9"));
  EXPECT_EQ(fs::path(*dir).parent_path(), fs::path(tmp_));  // directly under the root

  const auto empty = make_scratch_dir(tmp_, "", 10);
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_EQ(*empty, at("-10"));
}

TEST_F(ScratchTest, AnEmptyRootIsAnInvalidArgument) {
  const auto dir = make_scratch_dir("", "fn", 1);
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(ScratchTest, MakeFailsWhenTheRootIsAFile) {
  write_file(at("file"), 1);
  const auto dir = make_scratch_dir(at("file"), "fn", 1);
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code, ErrorCode::kInternal);
  EXPECT_EQ(dir.error().message, "scratch root '" + at("file") + "': not a directory");
}

TEST_F(ScratchTest, MakeFailsNamingTheRootWhenAParentIsAFile) {
  write_file(at("file"), 1);
  const auto dir = make_scratch_dir(at("file/root"), "fn", 1);
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code, ErrorCode::kInternal);
  EXPECT_EQ(dir.error().message,
            "scratch root '" + at("file/root") + "': mkdir failed: " + std::strerror(ENOTDIR));
}

TEST_F(ScratchTest, MakeRefusesARootOthersCanRenameEntriesIn) {
  make_dir(at("open"));
  ASSERT_EQ(::chmod(at("open").c_str(), 0777), 0);
  const auto dir = make_scratch_dir(at("open"), "fn", 1);
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().message,
            "scratch root '" + at("open") + "': writable by others and not sticky");
  EXPECT_FALSE(exists_no_follow(at("open/fn-1")));

  ASSERT_EQ(::chmod(at("open").c_str(), 01777), 0);  // like /tmp: fine
  const auto sticky = make_scratch_dir(at("open"), "fn", 1);
  ASSERT_TRUE(sticky) << sticky.error().message;
}

TEST_F(ScratchTest, BytesUsedSumsRegularFilesAtAnyDepth) {
  const auto dir = make_scratch_dir(tmp_, "fn", 1);
  ASSERT_TRUE(dir);
  EXPECT_EQ(scratch_bytes_used(*dir), 0u);
  write_file(*dir + "/a", 10);
  make_dir(*dir + "/sub");
  make_dir(*dir + "/sub/deeper");
  make_dir(*dir + "/empty");
  write_file(*dir + "/sub/b", 200);
  write_file(*dir + "/sub/deeper/c", 3000);
  write_file(*dir + "/sub/deeper/zero", 0);
  EXPECT_EQ(scratch_bytes_used(*dir), 3210u);
}

TEST_F(ScratchTest, BytesUsedIsZeroForAMissingDirectoryOrALinkToOne) {
  EXPECT_EQ(scratch_bytes_used(at("missing")), 0u);
  make_dir(at("real"));
  write_file(at("real/f"), 100);
  make_symlink(at("real"), at("link"));
  EXPECT_EQ(scratch_bytes_used(at("real")), 100u);
  EXPECT_EQ(scratch_bytes_used(at("link")), 0u);
  EXPECT_EQ(scratch_bytes_used(at("real/f")), 0u);  // not a directory
}

TEST_F(ScratchTest, BytesUsedDoesNotFollowSymlinksOutOfTheDirectory) {
  make_dir(at("outside"));
  write_file(at("outside/big"), 5000);
  const auto dir = make_scratch_dir(at("root"), "fn", 1);
  ASSERT_TRUE(dir);
  write_file(*dir + "/own", 7);
  make_symlink(at("outside/big"), *dir + "/to_file");
  make_symlink(at("outside"), *dir + "/to_dir");
  make_symlink(*dir + "/own", *dir + "/to_own");  // not counted twice either
  EXPECT_EQ(scratch_bytes_used(*dir), 7u);
}

TEST_F(ScratchTest, RemoveDeletesTheTreeButNotWhatSymlinksPointAt) {
  make_dir(at("outside"));
  write_file(at("outside/precious"), 42);
  make_dir(at("outside/dir"));
  write_file(at("outside/dir/inner"), 1);
  const auto dir = make_scratch_dir(at("root"), "fn", 1);
  ASSERT_TRUE(dir);
  make_dir(*dir + "/sub");
  make_dir(*dir + "/sub/deeper");
  write_file(*dir + "/sub/deeper/f", 9);
  make_symlink(at("outside/precious"), *dir + "/sub/to_file");
  make_symlink(at("outside/dir"), *dir + "/sub/deeper/to_dir");
  make_symlink(at("nowhere"), *dir + "/dangling");
  ASSERT_EQ(::mkfifo((*dir + "/fifo").c_str(), 0600), 0);

  const auto removed = remove_scratch_dir(*dir);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_FALSE(exists_no_follow(*dir));
  EXPECT_TRUE(fs::is_directory(at("root")));  // only the instance's directory goes
  EXPECT_EQ(fs::file_size(at("outside/precious")), 42u);
  EXPECT_EQ(fs::file_size(at("outside/dir/inner")), 1u);
}

TEST_F(ScratchTest, RemoveWorksAtDepthsNoRecursionWouldReach) {
  // 600 levels, made relative to each other: the path is longer than PATH_MAX would allow in
  // one string, so neither make nor remove can rely on whole paths below the top.
  const auto dir = make_scratch_dir(tmp_, "fn", 1);
  ASSERT_TRUE(dir);
  int fd = ::open(dir->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  constexpr int kDepth = 600;
  const std::string level(8, 'd');
  for (int i = 0; i < kDepth; ++i) {
    ASSERT_EQ(::mkdirat(fd, level.c_str(), 0700), 0) << i << ": " << std::strerror(errno);
    const int next = ::openat(fd, level.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ::close(fd);
    ASSERT_GE(next, 0) << i;
    fd = next;
  }
  const int file = ::openat(fd, "bottom", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(file, 0);
  ASSERT_EQ(::write(file, "12345", 5), 5);
  ::close(file);
  ::close(fd);

  EXPECT_EQ(scratch_bytes_used(*dir), 5u);
  const auto removed = remove_scratch_dir(*dir);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_FALSE(exists_no_follow(*dir));
}

TEST_F(ScratchTest, RemoveOfAMissingDirectoryIsOk) {
  EXPECT_TRUE(remove_scratch_dir(at("never-made")));
  const auto dir = make_scratch_dir(tmp_, "fn", 1);
  ASSERT_TRUE(dir);
  ASSERT_TRUE(remove_scratch_dir(*dir));
  EXPECT_TRUE(remove_scratch_dir(*dir));  // twice
}

TEST_F(ScratchTest, RemoveRefusesASymlinkInPlaceOfTheDirectory) {
  make_dir(at("outside"));
  write_file(at("outside/precious"), 3);
  make_symlink(at("outside"), at("fn-1"));
  const auto removed = remove_scratch_dir(at("fn-1"));
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().code, ErrorCode::kInternal);
  EXPECT_EQ(removed.error().message, "scratch directory '" + at("fn-1") + "': not a directory");
  EXPECT_TRUE(exists_no_follow(at("fn-1")));
  EXPECT_EQ(fs::file_size(at("outside/precious")), 3u);
}

TEST_F(ScratchTest, RemoveRootIfEmptyOnlyRemovesAnEmptyRoot) {
  const std::string root = at("root");
  const auto a = make_scratch_dir(root, "fn", 1);
  const auto b = make_scratch_dir(root, "fn", 2);
  ASSERT_TRUE(a && b);

  ASSERT_TRUE(remove_scratch_dir(*a));
  EXPECT_TRUE(remove_root_if_empty(root));  // not empty: ok, kept
  EXPECT_TRUE(fs::is_directory(root));
  ASSERT_TRUE(remove_scratch_dir(*b));
  EXPECT_TRUE(remove_root_if_empty(root));
  EXPECT_FALSE(exists_no_follow(root));
  EXPECT_TRUE(remove_root_if_empty(root));  // missing: ok

  write_file(at("file"), 1);
  const auto not_dir = remove_root_if_empty(at("file"));
  ASSERT_FALSE(not_dir);
  EXPECT_EQ(not_dir.error().message,
            "scratch root '" + at("file") + "': rmdir failed: " + std::strerror(ENOTDIR));
}

// Sets TMPDIR for one test and puts back what was there.
class TmpdirOverride final {
 public:
  TmpdirOverride() {
    if (const char* old = std::getenv("TMPDIR")) old_ = old;
  }
  ~TmpdirOverride() {
    if (old_) {
      ::setenv("TMPDIR", old_->c_str(), 1);
    } else {
      ::unsetenv("TMPDIR");
    }
  }
  TmpdirOverride(const TmpdirOverride&) = delete;
  TmpdirOverride& operator=(const TmpdirOverride&) = delete;

 private:
  std::optional<std::string> old_;
};

TEST(ScratchRootTest, DefaultScratchRootHonoursAnAbsoluteTmpdir) {
  TmpdirOverride restore;
  const std::string suffix = "/ember-" + std::to_string(::getpid());

  ::setenv("TMPDIR", "/var/tmp/", 1);
  EXPECT_EQ(default_scratch_root(), "/var/tmp" + suffix);
  ::setenv("TMPDIR", "/scratch/x", 1);
  EXPECT_EQ(default_scratch_root(), "/scratch/x" + suffix);
  ::setenv("TMPDIR", "relative/dir", 1);
  EXPECT_EQ(default_scratch_root(), "/tmp" + suffix);
  ::setenv("TMPDIR", "", 1);
  EXPECT_EQ(default_scratch_root(), "/tmp" + suffix);
  ::unsetenv("TMPDIR");
  EXPECT_EQ(default_scratch_root(), "/tmp" + suffix);
}

}  // namespace
}  // namespace ember::detail
