/** `system(3)`, as CPython's `os.system` on POSIX. */
import { native } from './native';
import { stdioActions } from './spawn';
import { validateCString } from './validate';

/**
 * Runs `/bin/sh -c command`, blocking until it ends, and returns its raw wait status (decode
 * it with `WIFEXITED`/`WEXITSTATUS` or `waitstatusToExitcode`), as C's `system(3)` and
 * CPython's `os.system`. While it runs, this process ignores SIGINT and SIGQUIT and blocks
 * SIGCHLD, as POSIX specifies, so that ^C at a terminal ends the command and not node; the
 * shell gets back the original dispositions and mask, SIGPIPE and SIGXFSZ at default, and
 * the inherited stdin, stdout and stderr. A shell that cannot be started gives the status
 * of a shell that exited with 127 (`127 << 8`), as `system(3)`. The event loop does not run
 * meanwhile: for a command that takes time, use {@link popen} or `posixSpawn` with
 * `waitpidAsync`.
 *
 * @example
 * import { system, waitstatusToExitcode } from 'forkwise';
 * system('exit 3');               // 768
 * system('kill -TERM $$');        // 15
 * waitstatusToExitcode(system('ls /tmp')); // 0
 */
export function system(command: string): number {
  return native.system(validateCString(command, 'command'), stdioActions());
}
