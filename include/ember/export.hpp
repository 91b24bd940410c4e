// export.hpp — symbol visibility for the ember shared library.
//
// The library is built with -fvisibility=hidden; every public entry point is marked
// EMBER_EXPORT so that it, and nothing else, is exported from libember.so.
#pragma once

// The same attribute on both sides: default visibility marks the symbol exported when building
// libember.so and imported (not hidden) when a user's code sees the declaration.
#define EMBER_EXPORT __attribute__((visibility("default")))
