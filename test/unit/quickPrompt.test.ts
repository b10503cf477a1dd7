/**
 * A quick first answer where the model has not read the text yet: a request whose prompt would read more uncached
 * tokens than its quick prompt's readLimit generates from the quick prompt (exactly what a cold run of that prompt
 * generates, on the tiny fp32 model); once the full prompt is cached (warmed), the same request uses it. The quick
 * prompt's window does not displace the full one, and typing on extends it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PhiDecoder } from '../../src/inference/decoder';
import { Generator, type GenerationRequest, type GenerationResult } from '../../src/inference/generator';
import { PrefillRate } from '../../src/completion/prefillRate';
import { QUICK_GROWTH, QuickPromptStarts } from '../../src/completion/quickPrompt';
import { CompletionPrompts, promptText } from '../../src/completion/requestPrompts';
import { DEFAULT_SETTINGS } from '../../src/settings/settings';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { TextDocumentModel } from '../support/textDocument';
import { openScriptedDecoder, openTinyDecoder } from '../support/tinyDecoder';

/** A module's text before the cursor, and the last lines of it: the quick prompt for the same place. */
const QUICK = 'def area(width, height):\n    """Return the area."""\n    return width * height\n\n\ndef perimeter(width, height):\n    return';
const FULL = [
  'import math',
  'import os',
  '',
  'RADIUS = 3',
  '',
  'def circle(radius):',
  '    """The area of a circle."""',
  '    return math.pi * radius ** 2',
  '',
  'def square(side):',
  '    return side * side',
  '',
  'class Shape:',
  '    def __init__(self, name):',
  '        self.name = name',
  '',
  '    def describe(self):',
  '        return f"{self.name} at {os.getcwd()}"',
  '',
  '',
].join('\n') + QUICK;
const SEQUENCE = 'file:///shapes.py';

let decoder: PhiDecoder;
let tokenizer: PhiTokenizer;

before(async () => ({ decoder, tokenizer } = await openTinyDecoder()));
after(async () => decoder.dispose());

async function cold(prompt: string): Promise<GenerationResult> {
  const generator = new Generator(decoder, tokenizer);
  try {
    return await generator.generate({ prompt, maxNewTokens: 12 });
  } finally {
    await generator.dispose();
  }
}

function request(prompt: string, quickPrompt: string, readLimit: number): GenerationRequest {
  return { prompt, maxNewTokens: 12, sequence: SEQUENCE, quick: { prompt: quickPrompt, readLimit } };
}

describe('the quick prompt', () => {
  test('is generated from when the full prompt would read more uncached tokens than its limit', async () => {
    const quickTokens = tokenizer.encode(QUICK).length;
    const fullTokens = tokenizer.encode(FULL).length;
    assert.ok(fullTokens > 2 * quickTokens, `the full prompt (${fullTokens} tokens) is much longer than the quick one (${quickTokens})`);
    const generator = new Generator(decoder, tokenizer);
    try {
      const answer = await generator.generate(request(FULL, QUICK, quickTokens));
      assert.equal(answer.stats.quick, true);
      assert.equal(answer.stats.promptTokens, quickTokens);
      assert.equal(answer.stats.reusedTokens, 0);
      assert.deepEqual(answer.tokens, (await cold(QUICK)).tokens);
    } finally {
      await generator.dispose();
    }
  });

  test('is not used when the limit covers the full prompt, or once the full prompt is warmed', async () => {
    const fullTokens = tokenizer.encode(FULL).length;
    const expected = (await cold(FULL)).tokens;
    const generator = new Generator(decoder, tokenizer);
    try {
      const withinLimit = await generator.generate(request(FULL, QUICK, fullTokens));
      assert.equal(withinLimit.stats.quick, false);
      assert.deepEqual(withinLimit.tokens, expected);
    } finally {
      await generator.dispose();
    }

    const warmed = new Generator(decoder, tokenizer);
    try {
      await warmed.prefill({ sequence: SEQUENCE, prompt: FULL, maxNewTokens: 12 });
      const answer = await warmed.generate(request(FULL, QUICK, 8));
      assert.equal(answer.stats.quick, false);
      assert.equal(answer.stats.reusedTokens, fullTokens - 1);
      assert.deepEqual(answer.tokens, expected);
    } finally {
      await warmed.dispose();
    }
  });

  test('gets a window of its own: typing on extends it, and warming the full prompt afterwards is used whole', async () => {
    const quickTokens = tokenizer.encode(QUICK).length;
    const generator = new Generator(decoder, tokenizer);
    try {
      await generator.generate(request(FULL, QUICK, quickTokens));
      // The user types on: the full prompt is still unread, the quick one's window is extended.
      const typed = ' 2 * (width';
      const next = await generator.generate(request(FULL + typed, QUICK + typed, quickTokens));
      assert.equal(next.stats.quick, true);
      assert.ok(next.stats.reusedTokens >= quickTokens - 1, `reused ${next.stats.reusedTokens} of the quick window's ${quickTokens} tokens`);
      assert.deepEqual(next.tokens, (await cold(QUICK + typed)).tokens);

      // The cursor rests: the warmer reads the whole window, in a window of its own; the next request uses it.
      await generator.prefill({ sequence: SEQUENCE, prompt: FULL + typed, maxNewTokens: 12 });
      const whole = await generator.generate(request(FULL + typed, QUICK + typed, quickTokens));
      assert.equal(whole.stats.quick, false);
      assert.equal(whole.stats.reusedTokens, tokenizer.encode(FULL + typed).length - 1);
      assert.deepEqual(whole.tokens, (await cold(FULL + typed)).tokens);
      assert.equal(generator.sequenceNames.filter((name) => name === SEQUENCE).length, 2, 'the quick window and the whole one');
    } finally {
      await generator.dispose();
    }
  });
});

