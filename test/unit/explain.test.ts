/**
 * Explain Selection without VS Code: the panel's page (model output rendered with no HTML of its own, a strict CSP
 * with a fresh nonce), fitting selection and explanation into the model's context (phi's real tokenizer), and how
 * an explanation ends and continues — on the tiny model, through the real generator, token for token.
 */
import assert from 'node:assert/strict';
import Module from 'node:module';
import { after, before, describe, test } from 'node:test';
import type * as vscode from 'vscode';
import type { WorkerClient } from '../../src/client/workerClient';
import { buildExplainPrompt, EXPLAIN_CONTEXT_TOKENS, EXPLAIN_STOPS, MAX_USEFUL_EXPLAIN_TOKENS, planExplanation, type ExplainPlan } from '../../src/explain/explainPrompt';
import { Explanation } from '../../src/explain/explanation';
import { explainPageHtml, parsePageMessage, renderMarkdown, viewMessage } from '../../src/explain/explainView';
import { PhiDecoder } from '../../src/inference/decoder';
import { Generator, type GenerationResult } from '../../src/inference/generator';
import { EXPLAIN_SEQUENCE } from '../../src/protocol';
import { DEFAULT_SETTINGS } from '../../src/settings/settings';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { buildPhiTokenizerJson } from '../../src/tokenizer/tokenizerJson';
import { openTinyDecoder } from '../support/tinyDecoder';
import { cpuTimeRatio } from '../support/cpuTime';

const SCRIPT = '<script>alert(1)</script>';
const IMG = '<img src=x onerror=alert(1)>';
const STYLE = '<style>body{display:none}</style>';
const PAYLOADS = [SCRIPT, IMG, STYLE];
const escaped = (html: string): string => html.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Model output carrying the payloads everywhere Markdown can put text: prose, code, headings, lists, quotes, fences. */
const HOSTILE = [
  `# Title ${SCRIPT}`,
  `This code ${IMG} is **bold ${STYLE}** and \`inline ${SCRIPT}\`.`,
  `- item ${IMG}`,
  `1. step ${STYLE}`,
  `> quoted ${SCRIPT}`,
  '```python" onmouseover="alert(1)',
  `x = "${IMG}"`,
  '```',
  `<a href="javascript:alert(1)">link</a> [link](javascript:alert(1)) <div style="color:red">styled</div>`,
  '```html',
  STYLE,
].join('\n');

/** The page's own elements and the attributes each may carry: anything else in the HTML came from the model. */
const ALLOWED_ATTRIBUTES: Record<string, RegExp> = {
  p: /^$/, pre: /^$/, code: /^( class="language-[\w+-]+")?$/, strong: /^$/, em: /^$/, ul: /^$/, ol: /^$/, li: /^$/,
  blockquote: /^$/, h1: /^$/, h2: /^$/, h3: /^$/, h4: /^$/, h5: /^$/, h6: /^$/,
};

/** Asserts that every tag in `html` is one the renderer makes, with only the attributes it gives it. */
function assertOnlyRendererTags(html: string): void {
  for (const match of html.matchAll(/<\/?([^\s>/]*)([^>]*)>?/g)) {
    const [tag, name, attributes] = match;
    assert.ok(name in ALLOWED_ATTRIBUTES, `an element the renderer does not make: ${tag}`);
    if (!tag.startsWith('</')) assert.match(attributes, ALLOWED_ATTRIBUTES[name], `attributes on ${tag}`);
  }
}

