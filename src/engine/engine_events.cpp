// ember::Engine's events facade: enqueue, schedules and batch queue mappings, forwarded to the
// events module (src/events).
#include "core/engine_core.hpp"
#include "core/str_cat.hpp"
#include "ember/engine.hpp"
#include "events/batch_mapping.hpp"
#include "events/dispatcher.hpp"
#include "events/schedules.hpp"

namespace ember {

Result<std::string> Engine::enqueue(std::string_view function, std::string_view payload,
                                    const EventOptions& options) {
  auto fn = core_->find(function);
  if (!fn) {
    events_->note_refused();
    return tl::unexpected<Error>(std::move(fn.error()));
  }
  return events_->enqueue(*fn, function, payload, options);
}

Result<std::string> Engine::enqueue(FunctionHandle fn, std::string_view payload,
                                    const EventOptions& options) {
  if (!fn.valid()) {
    events_->note_refused();
    return fail(ErrorCode::kInvalidArgument, "enqueue: the function handle is empty");
  }
  // The plain name needs no copy (it lives as long as the engine): the common case.
  if (fn.qualifier().empty() || fn.qualifier() == "$LATEST") {
    return events_->enqueue(fn, fn.name(), payload, options);
  }
  return events_->enqueue(fn, detail::cat(fn.name(), ":", fn.qualifier()), payload, options);
}

Result<void> Engine::set_event_config(std::string_view function, EventConfig config) {
  return events_->set_config(function, std::move(config));
}

Result<EventConfig> Engine::event_config(std::string_view function) const {
  return events_->config(function);
}

void Engine::set_event_sinks(EventSinks sinks) { events_->set_sinks(std::move(sinks)); }

EventStats Engine::event_stats() const { return events_->stats(); }

Result<ScheduleInfo> Engine::schedule(std::string_view function, std::string_view expression,
                                      std::string_view payload, const ScheduleOptions& options) {
  return schedules_->add(function, expression, payload, options);
}

Result<void> Engine::cancel_schedule(std::string_view name) { return schedules_->cancel(name); }

std::vector<ScheduleInfo> Engine::schedules() const { return schedules_->list(); }

Result<std::shared_ptr<EventQueue>> Engine::create_queue(std::string_view name,
                                                         const QueueOptions& options) {
  return mappings_->create_queue(name, options);
}

Result<std::string> Engine::map_queue(std::string_view queue, std::string_view function,
                                      const MappingConfig& config) {
  return mappings_->map(queue, function, config);
}

Result<void> Engine::unmap_queue(std::string_view mapping_id) {
  return mappings_->unmap(mapping_id);
}

std::vector<MappingInfo> Engine::mappings() const { return mappings_->list(); }

}  // namespace ember
