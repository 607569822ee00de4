// Blocking connect(2) of a stream socket, for callers that must talk to a server without an
// event loop turn (the `…Sync` forms of manager proxies). The descriptor is close-on-exec and
// blocking; a failed connect closes it and throws the errno.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "common.h"

namespace forkwise {

namespace {

int ConnectOrThrow(Napi::Env env, int domain, const sockaddr* address, socklen_t length,
                   const char* path) {
  int fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) ThrowErrno(env, errno, "socket");
  if (connect(fd, address, length) == -1) {
    int err = errno;
    // EINTR: the connection goes on in the background; wait for it as POSIX says.
    if (err == EINTR) {
      fd_set writable;
      FD_ZERO(&writable);
      FD_SET(fd, &writable);
      int ready;
      do {
        ready = select(fd + 1, nullptr, &writable, nullptr, nullptr);
      } while (ready == -1 && errno == EINTR);
      socklen_t size = sizeof err;
      if (ready == -1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &size) == -1) err = errno;
    }
    if (err != 0) {
      close(fd);
      ThrowErrno(env, err, "connect", path);
    }
  }
  if (domain != AF_UNIX) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

// (path bytes, or a name in the abstract namespace: a leading NUL byte) => fd
Napi::Value ConnectUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // Bytes, not a string: an abstract name holds NUL bytes.
  Napi::Uint8Array bytes = ArgUint8Array(info, 0);
  std::string path(reinterpret_cast<const char*>(bytes.Data()), bytes.ByteLength());
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    throw Napi::RangeError::New(env, "forkwise native: socket path length out of range");
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  // The whole structure, as libuv binds and connects (Node 20): a name in the abstract
  // namespace then counts its padding NUL bytes, and matches the one Node listens on.
  int fd = ConnectOrThrow(env, AF_UNIX, reinterpret_cast<sockaddr*>(&address), sizeof address,
                          path[0] == '\0' ? nullptr : path.c_str());
  return Napi::Number::New(env, fd);
}

// (numeric IPv4 or IPv6 address, port) => fd
Napi::Value ConnectInet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = ArgString(info, 0);
  int32_t port = ArgInt32(info, 1);
  if (port < 1 || port > 65535) throw Napi::RangeError::New(env, "forkwise native: port out of range");
  sockaddr_in v4 = {};
  sockaddr_in6 v6 = {};
  if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(static_cast<uint16_t>(port));
    return Napi::Number::New(
        env, ConnectOrThrow(env, AF_INET, reinterpret_cast<sockaddr*>(&v4), sizeof v4, nullptr));
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(static_cast<uint16_t>(port));
    return Napi::Number::New(
        env, ConnectOrThrow(env, AF_INET6, reinterpret_cast<sockaddr*>(&v6), sizeof v6, nullptr));
  }
  throw Napi::TypeError::New(env, "forkwise native: host is not a numeric IP address");
}

}  // namespace

void InitSocketConnect(Napi::Env env, Napi::Object exports) {
  exports["connectUnix"] = Napi::Function::New(env, ConnectUnix, "connectUnix");
  exports["connectInet"] = Napi::Function::New(env, ConnectInet, "connectInet");
}

}  // namespace forkwise
