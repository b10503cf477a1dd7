/**
 * The generation engine on the tiny model: greedy output against the float64 reference, and prefix reuse,
 * rewinding, speculation and cancellation against cold, plain runs — token for token.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PHI_TINY } from '../../src/model/config';
import { PhiDecoder } from '../../src/inference/decoder';
import { Generator, type GenerationRequest, type GenerationResult } from '../../src/inference/generator';
import { EXPLAIN_SEQUENCE } from '../../src/protocol';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { referenceGreedy } from '../support/referenceForward';
import { tinyModelDir, tinyWeights } from '../support/tinyModels';
import { openTinyDecoder } from '../support/tinyDecoder';

const EOS = 50256;
const PROMPT = [4299, 6616, 7, 87, 2599, 198, 50284, 7783, 2124, 1635, 2124, 198, 198, 4299, 10651];

let decoder: PhiDecoder;
let tokenizer: PhiTokenizer;

before(async () => ({ decoder, tokenizer } = await openTinyDecoder()));
after(async () => decoder.dispose());

/** A request on a fresh generator: the "cold, plain run" everything else is compared with. */
async function cold(request: GenerationRequest): Promise<GenerationResult> {
  const generator = new Generator(decoder, tokenizer);
  try {
    return await generator.generate({ ...request, speculative: false });
  } finally {
    await generator.dispose();
  }
}

describe('greedy generation', () => {
  test('64 greedy tokens equal the float64 reference, token for token', async () => {
    const weights = tinyWeights('bigram');
    const cached = new Map<string, Float32Array>();
    const lookup = (name: string): Float32Array => {
      let tensor = cached.get(name);
      if (!tensor) cached.set(name, (tensor = weights.tensor(name)));
      return tensor;
    };
    const result = await cold({ prompt: PROMPT, maxNewTokens: 64 });
    let expected = referenceGreedy(PHI_TINY, lookup, PROMPT, 64, tokenizer.vocabSize);
    const eosAt = expected.indexOf(EOS);
    if (eosAt >= 0) expected = expected.slice(0, eosAt);
    assert.deepEqual(result.tokens, expected);
    assert.equal(result.finishReason, eosAt >= 0 ? 'eos' : 'length');
    assert.equal(result.text, tokenizer.decode(expected));
  });

  test('streamed deltas add up to the text; maxNewTokens ends with "length"', async () => {
    const deltas: string[] = [];
    const result = await cold({ prompt: 'def fibonacci(n):\n', maxNewTokens: 12, onText: (d) => deltas.push(d) });
    assert.equal(result.tokens.length, 12);
    assert.equal(result.finishReason, 'length');
    assert.equal(deltas.join(''), result.text);
    assert.equal(result.stats.generatedTokens, 12);
    assert.ok(result.stats.firstTokenMs > 0 && result.stats.prefillMs > 0);
  });

  test('a stop sequence across token boundaries ends generation before it, and nothing past it is streamed', async () => {
    const plain = await cold({ prompt: PROMPT, maxNewTokens: 24 });
    // A stop string that starts inside one token and ends inside a later one.
    const pieces = plain.tokens.map((id) => tokenizer.decode([id]));
    const boundary = pieces[0].length + pieces[1].length;
    const stop = plain.text.slice(boundary - 1, boundary + 2);
    assert.equal(stop.length, 3);
    const expectedText = plain.text.slice(0, plain.text.indexOf(stop));
    const deltas: string[] = [];
    const stopped = await cold({ prompt: PROMPT, maxNewTokens: 24, stop: ['never appears', stop], onText: (d) => deltas.push(d) });
    assert.equal(stopped.finishReason, 'stop');
    assert.equal(stopped.text, expectedText);
    assert.equal(deltas.join(''), expectedText);
  });
});

