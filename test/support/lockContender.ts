/**
 * withFolderLock in a process of its own, as another VS Code window takes it (for the tests of contending
 * processes). argv[2]: JSON { folder, holdMs, marker, unreadableWaitMs?, slowRenameMs?, noHardLinks? }.
 * Holding the lock, it creates `marker` exclusively (so that a second holder at the same time cannot), keeps it
 * holdMs, and deletes it. `slowRenameMs` makes every rename take that long first (a slow disk: the time between
 * judging a lock stale and moving it grows); `noHardLinks` makes link() fail as it does on FAT and exFAT.
 * Prints JSON { overlapped, acquiredAt, releasedAt } (wall-clock ms); an error goes to stderr, exit code 1.
 */
import * as fs from 'node:fs';
import nodeFs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { withFolderLock } from '../../src/install/folderLock';

interface Request {
  readonly folder: string;
  readonly holdMs: number;
  readonly marker: string;
  readonly unreadableWaitMs?: number;
  readonly slowRenameMs?: number;
  readonly noHardLinks?: boolean;
}

const request = JSON.parse(process.argv[2] ?? '{}') as Request;
/** The fs module itself (what the lock calls through), not a namespace copy of it. */
const patchable: { renameSync: typeof fs.renameSync; linkSync: typeof fs.linkSync } = nodeFs;

if (request.slowRenameMs) {
  const rename = fs.renameSync;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  patchable.renameSync = (from, to) => {
    Atomics.wait(pause, 0, 0, request.slowRenameMs);
    rename(from, to);
  };
}
if (request.noHardLinks) {
  patchable.linkSync = (from) => {
    throw Object.assign(new Error(`EPERM: operation not permitted, link '${String(from)}'`), { code: 'EPERM' });
  };
}

async function main(): Promise<void> {
  let overlapped = false;
  let acquiredAt = 0;
  let releasedAt = 0;
  await withFolderLock(request.folder, request.unreadableWaitMs === undefined ? {} : { unreadableWaitMs: request.unreadableWaitMs }, async () => {
    acquiredAt = Date.now();
    try {
      fs.writeFileSync(request.marker, String(process.pid), { flag: 'wx' });
    } catch {
      overlapped = true; // another holder's marker is there
      return;
    }
    await sleep(request.holdMs);
    fs.rmSync(request.marker);
    releasedAt = Date.now();
  });
  process.stdout.write(JSON.stringify({ overlapped, acquiredAt, releasedAt }));
}

main().catch((error: unknown) => {
  process.stderr.write(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
