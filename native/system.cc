// system(3): /bin/sh -c command, blocking, with the caller's SIGINT and SIGQUIT ignored and
// SIGCHLD blocked while it runs (POSIX). Written on posix_spawn rather than calling glibc's
// system() because Node marks fds 0-2 close-on-exec and glibc's system() would not clear
// that: the TypeScript layer passes the dup2(fd, fd) file actions that do, as for posixSpawn.
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "spawn.h"

extern char** environ;

namespace forkwise {

namespace {

// Ignores SIGINT and SIGQUIT and blocks SIGCHLD in the caller; the destructor puts back what
// was there, so that every exit path (a thrown error included) restores them.
class CallerSignals {
 public:
  explicit CallerSignals(Napi::Env env) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    if (sigaction(SIGINT, &ignore, &old_int_) != 0) ThrowErrno(env, errno, "sigaction");
    if (sigaction(SIGQUIT, &ignore, &old_quit_) != 0) {
      int err = errno;
      sigaction(SIGINT, &old_int_, nullptr);
      ThrowErrno(env, err, "sigaction");
    }
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    // pthread_sigmask returns the error number; it does not set errno.
    int err = pthread_sigmask(SIG_BLOCK, &chld, &old_mask_);
    if (err != 0) {
      sigaction(SIGINT, &old_int_, nullptr);
      sigaction(SIGQUIT, &old_quit_, nullptr);
      ThrowErrno(env, err, "pthread_sigmask");
    }
  }
  ~CallerSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGQUIT, &old_quit_, nullptr);
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  CallerSignals(const CallerSignals&) = delete;
  CallerSignals& operator=(const CallerSignals&) = delete;

  bool IntIgnored() const { return old_int_.sa_handler == SIG_IGN; }
  bool QuitIgnored() const { return old_quit_.sa_handler == SIG_IGN; }
  const sigset_t* OldMask() const { return &old_mask_; }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_quit_ {};
  sigset_t old_mask_;
};

// system(command, fileActions) -> raw wait status
Napi::Value System(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string command = ArgString(info, 0);
  FileActions actions;
  actions.AddAll(info, 1);

  CallerSignals caller(env);
  // The shell gets back what the caller had: SIGINT and SIGQUIT at default unless they were
  // ignored before (then it inherits the ignoring), and the caller's original mask. SIGPIPE
  // and SIGXFSZ, which Node ignores, at default as under a shell.
  sigset_t sigdef;
  sigemptyset(&sigdef);
  sigaddset(&sigdef, SIGPIPE);
  sigaddset(&sigdef, SIGXFSZ);
  if (!caller.IntIgnored()) sigaddset(&sigdef, SIGINT);
  if (!caller.QuitIgnored()) sigaddset(&sigdef, SIGQUIT);
  Attributes attr;
  posix_spawnattr_setsigdefault(attr.get(), &sigdef);
  posix_spawnattr_setsigmask(attr.get(), caller.OldMask());
  int err = posix_spawnattr_setflags(attr.get(), POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  if (err != 0) ThrowErrno(env, err, "posix_spawnattr_setflags");

  std::vector<std::string> args = {"sh", "-c", command};
  std::vector<char*> argv = CStringArray(args);
  pid_t pid = 0;
  err = posix_spawn(&pid, "/bin/sh", actions.get(), attr.get(), argv.data(), environ);
  // As glibc's system(): a shell that cannot start reads as a shell that exited with 127.
  if (err != 0) return Napi::Number::New(env, 127 << 8);

  int status = 0;
  if (RetryOnEintr([&] { return waitpid(pid, &status, 0); }) == -1) {
    ThrowErrno(env, errno, "waitpid");
  }
  return Napi::Number::New(env, status);
}

}  // namespace

void InitSystem(Napi::Env env, Napi::Object exports) {
  exports["system"] = Napi::Function::New(env, System, "system");
}

}  // namespace forkwise
