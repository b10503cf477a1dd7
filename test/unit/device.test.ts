/**
 * The decoder on a GPU execution provider against the CPU. Runs only where PHI_TEST_DEVICE names a device
 * (e.g. `PHI_TEST_DEVICE=webgpu node --test out/test/unit/device.test.js`); `npm run test:webgpu` runs it on
 * WebGPU over SwiftShader (a Vulkan on the CPU) in quick mode, so CI covers the WebGPU code path without a GPU.
 * ONNX Runtime places operators a provider lacks on the CPU by itself, so these tests prove the outputs, not
 * where each operator ran.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PhiDecoder } from '../../src/inference/decoder';
import { providerOf } from '../../src/inference/devices';
import { Generator } from '../../src/inference/generator';
import { ResidentKvCache } from '../../src/inference/residentKvCache';
import { PHI_TINY } from '../../src/model/config';
import type { KvCacheFormat, KvOutputs, WeightFormat } from '../../src/model/manifest';
import { DEVICES, type Device } from '../../src/protocol';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { automaticThreads } from '../../src/worker/session';
import { argmaxRows, relativeRmsError } from '../support/logitErrors';
import { tinyModelDir } from '../support/tinyModels';
import { loadModel } from '../../src/worker/session';

const VOCAB = PHI_TINY.vocab_size;
const requested = process.env.PHI_TEST_DEVICE;
const device = DEVICES.find((d) => d !== 'auto' && d === requested) as Exclude<Device, 'auto'> | undefined;
const skip = device ? false : `set PHI_TEST_DEVICE to one of ${DEVICES.filter((d) => d !== 'auto' && d !== 'cpu').join(', ')} to run`;

/** The one failure a device may have instead of a wrong answer: no float16 shaders (SwiftShader's WebGPU, some GPUs). */
const UNSUPPORTED_BY_DEVICE = /requires f16 but the device does not support it/;

const PROMPT = Array.from({ length: 48 }, (_, i) => (i * 7919 + 11) % 50295);

/**
 * PHI_TEST_DEVICE_QUICK=1: fewer one-token steps and generated tokens, and only the variants the extension ships
 * or falls back from. A software GPU compiles shaders for every new cache length (2–3 s each on SwiftShader).
 */
const QUICK = process.env.PHI_TEST_DEVICE_QUICK === '1';
const STEPS = QUICK ? 12 : PROMPT.length;
const GENERATED = QUICK ? 8 : 32;

function argmaxAgreement(a: Float32Array, b: Float32Array): number {
  const [rowsA, rowsB] = [argmaxRows(a, VOCAB), argmaxRows(b, VOCAB)];
  return rowsA.filter((best, t) => best === rowsB[t]).length / rowsA.length;
}

/** All logits of PROMPT's first STEPS tokens fed one token at a time through the cache. */
async function stepwise(decoder: PhiDecoder): Promise<Float32Array> {
  const cache = decoder.createCache();
  const out = new Float32Array(STEPS * VOCAB);
  for (let i = 0; i < STEPS; i++) out.set(await decoder.forward([PROMPT[i]], cache), i * VOCAB);
  cache.dispose();
  return out;
}

interface Variant {
  readonly format: WeightFormat;
  readonly kvCache?: KvCacheFormat;
  /** A graph that returns its cache (present.*): on WebGPU the cache stays in GPU memory (ResidentKvCache). */
  readonly kvOutputs?: KvOutputs;
  /** Run in quick mode: the shipped builds (int4 CPU, int4 and fp16 GPU) and fp32 as the exact reference. */
  readonly quick?: boolean;
  /** Bound on the relative RMS error against the CPU running the same folder. */
  readonly rmsBound: number;
  /** Bound on the relative RMS error of one-token steps through the cache against one full pass. */
  readonly cacheRmsBound: number;
}

// fp16 and int4 kernels may round differently on a GPU (fp16 accumulation, no int8 activations), and a
// one-token pass may take another kernel than a 48-token one: the bounds separate rounding from a wrong operator
// (errors near 100%). Measured on an H200 through WebGPU (2026-11-26): against the CPU 4.7e-7 (fp32), 3.1e-3
// (fp16), 1.3e-2 (int4, either cache); steps against a full pass 2.7e-7, 3.3e-3, 1.1e-7, 9.4e-8.
const VARIANTS: readonly Variant[] = [
  { format: 'fp32', rmsBound: 1e-3, cacheRmsBound: 1e-4 },
  { format: 'fp16', rmsBound: 2e-2, cacheRmsBound: 1e-2 },
  { format: 'int4', kvCache: 'float', rmsBound: 0.1, cacheRmsBound: 1e-2 },
  { format: 'int4', kvCache: 'int8', rmsBound: 0.1, cacheRmsBound: 1e-2, quick: true },
  { format: 'fp32', kvOutputs: 'present', rmsBound: 1e-3, cacheRmsBound: 1e-4 },
  { format: 'fp32', kvOutputs: 'present_settled', rmsBound: 1e-3, cacheRmsBound: 1e-4, quick: true },
  { format: 'fp16', kvOutputs: 'present_settled', rmsBound: 2e-2, cacheRmsBound: 1e-2, quick: true },
  { format: 'int4', kvCache: 'float', kvOutputs: 'present_settled', rmsBound: 0.1, cacheRmsBound: 1e-2, quick: true },
];

