/**
 * The forkserver: `node --single-threaded forkserver_main.js SOCKET_FD DEATH_FD PARENT_PID
 * PRELOAD_JSON`. It loads the preload modules, then forks one child per request from this
 * warmed state (each child runs its payload as a spawned child would), reaps them, and
 * reports their pids and ends (popen_forkserver.ts has the protocol). It ends when the
 * process that started it does (its socket closes, or PR_SET_PDEATHSIG), and its children
 * end with it.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Socket } from 'node:net';
import { setBlocking } from '../posix/fd';
import { guardParentDeath } from './bootstrap';
import { FrameReader, writeFrame } from './frames';
import { encodeReport } from './popen';
import { startFork } from './popen_fork';
import { preparePayload } from './payload';

const [socketFd, deathFd, parentPid] = process.argv.slice(2, 5).map(Number) as [number, number, number];
const preload = JSON.parse(process.argv[5] ?? '[]') as string[];

guardParentDeath(parentPid, deathFd);
process.title = 'forkwise-forkserver';

async function main(): Promise<void> {
  const requireHere = createRequire(join(process.cwd(), '[forkserver]'));
  for (const module of preload) {
    try {
      requireHere(module);
    } catch (error) {
      if ((error as { code?: string }).code !== 'ERR_REQUIRE_ESM') throw error;
      await import(requireHere.resolve(module));
    }
  }
  setBlocking(socketFd, false);
  const socket = new Socket({ fd: socketFd, readable: true, writable: true });
  const reader = new FrameReader();
  // The process that started this one is gone: so is this one, and its children with it.
  socket.on('end', () => process.exit(0));
  socket.on('error', () => process.exit(0));
  socket.on('data', (chunk: Buffer) => {
    for (const message of reader.push(chunk)) {
      const { id, payload } = message as { id: number; payload: Uint8Array };
      void serve(socket, id, payload);
    }
  });
}

async function serve(socket: Socket, id: number, payload: Uint8Array): Promise<void> {
  let child;
  try {
    let run: () => Promise<unknown>;
    child = await startFork({
      daemon: false,
      becomeChild: () => {
        socket.destroy();
        run = preparePayload(payload).run;
      },
      run: () => run(),
    });
  } catch (error) {
    writeFrame(socket, { id, error: String(error) });
    return;
  }
  writeFrame(socket, { id, pid: child.pid });
  const end = await child.wait();
  child.close();
  writeFrame(socket, { id, exitCode: end.exitCode, ...(end.error ? { report: encodeReport(end.error) } : {}) });
}

main().catch((error: unknown) => {
  process.stderr.write(`forkwise forkserver: ${String((error as Error)?.stack ?? error)}\n`);
  process.exit(1);
});
