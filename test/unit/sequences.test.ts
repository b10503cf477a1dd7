/**
 * A KV cache per sequence and background prefill, on the tiny fp32 model: switching sequences reuses each one's
 * cache, the memory budget evicts the least recently used (never the file being edited for Explain Selection),
 * prefill warms a sequence for the request that follows and gives way to any request — every output token for
 * token against a cold run on a fresh generator.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PHI_1_5 } from '../../src/model/config';
import { PhiDecoder } from '../../src/inference/decoder';
import { DEFAULT_PREFILL_CHUNK, Generator, type GenerationRequest, type GenerationResult } from '../../src/inference/generator';
import { bytesPerPosition, int8Planes, KvCache } from '../../src/inference/kvCache';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { tinyModelDir } from '../support/tinyModels';
import { openTinyDecoder } from '../support/tinyDecoder';

/** Three prompts with no common first token (so no sequence starts from another's prefix). */
const A = [4299, 6616, 7, 87, 2599, 198, 50284, 7783, 2124, 1635, 2124, 198, 198, 4299, 10651];
const B = [11748, 28686, 198, 6738, 19720, 1330, 7343, 198, 198, 4871, 10755, 25, 198, 50284, 4299];
const C = [2, 15069, 3303, 287, 262, 4600, 1008, 198, 9288, 796, 685, 16, 11, 362, 11];

let decoder: PhiDecoder;
let tokenizer: PhiTokenizer;

before(async () => ({ decoder, tokenizer } = await openTinyDecoder()));
after(async () => decoder.dispose());

