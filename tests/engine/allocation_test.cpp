// The warm invocation path allocates nothing from the global heap (DESIGN.md §3): a counting
// replacement of the global operator new sees no call across thousands of warm invokes.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

#include "test_support.hpp"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

// The replacements below pair operator new with malloc and operator delete with free, which
// GCC cannot see across the replaced functions.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
// The other forms too, so that every block freed by the deletes above came from malloc (ASan
// checks the pairing): nothrow (std::stable_sort's buffer) and over-aligned.
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return ::operator new(size, tag);
}
void* operator new(std::size_t size, std::align_val_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto a = std::max(static_cast<std::size_t>(align), sizeof(void*));
  if (void* p = std::aligned_alloc(a, (std::max<std::size_t>(size, 1) + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return ::operator new(size, align);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace ember::testing {
namespace {

class AllocationTest : public EngineTest {
 protected:
  // Allocations in a round of `n` calls of `body` once warm. Warming up has allocations that
  // depend on scheduling (which worker first runs a task and so first grows its free lists,
  // moodycamel's per-thread producer blocks, a new fiber for a worker that had none), so
  // rounds run until one allocates nothing, at most 10; the fewest seen is returned. An
  // allocation on every invoke makes every round allocate at least `n` times.
  template <typename F>
  long allocations_when_warm(int n, F&& body) {
    for (int i = 0; i < n; ++i) body();
    long fewest = -1;
    for (int round = 0; round < 10 && fewest != 0; ++round) {
      const long before = g_allocations.load();
      for (int i = 0; i < n; ++i) body();
      const long made = g_allocations.load() - before;
      if (fewest < 0 || made < fewest) fewest = made;
    }
    return fewest;
  }
};

TEST_P(AllocationTest, WarmInlineInvokeDoesNotAllocate) {
  auto fn = add("echo", echo_handler());
  std::atomic<int> failures{0};
  EXPECT_EQ(allocations_when_warm(5000,
                                  [&] {
                                    auto r = engine().invoke(fn, "short payload");
                                    if (!r) failures.fetch_add(1);
                                  }),
            0);
  EXPECT_EQ(failures.load(), 0);
}

TEST_P(AllocationTest, WarmPoolInvokeDoesNotAllocate) {
  auto fn = add("echo", echo_handler());
  std::atomic<int> failures{0};
  EXPECT_EQ(allocations_when_warm(5000,
                                  [&] {
                                    auto r = engine().invoke(fn, "short payload",
                                                             {.dispatch = Dispatch::kPool});
                                    if (!r) failures.fetch_add(1);
                                  }),
            0);
  EXPECT_EQ(failures.load(), 0);
}

TEST_P(AllocationTest, WarmNestedInvokesDoNotAllocate) {
  auto leaf = add("leaf", echo_handler());
  auto pooled = add("pooled", echo_handler(), {.dispatch = Dispatch::kPool});
  auto parent = add("parent", [&](Context& ctx, std::string_view in) -> Result<std::string> {
    auto a = ctx.invoke(leaf, in);
    if (!a) return a;
    return ctx.invoke(pooled, in);
  });
  std::atomic<int> failures{0};
  EXPECT_EQ(allocations_when_warm(3000,
                                  [&] {
                                    auto r = engine().invoke(parent, "p");
                                    if (!r) failures.fetch_add(1);
                                  }),
            0);
  EXPECT_EQ(failures.load(), 0);
}

struct In {
  int v;
};
struct Out {
  int v;
};

TEST_P(AllocationTest, WarmTypedInvokeDoesNotAllocate) {
  auto fn = engine().register_function<In, Out>(
      "typed", {}, [](Context&, const In& in) -> Result<Out> { return Out{in.v + 1}; });
  ASSERT_TRUE(fn);
  long sum = 0, calls = 0;
  EXPECT_EQ(allocations_when_warm(5000,
                                  [&] {
                                    sum += engine().invoke<Out>(*fn, In{1}).value_or(Out{0}).v;
                                    ++calls;
                                  }),
            0);
  EXPECT_EQ(sum, 2 * calls);  // every call returned in.v + 1 == 2
}

TEST_P(AllocationTest, WarmAsyncInvokeWithSmallCallbackDoesNotAllocate) {
  auto fn = add("echo", echo_handler());
  std::atomic<int> done{0};
  Condition cond;
  auto one = [&] {
    const int target = done.load() + 1;
    auto ok = engine().invoke_async(fn, "p", [&](Result<std::string>) {
      done.fetch_add(1);
      cond.notify();
    });
    ASSERT_TRUE(ok);
    cond.wait([&] { return done.load() >= target; });
  };
  EXPECT_EQ(allocations_when_warm(3000, one), 0);
}

INSTANTIATE_TEST_SUITE_P(Workers, AllocationTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
