/**
 * The completion pipeline (src/completion/pipeline.ts) outside VS Code: with the engine in this process over a
 * scripted tiny model (test/support/scriptedModel.ts: it writes a fixed text), the ghost text it shows first, the
 * whole suggestion it caches and the outcome it reports; with a backend that streams a given text, its prefilter,
 * debounce, failures and quick-prompt context; and the outcome's log line against the patterns `npm run
 * bench:editor` parses it with.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type * as vscode from 'vscode';
import { inProcessBackend, type BackendAnswer, type CompletionBackend } from '../../src/completion/backend';
import {
  CACHE_LINE, COMPLETION_LINE, CONTEXT_PART, describeOutcome, suggestionContext, type CompletionActivity, type CompletionOutcome, type GeneratedOutcome,
} from '../../src/completion/outcome';
import { CompletionPipeline, completionsWanted, firstLineText, MAX_DOCUMENT_CHARS, type CancellationSignal, type CompletionRequest, type ScopedConfiguration } from '../../src/completion/pipeline';
import { COMPLETION_STOPS } from '../../src/completion/postprocess';
import { PrefillRate } from '../../src/completion/prefillRate';
import { CompletionPrompts } from '../../src/completion/requestPrompts';
import { buildCompletionPrompt } from '../../src/completion/context';
import { estimateTokens } from '../../src/completion/tokenEstimate';
import { DEFAULT_SETTINGS, type Settings } from '../../src/settings/settings';
import { PhiDecoder } from '../../src/inference/decoder';
import { Generator } from '../../src/inference/generator';
import type { GenerationParams, GenerationStats } from '../../src/protocol';
import { TextDocumentModel } from '../support/textDocument';
import { generatedPython } from '../support/pythonSource';
import { openScriptedDecoder } from '../support/tinyDecoder';

/** A document of `text` with the cursor at its end, as the pipeline reads a vscode.TextDocument. */
function documentOf(text: string, languageId = 'python'): { document: TextDocumentModel; position: vscode.Position } {
  const document = new TextDocumentModel(text, languageId);
  return { document, position: document.end };
}

/** VS Code's cancellation token, cancelled by `cancel()`. */
class Cancellation implements CancellationSignal {
  isCancellationRequested = false;
  private readonly listeners = new Set<() => void>();

  onCancellationRequested(listener: () => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  cancel(): void {
    this.isCancellationRequested = true;
    for (const listener of this.listeners) listener();
  }
}

/** vscode.workspace's configuration with per-language `enable` overrides. */
function configurationWith(enableFor: Record<string, boolean> = {}): ScopedConfiguration {
  return {
    getConfiguration: (_section: string, scope: { languageId: string }) => ({
      get: <T>(key: string, fallback: T): T => (key === 'enable' && scope.languageId in enableFor ? enableFor[scope.languageId] as T : fallback),
    }),
  } as unknown as ScopedConfiguration;
}

class Recorder {
  readonly debug: string[] = [];
  readonly warn: string[] = [];
  readonly activity: CompletionActivity[] = [];
  readonly shownAgain: number[] = [];
  readonly log = { debug: (message: string) => this.debug.push(message), warn: (message: string) => this.warn.push(message) };

  /** The outcomes reported at the end of each request to the backend. */
  get outcomes(): CompletionOutcome[] {
    return this.activity.flatMap((a) => (a.generating ? [] : [a.outcome]));
  }