describe('an answer from the quick prompt', () => {
  /** What the scripted model writes after `    return`: a first line, then a second. */
  const ANSWER = ' width * height\n    print(area)';
  let scripted: PhiDecoder;
  let scriptedTokenizer: PhiTokenizer;
  before(async () => ({ decoder: scripted, tokenizer: scriptedTokenizer } = await openScriptedDecoder('scripted-two-lines', QUICK, ANSWER)));
  after(async () => scripted.dispose());

  test('ends with its first line (so the window is read next); once the window is read, the answer runs whole', async () => {
    const generator = new Generator(scripted, scriptedTokenizer);
    const ask = (maxQuickTokens: number): GenerationRequest => ({
      prompt: FULL, maxNewTokens: 64, sequence: SEQUENCE, quick: { prompt: QUICK, readLimit: 8, maxNewTokens: maxQuickTokens },
    });
    try {
      const quick = await generator.generate(ask(32));
      assert.equal(quick.stats.quick, true);
      assert.equal(quick.finishReason, 'line');
      assert.ok(quick.text.startsWith(' width * height\n') && !quick.text.includes('print'), JSON.stringify(quick.text));

      const capped = await generator.generate(ask(2));
      assert.equal(capped.finishReason, 'length');
      assert.equal(capped.tokens.length, 2, 'at most the quick answer\'s tokens');

      const warmed = await generator.prefill({ prompt: FULL, maxNewTokens: 64, sequence: SEQUENCE });
      assert.equal(warmed.outcome, 'done');
      const whole = await generator.generate(ask(32));
      assert.equal(whole.stats.quick, false);
      assert.equal(whole.text, ANSWER, 'from the whole window: every line, up to the request\'s own limit');
      assert.equal(whole.finishReason, 'eos');
    } finally {
      await generator.dispose();
    }
  });
});

