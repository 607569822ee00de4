// posix_spawn file actions and attributes as owned objects, shared by spawn.cc and system.cc.
#pragma once

#include <spawn.h>

#include "common.h"

namespace forkwise {

// Owns a posix_spawn_file_actions_t. The add functions copy their path arguments (POSIX
// requires it), so the strings read here need not outlive the call.
class FileActions {
 public:
  FileActions() { posix_spawn_file_actions_init(&actions_); }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

  // Each entry: ['open', fd, path, flags, mode] | ['close', fd] | ['dup2', fd, newFd] |
  // ['chdir', path].
  void Add(Napi::Env env, Napi::Value entry);
  // Adds every entry of the array argument `index`, in order.
  void AddAll(const Napi::CallbackInfo& info, size_t index);

 private:
  posix_spawn_file_actions_t actions_;
};

class Attributes {
 public:
  Attributes() { posix_spawnattr_init(&attr_); }
  ~Attributes() { posix_spawnattr_destroy(&attr_); }
  Attributes(const Attributes&) = delete;
  Attributes& operator=(const Attributes&) = delete;
  posix_spawnattr_t* get() { return &attr_; }

 private:
  posix_spawnattr_t attr_;
};

}  // namespace forkwise
