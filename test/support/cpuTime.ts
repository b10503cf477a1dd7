/**
 * Whether work grows linearly with its input, judged by CPU time (unlike the wall clock, it does not count time other
 * processes ran on a shared machine) and by a ratio of two sizes measured side by side, never by absolute times.
 */

/** This process's CPU time in milliseconds. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** CPU milliseconds one `run(input)` takes, over as many runs as take 10 ms or more. */
function runMs<T>(run: (input: T) => unknown, input: T): number {
  const start = cpuMs();
  let count = 0;
  let elapsed: number;
  do {
    run(input);
    count++;
  } while ((elapsed = cpuMs() - start) < 10);
  return elapsed / count;
}

/**
 * How many times as long `run(longer)` takes as `run(shorter)`: each timed three times, in turn (so that a slower
 * spell of a shared machine slows both), and the quickest of each compared.
 */
export function cpuTimeRatio<T>(run: (input: T) => unknown, shorter: T, longer: T): number {
  let short = Infinity;
  let long = Infinity;
  for (let round = 0; round < 3; round++) {
    short = Math.min(short, runMs(run, shorter));
    long = Math.min(long, runMs(run, longer));
  }
  return long / short;
}