describe('warming for a request with a quick prompt', () => {
  const warm = (generator: Generator, prompt: string, quickPrompt: string, readLimit: number, nextOnly: boolean) =>
    generator.prefill({ sequence: SEQUENCE, prompt, maxNewTokens: 12, quick: { prompt: quickPrompt, readLimit }, nextOnly });

  test('while typing reads what the request would read (the quick window), so the request feeds one token; at rest the whole window too', async () => {
    const quickTokens = tokenizer.encode(QUICK).length;
    const generator = new Generator(decoder, tokenizer);
    try {
      const first = await warm(generator, FULL, QUICK, quickTokens, true);
      assert.equal(first.outcome, 'done');
      assert.equal(first.stats.quick, true);
      assert.equal(first.stats.prefilledTokens, quickTokens - 1, 'the quick prompt, but its last token');
      assert.equal(generator.sequenceNames.length, 1, 'the full prompt is not read while typing');
      const answer = await generator.generate(request(FULL, QUICK, quickTokens));
      assert.equal(answer.stats.quick, true);
      assert.equal(answer.stats.reusedTokens, quickTokens - 1);
      assert.deepEqual(answer.tokens, (await cold(QUICK)).tokens);

      // Typing on: the warm-up reads what was typed into the quick window, and the request only its last token.
      const typed = ' 2 * (width + height)';
      const typedQuick = tokenizer.encode(QUICK + typed).length;
      const reading = await warm(generator, FULL + typed, QUICK + typed, quickTokens, true);
      assert.equal(reading.stats.quick, true);
      assert.ok(reading.stats.prefilledTokens <= typedQuick - quickTokens + 1, `read ${reading.stats.prefilledTokens} tokens for ${typedQuick - quickTokens} typed`);
      const next = await generator.generate(request(FULL + typed, QUICK + typed, quickTokens));
      assert.equal(next.stats.quick, true);
      assert.equal(next.stats.reusedTokens, typedQuick - 1);
      assert.deepEqual(next.tokens, (await cold(QUICK + typed)).tokens);

      // The cursor rests: the quick window is current, then the whole window is read; the request uses it.
      const whole = await warm(generator, FULL + typed, QUICK + typed, quickTokens, false);
      assert.equal(whole.outcome, 'done');
      const fullTokens = tokenizer.encode(FULL + typed).length;
      assert.equal(whole.stats.promptTokens, fullTokens);
      assert.equal(whole.stats.reusedTokens + whole.stats.prefilledTokens, fullTokens - 1, 'the whole prompt is cached, but its last token');
      const full = await generator.generate(request(FULL + typed, QUICK + typed, quickTokens));
      assert.equal(full.stats.quick, false);
      assert.equal(full.stats.reusedTokens, fullTokens - 1);
      assert.deepEqual(full.tokens, (await cold(FULL + typed)).tokens);
    } finally {
      await generator.dispose();
    }
  });

  test('a warm-up gives way to a request that came during a pass before its next pass, and the request reuses what it read', async () => {
    // A request that arrives while a pass blocks the thread (as ONNX Runtime's do) is handled when the pass ends:
    // here a timer that falls due during the third pass, which then blocks for 20 ms.
    let passes = 0;
    let requested: Promise<GenerationResult> | undefined;
    const fullTokens = tokenizer.encode(FULL).length;
    const counting = Object.create(decoder) as PhiDecoder;
    counting.forward = async (...args) => {
      const logits = await decoder.forward(...args);
      if (++passes === 3) {
        setTimeout(() => {
          requested = generator.generate(request(FULL, QUICK, fullTokens));
        }, 0);
        const until = Date.now() + 20;
        while (Date.now() < until); // the pass goes on, blocking
      }
      return logits;
    };
    const generator = new Generator(counting, tokenizer, { warmUpChunk: 4 });
    try {
      const warmed = await warm(generator, FULL, QUICK, fullTokens, false);
      assert.equal(warmed.outcome, 'cancelled');
      assert.equal(warmed.stats.prefilledTokens, 4 + 8 + 16, 'passes of 4, 8 and 16 tokens, and none after the one the request came during');
      const answer = await requested!;
      assert.equal(answer.stats.quick, false);
      assert.equal(answer.stats.reusedTokens, warmed.stats.prefilledTokens, 'the request reads on from where the warm-up stopped');
      assert.deepEqual(answer.tokens, (await cold(FULL)).tokens);
    } finally {
      await generator.dispose();
    }
  });
});

describe('the prefill rate', () => {
  test('sizes reads by what was measured, ignoring reads too short to say', () => {
    const rate = new PrefillRate();
    assert.equal(rate.tokensWithin(800), 80, 'before any read: a 2-core CPU\'s ~100 tokens a second');
    rate.record(16, 1);
    assert.equal(rate.tokensWithin(800), 80);
    rate.record(1000, 1000);
    assert.equal(rate.tokensWithin(800), 800);
    rate.record(100, 1000);
    assert.equal(rate.tokensWithin(1000), 730, 'a running average: 0.7 × 1 + 0.3 × 0.1 tokens a millisecond');
    rate.forget();
    assert.equal(rate.tokensWithin(800), 80, 'another backend: back to the first guess until it is measured');
  });

  test('a completion request counts when it read its prompt, not when it was cancelled (maybe before reading it)', () => {
    const rate = new PrefillRate();
    const read = { promptTokens: 900, truncatedTokens: 100, reusedTokens: 300, prefillMs: 5000 };
    rate.recordRequest('cancelled', { ...read, prefillMs: 1 });
    assert.equal(rate.tokensWithin(1000), 100, 'unchanged by a request cancelled at once');
    rate.recordRequest('length', read);
    assert.equal(rate.tokensWithin(1000), 100, '500 tokens in 5 s');
    rate.recordRequest('stop', { ...read, prefillMs: 1000 });
    assert.equal(rate.tokensWithin(1000), 219, 'a running average: 0.7 × 0.1 + 0.3 × 0.5 tokens a millisecond, rounded down');
  });
});

