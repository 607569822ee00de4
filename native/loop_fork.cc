// Reads and adjusts libuv's loop through the fields that uv.h exposes.
//
// Requests counted in loop->active_reqs fall in three groups at the instant of fork:
//  - stream and UDP writes, connects and shutdowns: their handles are copied, so they can
//    complete in the child;
//  - thread-pool requests already done, waiting in loop->wq: delivered in the child too;
//  - every other active request is queued in, or running on, the thread pool (or in flight in
//    io_uring): the child never sees it complete. Left counted, the child's loop would never
//    run dry; so the child subtracts exactly these.
#include "loop_fork.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace forkwise {

namespace {

unsigned int QueueLength(const struct uv__queue* head) {
  unsigned int n = 0;
  for (const struct uv__queue* q = head->next; q != head; q = q->next) n++;
  return n;
}

template <typename T, typename F>
void ForEachInQueue(struct uv__queue* head, size_t offset, F visit) {
  for (struct uv__queue* q = head->next; q != head;) {
    struct uv__queue* next = q->next;
    visit(reinterpret_cast<T*>(reinterpret_cast<char*>(q) - offset));
    q = next;
  }
}

bool IsStream(uv_handle_t* handle) {
  uv_handle_type type = uv_handle_get_type(handle);
  return type == UV_TCP || type == UV_NAMED_PIPE || type == UV_TTY;
}

void CountLoopBoundRequests(uv_handle_t* handle, void* arg) {
  unsigned int* count = static_cast<unsigned int*>(arg);
  if (IsStream(handle)) {
    uv_stream_t* stream = reinterpret_cast<uv_stream_t*>(handle);
    *count += QueueLength(&stream->write_queue) + QueueLength(&stream->write_completed_queue);
    if (stream->connect_req != nullptr) (*count)++;
    if (stream->shutdown_req != nullptr) (*count)++;
  } else if (uv_handle_get_type(handle) == UV_UDP) {
    uv_udp_t* udp = reinterpret_cast<uv_udp_t*>(handle);
    *count += QueueLength(&udp->write_queue) + QueueLength(&udp->write_completed_queue);
  }
}

// The parent writes its own queued data; the child's copies of those requests complete
// without writing anything: each is left as one empty buffer, which libuv "writes" (a
// zero-length writev) and then completes normally, so the stream carries on in order.
void ForgetInheritedWrites(uv_handle_t* handle, void*) {
  if (!IsStream(handle)) return;
  uv_stream_t* stream = reinterpret_cast<uv_stream_t*>(handle);
  ForEachInQueue<uv_write_t>(&stream->write_queue, offsetof(uv_write_t, queue),
                             [stream](uv_write_t* req) {
                               if (req->nbufs == 0) return;
                               for (unsigned int i = req->write_index; i < req->nbufs; i++) {
                                 stream->write_queue_size -= req->bufs[i].len;
                                 req->bufs[i].base += req->bufs[i].len;
                                 req->bufs[i].len = 0;
                               }
                               req->write_index = req->nbufs - 1;
                               req->send_handle = nullptr;
                             });
}

struct FlushJob {
  int fd;
  int error;
};

void FlushStream(uv_handle_t* handle, void* arg) {
  FlushJob* job = static_cast<FlushJob*>(arg);
  uv_os_fd_t fd;
  if (job->error || !IsStream(handle) || uv_fileno(handle, &fd) != 0 || fd != job->fd) return;
  uv_stream_t* stream = reinterpret_cast<uv_stream_t*>(handle);
  ForEachInQueue<uv_write_t>(&stream->write_queue, offsetof(uv_write_t, queue),
                             [job](uv_write_t* req) {
                               for (unsigned int i = req->write_index; i < req->nbufs; i++) {
                                 if (job->error) return;
                                 job->error = WriteAll(job->fd, req->bufs[i].base,
                                                       req->bufs[i].len);
                               }
                             });
}

}  // namespace

void LockLoopForFork(uv_loop_t* loop, LoopForkState* state) {
  unsigned int loop_bound = 0;
  uv_walk(loop, CountLoopBoundRequests, &loop_bound);
  uv_mutex_lock(&loop->wq_mutex);
  unsigned int done = QueueLength(&loop->wq);
  unsigned int active = loop->active_reqs.count;
  unsigned int known = loop_bound + done;
  state->lost_pool_requests = active > known ? active - known : 0;
}

void UnlockLoopInParent(uv_loop_t* loop) { uv_mutex_unlock(&loop->wq_mutex); }

int FixLoopInChild(uv_loop_t* loop, const LoopForkState& state) {
  // The forking thread took this lock; in the child it is that thread's to release.
  uv_mutex_unlock(&loop->wq_mutex);
  loop->active_reqs.count -= state.lost_pool_requests;
  uv_walk(loop, ForgetInheritedWrites, nullptr);

  // A thread of the parent may have been inside uv_async_send at the instant of fork
  // (pending == 1): it never finishes in the child, and libuv would spin on the handle for
  // ever. Finish its send for it; a pending handle is then delivered at the next wake-up.
  bool any_pending = false;
  ForEachInQueue<uv_async_t>(&loop->async_handles, offsetof(uv_async_t, queue),
                             [&any_pending](uv_async_t* async) {
                               if (async->pending == 1) async->pending = 2;
                               if (async->pending != 0) any_pending = true;
                             });
  int err = uv_loop_fork(loop);
  if (err) return err;
  // The wake-up that announced those pending handles went to the parent's eventfd, which
  // uv_loop_fork replaced: wake the child's loop once so that they are delivered.
  if (any_pending) {
    uv_async_t* wake = new uv_async_t;
    err = uv_async_init(loop, wake, [](uv_async_t* handle) {
      uv_close(reinterpret_cast<uv_handle_t*>(handle),
               [](uv_handle_t* closed) { delete reinterpret_cast<uv_async_t*>(closed); });
    });
    if (err) {
      delete wake;
      return err;
    }
    uv_unref(reinterpret_cast<uv_handle_t*>(wake));
    uv_async_send(wake);
  }
  return 0;
}

int WriteAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n >= 0) {
      data += n;
      len -= static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return errno;
    struct pollfd pfd = {fd, POLLOUT, 0};
    if (poll(&pfd, 1, -1) == -1 && errno != EINTR) return errno;
  }
  return 0;
}

int FlushQueuedWrites(uv_loop_t* loop, int fd) {
  FlushJob job{fd, 0};
  uv_walk(loop, FlushStream, &job);
  return job.error;
}

}  // namespace forkwise