describe('the Explanation page', () => {
  test('<script>, <img onerror> and <style> in model output appear as text, wherever the Markdown puts them', () => {
    const html = renderMarkdown(HOSTILE);
    assertOnlyRendererTags(html);
    for (const payload of PAYLOADS) assert.ok(html.includes(escaped(payload)), `${payload} is not shown as text in ${html}`);
    assert.doesNotMatch(html, /<(script|img|style|a|div)\b/i);
    assert.doesNotMatch(html, /onmouseover="/, 'a fence\'s language became an attribute');
    // The last fence is still open (the text is streaming): it runs to the end, as code.
    assert.ok(html.endsWith(`<pre><code class="language-html">${escaped(STYLE)}</code></pre>`), html);
  });

  test('the page around hostile output: its own style and script only, by a fresh nonce; a CSP with no unsafe-inline', () => {
    const view = { markdown: HOSTILE, status: `Interrupted: ${SCRIPT}`, canContinue: true };
    const pages = [explainPageHtml(view), explainPageHtml(view)];
    const nonces = pages.map((page) => {
      const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(page)?.[1];
      assert.ok(csp, 'no CSP');
      const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
      assert.ok(nonce && Buffer.from(nonce, 'base64').length >= 16, `script nonce in ${csp}`);
      assert.equal(csp, `default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}'`);
      assert.doesNotMatch(page, /unsafe-inline|unsafe-eval/);
      // One style and one script element, both the page's own, both with the nonce.
      assert.deepEqual([...page.matchAll(/<(script|style)\b[^>]*>/gi)].map((m) => m[0]), [`<style nonce="${nonce}">`, `<script nonce="${nonce}">`]);
      for (const [tag] of page.matchAll(/<[a-z][^>]*>/gi)) assert.doesNotMatch(tag, /\s(style|on\w+)=/i, 'inline style or event handler');
      assert.match(page, /<main id="explanation">/);
      assert.ok(page.includes(`<span id="status" role="status">Interrupted: ${escaped(SCRIPT)}</span>`));
      assert.ok(page.includes('<button id="continue" type="button">Continue</button>'));
      return nonce;
    });
    assert.notEqual(nonces[0], nonces[1], 'the nonce must be fresh for every page');
    assert.match(explainPageHtml({ ...view, canContinue: false }), /<button id="continue" type="button" hidden>/);
  });

  test('code blocks and inline code still look like code', () => {
    assert.equal(
      renderMarkdown('The loop:\n\n```python\nif a < b and c > 0:\n    print("<b>&</b>")\n```\nUse `x<y` for **speed**, _not_ my_var_name.'),
      '<p>The loop:</p>\n<pre><code class="language-python">if a &lt; b and c &gt; 0:\n    print(&quot;&lt;b&gt;&amp;&lt;/b&gt;&quot;)</code></pre>\n'
        + '<p>Use <code>x&lt;y</code> for <strong>speed</strong>, <em>not</em> my_var_name.</p>',
    );
    assert.equal(renderMarkdown('Steps:\n1. read\n2. write\n- a\n  more'), '<p>Steps:</p>\n<ol><li>read</li><li>write</li></ol>\n<ul><li>a\nmore</li></ul>');
  });

  test('the page\'s script: says "ready", shows each view message, and posts "continue" when the button is clicked', () => {
    const script = /<script nonce="[^"]+">([\s\S]*)<\/script>/.exec(explainPageHtml({ markdown: '', status: '', canContinue: false }))?.[1];
    assert.ok(script);
    // The browser around it: the three elements, the window's message listener, and VS Code's messaging.
    const element = () => ({ innerHTML: '', textContent: '', hidden: true, listeners: new Map<string, () => void>(), addEventListener(type: string, listener: () => void) { this.listeners.set(type, listener); } });
    const elements = { explanation: element(), status: element(), continue: element() };
    const posted: unknown[] = [];
    let onMessage: (event: { data: unknown }) => void = () => undefined;
    const window = { addEventListener: (type: string, listener: typeof onMessage) => type === 'message' && (onMessage = listener) };
    const document = { getElementById: (id: keyof typeof elements) => elements[id] };
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- runs the page's own script
    const run = new Function('acquireVsCodeApi', 'window', 'document', script) as (...globals: unknown[]) => void;
    run(() => ({ postMessage: (m: unknown) => posted.push(m) }), window, document);
    assert.deepEqual(posted, [{ type: 'ready' }]);
    onMessage({ data: viewMessage({ markdown: `**${SCRIPT}**`, status: 'Interrupted before the end.', canContinue: true }) });
    assert.equal(elements.explanation.innerHTML, `<p><strong>${escaped(SCRIPT)}</strong></p>`);
    assert.equal(elements.status.textContent, 'Interrupted before the end.');
    assert.equal(elements.continue.hidden, false);
    elements.continue.listeners.get('click')!();
    assert.deepEqual(posted, [{ type: 'ready' }, { type: 'continue' }]);
    assert.equal(elements.continue.hidden, true, 'clicked once, the button goes until the next view offers it');
  });

  test('messages: the view as the page shows it; from the page only "ready" and "continue"', () => {
    assert.deepEqual(viewMessage({ markdown: `**${IMG}**`, status: 'Done.', canContinue: false }), { type: 'view', html: `<p><strong>${escaped(IMG)}</strong></p>`, status: 'Done.', canContinue: false });
    assert.equal(parsePageMessage({ type: 'continue' }), 'continue');
    assert.equal(parsePageMessage({ type: 'ready' }), 'ready');
    for (const other of [null, 'continue', { type: 'eval' }, {}]) assert.equal(parsePageMessage(other), undefined);
  });
});

