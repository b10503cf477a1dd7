/**
 * The machine's compute limit for prefill, measured: prefill multiplies every weight matrix by many rows at once,
 * so it is bound by how fast the CPU does int8 dot products (the int4 weights are widened to int8 and the
 * activations quantised to int8 inside the kernels), not by memory bandwidth as decoding is.
 *
 * Two ONNX graphs, written with the project's own graph builder, each one big matrix product at the shape of
 * phi-1.5's fc1 (K = 2,048 inputs, N = 8,192 outputs) run by ONNX Runtime's CPU kernels (MLAS) with the bench's
 * thread count:
 *   - MatMulInteger, uint8 × int8 (the pairing x86's int8 kernels are built for: VPDPBUSD on AVX-512 VNNI /
 *     AVX-VNNI, VPMADDUBSW on AVX2), weights constant so ONNX Runtime packs them once; 512 rows. This is the
 *     best an int8 matrix product does on this machine: the limit a prefill's matrix products are measured against.
 *   - MatMulNBits, 4-bit blocks of 64 with accuracy_level 4, as the model's layers are (src/model/phiGraph.ts):
 *     activations quantised to int8 per block, then int8 dot products, each block's sum scaled in float. A chain of
 *     4 MLPs (fc1 then fc2, 8 matrices, ≈72 MiB of weights: more than a Zen 5 CCD's 32 MiB L3, so they stream from
 *     memory as the model's 600 MiB do), at 512 rows and at 32 (the generator's prefill chunk,
 *     DEFAULT_PREFILL_CHUNK): the model's own kernel's ceiling at the shapes prefill gives it.
 * Each figure is the best of several runs, in GOPS (10⁹ operations a second, a multiply-add counting 2). Only one
 * element of each product is returned, so no output copy is timed.
 *
 * Run as a child (startComputeProbe) it answers rounds: one measurement per round, so the bench can measure the
 * limit next to every head-to-head round, as it does the memory bandwidth. `node out/bench/compute.js
 * '{"threads":2}'` prints one measurement.
 */
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { DataType, ExternalDataFile, GraphBuilder } from '../src/model/onnx/graphBuilder';
import type { PhiConfig } from '../src/model/config';
import { childMain, runJsonChild, startRoundsChild, type RoundsChild, type RoundsEngine } from './support/child';

/** The product measured: [rows, K] × [K, N], phi-1.5's fc1 (and fc2, [rows, N] × [N, K], in the MatMulNBits chain). */
const K = 2048;
const N = 8192;
const BLOCK = 64;
/** MLPs in the MatMulNBits chain. */
const MLPS = 4;
/** Rows of the big products: as many as a long prompt gives a kernel. */
const MANY_ROWS = 512;
/** Rows of one prefill chunk (the generator's DEFAULT_PREFILL_CHUNK). */
const CHUNK_ROWS = 32;

/** Int8 dot-product throughput, GOPS. */
export interface Int8Throughput {
  /** MatMulInteger u8 × s8, 512 rows: the machine's int8 matrix-product limit as ONNX Runtime reaches it. */
  readonly matMulInteger: number;
  /** MatMulNBits 4-bit, accuracy level 4, a chain of 4 MLPs, 512 and 32 rows: the model's own kernel, weights from memory. */
  readonly matMulNBits: { readonly rows512: number; readonly rows32: number };
}

export interface ComputeRequest {
  readonly threads: number;
}

const MS = 'com.microsoft';

function writeModel(dir: string, name: string, build: (g: GraphBuilder) => void): string {
  const data = new ExternalDataFile(path.join(dir, `${name}.onnx.data`), `${name}.onnx.data`);
  const g = new GraphBuilder(data);
  build(g);
  data.close();
  const file = path.join(dir, `${name}.onnx`);
  fs.writeFileSync(file, g.encode(name, { '': 17, [MS]: 1 }, {}));
  return file;
}

/** The product's first element only: the whole product is computed, one number is copied out. */
function firstElement(g: GraphBuilder, product: string, elemType: DataType): void {
  const zeros = g.constant('starts', new BigInt64Array([0n, 0n]), [2]);
  const ones = g.constant('ends', new BigInt64Array([1n, 1n]), [2]);
  g.node('Slice', [product, zeros, ones], ['first']);
  g.output('first', elemType, [1, 1]);
}