async function cold(request: GenerationRequest, model: PhiDecoder = decoder): Promise<GenerationResult> {
  const generator = new Generator(model, tokenizer);
  try {
    return await generator.generate({ ...request, sequence: undefined, aside: undefined, speculative: false });
  } finally {
    await generator.dispose();
  }
}

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > 10_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('a KV cache per sequence', () => {
  test('switching between two sequences reuses each one\'s cache and generates what a cold run does', async () => {
    const generator = new Generator(decoder, tokenizer);
    await generator.generate({ prompt: A, maxNewTokens: 8, sequence: 'file:///a.py' });
    await generator.generate({ prompt: B, maxNewTokens: 8, sequence: 'file:///b.py' });

    const a2 = [...A.slice(0, 12), 11, 262];
    const backToA = await generator.generate({ prompt: a2, maxNewTokens: 16, sequence: 'file:///a.py' });
    assert.equal(backToA.stats.reusedTokens, 12);
    assert.equal(backToA.stats.copiedTokens, 0);
    assert.deepEqual(backToA.tokens, (await cold({ prompt: a2, maxNewTokens: 16 })).tokens);

    const b2 = [...B, 13, 198];
    const cachedB = [...generator.cachedTokens('file:///b.py')];
    const backToB = await generator.generate({ prompt: b2, maxNewTokens: 16, sequence: 'file:///b.py' });
    assert.ok(commonPrefixLength(cachedB, b2) >= B.length);
    assert.equal(backToB.stats.reusedTokens, commonPrefixLength(cachedB, b2));
    assert.deepEqual(backToB.tokens, (await cold({ prompt: b2, maxNewTokens: 16 })).tokens);
    assert.deepEqual(generator.sequenceNames, ['file:///a.py', 'file:///b.py']);
    await generator.dispose();
    assert.equal(generator.cacheBytes, 0);
  });

  test('a document keeps a window per place the user types: back at the end after typing in the middle re-reads nothing', async () => {
    const generator = new Generator(decoder, tokenizer);
    // The prompt at the end of a file and the one in its middle start at different lines: they share only the header.
    const header = [11748, 28686, 198, 198];
    const end = [...header, ...A, ...B];
    const middle = [...header, ...C, ...A];
    await generator.generate({ prompt: end, maxNewTokens: 8, sequence: 'file:///f.py' });
    const inMiddle = await generator.generate({ prompt: middle, maxNewTokens: 8, sequence: 'file:///f.py' });
    assert.equal(inMiddle.stats.reusedTokens, header.length, 'the middle starts from the header the end window holds');
    assert.equal(inMiddle.stats.copiedTokens, header.length);
    assert.deepEqual(generator.sequenceNames, ['file:///f.py', 'file:///f.py']);

    const endTyped = [...end, 13, 198];
    const backAtEnd = await generator.generate({ prompt: endTyped, maxNewTokens: 16, sequence: 'file:///f.py' });
    assert.equal(backAtEnd.stats.reusedTokens, end.length, 'the end window was kept while the user typed in the middle');
    assert.deepEqual(backAtEnd.tokens, (await cold({ prompt: endTyped, maxNewTokens: 16 })).tokens);
    // An edit inside a window (most of it still shared) rewinds that window rather than starting another.
    const edited = [...end.slice(0, end.length - 3), 11, 262];
    const afterEdit = await generator.generate({ prompt: edited, maxNewTokens: 8, sequence: 'file:///f.py' });
    assert.equal(afterEdit.stats.reusedTokens, end.length - 3);
    assert.equal(generator.sequenceNames.length, 2);
    assert.deepEqual(afterEdit.tokens, (await cold({ prompt: edited, maxNewTokens: 8 })).tokens);
    await generator.dispose();
  });

  test('a new sequence starts from the longest prefix another one shares (a file with the same header), copied, not recomputed', async () => {
    const generator = new Generator(decoder, tokenizer);
    const header = [11748, 28686, 198, 11748, 25064, 198, 198];
    await generator.generate({ prompt: [...header, ...A], maxNewTokens: 4, sequence: 'one' });
    await generator.generate({ prompt: [...header.slice(0, 3), ...C], maxNewTokens: 4, sequence: 'two' });
    const prompt = [...header, ...B];
    const three = await generator.generate({ prompt, maxNewTokens: 16, sequence: 'three' });
    assert.equal(three.stats.copiedTokens, header.length);
    assert.equal(three.stats.reusedTokens, header.length);
    assert.deepEqual(three.tokens, (await cold({ prompt, maxNewTokens: 16 })).tokens);
    // The donor is intact.
    const one = await generator.generate({ prompt: [...header, ...A], maxNewTokens: 4, sequence: 'one' });
    assert.equal(one.stats.reusedTokens, header.length + A.length - 1);
    await generator.dispose();
  });

  test('the memory budget evicts the least recently used sequence: going back to it reuses nothing', async () => {
    const generator = new Generator(decoder, tokenizer);
    await generator.generate({ prompt: A, maxNewTokens: 8, sequence: 'a' });
    const oneSequence = generator.cacheBytes;
    assert.ok(oneSequence > 0);
    generator.cacheBudget = 2 * oneSequence;
    await generator.generate({ prompt: B, maxNewTokens: 8, sequence: 'b' });
    assert.deepEqual(generator.sequenceNames, ['a', 'b']);
    await generator.generate({ prompt: C, maxNewTokens: 8, sequence: 'c' });
    assert.deepEqual(generator.sequenceNames, ['b', 'c']);
    assert.ok(generator.cacheBytes <= generator.cacheBudget, `${generator.cacheBytes} bytes over a budget of ${generator.cacheBudget}`);

    const backToA = await generator.generate({ prompt: A, maxNewTokens: 8, sequence: 'a' });
    assert.equal(backToA.stats.reusedTokens, 0);
    assert.deepEqual(backToA.tokens, (await cold({ prompt: A, maxNewTokens: 8 })).tokens);
    assert.deepEqual(generator.sequenceNames, ['c', 'a']);
    const backToC = await generator.generate({ prompt: C, maxNewTokens: 8, sequence: 'c' });
    assert.equal(backToC.stats.reusedTokens, C.length - 1, 'c was used after b, so b went first');

    // A budget too small for even one: the sequence in use is kept, every other goes (now, when it is lowered).
    generator.cacheBudget = 1;
    assert.deepEqual(generator.sequenceNames, ['c']);
    const again = await generator.generate({ prompt: C, maxNewTokens: 8, sequence: 'c' });
    assert.equal(again.stats.reusedTokens, C.length - 1);
    await generator.generate({ prompt: B, maxNewTokens: 8, sequence: 'b' });
    assert.deepEqual(generator.sequenceNames, ['b']);
    await generator.dispose();
  });

  test('Explain Selection (an aside) never evicts the most recently used completion sequence', async () => {
    const generator = new Generator(decoder, tokenizer);
    await generator.generate({ prompt: A, maxNewTokens: 8, sequence: 'older' });
    await generator.generate({ prompt: B, maxNewTokens: 8, sequence: 'editing' });
    // Room for one sequence: a completion elsewhere would evict 'editing' (see below); an explanation does not.
    generator.cacheBudget = generator.cacheBytes / 2;
    assert.deepEqual(generator.sequenceNames, ['editing']);
    const explained = await generator.generate({ prompt: C, maxNewTokens: 8, sequence: 'explain', aside: true });
    assert.deepEqual(explained.tokens, (await cold({ prompt: C, maxNewTokens: 8 })).tokens);
    assert.deepEqual(generator.sequenceNames, ['editing', 'explain']);
    const typed = [...B, 13];
    const back = await generator.generate({ prompt: typed, maxNewTokens: 8, sequence: 'editing' });
    assert.ok(back.stats.reusedTokens >= B.length, `reused ${back.stats.reusedTokens}`);
    assert.deepEqual(back.tokens, (await cold({ prompt: typed, maxNewTokens: 8 })).tokens);
    assert.deepEqual(generator.sequenceNames, ['editing'], 'a completion request is not an aside: it evicts the explanation');

    // A second explanation keeps 'editing' too; a completion in another file does evict it.
    await generator.generate({ prompt: C, maxNewTokens: 8, sequence: 'explain', aside: true });
    assert.deepEqual(generator.sequenceNames, ['editing', 'explain']);
    await generator.generate({ prompt: A, maxNewTokens: 8, sequence: 'other' });
    assert.deepEqual(generator.sequenceNames, ['other']);
    await generator.dispose();
  });

  test('present_settled graphs (the GPU cache): sequences switch, evict and match cold runs too', async () => {
    const present = await PhiDecoder.load(tinyModelDir('fp32', 'bigram', { kvOutputs: 'present_settled' }));
    const generator = new Generator(present, tokenizer);
    await generator.generate({ prompt: A, maxNewTokens: 8, sequence: 'a' });
    await generator.generate({ prompt: B, maxNewTokens: 8, sequence: 'b' });
    assert.ok(generator.cacheBytes > 0);
    const a2 = [...A.slice(0, 12), 11, 262];
    const back = await generator.generate({ prompt: a2, maxNewTokens: 16, sequence: 'a' });
    assert.equal(back.stats.reusedTokens, 12);
    assert.deepEqual(back.tokens, (await cold({ prompt: a2, maxNewTokens: 16 })).tokens);
    generator.cacheBudget = 1;
    assert.deepEqual(generator.sequenceNames, ['a']);
    const b = await generator.generate({ prompt: B, maxNewTokens: 8, sequence: 'b' });
    assert.equal(b.stats.reusedTokens, 0);
    assert.deepEqual(b.tokens, (await cold({ prompt: B, maxNewTokens: 8 })).tokens);
    await generator.dispose();
    await present.dispose();
  });
});

