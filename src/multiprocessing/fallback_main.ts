/**
 * The program of a child started by the platform fallback (popen_fallback.ts): it takes
 * what to run from the IPC channel, runs it as spawn_main.js does, and reports a target's
 * error on the channel before it exits. It dies with its parent: the channel's end is the
 * parent's end.
 */
import { inspect } from 'node:util';
import { currentProcess } from './identity';
import { preparePayload } from './payload';
import { encodeReport } from './popen';

process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));

process.once('message', (message: { payload: Uint8Array }) => {
  // From here on the channel does not keep this process alive: the target's work does.
  process.channel?.unref();
  const child = preparePayload(message.payload);
  void run(child.run);
});

async function run(target: () => Promise<unknown>): Promise<void> {
  try {
    await target();
  } catch (error) {
    process.stderr.write(`Process ${currentProcess().name}:\n${inspect(error)}\n`);
    try {
      process.send!({ report: encodeReport(error) }, () => process.exit(1));
    } catch {
      process.exit(1);
    }
    return;
  }
  process.exit();
}