describe(`decoder on ${device ?? 'a GPU'} against the CPU`, { skip }, () => {
  for (const variant of VARIANTS.filter((v) => !QUICK || v.quick)) {
    describe(`${variant.format}, ${variant.kvCache ?? 'default'} cache${variant.kvOutputs ? `, ${variant.kvOutputs} outputs` : ''}`, () => {
      let onDevice: PhiDecoder;
      let onCpu: PhiDecoder;
      let cpuLogits: Float32Array;
      /** Why this device cannot run the variant at all (an adapter without float16 shaders), if so. */
      let unsupported: string | undefined;
      const dir = (): string => tinyModelDir(variant.format, 'bigram', { kvCache: variant.kvCache, kvOutputs: variant.kvOutputs });
      before(async () => {
        onDevice = await PhiDecoder.load(dir(), { executionProviders: [providerOf(device!)] });
        onCpu = await PhiDecoder.load(dir());
        cpuLogits = await onCpu.forward(PROMPT, onCpu.createCache());
        await onDevice.forward(PROMPT.slice(0, 1), onDevice.createCache()).catch((error: Error) => {
          if (!UNSUPPORTED_BY_DEVICE.test(error.message)) throw error;
          unsupported = error.message.split('\n')[0];
        });
      });
      after(async () => {
        await onDevice.dispose();
        await onCpu.dispose();
      });

      test("the worker's device choice runs it there, or falls back to the CPU saying why", async () => {
        const loaded = await loadModel(dir(), device!, 0);
        if (unsupported) {
          assert.equal(loaded.device, 'cpu');
          assert.match(loaded.fallbacks.join('\n'), UNSUPPORTED_BY_DEVICE);
        } else {
          assert.equal(loaded.device, device);
        }
        await loaded.decoder.dispose();
      });

      test('logits of a 48-token prompt agree with the CPU', async (t) => {
        if (unsupported) return t.skip(unsupported);
        const logits = await onDevice.forward(PROMPT, onDevice.createCache());
        const rms = relativeRmsError(logits, cpuLogits);
        const agreement = argmaxAgreement(logits, cpuLogits);
        t.diagnostic(`relative RMS ${rms.toExponential(2)}, argmax agreement ${(agreement * 100).toFixed(1)}%`);
        assert.ok(rms <= variant.rmsBound, `relative RMS ${rms} > ${variant.rmsBound}`);
        assert.ok(agreement >= 0.9, `argmax agreement ${agreement}`);
      });

      test('one token at a time through the cache gives the logits of a full pass', async (t) => {
        if (unsupported) return t.skip(unsupported);
        const full = await onDevice.forward(PROMPT.slice(0, STEPS), onDevice.createCache());
        const rms = relativeRmsError(await stepwise(onDevice), full);
        t.diagnostic(`relative RMS ${rms.toExponential(2)}`);
        assert.ok(rms <= variant.cacheRmsBound, `relative RMS ${rms} > ${variant.cacheRmsBound}`);
      });

      test('rewinding, then a different continuation, gives the logits of a cold pass', async (t) => {
        if (unsupported) return t.skip(unsupported);
        const cache = onDevice.createCache();
        await onDevice.forward(PROMPT.slice(0, 30), cache);
        const onGpu = cache instanceof ResidentKvCache && device === 'webgpu';
        if (onGpu) assert.equal(cache.past(0, 0).location, 'gpu-buffer', 'the cache left the GPU');
        cache.rewindTo(20);
        const resumed = await onDevice.forward(PROMPT.slice(40), cache);
        if (onGpu && cache.settled) {
          // The pass after 30 positions merged (passes had copied as many rows as the cache held): on the GPU.
          assert.deepEqual([cache.settledLength, cache.settledPart(0, 0).location], [20, 'gpu-buffer']);
        }
        const cold = await onDevice.forward([...PROMPT.slice(0, 20), ...PROMPT.slice(40)], onDevice.createCache());
        const rms = relativeRmsError(resumed, cold.subarray(20 * VOCAB));
        cache.dispose();
        t.diagnostic(`relative RMS ${rms.toExponential(2)}`);
        assert.ok(rms <= variant.cacheRmsBound, `relative RMS ${rms} > ${variant.cacheRmsBound}`);
      });

      test(`greedy generation (${GENERATED} tokens) matches the CPU`, async (t) => {
        if (unsupported) return t.skip(unsupported);
        const tokenizer = PhiTokenizer.fromFile(path.join(dir(), 'tokenizer.json'));
        const prompt = PROMPT.slice(0, 16);
        const generate = async (decoder: PhiDecoder): Promise<readonly number[]> => {
          const generator = new Generator(decoder, tokenizer);
          const result = await generator.generate({ prompt, maxNewTokens: GENERATED });
          await generator.dispose();
          return result.tokens;
        };
        const [gpu, cpu] = [await generate(onDevice), await generate(onCpu)];
        const same = gpu.findIndex((id, i) => id !== cpu[i]);
        t.diagnostic(same < 0 ? 'identical' : `first difference at token ${same}`);
        // fp32 must match exactly; rounding elsewhere may tip a near-tie late in the sequence.
        if (variant.format === 'fp32') assert.deepEqual(gpu, cpu);
        else assert.ok(same < 0 || same >= Math.min(8, GENERATED), `differs from the CPU at token ${same}`);
      });
    });
  }
});

test('automatic threads: one per physical core (half the logical processors when hyperthreading is on), never ONNX Runtime\'s own choice', () => {
  let hyperthreaded = false;
  try {
    hyperthreaded = fs.readFileSync('/sys/devices/system/cpu/smt/active', 'utf8').trim() === '1';
  } catch {
    // not Linux
  }
  const logical = os.availableParallelism();
  assert.equal(automaticThreads(), Math.max(1, hyperthreaded ? Math.floor(logical / 2) : logical));
});
