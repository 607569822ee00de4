// The exec family. Before exec, the process is made to look like one started from a shell
// (DESIGN.md fact 10): fds 0-2 inheritable and blocking, SIGPIPE/SIGXFSZ (ignored by Node)
// back to default, empty signal mask. If exec fails, all of it is put back as it was.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common.h"

extern char** environ;

namespace forkwise {

namespace {

constexpr int kResetSignals[] = {SIGPIPE, SIGXFSZ};

class ExecPreparation {
 public:
  ExecPreparation() {
    // Read every flag before changing any: fds 0-2 often share one open file description,
    // whose status flags (O_NONBLOCK) clearing one of them would change for the others.
    for (int fd = 0; fd < 3; fd++) {
      fd_flags_[fd] = fcntl(fd, F_GETFD);
      status_flags_[fd] = fcntl(fd, F_GETFL);
    }
    for (int fd = 0; fd < 3; fd++) {
      if (fd_flags_[fd] != -1 && (fd_flags_[fd] & FD_CLOEXEC)) {
        fcntl(fd, F_SETFD, fd_flags_[fd] & ~FD_CLOEXEC);
      }
      if (status_flags_[fd] != -1 && (status_flags_[fd] & O_NONBLOCK)) {
        fcntl(fd, F_SETFL, status_flags_[fd] & ~O_NONBLOCK);
      }
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (size_t i = 0; i < std::size(kResetSignals); i++) {
      sigaction(kResetSignals[i], nullptr, &saved_actions_[i]);
      if (saved_actions_[i].sa_handler == SIG_IGN) sigaction(kResetSignals[i], &dfl, nullptr);
    }
    sigset_t empty;
    sigemptyset(&empty);
    pthread_sigmask(SIG_SETMASK, &empty, &saved_mask_);
  }

  // Only reached when exec failed.
  ~ExecPreparation() {
    pthread_sigmask(SIG_SETMASK, &saved_mask_, nullptr);
    for (size_t i = 0; i < std::size(kResetSignals); i++) {
      sigaction(kResetSignals[i], &saved_actions_[i], nullptr);
    }
    for (int fd = 0; fd < 3; fd++) {
      if (fd_flags_[fd] != -1) fcntl(fd, F_SETFD, fd_flags_[fd]);
      if (status_flags_[fd] != -1) fcntl(fd, F_SETFL, status_flags_[fd]);
    }
  }

 private:
  int fd_flags_[3];
  int status_flags_[3];
  struct sigaction saved_actions_[std::size(kResetSignals)];
  sigset_t saved_mask_;
};

std::string PathOf(char* const* envp) {
  for (char* const* entry = envp; entry && *entry; entry++) {
    if (strncmp(*entry, "PATH=", 5) == 0) return *entry + 5;
  }
  // What glibc's execvp uses when PATH is unset.
  return "/bin:/usr/bin";
}

// Tries each PATH directory as CPython's os._execvpe does: the first error other than
// ENOENT/ENOTDIR is the one reported (a found but unusable file says more than "not found").
int ExecSearchingPath(const std::string& file, char* const* argv, char* const* envp) {
  if (file.find('/') != std::string::npos) {
    execve(file.c_str(), argv, envp);
    return errno;
  }
  std::string path = PathOf(envp);
  int saved = 0, last = ENOENT;
  size_t start = 0;
  for (;;) {
    size_t colon = path.find(':', start);
    std::string dir = path.substr(start, colon == std::string::npos ? std::string::npos
                                                                     : colon - start);
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + file;
    execve(candidate.c_str(), argv, envp);
    last = errno;
    if (saved == 0 && last != ENOENT && last != ENOTDIR) saved = last;
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return saved ? saved : last;
}

// exec(file, argv, env | null, searchPath, syscallName)
void Exec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string file = ArgString(info, 0);
  std::vector<std::string> args = ArgStringArray(info, 1);
  bool has_env = info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined();
  std::vector<std::string> env_strings;
  if (has_env) env_strings = ArgStringArray(info, 2);
  bool search_path = info.Length() > 3 && info[3].ToBoolean().Value();
  std::string syscall = ArgString(info, 4);
  if (args.empty()) throw Napi::TypeError::New(env, "forkwise native: argv must not be empty");

  std::vector<char*> argv = CStringArray(args);
  std::vector<char*> envp = CStringArray(env_strings);
  char* const* envp_ptr = has_env ? envp.data() : environ;
  int err;
  {
    ExecPreparation preparation;
    if (search_path) {
      err = ExecSearchingPath(file, argv.data(), envp_ptr);
    } else {
      execve(file.c_str(), argv.data(), envp_ptr);
      err = errno;
    }
  }
  ThrowErrno(env, err, syscall.c_str(), file.c_str());
}

}  // namespace

void InitExec(Napi::Env env, Napi::Object exports) {
  exports["exec"] = Napi::Function::New(env, Exec, "exec");
}

}  // namespace forkwise
