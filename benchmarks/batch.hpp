// Batch size shared by the throughput benchmarks: BM_TbbTaskGroupThroughput
// (peers_benchmark.cpp) and ember's BM_InvokeAsyncThroughput must push the same
// number of tasks per iteration for their items/s to be comparable.
#pragma once

// Tasks submitted per benchmark iteration before waiting for all of them.
inline constexpr int kTasksPerBatch = 1024;
