/**
 * The program of a child started with the `spawn` method:
 * `node spawn_main.js PAYLOAD_FD REPORT_FD DEATH_FD PARENT_PID`.
 */
import { readFileSync } from 'node:fs';
import { close } from '../posix/fd';
import { guardParentDeath, runAndExit } from './bootstrap';
import { preparePayload } from './payload';

const [payloadFd, reportFd, deathFd, parentPid] = process.argv.slice(2, 6).map(Number) as [number, number, number, number];
guardParentDeath(parentPid, deathFd);
const bytes = readFileSync(payloadFd);
close(payloadFd);
const child = preparePayload(bytes);
void runAndExit(child.run, reportFd);