describe('reusing work between requests', () => {
  test('a prompt sharing a prefix with the cache prefills only the new tokens and generates what a cold run does', async () => {
    const generator = new Generator(decoder, tokenizer);
    const first = [...PROMPT, 318, 257, 1332, 13];
    await generator.generate({ prompt: first, maxNewTokens: 8 });
    const second = [...PROMPT.slice(0, 12), 11, 262];
    const warm = await generator.generate({ prompt: second, maxNewTokens: 16 });
    assert.equal(warm.stats.reusedTokens, 12);
    assert.deepEqual(warm.tokens, (await cold({ prompt: second, maxNewTokens: 16 })).tokens);
    await generator.dispose();
  });

  test('typing one more character re-reads only the last token or two of the file', async () => {
    const generator = new Generator(decoder, tokenizer);
    const file = 'import os\n\n\ndef list_files(root):\n    for entry in os.scandir(root):\n        print(entry.name)\n'.repeat(6);
    const first = await generator.generate({ prompt: file, maxNewTokens: 4 });
    const typed = await generator.generate({ prompt: `${file}d`, maxNewTokens: 4 });
    assert.ok(typed.stats.reusedTokens >= first.stats.promptTokens - 1, `reused ${typed.stats.reusedTokens} of ${typed.stats.promptTokens}`);
    assert.deepEqual(typed.tokens, (await cold({ prompt: `${file}d`, maxNewTokens: 4 })).tokens);
    await generator.dispose();
  });

  test('the whole prompt already cached: the last token is fed again and the output is unchanged', async () => {
    const generator = new Generator(decoder, tokenizer);
    const once = await generator.generate({ prompt: PROMPT, maxNewTokens: 10 });
    const again = await generator.generate({ prompt: PROMPT, maxNewTokens: 10 });
    assert.equal(again.stats.reusedTokens, PROMPT.length - 1);
    assert.deepEqual(again.tokens, once.tokens);
    await generator.dispose();
  });
});

describe('speculative decoding by prompt lookup', () => {
  test('greedy output is identical to plain decoding, and repeated context is accepted', async () => {
    const continuation = (await cold({ prompt: PROMPT, maxNewTokens: 24 })).tokens;
    // Code-editing-like: the context already holds what the model is about to write.
    const repetitive = [...PROMPT, ...continuation, 198, ...PROMPT];
    const plain = await cold({ prompt: repetitive, maxNewTokens: 40 });
    // Drafting that pauses when it loses time would make the draft counts below depend on timing.
    const generator = new Generator(decoder, tokenizer, { adaptiveSpeculation: false });
    const fast = await generator.generate({ prompt: repetitive, maxNewTokens: 40, speculative: true });
    await generator.dispose();
    assert.deepEqual(fast.tokens, plain.tokens);
    assert.equal(fast.text, plain.text);
    // A random model follows the earlier continuation for a few tokens, then context pulls it elsewhere:
    // one draft partly accepted exercises both the accept and the reject path.
    const { acceptedDraftTokens, draftedTokens, longestDraft } = fast.stats;
    assert.ok(acceptedDraftTokens >= 4 && acceptedDraftTokens < draftedTokens, `accepted ${acceptedDraftTokens} of ${draftedTokens}`);
    assert.ok(longestDraft > 2 && longestDraft <= 4, `longest draft ${longestDraft}: drafts start at 2 tokens and grow (to 4 at most) while accepted whole`);
    assert.ok(fast.stats.decodeSteps < plain.stats.decodeSteps);
  });

  test('identical output where the drafts are mostly wrong', async () => {
    const prompt = Array.from({ length: 30 }, (_, i) => [100, 200, 300][i % 3] + i);
    const plain = await cold({ prompt, maxNewTokens: 30 });
    const generator = new Generator(decoder, tokenizer);
    const fast = await generator.generate({ prompt, maxNewTokens: 30, speculative: true });
    await generator.dispose();
    assert.deepEqual(fast.tokens, plain.tokens);
  });

  test('the int4 model with its int8 cache (the shipped path): identical output, several prompts', async (t) => {
    const dir = tinyModelDir('int4', 'bigram');
    const int4 = await PhiDecoder.load(dir);
    const plainRun = async (prompt: number[], maxNewTokens: number): Promise<GenerationResult> => {
      const generator = new Generator(int4, tokenizer);
      const result = await generator.generate({ prompt, maxNewTokens });
      await generator.dispose();
      return result;
    };
    // Code-editing-like prompts (the context holds what the model is about to write), and a mostly-wrong one.
    const prompts: number[][] = [Array.from({ length: 30 }, (_, i) => [100, 200, 300][i % 3] + i)];
    for (const start of [PROMPT.slice(0, 8), PROMPT, PROMPT.slice(4)]) prompts.push([...start, ...(await plainRun(start, 24)).tokens, 198, ...start]);
    let accepted = 0;
    for (const prompt of prompts) {
      const plain = await plainRun(prompt, 48);
      const generator = new Generator(int4, tokenizer, { adaptiveSpeculation: false });
      const fast = await generator.generate({ prompt, maxNewTokens: 48, speculative: true });
      await generator.dispose();
      assert.deepEqual(fast.tokens, plain.tokens);
      accepted += fast.stats.acceptedDraftTokens;
    }
    t.diagnostic(`accepted draft tokens: ${accepted}`);
    assert.ok(accepted > 0, 'no draft was ever accepted: the verify path went untested');
    await int4.dispose();
  });
});

