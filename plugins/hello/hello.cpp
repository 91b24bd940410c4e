// hello — the reference C++ plugin: stateless handlers written against ember/plugin.hpp, one
// for each thing a handler can do through its Context (respond, fail, throw, nested invoke,
// sleep, read its own name/version/deadline).
//
// Built twice from this file (plugins/hello/CMakeLists.txt): libhello.so with HELLO_TAG "A" and
// libhello_b.so with HELLO_TAG "B", both named "hello", so hot-reload tests can swap one build
// for the other and see which one answers through hello.tag. The ABI matrix builds it a third
// time with clang (HELLO_TAG "clang").

#include <charconv>
#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>

#include "ember/plugin.hpp"

#ifndef HELLO_TAG
#define HELLO_TAG "A"
#endif

namespace {

using ember::plugin::Context;
using ember::plugin::Result;

// "hello, <payload>".
Result<std::string> greet(Context&, std::string_view payload) {
  return "hello, " + std::string(payload);
}

// Which build is loaded.
Result<std::string> tag(Context&, std::string_view) { return std::string(HELLO_TAG); }

// An error as a value: the caller sees type "ValidationError" and this message.
Result<std::string> fail_if_empty(Context&, std::string_view payload) {
  if (payload.empty()) return ember::plugin::fail("ValidationError", "payload must not be empty");
  return std::string(payload);
}

// An exception: the wrapper catches it at the boundary and reports "std::runtime_error".
Result<std::string> throw_error(Context&, std::string_view) {
  throw std::runtime_error("boom from hello");
}

// A nested invoke through the host; if it fails, so does this call (type "InvokeError", the
// host's message).
Result<std::string> nested(Context& ctx, std::string_view payload) {
  return ctx.invoke("hello.greet", payload).transform([](std::string greeting) {
    return "nested: " + greeting;
  });
}

// Sleeps <payload> milliseconds on the fiber; fails when the deadline comes first.
Result<std::string> sleep_ms(Context& ctx, std::string_view payload) {
  constexpr long kMaxMs = 24L * 3600 * 1000;  // a day: far past any deadline, no ns overflow
  long ms = 0;
  const auto [end, ec] = std::from_chars(payload.data(), payload.data() + payload.size(), ms);
  if (ec != std::errc() || end != payload.data() + payload.size() || ms < 0 || ms > kMaxMs) {
    return ember::plugin::fail("ValidationError", "payload must be a number of milliseconds");
  }
  return ctx.sleep_for(std::chrono::milliseconds(ms)).transform([] {
    return std::string("slept");
  });
}

// "<function_name> <function_version> <remaining_ms>".
Result<std::string> info(Context& ctx, std::string_view) {
  const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.remaining());
  return std::string(ctx.function_name()) + " " + std::string(ctx.function_version()) + " " +
         std::to_string(remaining.count());
}

}  // namespace

EMBER_PLUGIN(plugin) {
  plugin.name("hello").version("1.0.0");
  plugin.function<&greet>("hello.greet");
  plugin.function<&tag>("hello.tag");
  plugin.function<&fail_if_empty>("hello.fail");
  plugin.function<&throw_error>("hello.throw");
  plugin.function<&nested>("hello.nested");
  plugin.function<&sleep_ms>("hello.sleep");
  plugin.function<&info>("hello.info");
}