describe('the Explanation page on pathological lines (the whole text is rendered again on every streamed piece)', () => {
  const spaces = (n: number): string => ' '.repeat(n);
  /** A line of about n characters, and what it renders to. */
  const LINES: Record<string, (n: number) => readonly [string, string]> = {
    'spaces after a heading marker': (n) => [`#${spaces(n)}x`, '<h1>x</h1>'],
    'spaces inside a heading': (n) => [`# a${spaces(n)}b`, `<h1>a${spaces(n)}b</h1>`],
    'spaces, hashes and spaces closing a heading': (n) => [`# a${spaces(n / 4)}${'#'.repeat(n / 2)}${spaces(n / 4)}`, '<h1>a</h1>'],
    'a run of hashes': (n) => ['#'.repeat(n), `<p>${'#'.repeat(n)}</p>`],
    'bold never closed': (n) => ['**a '.repeat(n / 4), `<p>${'**a '.repeat(n / 4)}</p>`],
    'italics never closed': (n) => ['_ab '.repeat(n / 4), `<p>${'_ab '.repeat(n / 4)}</p>`],
    // Bold first, then italics across it: the tags nest as the regexes this renderer once used nested them.
    'a run of stars': (n) => ['*'.repeat(n), `<p>${'<strong><em></strong><strong></em></strong>'.repeat(n / 10)}</p>`],
    'a run of underscores': (n) => ['_'.repeat(n), `<p><em>${'_'.repeat(n - 2)}</em></p>`],
    'stars and spaces': (n) => ['* '.repeat(n / 2), `<ul><li>${'* '.repeat(n / 2 - 1)}</li></ul>`],
    'a run of backticks (a fence)': (n) => ['`'.repeat(n), '<pre><code></code></pre>'],
    'a run of backticks in prose': (n) => [`x ${'`'.repeat(n)}`, `<p>x ${'`'.repeat(n)}</p>`],
    'spaces in code': (n) => [`\`${spaces(n)}\``, `<p><code>${spaces(n)}</code></p>`],
    'spaces after a list marker': (n) => [`-${spaces(n)}x`, '<ul><li>x</li></ul>'],
    'a line separator after a list marker\'s spaces': (n) => [`-${spaces(n)}x\u2028`, `<p>-${spaces(n)}x\u2028</p>`],
    'spaces after a quote marker': (n) => [`>${spaces(n)}x`, `<blockquote><p>${spaces(n - 1)}x</p></blockquote>`],
  };

  for (const [name, line] of Object.entries(LINES)) {
    test(`${name}: rendered in time linear in the line's length, and as before`, () => {
      // Each step is 4 times longer: linear time is about 4 times slower (less where fixed costs count), quadratic
      // 16 times, cubic 64. Short steps first, so that a super-linear renderer fails before it takes minutes.
      for (const n of [1_280, 5_000, 20_000]) {
        const ratio = cpuTimeRatio(renderMarkdown, line(n / 4)[0], line(n)[0]);
        assert.ok(ratio < 8, `${n} characters took ${ratio.toFixed(1)} times as long as ${n / 4}`);
      }
      const [markdown, html] = line(5_000);
      assert.equal(renderMarkdown(markdown), html);
    });
  }
});

