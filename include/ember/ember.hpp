// ember.hpp — everything a host program needs: #include <ember/ember.hpp>.
//
//   ember::Engine engine{{.workers = 2}};
//   auto fn = engine.register_function("hello", {}, [](ember::Context& ctx, std::string_view in)
//       -> ember::Result<std::string> { return "hello " + std::string(in); }).value();
//   std::cout << engine.invoke(fn, "world").value() << "\n";
#pragma once

#include "ember/clock.hpp"
#include "ember/context.hpp"
#include "ember/engine.hpp"
#include "ember/function.hpp"
#include "ember/instance.hpp"
#include "ember/observe.hpp"
#include "ember/options.hpp"
#include "ember/result.hpp"
