// Descriptor passing over AF_UNIX stream sockets (SCM_RIGHTS). Every descriptor that arrives
// is close-on-exec (MSG_CMSG_CLOEXEC), and none is left open when the caller cannot get it.
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "common.h"

namespace forkwise {

namespace {

// The kernel's SCM_MAX_FD (not in the user-space headers): the most descriptors that one
// message carries; sendmsg refuses more with EINVAL.
constexpr int kMaxFds = 253;

// Control buffer for the largest message, aligned for cmsghdr.
union ControlBuffer {
  char bytes[CMSG_SPACE(kMaxFds * sizeof(int))];
  cmsghdr align;
};

std::vector<int> ArgFdArray(const Napi::CallbackInfo& info, size_t index) {
  Napi::Env env = info.Env();
  if (index >= info.Length() || !info[index].IsArray()) {
    throw Napi::TypeError::New(env, "forkwise native: fds must be an array");
  }
  Napi::Array array = info[index].As<Napi::Array>();
  if (array.Length() > static_cast<uint32_t>(kMaxFds)) {
    throw Napi::RangeError::New(env, "forkwise native: too many fds for one message");
  }
  std::vector<int> fds;
  fds.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value item = array.Get(i);
    if (!item.IsNumber()) throw Napi::TypeError::New(env, "forkwise native: fds must be numbers");
    double value = item.As<Napi::Number>().DoubleValue();
    if (!(value >= 0 && value <= INT32_MAX) || value != std::floor(value)) {
      throw Napi::RangeError::New(env, "forkwise native: an fd is not a descriptor number");
    }
    fds.push_back(static_cast<int>(value));
  }
  return fds;
}

Napi::Value Socketpair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == -1) {
    ThrowErrno(env, errno, "socketpair");
  }
  Napi::Array out = Napi::Array::New(env, 2);
  out[0u] = Napi::Number::New(env, fds[0]);
  out[1u] = Napi::Number::New(env, fds[1]);
  return out;
}

// (sock, data: Uint8Array, fds: number[]) => bytes sent
Napi::Value SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = ArgInt32(info, 0);
  Napi::Uint8Array data = ArgUint8Array(info, 1);
  std::vector<int> fds = ArgFdArray(info, 2);

  iovec iov = {data.Data(), data.ByteLength()};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ControlBuffer control;
  std::memset(&control, 0, sizeof control);
  if (!fds.empty()) {
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), fds.data(), fds.size() * sizeof(int));
  }
  // MSG_NOSIGNAL: a closed peer is an EPIPE error, never a SIGPIPE (a forked or exec'd
  // program may not ignore it as Node does).
  ssize_t sent = RetryOnEintr([&] { return sendmsg(sock, &msg, MSG_NOSIGNAL); });
  if (sent == -1) ThrowErrno(env, errno, "sendmsg");
  return Napi::Number::New(env, static_cast<double>(sent));
}

// (sock, buffer: Uint8Array, maxFds) => [bytes received, fds, truncated]. When truncated,
// the descriptors that arrived are already closed and only their count matters.
Napi::Value RecvFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = ArgInt32(info, 0);
  Napi::Uint8Array buffer = ArgUint8Array(info, 1);
  int max_fds = ArgInt32(info, 2);
  if (max_fds < 0 || max_fds > kMaxFds) {
    throw Napi::RangeError::New(env, "forkwise native: maxFds out of range");
  }

  iovec iov = {buffer.Data(), buffer.ByteLength()};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ControlBuffer control;
  std::memset(&control, 0, sizeof control);
  if (max_fds > 0) {
    msg.msg_control = control.bytes;
    // CMSG_LEN, not CMSG_SPACE: the kernel fits as many fds as the length allows, and the
    // alignment padding of CMSG_SPACE would let one more than maxFds in.
    msg.msg_controllen = CMSG_LEN(max_fds * sizeof(int));
  }
  ssize_t received = RetryOnEintr([&] { return recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); });
  if (received == -1) ThrowErrno(env, errno, "recvmsg");

  std::vector<int> fds;
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof fd);
      fds.push_back(fd);
    }
  }
  // MSG_CTRUNC: the kernel dropped descriptors that did not fit. The caller would get an
  // incomplete set without knowing which are missing, so none is handed out.
  bool truncated = (msg.msg_flags & MSG_CTRUNC) != 0 || fds.size() > static_cast<size_t>(max_fds);
  if (truncated) {
    for (int fd : fds) close(fd);  // released even on EINTR (Linux): nothing to retry
  }

  Napi::Array fd_array = Napi::Array::New(env, fds.size());
  for (uint32_t i = 0; i < fds.size(); i++) fd_array[i] = Napi::Number::New(env, fds[i]);
  Napi::Array out = Napi::Array::New(env, 3);
  out[0u] = Napi::Number::New(env, static_cast<double>(received));
  out[1u] = fd_array;
  out[2u] = Napi::Boolean::New(env, truncated);
  return out;
}

}  // namespace

void InitFdPassing(Napi::Env env, Napi::Object exports) {
  exports["socketpair"] = Napi::Function::New(env, Socketpair, "socketpair");
  exports["sendFds"] = Napi::Function::New(env, SendFds, "sendFds");
  exports["recvFds"] = Napi::Function::New(env, RecvFds, "recvFds");
}

}  // namespace forkwise
