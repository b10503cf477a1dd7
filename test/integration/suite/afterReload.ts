/// <reference types="mocha" />
/**
 * The suite's second run, in the extension host VS Code started for the reloaded window after the last scenario
 * ended the first one (scenarios.ts): checks that deactivating the extension ended its worker process.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assert, channelDir, DEACTIVATE_EXIT_RECORD, DEACTIVATE_RECORD, log, processAlive, sleep, type DeactivateExitRecord, type DeactivateRecord } from './support';

suite('phi-complete in the extension host started after the window reload', () => {
  test('deactivate → worker process gone (2 of 2: the old host\'s worker ended before that host did)', async () => {
    const record = JSON.parse(fs.readFileSync(path.join(channelDir(), DEACTIVATE_RECORD), 'utf8')) as DeactivateRecord;
    assert(process.pid !== record.hostPid, `still in extension host ${record.hostPid}: it was not ended`);
    const exitFile = path.join(channelDir(), DEACTIVATE_EXIT_RECORD);
    assert(fs.existsSync(exitFile), `the old extension host (pid ${record.hostPid}) left no exit record: it did not exit normally (killed?)`);
    const exit = JSON.parse(fs.readFileSync(exitFile, 'utf8')) as DeactivateExitRecord;
    log(`# old host ${exit.hostPid} exited ${exit.exitedAt - record.requestedAt} ms after the window reload was asked for; worker ${exit.workerPid} alive then: ${exit.workerAliveAtHostExit}`);
    assert(!exit.workerAliveAtHostExit, `worker ${exit.workerPid} was still running when its extension host exited: deactivating the extension did not stop it`);
    const deadline = record.requestedAt + 5000;
    while (processAlive(record.workerPid) && Date.now() < deadline) await sleep(50);
    assert(!processAlive(record.workerPid), `worker ${record.workerPid} is still running ${Date.now() - record.requestedAt} ms after the deactivation`);
  });
});