describe("present.* graphs (the cache a GPU keeps: the graph's own outputs, fed back; present_settled with a settled part merged now and then)", () => {
  for (const kvOutputs of ['present', 'present_settled'] as const) test(`${kvOutputs}: one generator through prefix reuse, speculation, cancellation and rewinds: every output equals a cold run`, async () => {
    const present = await PhiDecoder.load(tinyModelDir('fp32', 'bigram', { kvOutputs }));
    const generator = new Generator(present, tokenizer, { adaptiveSpeculation: false });
    const first = await generator.generate({ prompt: [...PROMPT, 318, 257], maxNewTokens: 12 });
    assert.deepEqual(first.tokens, (await cold({ prompt: [...PROMPT, 318, 257], maxNewTokens: 12 })).tokens);

    // Shares 12 tokens with the cache: the rest of it (prompt and generated) is forgotten, then dropped.
    const second = [...PROMPT.slice(0, 12), 11, 262];
    const reused = await generator.generate({ prompt: second, maxNewTokens: 16 });
    assert.equal(reused.stats.reusedTokens, 12);
    assert.deepEqual(reused.tokens, (await cold({ prompt: second, maxNewTokens: 16 })).tokens);

    // Drafts accepted and rejected (rewound within the request), as in the speculation tests above.
    const repetitive = [...PROMPT, ...(await cold({ prompt: PROMPT, maxNewTokens: 24 })).tokens, 198, ...PROMPT];
    const fast = await generator.generate({ prompt: repetitive, maxNewTokens: 40, speculative: true });
    const { acceptedDraftTokens, draftedTokens } = fast.stats;
    assert.ok(acceptedDraftTokens > 0 && acceptedDraftTokens < draftedTokens, `accepted ${acceptedDraftTokens} of ${draftedTokens}: the verify or the rewind path went untested`);
    assert.deepEqual(fast.tokens, (await cold({ prompt: repetitive, maxNewTokens: 40 })).tokens);

    const controller = new AbortController();
    let streamed = 0;
    const cancelled = await generator.generate({ prompt: PROMPT, maxNewTokens: 40, signal: controller.signal, onText: () => ++streamed === 3 && controller.abort() });
    assert.equal(cancelled.finishReason, 'cancelled');
    const after = await generator.generate({ prompt: [...PROMPT, 13], maxNewTokens: 16 });
    assert.deepEqual(after.tokens, (await cold({ prompt: [...PROMPT, 13], maxNewTokens: 16 })).tokens);
    await generator.dispose();
    await present.dispose();
  });
});

