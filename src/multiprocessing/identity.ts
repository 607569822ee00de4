/**
 * Who this process is in the tree of Processes: `currentProcess()` and `parentProcess()`,
 * Process-shaped as in CPython (`pid`, `name`, `daemon`, `isAlive()`, `exitCode`).
 */

/** The Process-shaped view of this process or of its parent. */
export class ProcessView {
  constructor(
    readonly pid: number,
    readonly name: string,
    readonly daemon: boolean,
  ) {}

  /** Always `null`: this process, or its parent, is still running when asked. */
  get exitCode(): null {
    return null;
  }

  /** True while the process exists. */
  isAlive(): boolean {
    if (this.pid === process.pid) return true;
    try {
      process.kill(this.pid, 0);
    } catch {
      return false;
    }
    return true;
  }
}

let current = new ProcessView(process.pid, 'MainProcess', false);
let parent: ProcessView | null = null;

/** This process, as a Process-shaped object (`name` is 'MainProcess' in the main process). */
export function currentProcess(): ProcessView {
  return current;
}

/** The Process that started this one, or `null` in the main process. */
export function parentProcess(): ProcessView | null {
  return parent;
}

/** Called in a new child: it is `name`, started by `parentPid` named `parentName`. */
export function becomeProcess(name: string, daemon: boolean, parentPid: number, parentName: string): void {
  parent = new ProcessView(parentPid, parentName, false);
  current = new ProcessView(process.pid, name, daemon);
}
