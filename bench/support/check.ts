/** The frame of the hand-run cross-checks (bench/peers/*.check.ts): a scratch folder, then PASS or FAIL. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface CheckOutcome {
  /** What is wrong; empty when the check passed. */
  readonly problems: readonly string[];
  /** What a pass shows, printed after "PASS: ". */
  readonly passed: string;
}

/** Runs `body` in a fresh scratch folder (removed afterwards) and prints PASS or FAIL; a failure sets exit code 1. */
export function runCheck(name: string, body: (scratchDir: string) => Promise<CheckOutcome>): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `phi-${name}-check-`));
  body(dir).then(
    ({ problems, passed }) => {
      if (problems.length === 0) {
        console.log(`PASS: ${passed}`);
      } else {
        console.log(`FAIL: ${problems.join('; ')}`);
        process.exitCode = 1;
      }
    },
    (error: unknown) => {
      console.error(error);
      console.log('FAIL: the check could not run');
      process.exitCode = 1;
    },
  ).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}
