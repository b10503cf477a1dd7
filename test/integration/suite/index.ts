/**
 * The in-editor suite's entry point: VS Code's extension host loads this file's compiled form (the runner passes
 * it as `extensionTestsPath`: scripts/integration/run.mjs through code-server, or scripts/integration/electron.mjs
 * through @vscode/test-electron) and calls `run()`, which runs the mocha suite (tdd) against the development
 * extension and rejects when a test failed.
 *
 * Two runs: the first (scenarios.ts, modelSetup.ts, explainSafety.ts, server.ts, then deactivate.ts) ends by reloading the
 * window, which ends the extension host (VS Code deactivates the extension); the reloaded window's new host calls
 * `run()` again, and this second run (afterReload.ts, chosen because the first left `.phi-it/deactivate.json`)
 * checks the worker is gone and reports the totals of both: passing, failing, and pending (tests skipped because the
 * runner cannot read the page). Every result goes to `<workspace>/.phi-it/suite.log` (the runner prints it) and to the
 * console; the totals also to `.phi-it/results.json`, which the runner checks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';
import { channelDir, DEACTIVATE_RECORD, FIRST_RUN_RESULTS, FINAL_RESULTS, hostEnding, log, runnerInfo } from './support';

/** The first run's files, in order: deactivate.js ends this extension host, so it comes last. */
const FIRST_RUN_FILES = ['scenarios.js', 'modelSetup.js', 'explainSafety.js', 'server.js', 'deactivate.js'];
const SECOND_RUN_FILES = ['afterReload.js'];

interface Counts {
  passed: number;
  failed: number;
  pending: number;
}

export function run(): Promise<void> {
  const dir = channelDir();
  fs.mkdirSync(dir, { recursive: true });
  const second = fs.existsSync(path.join(dir, DEACTIVATE_RECORD));
  const resultsFile = path.join(dir, FIRST_RUN_RESULTS);
  let first: Counts = { passed: 0, failed: 0, pending: 0 };
  if (second) {
    try {
      first = JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as Counts;
    } catch {
      log('not ok - the first run left no results');
      first.failed = 1;
    }
    log(`# new extension host (pid ${process.pid}): second run`);
  } else {
    const { runner, pageReader } = runnerInfo();
    log(`# runner: ${runner}; page reader: ${pageReader ? 'yes' : 'no (checks of the page are skipped)'}`);
  }

  const mocha = new Mocha({ ui: 'tdd', timeout: 120_000, color: false, reporter: Mocha.reporters.Base });
  for (const file of second ? SECOND_RUN_FILES : FIRST_RUN_FILES) mocha.addFile(path.join(__dirname, file));
  const counts: Counts = { ...first };
  const number = (): number => counts.passed + counts.failed + counts.pending;
  const save = (): void => {
    if (!second) fs.writeFileSync(resultsFile, JSON.stringify(counts));
  };

  return new Promise<void>((resolve, reject) => {
    const runner = mocha.run((failures) => {
      if (hostEnding.value) {
        // This host is going away: the next one's run reports. Unless it does not go away after all.
        setTimeout(() => {
          log('not ok - the window reload did not end this extension host within 45 s');
          fs.writeFileSync(path.join(dir, FINAL_RESULTS), JSON.stringify({ ...counts, failed: counts.failed + 1 }));
          reject(new Error('the window reload did not end the extension host'));
        }, 45_000);
        return;
      }
      const total = number();
      log(`# ${counts.passed} passing, ${counts.failed} failing, ${counts.pending} pending (${total} in all${second ? ', both runs' : ''})`);
      fs.writeFileSync(path.join(dir, FINAL_RESULTS), JSON.stringify({ ...counts, failed: Math.max(counts.failed, failures) }));
      if (failures > 0 || counts.failed > 0) reject(new Error(`${counts.failed} of ${total} integration tests failed`));
      else resolve();
    });
    const { EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING } = Mocha.Runner.constants;
    runner.on(EVENT_TEST_PASS, (test: Mocha.Test) => {
      counts.passed++;
      log(`ok ${number()} - ${test.title} (${test.duration ?? 0} ms)`);
      save();
    });
    runner.on(EVENT_TEST_PENDING, (test: Mocha.Test) => {
      counts.pending++;
      log(`ok ${number()} - ${test.title} # SKIP`);
      save();
    });
    runner.on(EVENT_TEST_FAIL, (test: Mocha.Runnable, error: Error) => {
      if (hostEnding.value) {
        log(`# ignored while the extension host shuts down (${test.title}): ${error.message}`);
        return;
      }
      counts.failed++;
      log(`not ok ${number()} - ${test.title}${test.duration === undefined ? '' : ` (${test.duration} ms)`}`);
      for (const line of (error.stack ?? error.message).split('\n')) log(`#   ${line}`);
      save();
    });
  });
}
