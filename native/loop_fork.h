// The libuv side of fork(): what the child's copy of the event loop needs so that it neither
// hangs on work it will never see complete nor repeats the parent's writes
// (DESIGN.md facts 2 and 13).
#pragma once

#include <uv.h>

#include <cstddef>

namespace forkwise {

struct LoopForkState {
  // Thread-pool requests queued or running at the instant of fork: their threads do not exist
  // in the child, so the child's loop must not wait for them.
  unsigned int lost_pool_requests = 0;
};

// In the parent, just before fork(): takes the loop's completion-queue lock (a pool thread
// could otherwise hold it at the instant of fork) and counts the requests that the child
// will never see complete.
void LockLoopForFork(uv_loop_t* loop, LoopForkState* state);
void UnlockLoopInParent(uv_loop_t* loop);
// In the child: releases the lock, forgets the lost requests, completes the parent's pending
// stream writes without writing them again, and re-arms the loop. Returns 0 or a libuv error.
int FixLoopInChild(uv_loop_t* loop, const LoopForkState& state);

// Writes, blocking, what is still queued in libuv for the stream on `fd` (1 or 2), for a
// child that is about to _exit. Returns 0 or an errno value.
int FlushQueuedWrites(uv_loop_t* loop, int fd);

// Writes all of `data`, waiting with poll() while a non-blocking fd is full. Returns 0 or an
// errno value.
int WriteAll(int fd, const char* data, size_t len);

}  // namespace forkwise
