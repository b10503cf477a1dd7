/** The engine's small parts: sampler, stop sequences, prompt-lookup drafts, the speculation budget, KV cache bookkeeping. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { deviceCandidates, layoutAdvice } from '../../src/inference/devices';
import { floatPlanes, KvCache } from '../../src/inference/kvCache';
import { ResidentKvCache, settledPlanes } from '../../src/inference/residentKvCache';
import { buildMergeGraph } from '../../src/model/mergeGraph';
import { draftFromContext } from '../../src/inference/promptLookup';
import { argmax, standardDeviation, Sampler, topTwoGap } from '../../src/inference/sampler';
import { SpeculationBudget } from '../../src/inference/speculationBudget';
import { StopMatcher } from '../../src/inference/stopSequences';

describe('Sampler', () => {
  const logits = Float32Array.from([0.1, 2.0, 1.9, -1, 0.5, 1.95]);

  test('greedy picks the argmax, within the given row', () => {
    assert.equal(new Sampler({ temperature: 0, topK: 0, topP: 1, seed: 1 }).sample(logits), 1);
    assert.equal(argmax(logits, 2, 3), 0); // row [1.9, -1, 0.5]: index within the row
  });

  test('top-two gap and standard deviation of a row (the speculation near-tie guard)', () => {
    const row = Float32Array.of(9, 3, -4, 2.5, 3, 0);
    assert.equal(topTwoGap(row, 1, 4), 0); // [3, -4, 2.5, 3]: the top two are tied
    assert.equal(topTwoGap(row, 0, 4), 6);
    assert.equal(topTwoGap(row, 2, 2), 6.5);
    assert.ok(Math.abs(standardDeviation(row, 1, 2) - 3.5) < 1e-6); // [3, -4]: mean −0.5, deviations ±3.5
    assert.ok(Math.abs(standardDeviation(Float32Array.of(101, 99, 101, 99)) - 1) < 1e-6); // the offset does not count
  });

  test('the same seed gives the same tokens; another seed, other tokens', () => {
    const params = { temperature: 1, topK: 0, topP: 1, seed: 42 };
    const draw = (seed: number): number[] => {
      const sampler = new Sampler({ ...params, seed });
      return Array.from({ length: 40 }, () => sampler.sample(logits));
    };
    assert.deepEqual(draw(42), draw(42));
    assert.notDeepEqual(draw(42), draw(43));
  });

  test('top-k keeps only the k best; top-p keeps the smallest set reaching p', () => {
    const topK = new Sampler({ temperature: 5, topK: 2, topP: 1, seed: 3 });
    const drawnK = new Set(Array.from({ length: 200 }, () => topK.sample(logits)));
    assert.deepEqual([...drawnK].sort(), [1, 5]);
    // Probabilities at temperature 1: 2.0 → 0.32, 1.95 → 0.30, 1.9 → 0.29, … so p = 0.5 keeps two tokens.
    const topP = new Sampler({ temperature: 1, topK: 0, topP: 0.5, seed: 3 });
    const drawnP = new Set(Array.from({ length: 200 }, () => topP.sample(logits)));
    assert.deepEqual([...drawnP].sort(), [1, 5]);
  });

  test('frequencies follow softmax(logits / temperature)', () => {
    const sampler = new Sampler({ temperature: 0.5, topK: 0, topP: 1, seed: 9 });
    const two = Float32Array.from([0, Math.log(3) * 0.5]); // p = [0.25, 0.75] at temperature 0.5
    let ones = 0;
    for (let i = 0; i < 4000; i++) ones += sampler.sample(two);
    assert.ok(Math.abs(ones / 4000 - 0.75) < 0.03, `${ones / 4000}`);
  });
});

describe('StopMatcher', () => {
  test('holds back a possible stop prefix, releases it when it turns out not to be one', () => {
    const stops = new StopMatcher(['\ndef ']);
    assert.deepEqual(stops.push('return x\n'), { text: 'return x', stopped: false });
    assert.deepEqual(stops.push('d'), { text: '', stopped: false });
    assert.deepEqual(stops.push('o'), { text: '\ndo', stopped: false });
  });

  test('a stop split over several pieces ends the text just before it', () => {
    const stops = new StopMatcher(['###', '\nclass']);
    assert.deepEqual(stops.push('x = 1\ncl'), { text: 'x = 1', stopped: false });
    assert.deepEqual(stops.push('ass Foo'), { text: '', stopped: true });
  });

  test('the earliest of several stops wins; flush releases a trailing partial stop', () => {
    assert.deepEqual(new StopMatcher(['b', 'a']).push('xxabc'), { text: 'xx', stopped: true });
    const stops = new StopMatcher(['END']);
    assert.deepEqual(stops.push('done E'), { text: 'done ', stopped: false });
    assert.equal(stops.flush(), 'E');
  });
});

describe('draftFromContext', () => {
  test('proposes what followed the latest earlier occurrence of the last n-gram', () => {
    assert.deepEqual(draftFromContext([1, 2, 3, 4, 5, 9, 1, 2, 3], 4), [4, 5, 9, 1]);
    assert.deepEqual(draftFromContext([7, 1, 2, 8, 1, 2, 9, 5, 1, 2], 2), [9, 5]);
  });
  test('falls back to shorter n-grams, and proposes nothing without a match', () => {
    assert.deepEqual(draftFromContext([5, 6, 7, 1, 6], 3), [7, 1, 6]);
    assert.deepEqual(draftFromContext([1, 2, 3, 4], 3), []);
  });
});

describe('SpeculationBudget', () => {
  /** A budget that has seen plain steps of 50 ms. */
  const measured = (): SpeculationBudget => {
    const budget = new SpeculationBudget();
    for (let i = 0; i < 4; i++) budget.recordPlain(50);
    return budget;
  };

  test('keeps drafting while verify passes yield more tokens per millisecond than plain steps', () => {
    const budget = measured();
    for (let i = 0; i < 20; i++) budget.recordVerify(60, 2); // 2 tokens for 1.2 steps
    assert.ok(Math.abs(budget.speedup - 2 / 1.2) < 1e-9);
    assert.equal(budget.drafting, true);
  });

  test('pauses drafting once verify passes lose, tries again after the pause, and waits longer after each loss', () => {
    const budget = measured();
    for (let i = 0; i < 5; i++) budget.recordVerify(65, 1); // a rejected draft: 1 token for 1.3 steps
    assert.equal(budget.drafting, true, 'too few passes to judge');
    budget.recordVerify(65, 1);
    assert.equal(budget.drafting, false);
    const pauseLength = (): number => {
      let plainSteps = 0;
      while (!budget.drafting) {
        budget.recordPlain(50);
        plainSteps++;
      }
      return plainSteps;
    };
    assert.equal(pauseLength(), 48);
    budget.recordVerify(65, 1);
    assert.equal(budget.drafting, true, 'one more losing pass is not yet enough to pause again');
    budget.recordVerify(65, 1);
    assert.equal(budget.drafting, false);
    assert.equal(pauseLength(), 96);
    budget.recordVerify(65, 1);
    budget.recordVerify(65, 1);
    assert.equal(pauseLength(), 192);
  });

  test('a run of accepted drafts after a pause keeps drafting on, and the next pause is short again', () => {
    const budget = measured();
    for (let i = 0; i < 6; i++) budget.recordVerify(65, 1);
    for (let i = 0; i < 48; i++) budget.recordPlain(50);
    for (let i = 0; i < 10; i++) budget.recordVerify(55, 3);
    assert.ok(budget.speedup > 1);
    assert.equal(budget.drafting, true);
    while (budget.drafting) budget.recordVerify(65, 1);
    let plainSteps = 0;
    for (; !budget.drafting; plainSteps++) budget.recordPlain(50);
    assert.equal(plainSteps, 48);
  });
});

