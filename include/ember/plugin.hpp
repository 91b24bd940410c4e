// plugin.hpp — write ember plugins in ordinary C++ on top of the C ABI (ember/plugin.h).
//
// Header-only: a plugin includes this and links nothing of ember. Handlers take a Context and
// the payload and return Result<std::string>; an exception thrown by a handler or an instance
// constructor is caught at the boundary and becomes an error carrying its type and what().
//
//   #include <ember/plugin.hpp>
//
//   ember::plugin::Result<std::string> greet(ember::plugin::Context& ctx, std::string_view in) {
//     if (in.empty()) return ember::plugin::fail("ValidationError", "empty name");
//     return "hello, " + std::string(in);
//   }
//
//   struct Tally {                                  // a stateful function: one per instance
//     explicit Tally(ember::plugin::InitContext&) {}
//     ember::plugin::Result<std::string> add(ember::plugin::Context&, std::string_view in);
//     long total = 0;                               // no lock: one invocation at a time
//   };
//
//   EMBER_PLUGIN(plugin) {                          // `plugin` is an ember::plugin::Plugin&
//     plugin.name("hello").version("1.0.0");
//     plugin.function<&greet>("hello.greet").timeout_ms(500);
//     plugin.function<&Tally::add>("hello.tally");  // init: new Tally(ctx); shutdown: delete
//     plugin.requires_layer("counter", "^1");
//   }
//
// Keep state in instances or layers, not in globals with destructors, and no thread_local
// objects with destructors: they pin the plugin in memory (DESIGN.md §9).
#pragma once

#include <cxxabi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "ember/plugin.h"

namespace ember::plugin {

// A handler's error: Lambda's errorType ("ValidationError") and a message.
struct Error {
  std::string type;
  std::string message;
};

template <typename T>
using Result = tl::expected<T, Error>;

[[nodiscard]] inline tl::unexpected<Error> fail(std::string type, std::string message) {
  return tl::unexpected<Error>(Error{std::move(type), std::move(message)});
}

namespace detail {

// "std::runtime_error" / "my::Error" for the exception being handled, and its what().
inline Error current_exception_error() {
  std::string type = "unknown exception";
  if (const std::type_info* t = abi::__cxa_current_exception_type()) {
    int status = 0;
    char* d = abi::__cxa_demangle(t->name(), nullptr, nullptr, &status);
    type = status == 0 && d != nullptr ? d : t->name();
    std::free(d);
  }
  try {
    throw;
  } catch (const std::exception& e) {
    return Error{std::move(type), e.what()};
  } catch (...) {
    return Error{std::move(type), "(not derived from std::exception)"};
  }
}

inline void append_to_string(void* user, const char* data, std::size_t size) {
  static_cast<std::string*>(user)->assign(data, size);
}

}  // namespace detail

// What a running handler sees. Valid only during the handler call, on its fiber.
class Context final {
 public:
  explicit Context(const ember_call* call) noexcept : call_(call) {}
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  [[nodiscard]] std::string_view request_id() const { return host().request_id(ctx()); }
  [[nodiscard]] std::string_view function_name() const { return host().function_name(ctx()); }
  [[nodiscard]] std::string_view function_version() const { return host().function_version(ctx()); }
  // Time before the deadline; zero once past it.
  [[nodiscard]] std::chrono::nanoseconds remaining() const {
    return std::chrono::nanoseconds(host().remaining_ns(ctx()));
  }
  // True once the handler should stop (deadline, caller gone, shutdown). Cheap.
  [[nodiscard]] bool cancelled() const { return host().cancelled(ctx()) != 0; }
  void log(std::string_view message, int level = EMBER_LOG_INFO) const {
    host().log(ctx(), level, message.data(), message.size());
  }
  // Nested invoke ("fn", "fn:3", "fn:alias"); suspends this fiber. On failure the error's
  // type is "InvokeError" and its message the host's.
  [[nodiscard]] Result<std::string> invoke(const std::string& name, std::string_view payload) {
    std::string out;
    const int rc = host().invoke(ctx(), name.c_str(), payload.data(), payload.size(),
                                 &detail::append_to_string, &out);
    if (rc != EMBER_OK) return fail("InvokeError", std::move(out));
    return out;
  }
  // Suspends this fiber; an error (type "Timeout") if the deadline comes first.
  Result<void> sleep_for(std::chrono::nanoseconds d) {
    if (host().sleep_ns(ctx(), d.count()) != EMBER_OK)
      return fail("Timeout", "deadline reached while sleeping");
    return {};
  }
  // A service of a layer this plugin declared, as its vtable type; nullptr if there is none.
  template <typename Vtable>
  [[nodiscard]] const Vtable* service(const char* layer, const char* name) const {
    return static_cast<const Vtable*>(host().service(call_->plugin, layer, name));
  }
  [[nodiscard]] const ember_host_api& host() const noexcept { return *call_->host; }
  [[nodiscard]] const ember_call& call() const noexcept { return *call_; }

