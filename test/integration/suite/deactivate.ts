/// <reference types="mocha" />
/**
 * The first run's last scenario (index.ts adds it after the others): it ends the extension host by reloading the
 * window (VS Code deactivates the extension); the suite's second run, in the new host, checks the outcome
 * (afterReload.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  assert, channelDir, DEACTIVATE_EXIT_RECORD, DEACTIVATE_RECORD, hostEnding, log, processAlive, sleep, workerPids,
  type DeactivateExitRecord, type DeactivateRecord,
} from './support';

suite('phi-complete when its extension host ends', () => {
  // Last: it ends this extension host (a window reload). VS Code deactivates the extension (its deactivate() and then its
  // subscriptions) before the host exits; the worker also exits by itself once its parent is gone, so "gone a
  // few seconds later" alone would pass without a working deactivate. What shows deactivate did it: the old
  // host, in its last synchronous moment ('exit', while its IPC channel to the worker is still open), records
  // whether the worker is still alive. The suite's second run (afterReload.ts) and the runner check the records.
  test('deactivate → worker process gone (1 of 2: records the worker and ends the extension host)', async function () {
    this.timeout(60_000);
    const workers = workerPids();
    assert(workers.length === 1, `expected one running worker child of this host (pid ${process.pid}), found ${workers.join(', ') || 'none'}`);
    const record: DeactivateRecord = { workerPid: workers[0], hostPid: process.pid, requestedAt: Date.now() };
    process.once('exit', () => {
      const exit: DeactivateExitRecord = { hostPid: process.pid, workerPid: record.workerPid, exitedAt: Date.now(), workerAliveAtHostExit: processAlive(record.workerPid) };
      fs.writeFileSync(path.join(channelDir(), DEACTIVATE_EXIT_RECORD), JSON.stringify(exit));
    });
    fs.writeFileSync(path.join(channelDir(), DEACTIVATE_RECORD), JSON.stringify(record));
    // Reloading the window ends its extension host (VS Code deactivates the extension first) and starts a new one,
    // which runs this suite again. The same in desktop VS Code and in the browser (code-server has no command that
    // restarts the extension host alone).
    const command = 'workbench.action.reloadWindow';
    log(`# worker pid ${record.workerPid}, extension host pid ${record.hostPid}: ${command}`);
    hostEnding.value = true;
    await vscode.commands.executeCommand(command);
    await sleep(45_000);
    hostEnding.value = false;
    throw new Error(`the extension host was not ended by ${command} within 45 s`);
  });
});