function randomBytes(length: number): Uint8Array {
  return randomFillSync(new Uint8Array(length));
}

/** Builds both graphs in a scratch folder and loads them; the folder is removed once the sessions hold the weights. */
export class ComputeProbe {
  private constructor(
    private readonly integer: ort.InferenceSession,
    private readonly nbits: ort.InferenceSession,
  ) {}

  static async create(threads: number): Promise<ComputeProbe> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phi-compute-'));
    try {
      const integerModel = writeModel(dir, 'matmul_integer', (g) => {
        const a = g.input('a', DataType.UINT8, ['rows', K]);
        const b = g.weight('b', DataType.INT8, [K, N], randomBytes(K * N));
        const zeroPoint = g.constant('a_zero_point', Uint8Array.of(128), []);
        firstElement(g, g.node('MatMulInteger', [a, b, zeroPoint], ['product'])[0], DataType.INT32);
      });
      const nbitsModel = writeModel(dir, 'matmul_nbits', (g) => {
        // Weights (code − zero point) · scale with codes and zero points in 0‥15: a scale near 1/(15·√inputs)
        // keeps the activations' size along the chain (their values change nothing in the timing, as long as finite).
        const matrix = (x: string, name: string, inputs: number, outputs: number): string => {
          const blocks = inputs / BLOCK;
          return g.node('MatMulNBits', [
            x,
            g.weight(`${name}.qweight`, DataType.UINT8, [outputs, blocks, BLOCK / 2], randomBytes((outputs * inputs) / 2)),
            g.weight(`${name}.scales`, DataType.FLOAT, [outputs * blocks], new Float32Array(outputs * blocks).fill(1 / (15 * Math.sqrt(inputs)))),
            g.weight(`${name}.zero_points`, DataType.UINT8, [outputs * Math.ceil(blocks / 2)], randomBytes(outputs * Math.ceil(blocks / 2))),
          ], [name], { K: inputs, N: outputs, bits: 4, block_size: BLOCK, accuracy_level: 4 }, MS)[0];
        };
        let x = g.input('a', DataType.FLOAT, ['rows', K]);
        for (let i = 0; i < MLPS; i++) x = matrix(matrix(x, `fc1_${i}`, K, N), `fc2_${i}`, N, K);
        firstElement(g, x, DataType.FLOAT);
      });
      const options: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1 };
      const integer = await ort.InferenceSession.create(integerModel, options);
      try {
        return new ComputeProbe(integer, await ort.InferenceSession.create(nbitsModel, options));
      } catch (error) {
        await integer.release();
        throw error;
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Best of `runs` runs (after a warm-up run) of `products` products of [rows, K] × [K, N] (or [N, K]), in GOPS. */
  private async best(session: ort.InferenceSession, input: ort.Tensor, rows: number, products: number, runs: number): Promise<number> {
    await session.run({ a: input });
    let fastest = Infinity;
    for (let run = 0; run < runs; run++) {
      const started = performance.now();
      await session.run({ a: input });
      fastest = Math.min(fastest, performance.now() - started);
    }
    return (2 * rows * K * N * products) / (fastest / 1000) / 1e9;
  }

  async measure(): Promise<Int8Throughput> {
    const codes = new ort.Tensor('uint8', randomBytes(MANY_ROWS * K), [MANY_ROWS, K]);
    const floats = (rows: number): ort.Tensor => new ort.Tensor('float32', Float32Array.from({ length: rows * K }, () => Math.random() * 2 - 1), [rows, K]);
    return {
      matMulInteger: await this.best(this.integer, codes, MANY_ROWS, 1, 5),
      matMulNBits: {
        rows512: await this.best(this.nbits, floats(MANY_ROWS), MANY_ROWS, 2 * MLPS, 3),
        rows32: await this.best(this.nbits, floats(CHUNK_ROWS), CHUNK_ROWS, 2 * MLPS, 10),
      },
    };
  }

  async dispose(): Promise<void> {
    await Promise.all([this.integer.release(), this.nbits.release()]);
  }
}

/**
 * Operations (a multiply-add counting 2) in a prefill of `promptTokens` tokens into an empty cache, per token: every
 * matrix of the layers once a token, attention's two products (QKᵀ and the weighted sum of V) over the positions
 * before it and itself, and lm_head once (for the last token only; embeddings are a lookup).
 */
export function prefillOpsPerToken(config: PhiConfig, promptTokens: number): number {
  const { hidden_size: d, intermediate_size: ff, num_hidden_layers: layers, vocab_size: vocab } = config;
  const weights = layers * (3 * d * d + d * d + 2 * d * ff);
  // Position t attends to t + 1 keys: (n + 1) / 2 on average.
  const attention = layers * 2 * d * ((promptTokens + 1) / 2);
  return 2 * (weights + attention + (d * vocab) / promptTokens);
}

/** The CPU's model name, family and flags, from /proc/cpuinfo (Linux). */
function cpuInfo(): { vendor: string; family: number; flags: Set<string>; mhz: number } | undefined {
  let text: string;
  try {
    text = fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string): string => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1] ?? '';
  return { vendor: field('vendor_id'), family: Number(field('cpu family')), flags: new Set(field('flags').split(/\s+/)), mhz: Number(field('cpu MHz')) };
}

