// posix_spawn and posix_spawnp, translated one to one. The TypeScript layer decides the
// policy (stdio dup2 actions, default signal dispositions, empty mask) and passes plain
// values: file actions as tagged tuples, signal sets as arrays of numbers.
#include <signal.h>
#include <unistd.h>

#include "spawn.h"

extern char** environ;

namespace forkwise {

namespace {

[[noreturn]] void NativeTypeFail(Napi::Env env, const std::string& what) {
  throw Napi::TypeError::New(env, "forkwise native: " + what);
}

int32_t ItemInt32(Napi::Env env, Napi::Array tuple, uint32_t index) {
  Napi::Value value = tuple.Get(index);
  if (!value.IsNumber()) NativeTypeFail(env, "file action field is not a number");
  double d = value.As<Napi::Number>().DoubleValue();
  if (!(d >= INT32_MIN && d <= INT32_MAX) || d != static_cast<int32_t>(d)) {
    throw Napi::RangeError::New(env, "forkwise native: file action field is not a 32-bit integer");
  }
  return static_cast<int32_t>(d);
}

std::string ItemString(Napi::Env env, Napi::Array tuple, uint32_t index) {
  Napi::Value value = tuple.Get(index);
  if (!value.IsString()) NativeTypeFail(env, "file action field is not a string");
  std::string s = value.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) NativeTypeFail(env, "file action path contains a null byte");
  return s;
}

}  // namespace

// The add functions return the error number; they do not set errno.
void FileActions::Add(Napi::Env env, Napi::Value entry) {
  if (!entry.IsArray()) NativeTypeFail(env, "a file action is not an array");
  Napi::Array tuple = entry.As<Napi::Array>();
  uint32_t length = tuple.Length();
  if (length == 0 || !tuple.Get(0u).IsString()) NativeTypeFail(env, "a file action has no name");
  std::string tag = tuple.Get(0u).As<Napi::String>().Utf8Value();
  int err;
  const char* call;
  if (tag == "open" && length == 5) {
    call = "posix_spawn_file_actions_addopen";
    std::string path = ItemString(env, tuple, 2);
    err = posix_spawn_file_actions_addopen(&actions_, ItemInt32(env, tuple, 1), path.c_str(),
                                           ItemInt32(env, tuple, 3),
                                           static_cast<mode_t>(ItemInt32(env, tuple, 4)));
  } else if (tag == "close" && length == 2) {
    call = "posix_spawn_file_actions_addclose";
    err = posix_spawn_file_actions_addclose(&actions_, ItemInt32(env, tuple, 1));
  } else if (tag == "dup2" && length == 3) {
    call = "posix_spawn_file_actions_adddup2";
    err = posix_spawn_file_actions_adddup2(&actions_, ItemInt32(env, tuple, 1),
                                           ItemInt32(env, tuple, 2));
  } else if (tag == "chdir" && length == 2) {
    call = "posix_spawn_file_actions_addchdir_np";
    std::string path = ItemString(env, tuple, 1);
#if defined(__GLIBC__) && !__GLIBC_PREREQ(2, 29)
    err = ENOSYS;  // added in glibc 2.29
#else
    err = posix_spawn_file_actions_addchdir_np(&actions_, path.c_str());
#endif
  } else {
    NativeTypeFail(env, "file action '" + tag + "' is unknown or has the wrong length");
  }
  if (err != 0) ThrowErrno(env, err, call);
}

void FileActions::AddAll(const Napi::CallbackInfo& info, size_t index) {
  Napi::Env env = info.Env();
  if (!info[index].IsArray()) NativeTypeFail(env, "argument " + std::to_string(index) + " must be an array");
  Napi::Array list = info[index].As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) Add(env, list.Get(i));
}

namespace {

// spawn(file, argv, env | null, searchPath, syscall, fileActions, pgroup | null, setsid,
//       resetids, sigmask | null, sigdef | null)
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 11) NativeTypeFail(env, "spawn takes 11 arguments");
  std::string file = ArgString(info, 0);
  std::vector<std::string> args = ArgStringArray(info, 1);
  bool has_env = !info[2].IsNull() && !info[2].IsUndefined();
  std::vector<std::string> env_strings;
  if (has_env) env_strings = ArgStringArray(info, 2);
  bool search_path = info[3].ToBoolean().Value();
  std::string syscall = ArgString(info, 4);
  if (args.empty()) NativeTypeFail(env, "argv must not be empty");

  FileActions actions;
  actions.AddAll(info, 5);

  Attributes attr;
  short flags = 0;
  if (!info[6].IsNull()) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(attr.get(), ArgInt32(info, 6));
  }
  if (info[7].ToBoolean().Value()) flags |= POSIX_SPAWN_SETSID;
  if (info[8].ToBoolean().Value()) flags |= POSIX_SPAWN_RESETIDS;
  if (!info[9].IsNull()) {
    sigset_t mask = ArgSignalSet(info, 9);
    flags |= POSIX_SPAWN_SETSIGMASK;
    posix_spawnattr_setsigmask(attr.get(), &mask);
  }
  if (!info[10].IsNull()) {
    sigset_t def = ArgSignalSet(info, 10);
    flags |= POSIX_SPAWN_SETSIGDEF;
    posix_spawnattr_setsigdefault(attr.get(), &def);
  }
  int err = posix_spawnattr_setflags(attr.get(), flags);
  if (err != 0) ThrowErrno(env, err, "posix_spawnattr_setflags");

  std::vector<char*> argv = CStringArray(args);
  std::vector<char*> envp = CStringArray(env_strings);
  char* const* envp_ptr = has_env ? envp.data() : environ;
  pid_t pid = 0;
  // posix_spawn returns the error number (a failed file action or exec included: glibc
  // waits for the child's exec and has already reaped a child that failed). errno is unset.
  err = search_path
            ? posix_spawnp(&pid, file.c_str(), actions.get(), attr.get(), argv.data(), envp_ptr)
            : posix_spawn(&pid, file.c_str(), actions.get(), attr.get(), argv.data(), envp_ptr);
  if (err != 0) ThrowErrno(env, err, syscall.c_str(), file.c_str());
  return Napi::Number::New(env, pid);
}

}  // namespace

void InitSpawn(Napi::Env env, Napi::Object exports) {
  exports["spawn"] = Napi::Function::New(env, Spawn, "spawn");
}

}  // namespace forkwise