describe('background prefill', () => {
  const FILE = 'import os\n\n\ndef list_files(root):\n    for entry in os.scandir(root):\n        print(entry.name)\n'.repeat(3);

  test('prefill, then generate on the same sequence: the prefilled rows are reused and the output is a cold run\'s', async () => {
    const generator = new Generator(decoder, tokenizer);
    const tokens = tokenizer.encode(FILE).length;
    const prefilled = await generator.prefill({ prompt: FILE, maxNewTokens: 16, sequence: 'file:///f.py' });
    assert.equal(prefilled.outcome, 'done');
    assert.deepEqual(prefilled.stats, { ...prefilled.stats, promptTokens: tokens, reusedTokens: 0, prefilledTokens: tokens - 1 });
    assert.equal(generator.cachedTokens('file:///f.py').length, tokens - 1);
    const result = await generator.generate({ prompt: FILE, maxNewTokens: 16, sequence: 'file:///f.py' });
    assert.equal(result.stats.reusedTokens, tokens - 1);
    assert.deepEqual(result.tokens, (await cold({ prompt: FILE, maxNewTokens: 16 })).tokens);

    // Warming the same prompt again leaves the cache alone: it still holds the completion generated after it.
    const cached = [...generator.cachedTokens('file:///f.py')];
    assert.ok(cached.length > tokens);
    const again = await generator.prefill({ prompt: FILE, maxNewTokens: 16, sequence: 'file:///f.py' });
    assert.equal(again.outcome, 'done');
    assert.equal(again.stats.prefilledTokens, 0);
    assert.deepEqual(generator.cachedTokens('file:///f.py'), cached);
    await generator.dispose();
  });

  test('a generate arriving during a long prefill cancels it at the next chunk and reuses what was prefilled', async () => {
    const generator = new Generator(decoder, tokenizer);
    const prompt = Array.from({ length: 1500 }, (_, i) => (i * 31 + 7) % 50000);
    const prefill = generator.prefill({ prompt, maxNewTokens: 8, sequence: 's' });
    await waitUntil(() => generator.cachedTokens('s').length >= 2 * DEFAULT_PREFILL_CHUNK, 'two prefilled chunks');
    const cachedWhenAsked = generator.cachedTokens('s').length;
    const generation = generator.generate({ prompt, maxNewTokens: 8, sequence: 's' });
    const [prefilled, generated] = await Promise.all([prefill, generation]);
    assert.equal(prefilled.outcome, 'cancelled');
    // Promptly: at most the chunk in flight when the generate came.
    assert.ok(prefilled.stats.prefilledTokens <= cachedWhenAsked + DEFAULT_PREFILL_CHUNK, `prefilled ${prefilled.stats.prefilledTokens} after ${cachedWhenAsked}`);
    assert.ok(prefilled.stats.prefilledTokens < prompt.length - 1);
    assert.equal(generated.stats.reusedTokens, prefilled.stats.prefilledTokens);
    assert.deepEqual(generated.tokens, (await cold({ prompt, maxNewTokens: 8 })).tokens);
    await generator.dispose();
  });

  test('a prefill never runs while a generation is in flight or queued, and never cancels one', async () => {
    const generator = new Generator(decoder, tokenizer);
    const generation = generator.generate({ prompt: A, maxNewTokens: 40, sequence: 'g' });
    const during = await generator.prefill({ prompt: B, maxNewTokens: 8, sequence: 'q' });
    assert.equal(during.outcome, 'busy');
    assert.equal(during.stats.prefilledTokens, 0);
    const generated = await generation;
    assert.equal(generated.finishReason, 'length');
    assert.deepEqual(generated.tokens, (await cold({ prompt: A, maxNewTokens: 40 })).tokens);
    assert.deepEqual(generator.cachedTokens('q'), []);
    assert.deepEqual(generator.sequenceNames, ['g']);
    // Once idle, it runs.
    assert.equal((await generator.prefill({ prompt: B, maxNewTokens: 8, sequence: 'q' })).outcome, 'done');
    assert.equal(generator.cachedTokens('q').length, B.length - 1);
    await generator.dispose();
  });

  test('a newer prefill replaces an older one still queued; the latest is done', async () => {
    const generator = new Generator(decoder, tokenizer);
    const first = generator.prefill({ prompt: A, maxNewTokens: 8, sequence: 'a' });
    const second = generator.prefill({ prompt: B, maxNewTokens: 8, sequence: 'b' });
    const third = generator.prefill({ prompt: C, maxNewTokens: 8, sequence: 'c' });
    const [a, b, c] = await Promise.all([first, second, third]);
    assert.deepEqual([a.outcome, b.outcome, c.outcome], ['cancelled', 'cancelled', 'done']);
    assert.equal(a.stats.prefilledTokens + b.stats.prefilledTokens, 0);
    assert.equal(c.stats.prefilledTokens, C.length - 1);
    const result = await generator.generate({ prompt: C, maxNewTokens: 12, sequence: 'c' });
    assert.equal(result.stats.reusedTokens, C.length - 1);
    assert.deepEqual(result.tokens, (await cold({ prompt: C, maxNewTokens: 12 })).tokens);
    await generator.dispose();
  });
});

test('memory accounting: the full-size phi-1.5 int8 cache takes 104,448 bytes a position; a 1,024-token prompt\'s cache 1,152 positions', () => {
  const planes = int8Planes(PHI_1_5.hidden_size / PHI_1_5.num_attention_heads);
  assert.equal(bytesPerPosition(PHI_1_5.num_hidden_layers, PHI_1_5.num_attention_heads, planes), 104_448);
  const cache = new KvCache(PHI_1_5.num_hidden_layers, PHI_1_5.num_attention_heads, planes, PHI_1_5.max_position_embeddings);
  assert.equal(cache.bytes, 0);
  // 1,024 prompt tokens + 64 completion tokens + a 4-token draft, in steps of 128 positions.
  assert.equal(cache.projectedBytes(1024 + 64 + 4), 1152 * 104_448);
  assert.equal(cache.projectedBytes(4000), 2048 * 104_448, 'never more than the model\'s positions');
});