describe('where a quick prompt starts', () => {
  const lines = Array.from({ length: 40 }, (_, i) => `value_${i} = compute(${i})  # line ${i}`);
  const text = lines.join('\n') + '\n';
  /** The context builder's quick prompt: the last `n` whole lines before the cursor (a stand-in with the same shape). */
  const lastLines = (prefix: string, n: number) => (): string => {
    const starts = [...prefix.matchAll(/\n/g)].map((m) => m.index + 1);
    return prefix.slice(starts.at(-n - 1) ?? 0);
  };

  /** All of the text before the cursor, as completions read it from a small file. */
  const whole = (before: string): { before: string; beforeStart: number } => ({ before, beforeStart: 0 });

  test('typing on extends the quick window from the same start, until it has grown QUICK_GROWTH budgets', () => {
    const starts = new QuickPromptStarts();
    const budget = 3 * (lines[0].length + 1);
    const first = starts.promptFor('a.py', whole(text), budget, lastLines(text, 3));
    assert.equal(first, lines.slice(37).join('\n') + '\n');
    let prefix = text;
    let grown = 0;
    for (let i = 0; i < 40; i++) {
      prefix += `more_${i} = ${i}\n`;
      const prompt = starts.promptFor('a.py', whole(prefix), budget, lastLines(prefix, 3));
      if (!prompt.startsWith(first)) break;
      assert.equal(prompt, prefix.slice(text.length - first.length), 'the kept start, through what was typed');
      grown = prompt.length;
    }
    assert.ok(grown > 3 * budget && grown <= QUICK_GROWTH * budget, `grew to ${grown} characters (budget ${budget})`);
  });

  test('an edit above the start, a header in front, or another document starts afresh', () => {
    const starts = new QuickPromptStarts();
    const budget = 200;
    starts.promptFor('a.py', whole(text), budget, lastLines(text, 3));
    // A line inserted above: the kept offset now falls on other text.
    const edited = 'import os\n' + text + 'x = 1\n';
    assert.equal(starts.promptFor('a.py', whole(edited), budget, lastLines(edited, 2)), lines.slice(39).join('\n') + '\nx = 1\n');
    // A prompt that is not a tail of the text (the builder put the header in front) is used but not kept.
    const withHeader = 'import os\n\n' + lines[39] + '\n';
    assert.equal(starts.promptFor('b.py', whole(text), budget, () => withHeader), withHeader);
    assert.equal(starts.promptFor('b.py', whole(text + 'y = 2\n'), budget, () => 'fresh'), 'fresh');
  });

  test('in a CRLF file: the model gets LF text, and typing on keeps the quick window\'s start as in an LF file', () => {
    const prompts = { lf: new CompletionPrompts(new PrefillRate()), crlf: new CompletionPrompts(new PrefillRate()) };
    const quickFor = (eol: 'lf' | 'crlf', body: string): string => {
      const document = new TextDocumentModel(eol === 'crlf' ? body.replace(/\n/g, '\r\n') : body, 'python', '/work/a.py');
      const quick = prompts[eol].at(promptText(document, document.end, DEFAULT_SETTINGS), 'file:///work/a.py', DEFAULT_SETTINGS).quick;
      assert.ok(quick, 'a quick prompt (the window is much larger than what is read in QUICK_READ_MS)');
      return quick.prompt;
    };
    let body = Array.from({ length: 300 }, (_, i) => `value_${i} = compute(${i}, "${'x'.repeat(i % 17)}")`).join('\n') + '\n';
    const first = quickFor('crlf', body);
    assert.equal(first, quickFor('lf', body));
    for (let i = 0; i < 5; i++) {
      body += `more_${i} = ${i}\n`;
      const quick = quickFor('crlf', body);
      assert.ok(!quick.includes('\r'), 'no CR reaches the model');
      assert.equal(quick, quickFor('lf', body), `line ${i}: the same prompt as the LF file's`);
      assert.ok(quick.startsWith(first), `line ${i}: the start is kept`);
    }
  });
});