  /** Resolves once `count` requests to the backend have ended. */
  async ended(count: number): Promise<void> {
    for (let waited = 0; this.outcomes.length < count; waited += 5) {
      assert.ok(waited < 60_000, `${this.outcomes.length} of ${count} requests ended`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

function pipelineWith(backend: CompletionBackend, recorder: Recorder, settings: Settings = DEFAULT_SETTINGS, configuration = configurationWith(), onNotice?: (message: string) => void): CompletionPipeline {
  const prefillRate = new PrefillRate();
  return new CompletionPipeline({
    backend, settings: () => settings, configuration, prompts: new CompletionPrompts(prefillRate), prefillRate,
    ensureModel: () => Promise.resolve(true), log: recorder.log, onActivity: (activity) => recorder.activity.push(activity), onNotice,
  });
}

function requestAt(text: string, recorder: Recorder, options: { languageId?: string; automatic?: boolean; eol?: '\n' | '\r\n' } = {}): CompletionRequest {
  const { document, position } = documentOf(text, options.languageId);
  return { document, sequence: 'file:///work/main.py', position, length: text.length, eol: options.eol ?? '\n', automatic: options.automatic ?? false, showAgain: () => recorder.shownAgain.push(Date.now()) };
}

const STATS: GenerationStats = {
  promptTokens: 40, truncatedTokens: 0, reusedTokens: 30, copiedTokens: 0, prefillMs: 100, firstTokenMs: 120, generatedTokens: 6, decodeMs: 300,
  decodeSteps: 6, draftedTokens: 0, longestDraft: 0, acceptedDraftTokens: 0, recomputedRows: 0, pausedDraftSteps: 0, quick: false,
};

/** A backend that streams `deltas` (then answers with their text, cut before a stop sequence like the engine) and records what it was asked. */
class StreamingBackend implements CompletionBackend {
  readonly asked: { prompt: string; params: GenerationParams; sequence: string }[] = [];
  failWith: Error | undefined;

  constructor(private readonly deltas: readonly string[], private readonly answer: Partial<BackendAnswer> = {}) {}

  async generate(prompt: string, params: GenerationParams, onDelta: (text: string) => void, signal: AbortSignal, sequence: string): Promise<BackendAnswer> {
    this.asked.push({ prompt, params, sequence });
    if (this.failWith) throw this.failWith;
    let text = '';
    for (const delta of this.deltas) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (signal.aborted) return { text, finishReason: 'cancelled', stats: STATS };
      text += delta;
      onDelta(delta);
    }
    return { text, finishReason: 'stop', stats: STATS, ...this.answer };
  }
}

describe('completion pipeline, with the engine over a scripted model', () => {
  const PREFIX = 'def add(a, b):\n    total =';
  // What the model writes after the prompt, then <|endoftext|> (a scripted token has one successor: no stop sequence after the \n).
  const MODEL_TEXT = ' a + b\n    return total';
  let decoder: PhiDecoder;
  let generator: Generator;

  before(async () => {
    const scripted = await openScriptedDecoder('scripted', PREFIX, MODEL_TEXT);
    decoder = scripted.decoder;
    generator = new Generator(decoder, scripted.tokenizer);
  });
  after(async () => {
    await generator.dispose();
    await decoder.dispose();
  });

  test('shows the first line as soon as it is written, caches the whole suggestion, asks to be shown again, and reports the outcome', async () => {
    const recorder = new Recorder();
    const pipeline = pipelineWith(inProcessBackend(generator), recorder);
    const shown = await pipeline.complete(requestAt(PREFIX, recorder), new Cancellation());
    assert.equal(shown, ' a + b', 'the first line, before generation ends');
    await recorder.ended(1);
    assert.deepEqual(recorder.activity.map((a) => a.generating), [true, false]);
    const outcome = recorder.outcomes[0] as GeneratedOutcome;
    assert.equal(outcome.source, 'model');
    assert.equal(outcome.text, ' a + b\n    return total');
    assert.equal(outcome.finishReason, 'eos');
    assert.equal(outcome.firstLineShownEarly, true);
    assert.equal(recorder.shownAgain.length, 1, 'the editor is asked again for the rest');
    assert.equal(outcome.context.quick, false, 'a short file is read whole, not from a quick prompt');
    assert.equal(outcome.tokens.prompt, outcome.context.tokens);
    assert.equal(outcome.tokens.generated, 7, 'the text\'s 7 tokens');
    assert.deepEqual(suggestionContext(outcome), outcome.context, 'the status bar shows the context of a finished suggestion');
    assert.deepEqual(recorder.debug, [describeOutcome(outcome)]);

    // Asked again at the same place (the editor showing the rest), and then typed into: the cache answers.
    assert.equal(await pipeline.complete(requestAt(PREFIX, recorder), new Cancellation()), ' a + b\n    return total');
    assert.equal(await pipeline.complete(requestAt(`${PREFIX} a + b\n`, recorder), new Cancellation()), '    return total');
    assert.deepEqual(recorder.debug.slice(1), ['completion served from cache (23 chars)', 'completion served from cache (16 chars)']);
    assert.equal(recorder.outcomes.length, 1, 'the cache does not ask the model');
  });

  test('a CRLF document gets its suggestion with CRLF line ends', async () => {
    const recorder = new Recorder();
    const pipeline = pipelineWith(inProcessBackend(generator), recorder);
    await pipeline.complete(requestAt(PREFIX, recorder, { eol: '\r\n' }), new Cancellation());
    await recorder.ended(1);
    assert.equal((recorder.outcomes[0] as GeneratedOutcome).text, ' a + b\r\n    return total');
  });
});

describe('completion pipeline stages', () => {
  test('prefilter: only languages in the settings, and only where `enable` (as overridden for the language) is on', () => {
    assert.equal(completionsWanted('python', DEFAULT_SETTINGS, configurationWith()), true);
    assert.equal(completionsWanted('javascript', DEFAULT_SETTINGS, configurationWith()), false);
    assert.equal(completionsWanted('python', { ...DEFAULT_SETTINGS, enable: false }, configurationWith()), false);
    assert.equal(completionsWanted('python', { ...DEFAULT_SETTINGS, enable: false }, configurationWith({ python: true })), true);
    assert.equal(completionsWanted('python', DEFAULT_SETTINGS, configurationWith({ python: false })), false);
  });

  test('first line: the text up to its last newline once a non-blank line is complete', () => {
    assert.equal(firstLineText(' a + b'), undefined);
    assert.equal(firstLineText('\n   \n'), undefined, 'blank lines are not a first line');
    assert.equal(firstLineText('\n  x = 1\n  y'), '\n  x = 1');
    assert.equal(firstLineText('x = 1\ny = 2\nz'), 'x = 1\ny = 2');
  });

  test('a document over MAX_DOCUMENT_CHARS: its text is not read, nothing is asked, and the user is told once', async () => {
    const recorder = new Recorder();
    const notices: string[] = [];
    const backend = new StreamingBackend(['x\n']);
    const pipeline = pipelineWith(backend, recorder, DEFAULT_SETTINGS, configurationWith(), (message) => notices.push(message));
    const huge = requestAt('x = ', recorder);
    const request: CompletionRequest = {
      ...huge,
      length: MAX_DOCUMENT_CHARS + 1,
      document: { languageId: 'python', fileName: '/work/main.py', lineCount: 1, lineAt: () => assert.fail('the text of a document too large is not read'), offsetAt: () => assert.fail('not read either') },
    };
    assert.equal(await pipeline.complete(request, new Cancellation()), undefined);
    assert.equal(await pipeline.complete(request, new Cancellation()), undefined);
    assert.equal(backend.asked.length, 0);
    assert.deepEqual(notices, ['phi-complete: no completions in this file: it has 25.0 million characters (the limit is 25 million)']);
    // At the limit, completions as usual.
    assert.equal(await pipeline.complete({ ...huge, length: MAX_DOCUMENT_CHARS }, new Cancellation()), 'x');
    assert.equal(backend.asked.length, 1);
  });

  test('a binary-looking document (a NUL, or mostly characters that are not text): nothing is asked, and the user is told once', async () => {
    const recorder = new Recorder();
    const notices: string[] = [];
    const backend = new StreamingBackend(['x\n']);
    const pipeline = pipelineWith(backend, recorder, DEFAULT_SETTINGS, configurationWith(), (message) => notices.push(message));
    const withNul = { ...requestAt('PK\u0003\u0004\u0000\u0000data = ', recorder), sequence: 'file:///work/archive.py' };
    const undecoded = { ...requestAt('\ufffd\ufffdELF\ufffd\u0001\u0002\ufffd\ufffd\n\ufffd\ufffd\ufffd\ufffdx = ', recorder), sequence: 'file:///work/binary.py' };
    for (const request of [withNul, withNul, undecoded]) assert.equal(await pipeline.complete(request, new Cancellation()), undefined);
    assert.equal(backend.asked.length, 0);
    const notice = 'phi-complete: no completions in this file: it looks binary (NUL or other non-text characters)';
    assert.deepEqual(notices, [notice, notice]);
    // A form feed and an escape in a Python file are text: completions as usual.
    assert.equal(await pipeline.complete(requestAt('\f\n# \u001b[1m bold\nx = ', recorder), new Cancellation()), 'x');
    assert.equal(backend.asked.length, 1);
  });

  test('a large document (3 MB): the prompt sent is the whole text\'s window, and the text is never copied whole', async () => {
    const recorder = new Recorder();
    const backend = new StreamingBackend(['x\n']);
    const text = generatedPython(3_000_000) + 'def last(values):\n    return ';
    const request = requestAt(text, recorder);
    (request.document as TextDocumentModel).getText = () => assert.fail('the whole text is not read');
    assert.equal(await pipelineWith(backend, recorder).complete(request, new Cancellation()), 'x');
    const window = buildCompletionPrompt({ prefix: text, suffix: '', languageId: 'python', fileName: '/work/main.py', tokenBudget: DEFAULT_SETTINGS.contextTokens, countTokens: estimateTokens }).prompt;
    assert.equal(backend.asked[0].prompt, window);
    assert.ok(window.startsWith('"""Generated module') && window.endsWith('def last(values):\n    return '), 'the header, then the lines before the cursor');
  });

  test('a minified file, one line of 3 MB: the prompt sent is the end of the line that fits, and the text is never copied whole', async () => {
    const recorder = new Recorder();
    const backend = new StreamingBackend(['x\n']);
    const line = 'DATA = [' + Array.from({ length: 400_000 }, (_, i) => i % 1000).join(', ') + ', ';
    const request = requestAt(line, recorder);
    (request.document as TextDocumentModel).getText = () => assert.fail('the whole text is not read');
    assert.equal(await pipelineWith(backend, recorder).complete(request, new Cancellation()), 'x');
    const sent = backend.asked[0].prompt;
    assert.equal(sent, line.slice(line.length - sent.length), 'the end of the line');
    assert.ok(sent.length > 3000 && estimateTokens(sent) <= DEFAULT_SETTINGS.contextTokens, `${sent.length} characters`);
  });

  test('nothing is asked of the backend where completions are not wanted', async () => {
    const recorder = new Recorder();
    const backend = new StreamingBackend(['x\n']);
    const pipeline = pipelineWith(backend, recorder, DEFAULT_SETTINGS, configurationWith({ python: false }));
    assert.equal(await pipeline.complete(requestAt('x = ', recorder), new Cancellation()), undefined);
    assert.equal(await pipeline.complete(requestAt('x = ', recorder, { languageId: 'plaintext' }), new Cancellation()), undefined);
    assert.equal(backend.asked.length, 0);
    assert.equal(recorder.activity.length, 0);
  });

  test('typing on during the debounce asks nothing; the request the backend gets is the prompt and the settings\'', async () => {
    const recorder = new Recorder();
    const backend = new StreamingBackend(['1\n', 'y = 2']);
    const settings = { ...DEFAULT_SETTINGS, debounceMs: 50, completionMaxTokens: 24, temperature: 0.2 };
    const pipeline = pipelineWith(backend, recorder, settings);
    const cancellation = new Cancellation();
    const asked = pipeline.complete(requestAt('x = ', recorder, { automatic: true }), cancellation);
    cancellation.cancel();
    assert.equal(await asked, undefined);
    assert.equal(backend.asked.length, 0);

    assert.equal(await pipeline.complete(requestAt('x = ', recorder, { automatic: true }), new Cancellation()), '1');
    await recorder.ended(1);
    assert.deepEqual(backend.asked.map(({ prompt, sequence }) => ({ prompt, sequence })), [{ prompt: 'x = ', sequence: 'file:///work/main.py' }]);
    const { params } = backend.asked[0];
    assert.deepEqual({ ...params, quick: undefined }, { maxNewTokens: 24, temperature: 0.2, topK: 0, topP: settings.topP, seed: 0, stop: COMPLETION_STOPS, speculative: false, quick: undefined });
    assert.equal((recorder.outcomes[0] as GeneratedOutcome).text, '1\ny = 2');
    const outcome = recorder.outcomes[0] as GeneratedOutcome;
    assert.ok(outcome.timings.askedMs >= 45, `asked ${outcome.timings.askedMs} ms after VS Code asked: the debounce`);
  });

  test('an answer from the quick prompt reports its context; a cancelled one none to the status bar', async () => {
    const recorder = new Recorder();
    const quick = new StreamingBackend(['1\n'], { finishReason: 'line', stats: { ...STATS, promptTokens: 90, truncatedTokens: 2, quick: true } });
    await pipelineWith(quick, recorder).complete(requestAt('x = ', recorder), new Cancellation());
    await recorder.ended(1);
    assert.deepEqual(suggestionContext(recorder.outcomes[0]), { tokens: 88, quick: true });
    assert.match(recorder.debug[0], /reused 30\/90 prompt tokens \(quick prompt\), line; .*; context 88 tokens \(quick prompt\)$/);

    const cancelled = new StreamingBackend(['1'], { finishReason: 'cancelled' });
    await pipelineWith(cancelled, recorder).complete(requestAt('x = ', recorder), new Cancellation());
    await recorder.ended(2);
    assert.equal(suggestionContext(recorder.outcomes[1]), undefined);
  });

  test('a failed request is a warning and shows nothing; a backend shut down on purpose is quiet', async () => {
    const recorder = new Recorder();
    const backend = new StreamingBackend([]);
    const pipeline = pipelineWith(backend, recorder);
    backend.failWith = new Error('the worker crashed');
    assert.equal(await pipeline.complete(requestAt('x = ', recorder), new Cancellation()), undefined);
    backend.failWith = Object.assign(new Error('disposed'), { code: 'disposed' });
    assert.equal(await pipeline.complete(requestAt('y = ', recorder), new Cancellation()), undefined);
    await recorder.ended(2);
    assert.deepEqual(recorder.warn, ['completion failed: the worker crashed']);
    assert.deepEqual(recorder.outcomes.map((o) => o.source === 'failed' && o.quiet), [false, true]);
    assert.deepEqual(recorder.outcomes.map(suggestionContext), [undefined, undefined]);
  });
});

describe('completion outcome log line', () => {
  const outcome: GeneratedOutcome = {
    source: 'model', text: 'return a', finishReason: 'stop', firstLineShownEarly: false,
    context: { tokens: 512, quick: true },
    tokens: { generated: 12, reused: 500, prompt: 514 },
    timings: { askedMs: 151.4, answeredMs: 812.6, firstTokenMs: 402.5, decodeMs: 400 },
  };
  const STAMP = '2025-03-04 10:11:12.345 [debug] ';

  test('is the text the editor bench parses, unchanged', () => {
    assert.equal(describeOutcome(outcome), 'completion: 12 tokens, first token 403 ms, 30.0 tok/s, reused 500/514 prompt tokens (quick prompt), stop; '
      + 'asked 151 ms after VS Code asked, answered 813 ms later; context 512 tokens (quick prompt)');
    assert.equal(describeOutcome({ ...outcome, context: { tokens: 1000, quick: false } }).endsWith('prompt tokens, stop; asked 151 ms after VS Code asked, answered 813 ms later; context 1000 tokens (whole window)'), true);
    assert.equal(describeOutcome({ source: 'cache', text: 'abc' }), 'completion served from cache (3 chars)');
  });

  test('the bench\'s patterns read every field back', () => {
    for (const quick of [true, false]) {
      const line = STAMP + describeOutcome({ ...outcome, context: { tokens: 512, quick } });
      const m = COMPLETION_LINE.exec(line);
      assert.ok(m, line);
      assert.deepEqual(m.slice(1), ['2025-03-04 10:11:12.345', '12', '403', '30.0', '500', '514', quick ? ' (quick prompt)' : undefined, 'stop', '151', '813']);
      assert.deepEqual(CONTEXT_PART.exec(line)?.slice(1), ['512', quick ? 'quick prompt' : 'whole window']);
    }
    assert.match(STAMP + describeOutcome({ source: 'cache', text: '' }), CACHE_LINE);
    assert.equal(COMPLETION_LINE.exec(STAMP + describeOutcome({ source: 'cache', text: 'x' })), null);
  });
});