 private:
  [[nodiscard]] ember_context* ctx() const noexcept { return call_->context; }
  const ember_call* call_;
};

// What an instance constructor sees: the function it serves and the plugin's layers. Valid
// during the constructor only; it may run on any thread (see ember_function_desc.init).
class InitContext final {
 public:
  explicit InitContext(ember_init_args* args) noexcept : args_(args) {}
  [[nodiscard]] std::string_view function_name() const { return args_->function_name; }
  [[nodiscard]] std::string_view function_version() const { return args_->function_version; }
  template <typename Vtable>
  [[nodiscard]] const Vtable* service(const char* layer, const char* name) const {
    return static_cast<const Vtable*>(args_->host->service(args_->plugin, layer, name));
  }
  void log(std::string_view message, int level = EMBER_LOG_INFO) const {
    args_->host->log(nullptr, level, message.data(), message.size());
  }
  // The host's table; it outlives every instance, so an instance may keep it (for instance to
  // log from its destructor with host().log(nullptr, ...)).
  [[nodiscard]] const ember_host_api& host() const noexcept { return *args_->host; }

 private:
  ember_init_args* args_;
};

namespace detail {

template <auto F>
struct HandlerTraits;

// A free handler: Result<std::string>(Context&, std::string_view).
template <Result<std::string> (*F)(Context&, std::string_view)>
struct HandlerTraits<F> {
  static constexpr bool kStateful = false;
  static Result<std::string> call(void*, Context& ctx, std::string_view in) { return F(ctx, in); }
};

// A member handler: the State is the function's instance.
template <typename State, Result<std::string> (State::*F)(Context&, std::string_view)>
struct HandlerTraits<F> {
  static constexpr bool kStateful = true;
  using StateType = State;
  static Result<std::string> call(void* instance, Context& ctx, std::string_view in) {
    return (static_cast<State*>(instance)->*F)(ctx, in);
  }
};

inline void set_error(ember_init_args* args, const Error& e) {
  std::snprintf(args->error, sizeof args->error, "%s: %s", e.type.c_str(), e.message.c_str());
}

template <auto F>
int call_handler(const ember_call* call) noexcept {
  Context ctx(call);
  const ember_host_api& host = *call->host;
  try {
    Result<std::string> r = HandlerTraits<F>::call(
        call->instance, ctx, std::string_view(call->payload, call->payload_size));
    if (r) {
      host.respond(call->context, r->data(), r->size());
      return 0;
    }
    host.fail(call->context, r.error().type.c_str(), r.error().message.c_str());
  } catch (...) {
    // A fiber being unwound by the host must not be swallowed; the host never unwinds a fiber
    // that is inside a plugin (it only unwinds idle fibers), so catching all is safe here.
    const Error e = current_exception_error();
    host.fail(call->context, e.type.c_str(), e.message.c_str());
  }
  return 1;
}

template <typename State>
int init_state(ember_init_args* args) noexcept {
  try {
    InitContext ctx(args);
    if constexpr (std::is_constructible_v<State, InitContext&>) {
      args->instance = new State(ctx);
    } else {
      args->instance = new State();
    }
    return 0;
  } catch (...) {
    set_error(args, current_exception_error());
    return 1;
  }
}

template <typename State>
void shutdown_state(void* instance) noexcept {
  delete static_cast<State*>(instance);
}

}  // namespace detail

// Fluent settings of one function; zero fields take the host's defaults.
class Function final {
 public:
  explicit Function(ember_function_desc* desc) noexcept : desc_(desc) {}
  Function& timeout_ms(std::int64_t ms) noexcept { return desc_->timeout_ms = ms, *this; }
  Function& memory_mb(std::int32_t mb) noexcept { return desc_->memory_mb = mb, *this; }
  Function& reserved_concurrency(std::int32_t n) noexcept {
    return desc_->reserved_concurrency = n, *this;
  }
  Function& dispatch_pool() noexcept { return desc_->dispatch = EMBER_DISPATCH_POOL, *this; }
  Function& dispatch_inline() noexcept { return desc_->dispatch = EMBER_DISPATCH_INLINE, *this; }
  Function& stack_kib(std::uint32_t kib) noexcept { return desc_->stack_kib = kib, *this; }