describe('cancellation', () => {
  test('cancelling mid-generation stops within one step and the next request matches a cold run', async () => {
    const generator = new Generator(decoder, tokenizer);
    const controller = new AbortController();
    let seen = 0;
    const cancelled = await generator.generate({
      prompt: PROMPT,
      maxNewTokens: 60,
      signal: controller.signal,
      onText: () => {
        if (++seen === 3) controller.abort();
      },
    });
    assert.equal(cancelled.finishReason, 'cancelled');
    assert.ok(cancelled.tokens.length <= 4, `${cancelled.tokens.length} tokens after cancel`);
    const next = [...PROMPT.slice(0, 10), 42];
    const after = await generator.generate({ prompt: next, maxNewTokens: 12 });
    assert.deepEqual(after.tokens, (await cold({ prompt: next, maxNewTokens: 12 })).tokens);
    await generator.dispose();
  });

  test('the latest request wins: the one in flight is cancelled, none queue up', async () => {
    const generator = new Generator(decoder, tokenizer);
    const first = generator.generate({ prompt: PROMPT, maxNewTokens: 200 });
    const second = generator.generate({ prompt: [...PROMPT, 11], maxNewTokens: 200 });
    const third = generator.generate({ prompt: [...PROMPT, 12], maxNewTokens: 10 });
    const [a, b, c] = await Promise.all([first, second, third]);
    assert.equal(a.finishReason, 'cancelled');
    assert.equal(b.finishReason, 'cancelled');
    assert.equal(b.tokens.length, 0, 'a request superseded before it started does no work');
    assert.deepEqual(c.tokens, (await cold({ prompt: [...PROMPT, 12], maxNewTokens: 10 })).tokens);
    await generator.dispose();
  });
});