/**
 * The int8 peak the CPU's instructions allow, where it can be justified: AMD Zen 5 (family 26) with AVX-512 VNNI
 * executes 512-bit instructions natively, and a VPDPBUSD on a zmm register is 64 u8 × s8 multiply-adds. Two of them
 * a cycle a core were measured on this project's Zen 5 VM (a C loop of 12 independent VPDPBUSD chains: 6.9 G a second
 * a core, against 3.4 G a second for a dependent chain of adds, i.e. the clock), so the peak is 2 × 64 × 2 operations
 * a cycle a thread. The clock /proc/cpuinfo reports on a VM is the nominal one (2,096 MHz there) while the cores ran
 * at ≈3.4 GHz: `gopsAtCpuinfoClock` is a floor, and the measured MatMulInteger can exceed it. Other CPUs: skipped.
 */
export function theoreticalInt8Peak(threads: number): { opsPerCycle: number; cpuinfoMHz: number; gopsAtCpuinfoClock: number; basis: string } | { skipped: string } {
  const cpu = cpuInfo();
  if (!cpu) return { skipped: 'no /proc/cpuinfo' };
  if (cpu.vendor === 'AuthenticAMD' && cpu.family === 26 && cpu.flags.has('avx512_vnni') && cpu.mhz > 0) {
    const opsPerCycle = 2 * 64 * 2 * threads;
    return {
      opsPerCycle,
      cpuinfoMHz: cpu.mhz,
      gopsAtCpuinfoClock: (opsPerCycle * cpu.mhz) / 1000,
      basis: `AMD Zen 5, avx512_vnni: 2 VPDPBUSD zmm (64 u8·s8 multiply-adds each) a cycle a core, ${threads} threads; at the clock in /proc/cpuinfo (on a VM the nominal one: cores boost above it)`,
    };
  }
  return { skipped: `no measured per-cycle int8 rate for this CPU (${cpu.vendor} family ${cpu.family}${cpu.flags.has('avx512_vnni') ? ', avx512_vnni' : cpu.flags.has('avx_vnni') ? ', avx_vnni' : cpu.flags.has('avx2') ? ', avx2' : ''})` };
}

const SCRIPT = path.join(__dirname, 'compute.js');

/** One measurement, in a child process of its own. */
export function measureInt8Throughput(threads: number): Promise<Int8Throughput> {
  const request: ComputeRequest = { threads };
  return runJsonChild<Int8Throughput>(SCRIPT, 'compute probe', request);
}

/** A child process holding the probe, answering one measurement per round (kept apart from both engines' processes). */
export function startComputeProbe(threads: number): Promise<RoundsChild<Int8Throughput>> {
  const request: ComputeRequest & { readonly mode: 'rounds' } = { mode: 'rounds', threads };
  return startRoundsChild<Int8Throughput>(SCRIPT, 'compute probe', request);
}

async function once(request: ComputeRequest): Promise<Int8Throughput> {
  const probe = await ComputeProbe.create(request.threads);
  try {
    return await probe.measure();
  } finally {
    await probe.dispose();
  }
}

async function prepareRounds(request: ComputeRequest): Promise<RoundsEngine<Int8Throughput>> {
  const probe = await ComputeProbe.create(request.threads);
  return { round: () => probe.measure(), dispose: () => probe.dispose() };
}

if (require.main === module) childMain('compute probe', once, prepareRounds);