describe('fitting the selection and the explanation into the model', () => {
  const tokenizer = PhiTokenizer.fromJson(buildPhiTokenizerJson());
  /** Typical code (3.5 characters a token), and code with numbers (2.5): denser code, such as tables of numbers, may not fit (the panel then says so). */
  const numbers = Array.from({ length: 200 }, (_, i) => `    if value_${i} > ${i}.5:\n        value_${i} = ${i}.5`).join('\n');
  const typical = Array.from({ length: 120 }, (_, i) => `def handler_${i}(request):\n    return respond(request.path, status=${200 + (i % 3)})\n`).join('\n');

  test('the default setting: a short selection\'s prompt and budget are unchanged', () => {
    const code = 'def add(a, b):\n    return a + b\n';
    const plan = planExplanation(code, 'python', 384);
    assert.equal(plan.prompt, buildExplainPrompt(code, 'python').prompt);
    assert.equal(plan.maxNewTokens, 384);
    assert.equal(plan.truncated, false);
  });

  test('for any explain.maxTokens the prompt, as phi reads it, and the explanation fit together: the worker does not cut the code', () => {
    for (const code of [numbers, typical]) {
      for (const maxTokens of [64, 384, 1000, MAX_USEFUL_EXPLAIN_TOKENS, MAX_USEFUL_EXPLAIN_TOKENS + 1, 2048]) {
        const plan = planExplanation(code, 'python', maxTokens);
        const promptTokens = tokenizer.encode(plan.prompt).length;
        assert.ok(promptTokens + plan.maxNewTokens <= EXPLAIN_CONTEXT_TOKENS, `maxTokens ${maxTokens}: ${promptTokens} prompt + ${plan.maxNewTokens} new tokens`);
        assert.ok(plan.promptTokens >= promptTokens, `the estimate ${plan.promptTokens} is below the real ${promptTokens}`);
        assert.ok(plan.prompt.startsWith(`\`\`\`python\n${code.slice(0, 40)}`), 'the selection is cut at its end, never its start');
        assert.ok(promptTokens >= 200, `maxTokens ${maxTokens}: the selection kept only ${promptTokens} tokens`);
        assert.ok(plan.maxNewTokens <= maxTokens);
      }
    }
    const plan = planExplanation('x = 1\n', 'python', 2048);
    assert.ok(plan.maxNewTokens > MAX_USEFUL_EXPLAIN_TOKENS, 'a short selection leaves the explanation the rest of the context');
  });
});