 private:
  ember_function_desc* desc_;
};

// Builds the plugin descriptor. Owns every string and struct it points to.
class Plugin final {
 public:
  template <typename Describe>
  explicit Plugin(Describe&& describe) {
    describe(*this);
    descriptor_.abi_version = EMBER_PLUGIN_ABI_VERSION;
    descriptor_.struct_size = sizeof(ember_plugin_descriptor);
    descriptor_.name = name_.c_str();
    descriptor_.version = version_.c_str();
    for (ember_function_desc& f : functions_) function_ptrs_.push_back(&f);
    descriptor_.functions = function_ptrs_.data();
    descriptor_.function_count = function_ptrs_.size();
    descriptor_.layers = layers_.data();
    descriptor_.layer_count = layers_.size();
  }
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  Plugin& name(std::string n) { return name_ = std::move(n), *this; }
  Plugin& version(std::string v) { return version_ = std::move(v), *this; }

  // A function served by F: a free function or a member function of the instance class
  // (constructed from InitContext& or by default at init, deleted at shutdown). Each instance
  // is one object of that class serving one invocation at a time (its members need no lock);
  // there are as many as concurrent invocations needed, made at load and on cold starts,
  // reused warm, deleted after a timeout, after idling past idle_ttl and at unload (see
  // ember_function_desc.init in plugin.h). F must name one function with exactly the handler
  // signature: not an overload set (a handler called `read` or `sleep` clashes with POSIX's),
  // not noexcept.
  template <auto F>
  Function function(std::string name) {
    ember_function_desc& d = functions_.emplace_back();
    d.struct_size = sizeof(ember_function_desc);
    d.name = strings_.emplace_back(std::move(name)).c_str();
    d.handler = &detail::call_handler<F>;
    if constexpr (detail::HandlerTraits<F>::kStateful) {
      using State = typename detail::HandlerTraits<F>::StateType;
      d.init = &detail::init_state<State>;
      d.shutdown = &detail::shutdown_state<State>;
    }
    return Function(&d);
  }
  // A layer this plugin needs, with a version constraint (syntax in plugin.h).
  Plugin& requires_layer(std::string name, std::string constraint = "") {
    layers_.push_back(
        ember_layer_requirement{strings_.emplace_back(std::move(name)).c_str(),
                                strings_.emplace_back(std::move(constraint)).c_str()});
    return *this;
  }

  [[nodiscard]] const ember_plugin_descriptor* descriptor() const noexcept { return &descriptor_; }

 private:
  std::string name_;
  std::string version_ = "0.0.0";
  std::deque<std::string> strings_;  // stable addresses
  std::deque<ember_function_desc> functions_;
  std::vector<const ember_function_desc*> function_ptrs_;
  std::vector<ember_layer_requirement> layers_;
  ember_plugin_descriptor descriptor_{};
};

}  // namespace ember::plugin

// Defines the plugin's entry symbol; the block that follows describes the plugin through
// `var` (an ember::plugin::Plugin&). The descriptor is built once, on first load.
#define EMBER_PLUGIN(var)                                                           \
  static void ember_describe_plugin_(::ember::plugin::Plugin& var);                 \
  extern "C" EMBER_PLUGIN_EXPORT const ember_plugin_descriptor* EMBER_PLUGIN_ENTRY( \
      const ember_host_api*) {                                                      \
    try {                                                                           \
      static const ::ember::plugin::Plugin plugin_(&ember_describe_plugin_);        \
      return plugin_.descriptor();                                                  \
    } catch (...) {                                                                 \
      return nullptr;                                                               \
    }                                                                               \
  }                                                                                 \
  static void ember_describe_plugin_(::ember::plugin::Plugin& var)
