/**
 * Memory bandwidth as decoding sees it: every thread streams through its own buffer, far larger than the caches,
 * summing float64s (reads only, like reading weights). Best of several passes, in GB/s (10⁹ bytes per second).
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const BYTES_PER_THREAD = 256 * 2 ** 20;
const PASSES = 5;

function streamRead(buffer: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < buffer.length; i += 4) sum += buffer[i] + buffer[i + 1] + buffer[i + 2] + buffer[i + 3];
  return sum;
}

if (!isMainThread && (workerData as { bandwidthProbe?: boolean } | undefined)?.bandwidthProbe) {
  const buffer = new Float64Array(BYTES_PER_THREAD / 8).fill(1);
  streamRead(buffer); // touch every page first
  parentPort!.on('message', () => {
    streamRead(buffer);
    parentPort!.postMessage('done');
  });
  parentPort!.postMessage('ready');
}

/** Read bandwidth with `threads` threads reading at once. */
export async function measureReadBandwidth(threads: number): Promise<number> {
  const workers = Array.from({ length: threads }, () => new Worker(__filename, { workerData: { bandwidthProbe: true } }));
  const next = (worker: Worker): Promise<void> => new Promise((resolve) => worker.once('message', () => resolve()));
  await Promise.all(workers.map(next));
  let best = 0;
  for (let pass = 0; pass < PASSES; pass++) {
    const started = process.hrtime.bigint();
    const done = Promise.all(workers.map(next));
    for (const worker of workers) worker.postMessage('go');
    await done;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    best = Math.max(best, (threads * BYTES_PER_THREAD) / seconds / 1e9);
  }
  await Promise.all(workers.map((worker) => worker.terminate()));
  return best;
}