describe('an explanation (EXPLAIN_SEQUENCE) against completions', () => {
  const EXPLAIN_PROMPT = [...PROMPT, 198, 24361, 25];
  const COMPLETION_PROMPT = [...PROMPT, 11];

  /** Starts an explanation that calls `meanwhile` once it has streamed 3 pieces (mid-generation); resolves with its result and the order results arrived in. */
  async function explainWhile(generator: Generator, meanwhile: () => Array<Promise<GenerationResult>>): Promise<{ explanation: GenerationResult; others: GenerationResult[]; order: string[] }> {
    const order: string[] = [];
    let others: Array<Promise<GenerationResult>> = [];
    let streamed = 0;
    const explanation = generator.generate({
      prompt: EXPLAIN_PROMPT,
      maxNewTokens: 40,
      sequence: EXPLAIN_SEQUENCE, aside: true,
      onText: () => {
        if (++streamed === 3) others = meanwhile().map((p, i) => p.then((r) => (order.push(`other ${i}`), r)));
      },
    }).then((r) => (order.push('explanation'), r));
    const result = await explanation;
    return { explanation: result, others: await Promise.all(others), order };
  }

  test('a completion does not cancel a running explanation: it waits, then both equal cold runs', async () => {
    const expected = await cold({ prompt: EXPLAIN_PROMPT, maxNewTokens: 40 });
    assert.ok(expected.tokens.length >= 10, 'the explanation must still be running when the completion comes');
    const generator = new Generator(decoder, tokenizer);
    const { explanation, others: [completion], order } = await explainWhile(generator, () => [
      generator.generate({ prompt: COMPLETION_PROMPT, maxNewTokens: 10, sequence: 'file:///a.py' }),
    ]);
    assert.equal(explanation.finishReason, expected.finishReason);
    assert.deepEqual(explanation.tokens, expected.tokens);
    assert.deepEqual(completion.tokens, (await cold({ prompt: COMPLETION_PROMPT, maxNewTokens: 10 })).tokens);
    assert.notEqual(completion.finishReason, 'cancelled');
    assert.deepEqual(order, ['explanation', 'other 0']);
    await generator.dispose();
  });

  test('a newer explanation cancels the older one', async () => {
    const generator = new Generator(decoder, tokenizer);
    const newer = [...PROMPT.slice(0, 10), 42];
    const { explanation, others: [replacement] } = await explainWhile(generator, () => [
      generator.generate({ prompt: newer, maxNewTokens: 12, sequence: EXPLAIN_SEQUENCE, aside: true }),
    ]);
    assert.equal(explanation.finishReason, 'cancelled');
    assert.ok(explanation.tokens.length <= 4, `${explanation.tokens.length} tokens after it was replaced`);
    assert.deepEqual(replacement.tokens, (await cold({ prompt: newer, maxNewTokens: 12 })).tokens);
    await generator.dispose();
  });

  test('a completion waiting behind an explanation is superseded by a newer completion, or cancelled by its caller, at once', async () => {
    const generator = new Generator(decoder, tokenizer);
    const caller = new AbortController();
    const { explanation, others: [older, aborted, newest], order } = await explainWhile(generator, () => {
      const waiting = [
        generator.generate({ prompt: COMPLETION_PROMPT, maxNewTokens: 10, sequence: 'file:///a.py' }),
        generator.generate({ prompt: [...PROMPT, 12], maxNewTokens: 10, sequence: 'file:///b.py', signal: caller.signal }),
      ];
      caller.abort();
      return [...waiting, generator.generate({ prompt: [...PROMPT, 13], maxNewTokens: 10, sequence: 'file:///a.py' })];
    });
    assert.deepEqual(explanation.tokens, (await cold({ prompt: EXPLAIN_PROMPT, maxNewTokens: 40 })).tokens);
    for (const superseded of [older, aborted]) {
      assert.equal(superseded.finishReason, 'cancelled');
      assert.equal(superseded.tokens.length, 0, 'a completion cancelled while it waited does no work');
    }
    assert.deepEqual(newest.tokens, (await cold({ prompt: [...PROMPT, 13], maxNewTokens: 10 })).tokens);
    // The cancelled ones are answered while the explanation still runs, not after it.
    assert.deepEqual(order, ['other 0', 'other 1', 'explanation', 'other 2']);
    await generator.dispose();
  });

  test('a prefill does not run while an explanation does', async () => {
    const generator = new Generator(decoder, tokenizer);
    let prefill: Promise<unknown> = Promise.resolve();
    let streamed = 0;
    const explanation = await generator.generate({
      prompt: EXPLAIN_PROMPT, maxNewTokens: 40, sequence: EXPLAIN_SEQUENCE, aside: true,
      onText: () => {
        if (++streamed === 3) prefill = generator.prefill({ prompt: COMPLETION_PROMPT, maxNewTokens: 10, sequence: 'file:///a.py' });
      },
    });
    assert.deepEqual(explanation.tokens, (await cold({ prompt: EXPLAIN_PROMPT, maxNewTokens: 40 })).tokens);
    assert.equal(((await prefill) as { outcome: string }).outcome, 'busy');
    await generator.dispose();
  });
});

describe('long context', () => {
  test('a prompt longer than the model keeps its tail, says so, and still generates', async () => {
    const prompt = Array.from({ length: 2100 }, (_, i) => (i * 31 + 7) % 50000);
    const result = await cold({ prompt, maxNewTokens: 8 });
    assert.equal(result.stats.truncatedTokens, 256);
    assert.equal(result.tokens.length, 8);
    assert.deepEqual(result.tokens, (await cold({ prompt: prompt.slice(256), maxNewTokens: 8 })).tokens);
  });

  test('an explanation keeps its whole prompt when it fits, and answers in the positions left', async () => {
    const prompt = Array.from({ length: 2040 }, (_, i) => (i * 31 + 7) % 50000);
    const generator = new Generator(decoder, tokenizer);
    try {
      const result = await generator.generate({ prompt, maxNewTokens: 64, sequence: EXPLAIN_SEQUENCE, aside: true });
      assert.equal(result.stats.truncatedTokens, 0);
      assert.equal(result.stats.promptTokens, 2040);
      assert.equal(result.finishReason, 'length');
      assert.equal(result.tokens.length, 8, 'the 8 positions the model has left');
      assert.deepEqual(result.tokens, (await cold({ prompt, maxNewTokens: 8 })).tokens);
    } finally {
      await generator.dispose();
    }
  });
});