describe('KvCache', () => {
  const rows = (layers: number, heads: number, n: number, dim: number, start: number): Float32Array[][] =>
    Array.from({ length: layers }, (_, l) => [0, 1].map((plane) => Float32Array.from({ length: heads * n * dim }, (_, i) => start + plane * 100 + l * 1000 + i)));

  test('appends rows per head at the filled length, and keeps them when the buffers grow', () => {
    const cache = new KvCache(2, 2, floatPlanes(3, 'float32'), 2048);
    cache.append(rows(2, 2, 1, 3, 0), 1);
    assert.equal(cache.length, 1);
    assert.equal(cache.capacity, 128);
    assert.deepEqual(cache.shape(0, 128), [1, 2, 128, 3]);
    // head 0 row 0 at [0, 3); head 1 row 0 at [128·3, 128·3 + 3)
    assert.deepEqual([...cache.buffer(1, 0).subarray(0, 3)], [1000, 1001, 1002]);
    assert.deepEqual([...cache.buffer(1, 0).subarray(384, 387)], [1003, 1004, 1005]);
    assert.deepEqual([...cache.buffer(1, 1).subarray(384, 387)], [1103, 1104, 1105]);
    cache.append(rows(2, 2, 200, 3, 0), 200);
    assert.equal(cache.length, 201);
    assert.equal(cache.capacity, 256);
    assert.deepEqual([...cache.buffer(1, 0).subarray(0, 6)], [1000, 1001, 1002, 1000, 1001, 1002]);
    assert.deepEqual([...cache.buffer(1, 0).subarray(256 * 3, 256 * 3 + 6)], [1003, 1004, 1005, 1600, 1601, 1602]);
  });

  test('transposed planes ([heads, width, positions]) append every column of every head and keep them when growing', () => {
    const plane = { name: 'key', dtype: 'float32', width: 2, transposed: true } as const;
    const cache = new KvCache(1, 2, [plane], 2048);
    // new rows [1, heads 2, width 2, positions 3]: head h, column j, position r = 10h + 3j + r
    const block = (positions: number, base: number): Float32Array[][] =>
      [[Float32Array.from({ length: 2 * 2 * positions }, (_, i) => base + 10 * Math.floor(i / (2 * positions)) + i % (2 * positions))]];
    cache.append(block(3, 0), 3);
    assert.deepEqual(cache.shape(0, cache.capacity), [1, 2, 2, 128]);
    const buffer = (): Float32Array => cache.buffer(0, 0) as Float32Array;
    assert.deepEqual([...buffer().subarray(0, 4)], [0, 1, 2, 0]); // head 0, column 0
    assert.deepEqual([...buffer().subarray(128, 131)], [3, 4, 5]); // head 0, column 1
    assert.deepEqual([...buffer().subarray(3 * 128, 3 * 128 + 3)], [13, 14, 15]); // head 1, column 1
    cache.rewindTo(2);
    cache.append(block(200, 50), 200);
    assert.equal(cache.capacity, 256);
    assert.deepEqual([...buffer().subarray(256, 256 + 3)], [3, 4, 250]); // head 0, column 1: positions 0, 1, then the new block
    assert.deepEqual([...buffer().subarray(3 * 256, 3 * 256 + 3)], [13, 14, 260]);
  });

  test('a cache sized for a long request is read in a room that doubles as it fills, its rows moved intact, plain and transposed', () => {
    const planes = [{ name: 'key', dtype: 'float32', width: 2, transposed: true }, { name: 'value', dtype: 'float32', width: 3, transposed: false }] as const;
    const heads = 3;
    const cache = new KvCache(2, heads, planes, 2048);
    cache.reserve(1100); // as the generator does for a 1,036-token prompt and 64 new tokens
    assert.equal(cache.capacity, 1152);
    /** Element of layer l, plane p, head h, position r, column j: a number that says where it belongs. */
    const element = (l: number, p: number, h: number, r: number, j: number): number => l * 1e7 + p * 1e6 + h * 1e5 + r * 10 + j;
    const chunk = (start: number, n: number): Float32Array[][] => [0, 1].map((l) => planes.map((plane, p) => Float32Array.from({ length: heads * n * plane.width }, (_, i) => {
      const h = Math.floor(i / (n * plane.width));
      const within = i % (n * plane.width);
      return plane.transposed ? element(l, p, h, start + (within % n), Math.floor(within / n)) : element(l, p, h, start + Math.floor(within / plane.width), within % plane.width);
    })));
    const read: number[] = [];
    for (let start = 0; start < 1036; start += 32) {
      const n = Math.min(32, 1036 - start);
      cache.layOutFor(n); // what each pass does before it runs (PhiDecoder.forward)
      read.push(cache.slotsRead);
      assert.equal(cache.attentionMask(n).length, cache.slotsRead + n);
      assert.deepEqual(cache.pastInputs()['past_key_values.1.value'].dims, [1, heads, cache.slotsRead, 3]);
      cache.append(chunk(start, n), n);
    }
    // 128 while the first 128 positions fill, then 256, 512, and the whole room past half of it.
    assert.deepEqual([...new Set(read)], [128, 256, 512, 1152]);
    assert.equal(read.filter((slots) => slots < 1152).length, 16, 'the first 512 positions read in a smaller room');
    // Every position of every head, plane and layer is where the layout says, after three moves.
    for (let l = 0; l < 2; l++) {
      planes.forEach((plane, p) => {
        const data = cache.pastInputs()[`past_key_values.${l}.${plane.name}`].data as Float32Array;
        for (let h = 0; h < heads; h++) {
          for (const r of [0, 1, 127, 128, 511, 512, 1035]) {
            for (let j = 0; j < plane.width; j++) {
              const at = plane.transposed ? (h * plane.width + j) * 1152 + r : (h * 1152 + r) * plane.width + j;
              assert.equal(data[at], element(l, p, h, r, j), `layer ${l} ${plane.name} head ${h} position ${r} column ${j}`);
            }
          }
        }
      });
    }
    const mask = cache.attentionMask(1);
    assert.deepEqual([mask.indexOf(0n), mask.lastIndexOf(0n), mask.length], [1036, 1151, 1153]);
    // Decoding after the prompt reads the same room: nothing moves again.
    cache.layOutFor(1);
    assert.equal(cache.slotsRead, 1152);
  });

  test('rewindTo forgets positions; the next append overwrites them', () => {
    const cache = new KvCache(1, 1, floatPlanes(2, 'float32'), 2048);
    cache.append(rows(1, 1, 3, 2, 0), 3);
    cache.rewindTo(1);
    cache.append(rows(1, 1, 1, 2, 50), 1);
    assert.equal(cache.length, 2);
    assert.deepEqual([...cache.buffer(0, 0).subarray(0, 6)], [0, 1, 50, 51, 4, 5]);
    assert.throws(() => cache.rewindTo(3), RangeError);
  });

  test('refuses to grow past the model positions and rejects mis-shaped rows', () => {
    const cache = new KvCache(1, 1, floatPlanes(2, 'float32'), 4);
    assert.throws(() => cache.reserve(5), /exceed the model's 4/);
    assert.throws(() => cache.append([[new Float32Array(3), new Float32Array(3)]], 2), /key rows are not \[1, 1, 2, 2\]/);
  });
});

describe('device choice', () => {
  test('candidates end with the CPU; auto tries the platform GPUs first', () => {
    assert.deepEqual(deviceCandidates('auto', 'linux'), ['cuda', 'cpu']);
    assert.deepEqual(deviceCandidates('webgpu', 'linux'), ['webgpu', 'cpu']);
    assert.deepEqual(deviceCandidates('cpu', 'win32'), ['cpu']);
    // A GPU build (its cache kept on the GPU): auto tries WebGPU too, after the platform's own GPU provider.
    assert.deepEqual(deviceCandidates('auto', 'linux', 'present_settled'), ['cuda', 'webgpu', 'cpu']);
    assert.deepEqual(deviceCandidates('auto', 'darwin', 'present'), ['coreml', 'webgpu', 'cpu']);
    assert.deepEqual(deviceCandidates('cpu', 'linux', 'present_settled'), ['cpu']);
  });

  test('a cache layout that does not suit the device names the model that does', () => {
    assert.match(layoutAdvice('webgpu', 'present_rows') ?? '', /choose the model phi-1_5-int4-gpu/);
    assert.match(layoutAdvice('cpu', 'present_settled') ?? '', /choose the model phi-1_5-int4$/);
    assert.match(layoutAdvice('webgpu', 'present') ?? '', /copies its whole KV cache at every step: .*--kv-outputs present_settled/);
    assert.equal(layoutAdvice('webgpu', 'present_settled'), undefined);
    assert.equal(layoutAdvice('cpu', 'present_rows'), undefined);
  });
});

describe('ResidentKvCache bookkeeping', () => {
  const rows = (n: number): ort.Tensor[][] => [floatPlanes(2, 'float32').map(() => new ort.Tensor('float32', new Float32Array(3 * n * 2), [1, 3, n, 2]))];

  test('starts with one forgotten row; takes present outputs; rewinding forgets without dropping rows', () => {
    const cache = new ResidentKvCache(1, 3, floatPlanes(2, 'float32'), 8);
    assert.deepEqual([cache.length, cache.heldRows, cache.past(0, 0).dims], [0, 1, [1, 3, 1, 2]]);
    cache.replace(rows(5), 5);
    assert.deepEqual([cache.length, cache.heldRows], [5, 5]);
    cache.rewindTo(2);
    assert.deepEqual([cache.length, cache.heldRows], [2, 5]);
    cache.replace(rows(3), 1);
    assert.deepEqual([cache.length, cache.heldRows], [3, 3]);
    assert.throws(() => cache.rewindTo(4), RangeError);
    assert.throws(() => cache.reserve(6), RangeError);
    cache.dispose();
    assert.deepEqual([cache.length, cache.heldRows], [0, 1]);
  });

  test('a settled part: masks of both parts, merges when passes have copied as many rows as it holds, rewinds into it', () => {
    const planes = floatPlanes(2, 'float32');
    const cache = new ResidentKvCache(1, 3, planes, 64, settledPlanes(planes));
    // The settled part in its own layout: keys transposed, [1, heads, width, rows].
    const settled = (n: number): ort.Tensor[][] => [settledPlanes(planes).map((plane) => new ort.Tensor('float32', new Float32Array(3 * n * 2), plane.transposed ? [1, 3, 2, n] : [1, 3, n, 2]))];
    const mask = (newRows: number): string => [...cache.attentionMask(newRows)].join('');
    assert.deepEqual([cache.settledRows, cache.heldRows, mask(2), cache.settledPart(0, 0).dims, cache.settledPart(0, 1).dims], [1, 1, '0011', [1, 3, 2, 1], [1, 3, 1, 2]]);
    cache.replace(rows(4), 4);
    assert.deepEqual([mask(1), cache.wantsMerge()], ['011111', true]);
    assert.deepEqual(cache.mergeCounts(), [0, 4]);
    assert.throws(() => cache.settle(rows(4)), /the merged cache holds 2 positions where 4 were expected/, 'untransposed keys are refused');
    cache.settle(settled(4));
    assert.deepEqual([cache.length, cache.settledRows, cache.settledLength, cache.heldRows, mask(1)], [4, 4, 4, 1, '111101']);
    // Steps of one token copy 1, 2, 3, 4 past rows: the next merge comes once they add up to the cache's length (10 ≥ 8).
    let steps = 0;
    for (; !cache.wantsMerge(); steps++) cache.replace(rows(cache.length - cache.settledLength + 1), 1);
    assert.deepEqual([steps, cache.length, cache.mergeCounts()], [4, 8, [4, 4]]);
    cache.rewindTo(2);
    assert.deepEqual([cache.settledLength, mask(1), cache.mergeCounts()], [2, '110000001', [2, 0]]);
    assert.throws(() => cache.settle(settled(3)), /the merged cache holds 3 positions where 2 were expected/);
    cache.replace(rows(1), 1);
    assert.deepEqual([cache.length, cache.heldRows, mask(0)], [3, 1, '11001']);
    cache.dispose();
    assert.deepEqual([cache.length, cache.settledRows, cache.settledLength, cache.heldRows], [0, 1, 0, 1]);
  });

  test('present outputs that kept forgotten rows are refused with the fix', () => {
    const cache = new ResidentKvCache(1, 3, floatPlanes(2, 'float32'), 8);
    cache.replace(rows(4), 4);
    cache.rewindTo(2);
    assert.throws(() => cache.replace(rows(5), 1), /holds 5 positions where 3 were expected: the graph does not drop masked rows; rebuild the model/);
    assert.equal(cache.length, 2, 'the cache is unchanged');
  });
});

describe('the merge graph', () => {
  test("keeps each part's first rows, settled then past, and transposes the past keys into the settled layout", async () => {
    const [heads, width] = [2, 3];
    const planes = settledPlanes(floatPlanes(width, 'float32'));
    const session = await ort.InferenceSession.create(buildMergeGraph(1, heads, planes, 'float32'));
    // Element (head h, row r, column c) of a part holds base + 100·h + 10·r + c, so every value names its place.
    const values = (base: number, rows: number, transposed: boolean): Float32Array => {
      const out = new Float32Array(heads * rows * width);
      for (let h = 0; h < heads; h++) for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) {
        out[transposed ? (h * width + c) * rows + r : (h * rows + r) * width + c] = base + 100 * h + 10 * r + c;
      }
      return out;
    };
    const part = (base: number, rows: number, transposed: boolean): ort.Tensor =>
      new ort.Tensor('float32', values(base, rows, transposed), transposed ? [1, heads, width, rows] : [1, heads, rows, width]);
    const kept = (n: number): ort.Tensor => new ort.Tensor('int64', BigInt64Array.of(BigInt(n)), [1]);
    const merged = await session.run({
      'settled.0.key': part(1000, 3, true), 'past.0.key': part(2000, 4, false),
      'settled.0.value': part(3000, 3, false), 'past.0.value': part(4000, 4, false),
      settled_kept: kept(2), past_kept: kept(3),
    });
    // Rows 0–1 of settled, then rows 0–2 of past, as 5 rows: row r < 2 is settled row r, else past row r − 2.
    const expected = (settledBase: number, pastBase: number, transposed: boolean): number[] => {
      const out = new Array<number>(heads * 5 * width);
      for (let h = 0; h < heads; h++) for (let r = 0; r < 5; r++) for (let c = 0; c < width; c++) {
        const value = r < 2 ? settledBase + 100 * h + 10 * r + c : pastBase + 100 * h + 10 * (r - 2) + c;
        out[transposed ? (h * width + c) * 5 + r : (h * 5 + r) * width + c] = value;
      }
      return out;
    };
    assert.deepEqual(merged['merged.0.key'].dims, [1, heads, width, 5]);
    assert.deepEqual([...(merged['merged.0.key'].data as Float32Array)], expected(1000, 2000, true));
    assert.deepEqual(merged['merged.0.value'].dims, [1, heads, 5, width]);
    assert.deepEqual([...(merged['merged.0.value'].data as Float32Array)], expected(3000, 4000, false));
    await session.release();
  });
});
