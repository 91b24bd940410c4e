// export.hpp — symbol visibility for the ember shared library.
//
// The library is built with -fvisibility=hidden; every public entry point is marked
// EMBER_EXPORT so that it, and nothing else, is exported from libember.so.
#pragma once

#if defined(EMBER_BUILDING_LIBRARY)
#define EMBER_EXPORT __attribute__((visibility("default")))
#else
#define EMBER_EXPORT __attribute__((visibility("default")))
#endif