describe('how an explanation ends, and continuing it', () => {
  const plan: ExplainPlan = { prompt: 'PROMPT', truncated: false, maxNewTokens: 100, promptTokens: 300 };
  const done = (finishReason: GenerationResult['finishReason'], generatedTokens: number, promptTokens = 300) => ({ finishReason, generatedTokens, promptTokens, truncatedTokens: 0 });

  test('finished: "Done.", nothing to continue; no text at all says so', () => {
    const explanation = new Explanation(plan);
    assert.deepEqual(explanation.view, { markdown: '', status: 'Explaining…', canContinue: false });
    explanation.append('It adds.');
    explanation.end(done('eos', 3));
    assert.deepEqual(explanation.view, { markdown: 'It adds.', status: 'Done.', canContinue: false });
    assert.equal(explanation.continue(), undefined);
    const silent = new Explanation(plan);
    silent.end(done('stop', 0));
    assert.match(silent.view.markdown, /The model gave no explanation/);
  });

  test('cancelled (the model was reloaded): "Interrupted", and Continue asks for the rest from the prompt and the text so far', () => {
    const explanation = new Explanation(plan);
    explanation.append('It adds');
    explanation.append(' two');
    explanation.end(done('cancelled', 30));
    assert.deepEqual(explanation.view, { markdown: 'It adds two', status: 'Interrupted before the end.', canContinue: true });
    assert.deepEqual(explanation.continue(), { prompt: 'PROMPTIt adds two', maxNewTokens: 70 });
    assert.deepEqual(explanation.view, { markdown: 'It adds two', status: 'Explaining…', canContinue: false });
    explanation.append(' numbers.');
    explanation.end(done('eos', 4, 330));
    assert.deepEqual(explanation.view, { markdown: 'It adds two numbers.', status: 'Done.', canContinue: false });
  });

  test('the worker died mid-way: "Interrupted: <why>", and Continue retries from what had arrived', () => {
    const explanation = new Explanation(plan);
    for (const piece of ['a', 'b', 'c']) explanation.append(piece);
    explanation.end({ error: 'the inference worker exited (code 1)' });
    assert.deepEqual(explanation.view, { markdown: 'abc', status: 'Interrupted: the inference worker exited (code 1).', canContinue: true });
    assert.deepEqual(explanation.continue(), { prompt: 'PROMPTabc', maxNewTokens: 97 });
  });

  test('stopped at the length limit: says so, and Continue grants another allowance, within the context', () => {
    const explanation = new Explanation({ ...plan, truncated: true });
    explanation.append('Long.');
    explanation.end(done('length', 100));
    assert.deepEqual(explanation.view, {
      markdown: '> The selection is long: only its first part was explained.\n\nLong.',
      status: 'Stopped at the length limit (phiComplete.explain.maxTokens; 100 tokens here).',
      canContinue: true,
    });
    assert.deepEqual(explanation.continue(), { prompt: 'PROMPTLong.', maxNewTokens: 100 });
    // Near the end of the context: only what still fits, then nothing.
    explanation.end(done('length', 100, EXPLAIN_CONTEXT_TOKENS - 150));
    assert.equal(explanation.continue()?.maxNewTokens, 150 - 100 - 16);
    explanation.end({ ...done('length', 34, EXPLAIN_CONTEXT_TOKENS - 50), truncatedTokens: 256 });
    const { markdown, status, canContinue } = explanation.view;
    assert.equal(canContinue, false);
    assert.match(status, /reads 2048 tokens at most/);
    assert.match(markdown, /did not fit in what the model reads, and was left out/);
    assert.equal(explanation.continue(), undefined);
  });
});

describe('continuing on the tiny model', () => {
  let decoder: PhiDecoder;
  let tokenizer: PhiTokenizer;
  before(async () => ({ decoder, tokenizer } = await openTinyDecoder()));
  after(async () => decoder.dispose());

  test('an interrupted explanation continues from its cached prompt and text, as a cold run of that text does', async () => {
    const generator = new Generator(decoder, tokenizer);
    const explanation = new Explanation(planExplanation('def square(x):\n    return x * x\n', 'python', 48));
    const controller = new AbortController();
    let pieces = 0;
    const first = await generator.generate({
      ...explanation.request, stop: EXPLAIN_STOPS, sequence: EXPLAIN_SEQUENCE, aside: true, signal: controller.signal,
      onText: (delta) => {
        explanation.append(delta);
        if (++pieces === 5) controller.abort();
      },
    });
    explanation.end({ finishReason: first.finishReason, ...first.stats });
    assert.equal(explanation.view.status, 'Interrupted before the end.');
    const request = explanation.continue();
    assert.ok(request, 'Continue is offered');
    assert.equal(request.prompt, explanation.request.prompt + first.text);
    assert.equal(request.maxNewTokens, 48 - first.stats.generatedTokens);
    const continued = await generator.generate({ ...request, stop: EXPLAIN_STOPS, sequence: EXPLAIN_SEQUENCE, aside: true, onText: (delta) => explanation.append(delta) });
    assert.ok(continued.stats.reusedTokens >= first.stats.promptTokens, `reused ${continued.stats.reusedTokens} of ${continued.stats.promptTokens}: the prompt was read again`);
    explanation.end({ finishReason: continued.finishReason, ...continued.stats });
    assert.notEqual(explanation.view.status, 'Interrupted before the end.');
    assert.equal(explanation.view.markdown, first.text + continued.text);
    await generator.dispose();

    const cold = new Generator(decoder, tokenizer);
    assert.deepEqual(continued.tokens, (await cold.generate({ ...request, stop: EXPLAIN_STOPS })).tokens);
    await cold.dispose();
  });
});

