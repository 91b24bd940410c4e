// BoundedResource: the bytes asked for are counted, an allocation past the limit is refused
// with std::bad_alloc (and counted), peak and limit can be reset, pmr containers work on it.
#include "env/bounded_resource.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <memory_resource>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace ember::detail {
namespace {

// An upstream that records what it is asked for, and can be told to fail.
class RecordingResource final : public std::pmr::memory_resource {
 public:
  std::size_t last_bytes = 0;
  std::size_t last_alignment = 0;
  std::size_t allocations = 0;
  std::size_t deallocations = 0;
  bool fail_next = false;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (fail_next) {
      fail_next = false;
      throw std::bad_alloc();
    }
    last_bytes = bytes;
    last_alignment = alignment;
    ++allocations;
    return std::pmr::new_delete_resource()->allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    ++deallocations;
    std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
};

TEST(BoundedResourceTest, AllocationsWithinTheLimitAreCountedInBytesAskedFor) {
  RecordingResource upstream;
  BoundedResource r(1000, &upstream);
  EXPECT_EQ(r.limit(), 1000u);
  EXPECT_EQ(r.in_use(), 0u);

  void* a = r.allocate(100, 8);
  EXPECT_EQ(upstream.last_bytes, 100u);
  EXPECT_EQ(upstream.last_alignment, 8u);
  void* b = r.allocate(3, 1);  // odd sizes are counted as asked, not rounded
  void* c = r.allocate(64, 64);
  EXPECT_EQ(upstream.last_alignment, 64u);
  EXPECT_EQ(r.in_use(), 167u);
  EXPECT_EQ(upstream.allocations, 3u);
  EXPECT_FALSE(r.exceeded());
  EXPECT_EQ(r.refused(), 0u);

  r.deallocate(c, 64, 64);
  r.deallocate(b, 3, 1);
  r.deallocate(a, 100, 8);
  EXPECT_EQ(upstream.deallocations, 3u);
  EXPECT_EQ(r.in_use(), 0u);
}

TEST(BoundedResourceTest, AnAllocationUpToExactlyTheLimitSucceeds) {
  BoundedResource r(256);
  void* a = r.allocate(200);
  void* b = r.allocate(56);
  EXPECT_EQ(r.in_use(), 256u);
  void* z = r.allocate(0);  // nothing more asked for: within the limit
  EXPECT_FALSE(r.exceeded());
  r.deallocate(z, 0);
  r.deallocate(b, 56);
  r.deallocate(a, 200);
}

TEST(BoundedResourceTest, DeallocationLowersInUseAndMakesRoomAgain) {
  BoundedResource r(100);
  void* a = r.allocate(60);
  EXPECT_THROW((void)r.allocate(60), std::bad_alloc);
  r.deallocate(a, 60);
  EXPECT_EQ(r.in_use(), 0u);
  void* b = r.allocate(60);  // fits again
  EXPECT_EQ(r.in_use(), 60u);
  r.deallocate(b, 60);
}

TEST(BoundedResourceTest, PeakIsTheHighestInUseSinceTheLastReset) {
  BoundedResource r(1000);
  EXPECT_EQ(r.peak(), 0u);
  void* a = r.allocate(300);
  void* b = r.allocate(200);
  r.deallocate(b, 200);
  EXPECT_EQ(r.in_use(), 300u);
  EXPECT_EQ(r.peak(), 500u);  // deallocation does not lower the peak

  r.reset_peak();
  EXPECT_EQ(r.peak(), 300u);  // peak = in_use
  void* c = r.allocate(100);
  EXPECT_EQ(r.peak(), 400u);
  r.deallocate(c, 100);
  r.deallocate(a, 300);
  EXPECT_EQ(r.peak(), 400u);
  r.reset_peak();
  EXPECT_EQ(r.peak(), 0u);
}

TEST(BoundedResourceTest, ARefusedAllocationThrowsBadAllocAndLeavesInUseAlone) {
  RecordingResource upstream;
  BoundedResource r(100, &upstream);
  void* a = r.allocate(80);
  EXPECT_THROW((void)r.allocate(21), std::bad_alloc);
  EXPECT_TRUE(r.exceeded());
  EXPECT_EQ(r.refused(), 1u);
  EXPECT_EQ(r.in_use(), 80u);
  EXPECT_EQ(r.peak(), 80u);
  EXPECT_EQ(upstream.allocations, 1u);  // upstream never asked

  // A size that would overflow in_use + bytes is refused too.
  EXPECT_THROW((void)r.allocate(std::numeric_limits<std::size_t>::max(), 1), std::bad_alloc);
  EXPECT_EQ(r.refused(), 2u);
  EXPECT_EQ(r.in_use(), 80u);

  void* b = r.allocate(20);   // what still fits does
  EXPECT_TRUE(r.exceeded());  // sticky until cleared
  r.clear_exceeded();
  EXPECT_FALSE(r.exceeded());
  EXPECT_EQ(r.refused(), 2u);  // never reset
  r.deallocate(b, 20);
  r.deallocate(a, 80);
}

TEST(BoundedResourceTest, AnUpstreamFailureIsPassedOnAndNotCountedAsARefusal) {
  RecordingResource upstream;
  BoundedResource r(100, &upstream);
  upstream.fail_next = true;
  EXPECT_THROW((void)r.allocate(10), std::bad_alloc);
  EXPECT_EQ(r.in_use(), 0u);  // the reservation is given back
  EXPECT_EQ(r.peak(), 0u);
  EXPECT_FALSE(r.exceeded());
  EXPECT_EQ(r.refused(), 0u);
}

TEST(BoundedResourceTest, SetLimitAppliesToLaterAllocations) {
  BoundedResource r(100);
  void* a = r.allocate(80);
  r.set_limit(50);  // below in_use: nothing is freed, everything is refused
  EXPECT_EQ(r.limit(), 50u);
  EXPECT_EQ(r.in_use(), 80u);
  EXPECT_THROW((void)r.allocate(1), std::bad_alloc);
  EXPECT_THROW((void)r.allocate(0), std::bad_alloc);
  EXPECT_EQ(r.refused(), 2u);
  r.set_limit(200);
  void* b = r.allocate(120);
  EXPECT_EQ(r.in_use(), 200u);
  r.deallocate(b, 120);
  r.deallocate(a, 80);
}

TEST(BoundedResourceTest, IsEqualIsIdentity) {
  BoundedResource a(100);
  BoundedResource b(100);
  EXPECT_TRUE(a.is_equal(a));
  EXPECT_FALSE(a.is_equal(b));
  EXPECT_FALSE(a.is_equal(*std::pmr::new_delete_resource()));
  EXPECT_TRUE(std::pmr::polymorphic_allocator<int>(&a) == std::pmr::polymorphic_allocator<int>(&a));
  EXPECT_FALSE(std::pmr::polymorphic_allocator<int>(&a) ==
               std::pmr::polymorphic_allocator<int>(&b));
}

TEST(BoundedResourceTest, PmrContainersAllocateFromItAndSeeTheLimit) {
  BoundedResource r(4096);
  {
    std::pmr::vector<std::uint32_t> v(&r);
    v.reserve(100);
    EXPECT_EQ(r.in_use(), 100 * sizeof(std::uint32_t));
    EXPECT_THROW(v.reserve(2000), std::bad_alloc);  // 8000 bytes > 4096
    EXPECT_EQ(v.capacity(), 100u);                  // strong guarantee: the vector is as it was
    EXPECT_EQ(r.in_use(), 100 * sizeof(std::uint32_t));
    EXPECT_TRUE(r.exceeded());

    std::pmr::string s(&r);
    s.assign(1000, 'x');  // past the small-string buffer: from the resource
    EXPECT_GE(r.in_use(), 100 * sizeof(std::uint32_t) + 1000);
    EXPECT_EQ(s.size(), 1000u);
  }
  EXPECT_EQ(r.in_use(), 0u);
  EXPECT_GT(r.peak(), 1400u);
}

TEST(BoundedResourceTest, ConcurrentAllocationsNeverGoPastTheLimitTogether) {
  // Four threads allocate 64-byte blocks and keep them: exactly limit / 64 succeed, whatever
  // the interleaving, since in_use only grows and is checked by a compare-and-swap.
  constexpr std::size_t kBlock = 64;
  constexpr std::size_t kFits = 100;
  constexpr int kThreads = 4;
  constexpr int kAttempts = 60;  // 240 in all, more than fit
  BoundedResource r(kFits * kBlock);
  std::vector<std::vector<void*>> kept(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&r, &mine = kept[static_cast<std::size_t>(t)]] {
      for (int i = 0; i < kAttempts; ++i) {
        try {
          mine.push_back(r.allocate(kBlock));
        } catch (const std::bad_alloc&) {
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::size_t succeeded = 0;
  for (const auto& mine : kept) succeeded += mine.size();
  EXPECT_EQ(succeeded, kFits);
  EXPECT_EQ(r.in_use(), kFits * kBlock);
  EXPECT_EQ(r.peak(), kFits * kBlock);
  EXPECT_EQ(r.refused(), std::uint64_t{kThreads * kAttempts - kFits});
  EXPECT_TRUE(r.exceeded());
  for (const auto& mine : kept) {
    for (void* p : mine) r.deallocate(p, kBlock);
  }
  EXPECT_EQ(r.in_use(), 0u);
}

}  // namespace
}  // namespace ember::detail
