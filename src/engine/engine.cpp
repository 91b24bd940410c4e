// ember::Engine: the public facade over detail::EngineCore.
#include "ember/engine.hpp"

#include "core/engine_core.hpp"

namespace ember {

std::string_view FunctionHandle::name() const noexcept {
  return record_ != nullptr ? std::string_view(record_->name) : std::string_view();
}

std::string_view FunctionHandle::version() const noexcept {
  return record_ != nullptr ? std::string_view(record_->version) : std::string_view();
}

Engine::Engine(EngineOptions options)
    : core_(std::make_unique<detail::EngineCore>(std::move(options))) {
  core_->set_engine(this);
}

Result<std::unique_ptr<Engine>> Engine::create(EngineOptions options) {
  auto engine = std::make_unique<Engine>(std::move(options));
  if (auto ok = engine->status(); !ok) return tl::unexpected<Error>(std::move(ok.error()));
  return engine;
}

Engine::~Engine() = default;

Result<void> Engine::status() const {
  if (core_->init_error()) return tl::unexpected<Error>(*core_->init_error());
  return {};
}

Result<FunctionHandle> Engine::register_function(std::string_view name, FunctionConfig config,
                                                 BytesHandler handler) {
  return core_->register_function(name, std::move(config), std::move(handler), {});
}

Result<FunctionHandle> Engine::register_typed(std::string_view name, FunctionConfig config,
                                              detail::TypedHandler handler) {
  return core_->register_function(name, std::move(config), {}, std::move(handler));
}

Result<FunctionHandle> Engine::function(std::string_view name) const { return core_->find(name); }

Result<void> Engine::invoke_async(FunctionHandle fn, std::string_view payload,
                                  InvokeCallback callback, const InvokeOptions& options) {
  return core_->invoke_async(fn, payload, std::move(callback), options);
}

std::future<Result<std::string>> Engine::invoke_future(FunctionHandle fn, std::string_view payload,
                                                       const InvokeOptions& options) {
  auto promise = std::make_shared<std::promise<Result<std::string>>>();
  std::future<Result<std::string>> future = promise->get_future();
  auto submitted = core_->invoke_async(
      fn, payload, [promise](Result<std::string> r) { promise->set_value(std::move(r)); }, options);
  if (!submitted) promise->set_value(tl::unexpected<Error>(std::move(submitted.error())));
  return future;
}

void Engine::shutdown(absl::Duration drain) { core_->shutdown(drain); }

EngineStats Engine::stats() const { return core_->stats(); }

}  // namespace ember