describe('the panel', () => {
  /** What the page was sent, and how it talks back: a webview panel as far as ExplainPanel uses one. */
  const posted: { canContinue: boolean }[] = [];
  let fromPage: (message: unknown) => void = () => undefined;
  const fakeVscode = {
    ViewColumn: { Beside: -2 },
    window: {
      showInformationMessage: () => Promise.resolve(undefined),
      createWebviewPanel: () => ({
        webview: {
          html: '',
          postMessage: (message: { canContinue: boolean }) => {
            posted.push(message);
            return Promise.resolve(true);
          },
          onDidReceiveMessage: (listener: (message: unknown) => void) => {
            fromPage = listener;
            return { dispose: () => undefined };
          },
        },
        reveal: () => undefined,
        onDidDispose: () => ({ dispose: () => undefined }),
        dispose: () => undefined,
      }),
    },
  };
  const resolver = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const resolve = resolver._resolveFilename;
  before(() => {
    // 'vscode' exists only inside the editor: this test's stands in for it.
    resolver._resolveFilename = (request, ...rest) => (request === 'vscode' ? 'vscode' : resolve.call(Module, request, ...rest));
    require.cache.vscode = { id: 'vscode', filename: 'vscode', loaded: true, exports: fakeVscode } as unknown as NodeJS.Module;
  });
  after(() => {
    resolver._resolveFilename = resolve;
    delete require.cache.vscode;
  });

  test('Continue is offered again when the model cannot be loaded for it (the page hid the button when clicked)', async () => {
    // Loaded now, so that its import of 'vscode' finds the stand-in.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { ExplainPanel } = require('../../src/explain/explainPanel') as typeof import('../../src/explain/explainPanel');
    let modelLoads = true;
    const generated: string[] = [];
    const client = {
      generate: (prompt: string) => {
        generated.push(prompt);
        return Promise.reject(new Error('the inference worker was killed (SIGKILL); it restarts on the next request'));
      },
    } as unknown as WorkerClient;
    const panel = new ExplainPanel(client, () => DEFAULT_SETTINGS, () => Promise.resolve(modelLoads));
    const editor = { selection: { isEmpty: false }, document: { getText: () => 'def f(x):\n    return x + 1\n', languageId: 'python' } } as unknown as vscode.TextEditor;
    await panel.explain(editor);
    assert.equal(generated.length, 1);
    assert.equal(posted.at(-1)?.canContinue, true, 'interrupted: Continue is offered');

    // The load fails (or the worker is paused): ensureModel has told the user why; the panel offers Continue again.
    modelLoads = false;
    const sent = posted.length;
    fromPage({ type: 'continue' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(generated.length, 1, 'nothing generated');
    assert.equal(posted.length, sent + 1, 'the view went back to the page');
    assert.equal(posted.at(-1)?.canContinue, true);

    // Once the model loads, Continue continues.
    modelLoads = true;
    fromPage({ type: 'continue' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(generated.length, 2);
    panel.dispose();
  });
});
