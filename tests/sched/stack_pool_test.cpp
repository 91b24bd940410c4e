// StackPool: page-rounded sizes, a PROT_NONE guard page below every stack, reuse of released
// stacks by size.
#include "sched/stack_pool.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include <csignal>
#include <cstdlib>
#include <cstring>

namespace ember::detail {
namespace {

std::size_t page() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

char* bottom_of(const Stack& s) { return static_cast<char*>(s.top) - s.size; }

TEST(StackPoolTest, RoundSizeHasA16KiBFloor) {
  EXPECT_EQ(StackPool::round_size(0), 16u * 1024);
  EXPECT_EQ(StackPool::round_size(1), 16u * 1024);
  EXPECT_EQ(StackPool::round_size(16 * 1024 - 1), 16u * 1024);
  EXPECT_EQ(StackPool::round_size(16 * 1024), 16u * 1024);
}

TEST(StackPoolTest, RoundSizeRoundsUpToWholePages) {
  const std::size_t p = page();
  EXPECT_EQ(StackPool::round_size(64 * 1024), 64u * 1024);
  EXPECT_EQ(StackPool::round_size(64 * 1024 + 1), 64u * 1024 + p);
  EXPECT_EQ(StackPool::round_size(64 * 1024 + p - 1), 64u * 1024 + p);
  EXPECT_EQ(StackPool::round_size(64 * 1024 + p + 1), 64u * 1024 + 2 * p);
  for (std::size_t n : {std::size_t{20000}, std::size_t{100001}, std::size_t{1} << 20}) {
    const std::size_t r = StackPool::round_size(n);
    EXPECT_EQ(r % p, 0u) << n;
    EXPECT_GE(r, n);
    EXPECT_LT(r - n, p) << n;
  }
}

TEST(StackPoolTest, AcquireMapsAWritableStackOfTheRoundedSize) {
  StackPool pool;
  Stack s = pool.acquire(20000);
  ASSERT_NE(s.top, nullptr);
  EXPECT_EQ(s.size, StackPool::round_size(20000));
  // The mapping is the usable stack plus one guard page below it, and ends at top.
  EXPECT_EQ(s.mapping_size, s.size + page());
  EXPECT_EQ(static_cast<char*>(s.mapping) + s.mapping_size, static_cast<char*>(s.top));
  EXPECT_EQ(bottom_of(s), static_cast<char*>(s.mapping) + page());
  // Every usable byte can be written, the lowest and the highest included.
  std::memset(bottom_of(s), 0xab, s.size);
  EXPECT_EQ(static_cast<unsigned char>(bottom_of(s)[0]), 0xab);
  EXPECT_EQ(static_cast<unsigned char>(static_cast<char*>(s.top)[-1]), 0xab);
  EXPECT_EQ(pool.mapped_count(), 1u);
  pool.release(s);
}

// Writes one byte at `address` in a child process; returns how the child ended.
int status_of_child_writing(char* address) {
  const pid_t pid = fork();
  if (pid == 0) {
    // Sanitizers install their own SIGSEGV handler (which exits with a report): let the fault
    // kill the child as it would kill an unsanitized process.
    std::signal(SIGSEGV, SIG_DFL);
    std::signal(SIGBUS, SIG_DFL);
    *static_cast<volatile char*>(address) = 1;
    _exit(0);  // reached only if the page was writable
  }
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  return status;
}

TEST(StackPoolTest, PageBelowTheStackIsAGuardThatFaults) {
  StackPool pool;
  Stack s = pool.acquire(64 * 1024);
  ASSERT_NE(s.top, nullptr);
  // Control: the lowest usable byte is writable, so the child exits normally.
  const int ok = status_of_child_writing(bottom_of(s));
  ASSERT_TRUE(WIFEXITED(ok));
  EXPECT_EQ(WEXITSTATUS(ok), 0);
  // One byte below it (an overflow by one) and the far end of the guard page both fault.
  for (char* guard : {bottom_of(s) - 1, static_cast<char*>(s.mapping)}) {
    const int status = status_of_child_writing(guard);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writing the guard page did not fault";
    EXPECT_EQ(WTERMSIG(status), SIGSEGV);
  }
  pool.release(s);
}

TEST(StackPoolTest, GuardFaultKillsTheProcessWithSigsegv) {
  StackPool pool;
  Stack s = pool.acquire(16 * 1024);
  ASSERT_NE(s.top, nullptr);
  char* guard = bottom_of(s) - 1;
  EXPECT_EXIT(
      {
        std::signal(SIGSEGV, SIG_DFL);
        *static_cast<volatile char*>(guard) = 1;
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "");
  pool.release(s);
}

TEST(StackPoolTest, ReleasedStacksAreReusedWithoutMappingMore) {
  StackPool pool;
  Stack first = pool.acquire(64 * 1024);
  ASSERT_NE(first.top, nullptr);
  pool.release(first);
  for (int i = 0; i < 100; ++i) {
    Stack again = pool.acquire(64 * 1024);
    ASSERT_EQ(again.mapping, first.mapping) << "round " << i;
    EXPECT_EQ(again.top, first.top);
    EXPECT_EQ(again.size, first.size);
    pool.release(again);
  }
  EXPECT_EQ(pool.mapped_count(), 1u);
}

TEST(StackPoolTest, RequestsThatRoundToTheSameSizeShareStacks) {
  StackPool pool;
  Stack a = pool.acquire(64 * 1024 - 100);
  ASSERT_NE(a.top, nullptr);
  pool.release(a);
  Stack b = pool.acquire(64 * 1024);
  EXPECT_EQ(b.mapping, a.mapping);
  EXPECT_EQ(pool.mapped_count(), 1u);
  pool.release(b);
}

TEST(StackPoolTest, StacksInUseAreNeverHandedOutTwice) {
  StackPool pool;
  Stack a = pool.acquire(32 * 1024);
  Stack b = pool.acquire(32 * 1024);
  ASSERT_NE(a.top, nullptr);
  ASSERT_NE(b.top, nullptr);
  EXPECT_NE(a.mapping, b.mapping);
  EXPECT_EQ(pool.mapped_count(), 2u);
  pool.release(a);
  pool.release(b);
  // Both come back, and two more acquisitions need no new mapping.
  Stack c = pool.acquire(32 * 1024);
  Stack d = pool.acquire(32 * 1024);
  EXPECT_NE(c.mapping, d.mapping);
  EXPECT_TRUE(c.mapping == a.mapping || c.mapping == b.mapping);
  EXPECT_TRUE(d.mapping == a.mapping || d.mapping == b.mapping);
  EXPECT_EQ(pool.mapped_count(), 2u);
  pool.release(c);
  pool.release(d);
}

TEST(StackPoolTest, DifferentSizesAreKeptApart) {
  StackPool pool;
  Stack small = pool.acquire(16 * 1024);
  ASSERT_NE(small.top, nullptr);
  pool.release(small);
  // A free 16 KiB stack does not satisfy a 32 KiB request, nor the other way round.
  Stack big = pool.acquire(32 * 1024);
  ASSERT_NE(big.top, nullptr);
  EXPECT_NE(big.mapping, small.mapping);
  EXPECT_EQ(big.size, 32u * 1024);
  EXPECT_EQ(pool.mapped_count(), 2u);
  pool.release(big);
  Stack small_again = pool.acquire(16 * 1024);
  EXPECT_EQ(small_again.mapping, small.mapping);
  EXPECT_EQ(small_again.size, 16u * 1024);
  Stack big_again = pool.acquire(32 * 1024);
  EXPECT_EQ(big_again.mapping, big.mapping);
  EXPECT_EQ(pool.mapped_count(), 2u);
  pool.release(small_again);
  pool.release(big_again);
}

// Under AddressSanitizer a fiber that dies leaves its never-returning bottom frames poisoned in
// the shadow memory, and munmap does not clear shadow memory. A stack handed out again (reused,
// or newly mapped where an old one was) must come clean, or a new fiber's locals that land on
// stale redzones are reported as bad accesses.
TEST(StackPoolTest, AcquiredStacksCarryNoStaleSanitizerPoison) {
#if defined(__SANITIZE_ADDRESS__)
  void* old_top = nullptr;
  {
    StackPool first;
    Stack s = first.acquire(64 * 1024);
    ASSERT_NE(s.top, nullptr);
    __asan_poison_memory_region(static_cast<char*>(s.top) - 4096, 64);  // a dead frame's redzone
    first.release(s);
    Stack reused = first.acquire(64 * 1024);
    ASSERT_EQ(reused.mapping, s.mapping);
    EXPECT_EQ(__asan_region_is_poisoned(bottom_of(reused), reused.size), nullptr)
        << "a reused stack still has poisoned bytes";
    __asan_poison_memory_region(static_cast<char*>(reused.top) - 4096, 64);
    old_top = reused.top;
    first.release(reused);
  }  // unmapped, poison and all
  StackPool second;
  Stack fresh = second.acquire(64 * 1024);
  ASSERT_NE(fresh.top, nullptr);
  if (fresh.top == old_top) {  // the kernel handed the same range back (it usually does)
    EXPECT_EQ(__asan_region_is_poisoned(bottom_of(fresh), fresh.size), nullptr)
        << "a stack mapped where an old one was still has its poison";
  }
  second.release(fresh);
#else
  GTEST_SKIP() << "AddressSanitizer builds only";
#endif
}

TEST(StackPoolTest, ReleaseOfAFailedAcquisitionIsIgnored) {
  StackPool pool;
  pool.release(Stack{});  // what acquire returns on failure
  Stack s = pool.acquire(16 * 1024);
  ASSERT_NE(s.top, nullptr);  // not the empty record
  EXPECT_EQ(pool.mapped_count(), 1u);
  pool.release(s);
}

}  // namespace
}  // namespace ember::detail
