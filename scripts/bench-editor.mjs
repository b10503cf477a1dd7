#!/usr/bin/env node
/**
 * npm run bench:editor: replays a typing session in a real VS Code host (code-server + headless Chromium, the
 * runner of the in-editor tests) with the development extension of this checkout (dist/) and the full-size
 * random-weight phi-1.5 (int4, the CPU catalogue build; built once into ~/.cache/phi-complete/bench, like
 * `npm run bench`), and measures what a user waits for: the time from the last keystroke of a line to the ghost
 * text shown.
 *
 * Two sessions (--session), on real Python modules of the machine's standard library (A: argparse.py, B and C: two
 * other modules), each cut to its first 300 lines. `type` (the default) types without pausing:
 *   1. endOfA     open A, cursor at its end, type its next --lines lines (default 8)
 *   2. middleOfA  Ctrl+G to a line ~150 inside a function body, End, Enter, re-type the lines that follow it
 *   3. fileB      switch to B (Quick Open), type a few lines at its end;
 *      backToA    back to A (Quick Open), type the lines that follow those of phase 1 at its end
 *   4. afterIdleC open C, leave the cursor at its end for --idle-seconds (default 30), then type one line:
 *                 its latency is firstSuggestionAfterIdleMs
 * `read-and-pause` is a user who reads what the model suggests: the model is loaded first on a small start.py (its
 * first completion, measured apart), then A is opened (the clock of "since open" starts), the cursor moved once
 * (Ctrl+End), and A's next --lines lines typed at its end (phase readAndPause), each followed by a pause of 2–4 s
 * (seeded) once its ghost text shows (or the line ends without one), then Escape and Enter. A's head is far longer
 * than the 1,024-token window, so the window is full; the warmer has time to read it while the user pauses. Its
 * targets (issue #24) are judged on the lines whose last key came 15 s or more after A was opened.
 *
 * Settings: the product's defaults (the default debounce too), except phiComplete.modelPath, phiComplete.device
 * cpu and phiComplete.completion.maxTokens (--max-tokens, default 8: random weights rarely end a line), plus editor
 * settings that keep typing faithful (no auto-indent, auto-closing, word or quick suggestions).
 *
 * waitMsP50 / waitMsP90 split the lines' waits into VS Code asking the provider (vscodeAsks), its debounce, the
 * worker finishing the model pass in flight (workerBusy), reading to the first token, decoding and VS Code showing
 * the text (shown), from the extension's debug line for the completion each line shows and the last key's time.
 * The engine's own figures come from the extension's log (its "phi-complete" LogOutputChannel at debug level, via
 * the workbench's logLevel payload): the model's load time; one line per completion with its reused/prompt tokens,
 * finish reason and, at its end, the context it answered from (`; context N tokens (whole window|quick prompt)`:
 * the tokens of the file before the cursor that its prompt held; where the log has no such part, contextTokens is
 * null and the ` (quick prompt)` flag alone gives the kind); one line per warm-up (`warm-up… done|cancelled|busy:
 * …`), counted by outcome (busy: the worker was generating). Each typed line is matched to the completion whose
 * answer it shows (answerOf): its wait's parts, its context tokens and kind, the tokens its request re-read.
 * The summary says which session ran (`session`), and for both: latencies of all lines and of those whose last key
 * came ≥ 15 s after their file was opened (`from15sAfterOpen`), the share of shown suggestions answered from the
 * whole window (not the quick prompt) over the same two sets, the warm-ups per outcome, and every line's values
 * (`perLine`). The worker's memory (the descendant of code-server running dist/worker.js) is sampled from /proc.
 * Prints one JSON summary on stdout; progress goes to stderr.
 *
 *   npm run bench:editor -- [--session type|read-and-pause] [--backend local|server] [--model <folder>] [--lines N]
 *                           [--idle-seconds S] [--max-tokens N] [--screenshots <dir>] [--keep] [--timeout-seconds S]
 *
 * --backend server runs the same session with suggestions from llama-server instead of the worker: the same
 * full-size random weights as a Q4_0 GGUF (benchModel.js --gguf), served on 127.0.0.1 with two threads (the
 * worker's count on two cores) by the llama-server the in-editor tests build (scripts/integration/llamaServer.mjs);
 * phiComplete.backend server, phiComplete.server.url its address. The worker's memory is then not measured.
 *
 * --session picks the session (default type); --idle-seconds applies to `type` only; --model <folder> skips the
 * full-size build (e.g. a tiny model for a quick wiring check); --keep keeps the temporary folder (workspace,
 * settings, logs: the extension's log is under user-data/logs/…/phi-complete.log); --timeout-seconds is how long
 * one line waits for its ghost text (default 60).
 * Needs `npm run compile && npm run build` (the npm script runs both) and the tools of
 * `bash scripts/integration/setup.sh` (see scripts/integration/run.mjs for their environment overrides).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  findTools, makeRunDirs, openBrowser, parseArgs, readGhostText, repo, runSession, startCodeServer, stopProcessGroup,
  writeUserSettings,
} from './integration/tools.mjs';
import { buildLlamaServer, startLlamaServer } from './integration/llamaServer.mjs';

const USAGE = 'npm run bench:editor -- [--session type|read-and-pause] [--backend local|server] [--model <folder>] [--lines N] [--idle-seconds S] [--max-tokens N] [--screenshots <dir>] [--keep] [--timeout-seconds S]';
const log = (message) => process.stderr.write(`[bench:editor] ${message}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Lines of the original file each workspace file starts with. */
const HEAD_LINES = 300;
/** How often the page is polled for ghost text. */
const POLL_MS = 100;
/**
 * A line ends with no suggestion when, after its last key, the extension logged a finished completion (or a cache
 * hit), nothing more for this long, no ghost text shows and the status bar shows no generation in progress.
 */
const NO_SUGGESTION_SETTLE_MS = 5000;
/** The issues' targets, per session: `type` (issue #17), `read-and-pause` (issue #24, for 8-token suggestions). */
const TARGETS = {
  type: { rereadTokensP90: 32, editingLatencyP50Ms: 1000, editingLatencyP95Ms: 2000, firstSuggestionAfterIdleMs: 2000 },
  'read-and-pause': { wholeWindowShareFrom15s: 0.9, latencyFrom15sP50Ms: 800, latencyFrom15sP95Ms: 1500, maxTokens: 8 },
};
const SESSIONS = Object.keys(TARGETS);
/** Lines whose last key came this long after their file was opened are the ones `from15sAfterOpen` judges. */
const FROM_OPEN_MS = 15_000;
/** The pause after each line of read-and-pause (once its ghost text shows, or the line ends without one). */
const PAUSE_MS = { min: 2000, max: 4000 };

// ---------------------------------------------------------------------------------------------------------------
// The Python sources

/** Standard library folders of the machine: Debian's /usr/lib/python3.*, then the python3 on PATH's. */
function stdlibDirs() {
  const dirs = [];
  try {
    for (const name of fs.readdirSync('/usr/lib').filter((n) => /^python3\.\d+$/.test(n)).sort((a, b) => Number(b.split('.')[1]) - Number(a.split('.')[1]))) {
      dirs.push(path.join('/usr/lib', name));
    }
  } catch {
    // no /usr/lib
  }
  const python = spawnSync('python3', ['-c', 'import sysconfig; print(sysconfig.get_paths()["stdlib"])'], { encoding: 'utf8' });
  if (python.status === 0 && python.stdout.trim()) dirs.push(python.stdout.trim());
  return [...new Set(dirs)].filter((dir) => fs.existsSync(dir));
}

function readLines(file) {
  return fs.readFileSync(file, 'utf8').replace(/\r\n/g, '\n').split('\n');
}

/** A module fit to type from: `minLines` lines at least, ASCII, no tabs (a Tab key would accept a suggestion). */
function usable(file, minLines) {
  try {
    const lines = readLines(file);
    return lines.length >= minLines && !lines.some((line) => line.includes('\t') || /[^\x20-\x7e]/.test(line)) ? lines : undefined;
  } catch {
    return undefined;
  }
}

/** A: argparse.py or any module of 600+ lines; B and C: other modules of 340+ lines (preferred ones first). */
function pickSources() {
  const dirs = stdlibDirs();
  const taken = new Set();
  const pick = (preferred, minLines) => {
    for (const dir of dirs) {
      for (const name of preferred) {
        const file = path.join(dir, name);
        const lines = !taken.has(name) && usable(file, minLines);
        if (lines) return { file, name, lines };
      }
    }
    for (const dir of dirs) {
      for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.py') && !n.startsWith('_')).sort()) {
        const file = path.join(dir, name);
        const lines = !taken.has(name) && usable(file, minLines);
        if (lines) return { file, name, lines };
      }
    }
    return undefined;
  };
  const sources = {};
  for (const [key, preferred, minLines] of [['A', ['argparse.py'], 600], ['B', ['textwrap.py', 'csv.py', 'cmd.py', 'heapq.py'], 340], ['C', ['calendar.py', 'fractions.py', 'gettext.py', 'shlex.py'], 340]]) {
    const source = pick(preferred, minLines);
    if (!source) {
      throw new Error(`no Python standard library module of ${minLines}+ lines found for file ${key} (looked in ${dirs.join(', ') || 'no folder: neither /usr/lib/python3.* nor a python3 on PATH'}); install python3`);
    }
    taken.add(source.name);
    sources[key] = source;
  }
  return sources;
}

/** From `lines[start]` on, lines up to and including the `count`-th non-blank one (blank lines are typed as Enter). */
function takeLines(lines, start, count) {
  const typed = [];
  let index = start;
  let nonBlank = 0;
  while (nonBlank < count && index < lines.length) {
    const line = lines[index++].trimEnd();
    typed.push(line);
    if (line) nonBlank++;
  }
  if (nonBlank < count) throw new Error(`the source has too few lines to type ${count} from line ${start + 1}`);
  return { typed, next: index };
}

/**
 * Where to type in the middle of A: after a statement of a function body near line 150 of A's head, the statements
 * that follow it there (Python's ast finds them), `count` non-blank lines or a few more; retyped after it they fit.
 * Returns { line (1-based, the line after which they go), typed }, or undefined when no python3 or no such place.
 */
const PICK_MIDDLE_PY = `
import ast, json, sys
path, head, target, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
source = open(path, encoding='utf-8').read()
lines = source.split('\\n')
best = None
for node in ast.walk(ast.parse(source)):
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        continue
    body = node.body
    for i in range(1, len(body)):
        after = body[i - 1].end_lineno
        nonblank, end = 0, None
        for statement in body[i:]:
            if getattr(statement, 'decorator_list', None):
                break
            end = statement.end_lineno
            nonblank = sum(1 for k in range(after, end) if lines[k].strip())
            if nonblank >= count:
                break
        if end is None or nonblank < count or nonblank > count + 2 or end > head:
            continue
        score = (abs(after - target), after)
        if best is None or score < best[0]:
            best = (score, after, end)
print(json.dumps(best and {'line': best[1], 'end': best[2]}))
`;

function pickMiddle(file, lines, count) {
  const picked = spawnSync('python3', ['-c', PICK_MIDDLE_PY, file, String(HEAD_LINES), '150', String(count)], { encoding: 'utf8' });
  if (picked.status !== 0) {
    log(`note: python3 could not find a place in the middle of ${file}: ${(picked.error?.message ?? picked.stderr).trim().split('\n').at(-1)}`);
    return undefined;
  }
  const place = JSON.parse(picked.stdout);
  return place ? { line: place.line, typed: lines.slice(place.line, place.end).map((l) => l.trimEnd()) } : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Figures

/** Nearest-rank percentile of `values` (p in 0..100); null when empty. */
function percentile(values, p) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

function latencySummary(values) {
  return { count: values.length, p50: percentile(values, 50), p95: percentile(values, 95), max: values.length ? Math.max(...values) : null };
}

/** Of lines (perLine entries) that show ghost text: how many were answered from the whole window, the quick prompt, neither known. */
function wholeWindowShare(lines) {
  const shown = lines.filter((l) => l.outcome === 'ghost');
  const wholeWindow = shown.filter((l) => l.contextKind === 'whole window').length;
  const quickPrompt = shown.filter((l) => l.contextKind === 'quick prompt').length;
  return { wholeWindow, quickPrompt, unknown: shown.length - wholeWindow - quickPrompt, share: wholeWindow + quickPrompt ? Math.round((1000 * wholeWindow) / (wholeWindow + quickPrompt)) / 1000 : null };
}


// ---------------------------------------------------------------------------------------------------------------
// The extension's log

function extensionLogFiles(userData) {
  const logs = path.join(userData, 'logs');
  if (!fs.existsSync(logs)) return [];
  return fs.readdirSync(logs, { recursive: true }).map(String)
    .filter((f) => path.basename(f).includes('phi-complete') && f.endsWith('.log'))
    .map((f) => path.join(logs, f)).sort();
}

function readExtensionLog(userData) {
  return extensionLogFiles(userData).map((f) => fs.readFileSync(f, 'utf8')).join('');
}

/**
 * The extension's completion line (COMPLETION_LINE), its end (CONTEXT_PART: the file's tokens before the cursor its
 * prompt held) and a cache hit's line (CACHE_LINE), from the module that writes them (src/completion/outcome.ts,
 * compiled to out/ by `npm run compile`; its unit test checks the two agree).
 */
const { COMPLETION_LINE, CONTEXT_PART, CACHE_LINE } = createRequire(import.meta.url)(path.join(repo, 'out/src/completion/outcome.js'));

/** The log's local time (the log writes local time) as epoch ms. */
const logTime = (stamp) => new Date(stamp.replace(' ', 'T')).getTime();

/**
 * The extension's completion lines: the engine's stats, when it logged the answer (epoch ms), the provider's times
 * and the context it answered from (contextTokens null where the line has no context part; contextKind then from the
 * quick prompt flag).
 */
function parseCompletions(text) {
  return text.split('\n').map((line) => [COMPLETION_LINE.exec(line), CONTEXT_PART.exec(line)]).filter(([m]) => m).map(([m, context]) => ({
    loggedAt: logTime(m[1]),
    generatedTokens: Number(m[2]), firstTokenMs: Number(m[3]), tokensPerSecond: Number(m[4]),
    reusedTokens: Number(m[5]), promptTokens: Number(m[6]), quick: m[7] !== undefined, finishReason: m[8],
    askedAfterMs: m[9] === undefined ? undefined : Number(m[9]), answeredMs: m[10] === undefined ? undefined : Number(m[10]),
    contextTokens: context ? Number(context[1]) : null,
    contextKind: context ? context[2] : m[7] !== undefined ? 'quick prompt' : 'whole window',
  }));
}

const WARM_UP_LINE = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) .*warm-up(?: \(([^)]*)\))? (\w+): .*?, (\d+) tokens read in (\d+) ms/;
const WARM_UP_FAILED = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) .*warm-up of \S+ failed/;

/** The extension's warm-up lines (`warm-up[ (next window)| (typing)] done|cancelled|busy: …`, `warm-up of … failed`). */
function parseWarmUps(text) {
  const warmUps = [];
  for (const line of text.split('\n')) {
    const m = WARM_UP_LINE.exec(line);
    if (m) {
      warmUps.push({ loggedAt: logTime(m[1]), kind: m[2] === 'next window' ? 'nextWindow' : m[2] ?? 'rest', outcome: m[3], tokensRead: Number(m[4]), readMs: Number(m[5]) });
      continue;
    }
    const failed = WARM_UP_FAILED.exec(line);
    if (failed) warmUps.push({ loggedAt: logTime(failed[1]), kind: null, outcome: 'failed', tokensRead: 0, readMs: 0 });
  }
  return warmUps;
}

/** Warm-ups per outcome (done, cancelled, busy, failed), per kind of warm-up, and the tokens they read. */
function warmUpSummary(warmUps) {
  const count = (list) => list.reduce((counts, w) => ({ ...counts, [w.outcome]: (counts[w.outcome] ?? 0) + 1 }), { done: 0, cancelled: 0, busy: 0, failed: 0 });
  const kinds = [...new Set(warmUps.map((w) => w.kind).filter((k) => k !== null))];
  return {
    ...count(warmUps),
    total: warmUps.length,
    tokensRead: warmUps.reduce((sum, w) => sum + w.tokensRead, 0),
    byKind: Object.fromEntries(kinds.map((kind) => [kind, count(warmUps.filter((w) => w.kind === kind))])),
  };
}

/**
 * The completion whose answer a line's ghost text shows: the last one answered after the line's last key (the page's
 * clock) and before the ghost text appeared. Undefined when there is none (no ghost text, or served from the cache).
 */
function answerOf(result, completions) {
  if (result.outcome !== 'ghost' || !result.lastKeyAt) return undefined;
  const keyAt = Date.parse(result.lastKeyAt);
  const ghostAt = keyAt + result.latencyMs;
  return completions.filter((c) => c.finishReason !== 'cancelled' && c.answeredMs !== undefined && c.loggedAt >= keyAt && c.loggedAt <= ghostAt + 50).at(-1);
}

/**
 * Where a line's wait went, from its last key and the completion whose answer it shows (answerOf): VS Code asking
 * the provider, the provider's debounce, waiting for the worker (a model pass in flight, messages), the worker's
 * time to the first token (reading what is not cached), decoding the rest, and VS Code showing it. Undefined when
 * the lines cannot be matched.
 */
function waitOf(result, completions) {
  const answer = answerOf(result, completions);
  if (!answer) return undefined;
  const keyAt = Date.parse(result.lastKeyAt);
  const ghostAt = keyAt + result.latencyMs;
  const decodeMs = answer.tokensPerSecond > 0 ? (1000 * answer.generatedTokens) / answer.tokensPerSecond : 0;
  const sentAt = answer.loggedAt - answer.answeredMs;
  return {
    vscodeAsks: sentAt - answer.askedAfterMs - keyAt,
    debounce: answer.askedAfterMs,
    workerBusy: answer.answeredMs - answer.firstTokenMs - decodeMs,
    firstToken: answer.firstTokenMs,
    decode: decodeMs,
    shown: ghostAt - answer.loggedAt,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The worker's memory

/** Processes of code-server's process group (its extension host, the extension's worker) running dist/worker.js. */
function workerPids(groupId) {
  const pids = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== groupId || fields[0] === 'Z') continue;
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(path.join('dist', 'worker.js'))) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

function statusKiB(pid, field) {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Samples the worker's VmRSS (and VmHWM, the kernel's peak) every 250 ms. */
function watchWorker(groupId) {
  const seen = new Map(); // pid → { rssKiB peak sampled, hwmKiB }
  const sample = () => {
    for (const pid of workerPids(groupId)) {
      const entry = seen.get(pid) ?? { sampledPeakKiB: 0, hwmKiB: 0, samples: 0 };
      const rss = statusKiB(pid, 'VmRSS');
      const hwm = statusKiB(pid, 'VmHWM');
      if (rss !== undefined) {
        entry.sampledPeakKiB = Math.max(entry.sampledPeakKiB, rss);
        entry.lastKiB = rss;
        entry.samples++;
      }
      if (hwm !== undefined) entry.hwmKiB = Math.max(entry.hwmKiB, hwm);
      seen.set(pid, entry);
    }
  };
  const timer = setInterval(sample, 250);
  return {
    sample,
    stop: () => clearInterval(timer),
    pids: () => [...seen.keys()],
    report: () => {
      sample();
      const mib = (kib) => Math.round(kib / 1024);
      const entries = [...seen.entries()];
      return {
        pids: entries.map(([pid]) => pid),
        peakRssMiB: entries.length ? mib(Math.max(...entries.map(([, e]) => e.hwmKiB))) : null,
        sampledPeakRssMiB: entries.length ? mib(Math.max(...entries.map(([, e]) => e.sampledPeakKiB))) : null,
        finalRssMiB: entries.length ? mib(entries.at(-1)[1].lastKiB ?? 0) : null,
        samples: entries.reduce((n, [, e]) => n + e.samples, 0),
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// In the page

/** Marks the time of every key and text input (the last one before a poll is the line's last key). */
function installKeyClock() {
  if (window.__benchKeyClock) return;
  window.__benchKeyClock = true;
  window.__benchKeyIntervals = [];
  let lastKeydown;
  // When ghost text first shows after the last key, from the page's own mutations: the bench polls the page only
  // every POLL_MS, so the clock does not depend on the poll, and polling costs the page little CPU.
  window.__benchGhostAt = null;
  const ghostSelector = '.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text-decoration-preview, .monaco-editor .ghost-text';
  new MutationObserver(() => {
    if (window.__benchGhostAt === null && [...document.querySelectorAll(ghostSelector)].some((n) => (n.textContent ?? '').trim() !== '')) {
      window.__benchGhostAt = performance.now();
    }
  }).observe(document.body, { childList: true, subtree: true, characterData: true });
  const mark = () => {
    window.__benchKeyAt = performance.now();
    window.__benchGhostAt = null;
  };
  document.addEventListener('keydown', (event) => {
    mark();
    // The pace of typing within a line: intervals between printable keys into the editor, less than 2 s apart.
    if (event.key.length === 1 && event.target?.closest?.('.editor-group-container .monaco-editor')) {
      if (lastKeydown !== undefined && performance.now() - lastKeydown < 2000) window.__benchKeyIntervals.push(performance.now() - lastKeydown);
      lastKeydown = performance.now();
    } else lastKeydown = undefined;
  }, true);
  document.addEventListener('input', mark, true);
}

/** readGhostText, the page's clock, the last key's time and whether the status bar shows a spinner. */
const PROBE = `(() => {
  const seen = (${readGhostText.toString()})();
  return {
    ghostText: seen.ghostText,
    now: performance.now(),
    keyAt: window.__benchKeyAt ?? null,
    ghostAt: window.__benchGhostAt ?? null,
    origin: performance.timeOrigin,
    spinning: !!document.querySelector('.statusbar-item .codicon-loading, .statusbar-item .codicon-modifier-spin'),
  };
})()`;

function statusbarTexts() {
  return [...document.querySelectorAll('.statusbar-item')].map((n) => (n.textContent ?? '').replace(/\u00a0/g, ' ').trim()).filter((t) => t);
}

// ---------------------------------------------------------------------------------------------------------------

// Long (about 520 lines) on purpose for now: the session's steps share one editor page, server and clock in one scope; split it with a run of `npm run bench:editor` to check it.
async function main() {
  const options = parseArgs(process.argv.slice(2), {
    '--session': 'string', '--model': 'path', '--lines': 'number', '--idle-seconds': 'number', '--max-tokens': 'number', '--screenshots': 'path',
    '--keep': 'flag', '--timeout-seconds': 'number', '--backend': 'string',
  }, { session: 'type', backend: 'local', lines: 8, idleSeconds: 30, maxTokens: 8, keep: false, timeoutSeconds: 60 }, { name: 'bench:editor', usage: USAGE });
  if (!SESSIONS.includes(options.session)) throw new Error(`--session must be one of ${SESSIONS.join(', ')}, not ${options.session}`);
  if (!['local', 'server'].includes(options.backend)) throw new Error(`--backend must be local or server, not ${options.backend}`);
  const viaServer = options.backend === 'server';
  const reading = options.session === 'read-and-pause';
  for (const key of ['lines', 'maxTokens']) {
    if (!Number.isInteger(options[key]) || options[key] < 1) throw new Error(`--${key === 'lines' ? 'lines' : 'max-tokens'} must be a whole number ≥ 1`);
  }
  if (!(options.idleSeconds >= 0) || !(options.timeoutSeconds > 0)) throw new Error('--idle-seconds must be ≥ 0 and --timeout-seconds > 0');
  const started = Date.now();
  const seconds = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

  const required = [['dist/extension.js', 'npm run build'], ['dist/worker.js', 'npm run build'], ['out/src/util/rng.js', 'npm run compile']];
  if (!options.model) required.push(['out/bench/support/benchModel.js', 'npm run compile']);
  const found = findTools(required);
  if (found.problems.length) throw new Error(`cannot run:\n  - ${found.problems.join('\n  - ')}`);

  const sources = pickSources();
  // The files the session opens: read-and-pause only A.
  const used = reading ? ['A'] : ['A', 'B', 'C'];
  log(`session ${options.session}; sources: ${used.map((key) => `${key} ${sources[key].file}`).join(', ')}`);
  const fewer = Math.max(1, Math.ceil(options.lines / 2));
  const plan = reading ? { readAndPause: takeLines(sources.A.lines, HEAD_LINES, options.lines) } : {
    endOfA: takeLines(sources.A.lines, HEAD_LINES, options.lines),
    middleOfA: pickMiddle(sources.A.file, sources.A.lines, fewer),
    fileB: takeLines(sources.B.lines, HEAD_LINES, fewer),
    afterIdleC: takeLines(sources.C.lines, HEAD_LINES, 1),
  };
  if (!reading) {
    plan.backToA = takeLines(sources.A.lines, plan.endOfA.next, fewer);
    if (!plan.middleOfA) log(`note: no place to type ${fewer} lines inside a function found in ${sources.A.name}'s head: phase middleOfA is skipped`);
  }

  // The model: --model, else the full-size random model of the CPU catalogue entry (built once).
  let modelDir = options.model;
  if (modelDir) {
    if (!fs.existsSync(path.join(modelDir, 'model.onnx'))) throw new Error(`${modelDir} has no model.onnx`);
  } else {
    log('the full-size random int4 model (out/bench/support/benchModel.js; builds it the first time, a few minutes)');
    const build = spawnSync(process.execPath, [path.join(repo, 'out/bench/support/benchModel.js')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (build.status !== 0) throw new Error(`building the full-size model failed (${build.status ?? build.signal})`);
    modelDir = build.stdout.trim().split('\n').at(-1);
  }
  log(`model ${modelDir} (ready after ${seconds()})`);
  // --backend server: the same weights as a GGUF, and the llama-server the in-editor tests build.
  let gguf;
  let llamaServerBin;
  if (viaServer) {
    const written = spawnSync(process.execPath, [path.join(repo, 'out/bench/support/benchModel.js'), '--gguf'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (written.status !== 0) throw new Error(`writing the full-size GGUF failed (${written.status ?? written.signal})`);
    gguf = written.stdout.trim().split('\n').at(-1);
    llamaServerBin = buildLlamaServer(log);
    log(`GGUF ${gguf} (ready after ${seconds()})`);
  }

  const manifest = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
  const properties = manifest.contributes?.configuration?.properties ?? {};
  const defaultOf = (key) => (properties[key] && 'default' in properties[key] ? properties[key].default : null);

  const dirs = makeRunDirs('phi-bench-editor-');
  const { tmp, userData, extensions, workspace } = dirs;
  const session = runSession(tmp, options.keep, log);
  let watcher;
  try {
    // The development extension, as an installed one: this checkout linked into the extensions folder.
    const extensionFolder = path.join(extensions, `${manifest.publisher}.${manifest.name}-${manifest.version}`);
    fs.symlinkSync(repo, extensionFolder, 'dir');

    let serverSettings = {};
    let serverHost;
    if (viaServer) {
      const started = await startLlamaServer(llamaServerBin, gguf, tmp, 'llama-server', [], 2);
      session.llamaServers = { stop: () => stopProcessGroup(started.child) };
      serverHost = new URL(started.url).host;
      serverSettings = { 'phiComplete.backend': 'server', 'phiComplete.server.url': started.url };
      log(`llama-server on ${started.url} after ${seconds()} (log ${started.logFile})`);
    }

    writeUserSettings(userData, modelDir, {
      'phiComplete.completion.maxTokens': options.maxTokens,
      'editor.autoIndent': 'none',
      'editor.autoClosingBrackets': 'never',
      'editor.autoClosingQuotes': 'never',
      'editor.autoSurround': 'never',
      'editor.formatOnType': false,
      'editor.quickSuggestions': { other: 'off', comments: 'off', strings: 'off' },
      'editor.suggestOnTriggerCharacters': false,
      'editor.wordBasedSuggestions': 'off',
      'editor.parameterHints.enabled': false,
      'editor.acceptSuggestionOnEnter': 'off',
      'editor.hover.enabled': false,
      'extensions.ignoreRecommendations': true,
      'files.exclude': { '.phi-it': true },
      ...serverSettings,
    });
    // writeUserSettings turns the debounce off for the tests: the benchmark keeps the product's default.
    const settingsFile = path.join(userData, 'User', 'settings.json');
    const settings = JSON.parse(fs.readFileSync(settingsFile, 'utf8'));
    delete settings['phiComplete.debounceMs'];
    fs.writeFileSync(settingsFile, JSON.stringify(settings, null, 2));

    // The workspace: the head of each module. `expected` follows what the session types, to check at the end.
    const files = {};
    const expected = {};
    for (const key of used) {
      const { name, lines } = sources[key];
      files[key] = path.join(workspace, name);
      expected[key] = lines.slice(0, HEAD_LINES).map((l) => l.trimEnd());
      expected[key].push('');
      fs.writeFileSync(files[key], expected[key].join('\n'));
    }
    // read-and-pause loads the model on a small file of its own, so that A is opened with the model ready.
    const START_FILE = 'start.py';
    if (reading) fs.writeFileSync(path.join(workspace, START_FILE), 'import os\nimport sys\n\n');

    log('starting code-server');
    let origin;
    ({ server: session.server, origin } = await startCodeServer(found, dirs));
    log(`code-server is up on ${origin} after ${seconds()}`);
    watcher = watchWorker(session.server.pid);
    let page;
    ({ browser: session.browser, page } = await openBrowser(found));
    // The extension's log channel at debug level (its completion lines), through the workbench's logLevel payload.
    const payload = [['logLevel', `${manifest.publisher}.${manifest.name}:debug`]];
    await page.goto(`http://${origin}/?folder=${encodeURIComponent(workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await page.evaluate(installKeyClock);
    const activationDeadline = Date.now() + 60_000;
    // Its status bar item: "phi" while idle, the server's host with a server backend.
    const active = (t) => (viaServer ? t.includes(serverHost) : /phi/i.test(t));
    while (!(await page.evaluate(statusbarTexts)).some(active)) {
      if (Date.now() > activationDeadline) throw new Error(`the extension did not activate within 60 s (no "${viaServer ? serverHost : 'phi'}" status bar item): ${JSON.stringify(await page.evaluate(statusbarTexts))}`);
      await sleep(250);
    }
    log(`workbench open, extension active after ${seconds()}`);

    // The model builder's seeded generator, so every run types at the same pace.
    const { mulberry32 } = createRequire(import.meta.url)(path.join(repo, 'out/src/util/rng.js'));
    const rng = mulberry32(17);
    const pace = () => 40 + Math.floor(rng() * 21);
    // The pauses of read-and-pause have a generator of their own, so the keys' pace is the same in both sessions.
    const pauseRng = mulberry32(24);
    const pause = () => PAUSE_MS.min + Math.floor(pauseRng() * (PAUSE_MS.max - PAUSE_MS.min + 1));
    const probe = () => page.evaluate(PROBE);
    const logText = () => readExtensionLog(userData);
    const results = [];
    const screenshot = async (name) => {
      if (!options.screenshots) return;
      fs.mkdirSync(options.screenshots, { recursive: true });
      await page.screenshot({ path: path.join(options.screenshots, `${name}.png`) }).catch((error) => log(`screenshot ${name} failed: ${error.message}`));
    };

    /** When the file being typed into was last opened (epoch ms): lines count their time since open from it. */
    let openedAt = Date.now();
    /** Opens a workspace file through Quick Open and puts the cursor at its end (Ctrl+End); sets openedAt. */
    const openFile = async (name) => {
      const active = page.locator('.tabs-container .tab.active', { hasText: name });
      for (let attempt = 1; ; attempt++) {
        try {
          await page.keyboard.press('Control+P');
          await page.locator('.quick-input-widget').waitFor({ state: 'visible', timeout: 10_000 });
          await page.keyboard.type(name, { delay: 20 });
          await page.locator('.quick-input-list .monaco-list-row.focused', { hasText: name }).first().waitFor({ timeout: 10_000 });
          await page.keyboard.press('Enter');
          await active.waitFor({ timeout: 10_000 });
          openedAt = Date.now();
          break;
        } catch (error) {
          if (attempt === 3) throw new Error(`could not open ${name} through Quick Open: ${error.message.split('\n')[0]}`);
          log(`opening ${name} (attempt ${attempt}) failed: ${error.message.split('\n')[0]}; again`);
          await page.keyboard.press('Escape');
          await sleep(500);
        }
      }
      // The editor may not have the keyboard yet when Quick Open closes: press Ctrl+End until the status bar shows
      // the cursor past line 1 (each file has hundreds of lines), or typing would go to the top of the file.
      for (let attempt = 1; ; attempt++) {
        await sleep(300);
        await page.keyboard.press('Control+End');
        await sleep(200);
        const line = (await page.evaluate(statusbarTexts)).map((t) => /^Ln (\d+), Col/.exec(t)?.[1]).find((n) => n !== undefined);
        if (line !== undefined && Number(line) > 1) break;
        if (attempt === 5) throw new Error(`the cursor did not go to the end of ${name} (status bar line ${line ?? 'not shown'})`);
        log(`the cursor is not at the end of ${name} yet (line ${line ?? 'not shown'}); again`);
        // A click in the text gives the editor the keyboard (and moves the cursor, which Ctrl+End then moves on).
        await page.locator('.editor-group-container .monaco-editor .view-lines').first().click().catch(() => undefined);
      }
      await sleep(pace());
    };

    /** Runs a command through the command palette (F1), by its title. */
    const runCommand = async (title) => {
      await page.keyboard.press('F1');
      await page.locator('.quick-input-widget').waitFor({ state: 'visible', timeout: 10_000 });
      await page.keyboard.type(title, { delay: 10 });
      await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 10_000 });
      await page.keyboard.press('Enter');
    };

    const save = async () => {
      await page.keyboard.press('Control+S');
      await sleep(300);
    };

    /** Waits for the ghost text that follows the line's last key (already typed); the outcome of that line. */
    const awaitGhost = async (logBefore) => {
      const deadline = Date.now() + options.timeoutSeconds * 1000;
      let settledSince;
      let logLength = logBefore.length;
      let lastLogCheck = 0;
      for (;;) {
        const polled = Date.now();
        const seen = await probe();
        if (seen.ghostText.length) return { outcome: 'ghost', latencyMs: Math.round((seen.ghostAt ?? seen.now) - seen.keyAt), ghostText: seen.ghostText, lastKeyAt: new Date(seen.origin + seen.keyAt).toISOString() };
        if (Date.now() > deadline) return { outcome: 'timeout', latencyMs: null };
        if (Date.now() - lastLogCheck >= 250) {
          lastLogCheck = Date.now();
          const text = logText();
          if (text.length !== logLength) {
            logLength = text.length;
            const fresh = text.slice(logBefore.length);
            const finished = parseCompletions(fresh).some((c) => c.finishReason !== 'cancelled') || CACHE_LINE.test(fresh);
            settledSince = finished ? Date.now() : undefined;
          } else if (settledSince !== undefined && !seen.spinning && Date.now() - settledSince >= NO_SUGGESTION_SETTLE_MS) {
            return { outcome: 'no-suggestion', latencyMs: null };
          }
        }
        await sleep(Math.max(0, POLL_MS - (Date.now() - polled)));
      }
    };

    /** Types one line key by key; for a non-blank line, measures the ghost text after its last key. */
    const typeLine = async (phase, text) => {
      if (!text) return;
      const keys = [...text];
      // Keys go out on a schedule (each `pace()` after the one before), so the time a key takes to send is not
      // added to the pause after it.
      let nextAt = Date.now();
      for (const key of keys.slice(0, -1)) {
        await page.keyboard.type(key);
        nextAt += pace();
        await sleep(Math.max(0, nextAt - Date.now()));
      }
      // No ghost text on screen before the last key: what shows after it is that request's.
      let escaped = false;
      if ((await probe()).ghostText.length) {
        escaped = true;
        await page.keyboard.press('Escape');
        const until = Date.now() + 1000;
        while ((await probe()).ghostText.length && Date.now() < until) await sleep(POLL_MS);
        await sleep(pace());
      }
      const logBefore = logText();
      const keySentAt = Date.now();
      await page.keyboard.type(keys.at(-1));
      const result = await awaitGhost(logBefore);
      // Since the file was opened: from the page's time of the last key where ghost text showed, else from when it was sent.
      const sinceOpenMs = (result.lastKeyAt ? Date.parse(result.lastKeyAt) : keySentAt) - openedAt;
      results.push({ phase, line: text.trim().slice(0, 60), escapedBeforeLastKey: escaped, sinceOpenMs, ...result });
      log(`${phase}: ${result.outcome}${result.latencyMs !== null ? ` ${result.latencyMs} ms` : ''}${result.lastKeyAt ? ` (last key ${result.lastKeyAt.slice(11, 23)})` : ''}, ${(sinceOpenMs / 1000).toFixed(1)} s after open  ${JSON.stringify(text.trim().slice(0, 50))}${result.ghostText ? ` → ${JSON.stringify(result.ghostText.slice(0, 40))}` : ''}`);
    };

    /**
     * Types lines; Escape after each (so Enter does not meet a suggestion), then Enter (not after the last with
     * `enterAfterLast` false). With `pauses`, a non-blank line's ghost text stays on screen for pause() before the
     * Escape (the user reads it; also when the line ended without one), recorded as the line's pauseMs.
     */
    const typeLines = async (phase, lines, { enterAfterLast = true, pauses = false } = {}) => {
      for (const [i, text] of lines.entries()) {
        await typeLine(phase, text);
        if (pauses && text) {
          const pauseMs = pause();
          results.at(-1).pauseMs = pauseMs;
          await sleep(pauseMs);
        }
        await page.keyboard.press('Escape');
        await sleep(pace());
        if (i < lines.length - 1 || enterAfterLast) {
          await page.keyboard.press('Enter');
          await sleep(pace());
        }
      }
    };

    /** The first completion, in the file open now, loads the model (triggered explicitly, measured apart from the phases). */
    const firstCompletion = async () => {
      await runCommand('Trigger Inline Suggestion');
      const warmupStarted = Date.now();
      let warmup = { outcome: 'timeout', firstSuggestionMs: null };
      let settledSince;
      while (Date.now() - warmupStarted < 180_000) {
        const seen = await probe();
        if (seen.ghostText.length) {
          warmup = { outcome: 'ghost', firstSuggestionMs: Date.now() - warmupStarted };
          break;
        }
        const finished = parseCompletions(logText()).some((c) => c.finishReason !== 'cancelled');
        settledSince = finished ? settledSince ?? Date.now() : undefined;
        if (settledSince !== undefined && Date.now() - settledSince > 2000) {
          warmup = { outcome: 'no-suggestion', firstSuggestionMs: null };
          break;
        }
        await sleep(POLL_MS);
      }
      log(`first completion: ${warmup.outcome} after ${((Date.now() - warmupStarted) / 1000).toFixed(1)} s`);
      await page.keyboard.press('Escape');
      await sleep(500);
      return warmup;
    };

    let warmup;
    /** read-and-pause: when A was opened (epoch ms); only what the log says after it counts. */
    let readingFrom;
    if (reading) {
      // The model loaded on start.py; then A opened, the cursor moved once (Ctrl+End, in openFile), lines typed
      // with a pause after each.
      await openFile(START_FILE);
      log(`${START_FILE} open after ${seconds()}; first completion (loads the model)`);
      warmup = await firstCompletion();
      await openFile(sources.A.name);
      readingFrom = openedAt;
      log(`${sources.A.name} open after ${seconds()}, cursor at its end; typing ${options.lines} lines with pauses`);
      await typeLines('readAndPause', plan.readAndPause.typed, { pauses: true });
      expected.A.splice(expected.A.length - 1, 0, ...plan.readAndPause.typed);
      await save();
      await screenshot('1-read-and-pause');
    } else {
      // Open A; the first completion there loads the model.
      await openFile(sources.A.name);
      log(`${sources.A.name} open after ${seconds()}; first completion (loads the model)`);
      warmup = await firstCompletion();

      // 1. typing at the end of A
      await typeLines('endOfA', plan.endOfA.typed);
      expected.A.splice(expected.A.length - 1, 0, ...plan.endOfA.typed);
      await save();
      await screenshot('1-end-of-A');

      // 2. typing inside a function in the middle of A
      if (plan.middleOfA) {
        await page.keyboard.press('Control+G');
        await page.locator('.quick-input-widget').waitFor({ state: 'visible', timeout: 10_000 });
        await page.keyboard.type(String(plan.middleOfA.line), { delay: 20 });
        await sleep(200);
        await page.keyboard.press('Enter');
        await sleep(300);
        await page.keyboard.press('End');
        await sleep(pace());
        await page.keyboard.press('Enter');
        await sleep(pace());
        await typeLines('middleOfA', plan.middleOfA.typed, { enterAfterLast: false });
        expected.A.splice(plan.middleOfA.line, 0, ...plan.middleOfA.typed);
        await save();
        await screenshot('2-middle-of-A');
      }

      // 3. B, then back to A (at its end)
      await openFile(sources.B.name);
      await typeLines('fileB', plan.fileB.typed);
      expected.B.splice(expected.B.length - 1, 0, ...plan.fileB.typed);
      await save();
      await screenshot('3-file-B');
      await openFile(sources.A.name);
      await typeLines('backToA', plan.backToA.typed);
      expected.A.splice(expected.A.length - 1, 0, ...plan.backToA.typed);
      await save();
      await screenshot('4-back-to-A');

      // 4. C, idle, one line
      await openFile(sources.C.name);
      log(`${sources.C.name} open; idle for ${options.idleSeconds} s`);
      await sleep(options.idleSeconds * 1000);
      await typeLines('afterIdleC', plan.afterIdleC.typed);
      expected.C.splice(expected.C.length - 1, 0, ...plan.afterIdleC.typed);
      await save();
      await screenshot('5-after-idle-C');
    }

    // What the session typed is what the files hold (no suggestion accepted, no auto-indent or auto-closing).
    const documents = {};
    await sleep(500);
    for (const key of used) {
      const actual = fs.readFileSync(files[key], 'utf8');
      const wanted = expected[key].join('\n');
      if (actual === wanted) documents[key] = 'as typed';
      else {
        const a = actual.split('\n');
        const w = expected[key];
        const at = a.findIndex((line, i) => line !== w[i]);
        documents[key] = `differs from line ${at + 1}: ${JSON.stringify(a[at])} instead of ${JSON.stringify(w[at])}`;
        log(`FAIL: ${sources[key].name} ${documents[key]}`);
      }
    }

    // Figures
    const keyIntervals = await page.evaluate(() => window.__benchKeyIntervals ?? []);
    const memory = watcher.report();
    watcher.stop();
    const text = logText();
    const completions = parseCompletions(text);
    const loadMatch = [...text.matchAll(/loaded on (\w+) in (\d+) ms/g)].at(-1);
    // read-and-pause counts the requests and warm-ups from A's opening on (not the model's first completion on start.py).
    const counted = completions.filter((c) => readingFrom === undefined || c.loggedAt >= readingFrom);
    const warmUps = parseWarmUps(text).filter((w) => readingFrom === undefined || w.loggedAt >= readingFrom);
    const rereads = counted.map((c) => c.promptTokens - c.reusedTokens);
    const finishedRereads = counted.filter((c) => c.finishReason !== 'cancelled').map((c) => c.promptTokens - c.reusedTokens);
    const phases = reading ? ['readAndPause'] : ['endOfA', 'middleOfA', 'fileB', 'backToA', 'afterIdleC'];
    const fromOpen = (r) => r.sinceOpenMs >= FROM_OPEN_MS;
    const latencies = (names, which = () => true) => results.filter((r) => names.includes(r.phase) && which(r) && r.outcome === 'ghost').map((r) => r.latencyMs);
    // For the targets a line that timed out counts as the timeout (a line with no suggestion does not count).
    const judged = (names, which = () => true) => results.filter((r) => names.includes(r.phase) && which(r) && r.outcome !== 'no-suggestion')
      .map((r) => (r.outcome === 'ghost' ? r.latencyMs : options.timeoutSeconds * 1000));
    const editing = judged(['endOfA', 'middleOfA', 'backToA']);
    const afterIdle = results.find((r) => r.phase === 'afterIdleC');
    const firstSuggestionAfterIdleMs = afterIdle?.outcome === 'ghost' ? afterIdle.latencyMs : null;
    const cacheBudgetMB = defaultOf('phiComplete.cacheMemoryMB');
    const rereadP90 = percentile(rereads, 90);
    const editingP50 = percentile(editing, 50);
    const editingP95 = percentile(editing, 95);
    const waits = results.map((r) => waitOf(r, completions)).filter(Boolean);
    /** Each part of the wait at percentile p over the lines. */
    const waitPercentile = (p) => (waits.length ? Object.fromEntries(Object.keys(waits[0]).map((part) => [part, Math.round(percentile(waits.map((w) => w[part]), p))])) : null);
    // Each line with the completion it shows: the wait, the context it was answered from and what it re-read.
    const perLine = results.map((r) => {
      const answer = answerOf(r, completions);
      return {
        phase: r.phase, line: r.line, outcome: r.outcome, latencyMs: r.latencyMs, sinceOpenMs: r.sinceOpenMs,
        ...(r.pauseMs !== undefined ? { pauseMs: r.pauseMs } : {}),
        contextTokens: answer?.contextTokens ?? null, contextKind: answer?.contextKind ?? null,
        rereadTokens: answer ? answer.promptTokens - answer.reusedTokens : null,
      };
    });
    const shareAll = wholeWindowShare(perLine);
    const shareFrom15s = wholeWindowShare(perLine.filter(fromOpen));
    const fromOpenJudged = judged(phases, fromOpen);
    const fromOpenP50 = percentile(fromOpenJudged, 50);
    const fromOpenP95 = percentile(fromOpenJudged, 95);
    const rssTarget = { peakRssMiB: memory.peakRssMiB, cacheBudgetMB, pass: null, note: 'reported beside the cache budget, not judged: the RSS also holds the model and the runtime' };
    let targets;
    if (reading) {
      const t = TARGETS['read-and-pause'];
      // The latency targets are for 8-token suggestions: another --max-tokens is reported, not judged.
      const latencyJudged = options.maxTokens === t.maxTokens;
      const latencyTarget = (value, limit) => ({
        value, target: `≤ ${limit}`, pass: latencyJudged ? value !== null && value <= limit : null,
        ...(latencyJudged ? {} : { note: `the target is for ${t.maxTokens}-token suggestions; this run asked for ${options.maxTokens}` }),
      });
      targets = {
        wholeWindowShareFrom15s: { value: shareFrom15s.share, target: `≥ ${t.wholeWindowShareFrom15s}`, pass: shareFrom15s.share !== null && shareFrom15s.share >= t.wholeWindowShareFrom15s },
        latencyFrom15sP50Ms: latencyTarget(fromOpenP50, t.latencyFrom15sP50Ms),
        latencyFrom15sP95Ms: latencyTarget(fromOpenP95, t.latencyFrom15sP95Ms),
        workerPeakRss: rssTarget,
      };
    } else {
      const t = TARGETS.type;
      targets = {
        rereadTokensP90: { value: rereadP90, target: `≤ ${t.rereadTokensP90}`, pass: rereadP90 !== null && rereadP90 <= t.rereadTokensP90 },
        editingLatencyP50Ms: { value: editingP50, target: `≤ ${t.editingLatencyP50Ms}`, pass: editingP50 !== null && editingP50 <= t.editingLatencyP50Ms },
        editingLatencyP95Ms: { value: editingP95, target: `≤ ${t.editingLatencyP95Ms}`, pass: editingP95 !== null && editingP95 <= t.editingLatencyP95Ms },
        firstSuggestionAfterIdleMs: { value: firstSuggestionAfterIdleMs, target: `≤ ${t.firstSuggestionAfterIdleMs}`, pass: firstSuggestionAfterIdleMs !== null && firstSuggestionAfterIdleMs <= t.firstSuggestionAfterIdleMs },
        workerPeakRss: rssTarget,
      };
    }
    const summary = {
      benchmark: 'bench:editor',
      session: options.session,
      backend: viaServer ? `llama-server (${serverHost})` : 'local',
      model: modelDir,
      modelLoadMs: loadMatch ? Number(loadMatch[2]) : null,
      device: loadMatch ? loadMatch[1] : null,
      settings: {
        maxTokens: options.maxTokens,
        debounceMs: defaultOf('phiComplete.debounceMs'),
        contextTokens: defaultOf('phiComplete.contextTokens'),
        cacheMemoryMB: cacheBudgetMB,
        ...(reading ? { pauseMs: `${PAUSE_MS.min}-${PAUSE_MS.max}` } : { idleSeconds: options.idleSeconds }),
        keyIntervalMs: '40-60',
      },
      typing: {
        intervals: keyIntervals.length,
        keyIntervalMs: { p50: Math.round(percentile(keyIntervals, 50) ?? 0), p95: Math.round(percentile(keyIntervals, 95) ?? 0), max: Math.round(keyIntervals.length ? Math.max(...keyIntervals) : 0) },
      },
      sources: reading ? { A: sources.A.file, startFile: START_FILE } : { A: sources.A.file, B: sources.B.file, C: sources.C.file, middleOfAAfterLine: plan.middleOfA?.line ?? null },
      firstCompletion: warmup,
      latencyMs: {
        all: latencySummary(latencies(phases)),
        // Lines whose last key came ≥ 15 s after their file was opened (the time the warmer has to read the window).
        from15sAfterOpen: latencySummary(latencies(phases, fromOpen)),
        ...(reading ? {} : { editingA: latencySummary(latencies(['endOfA', 'middleOfA', 'backToA'])) }),
        phases: Object.fromEntries(phases.map((p) => [p, { ...latencySummary(latencies([p])), values: results.filter((r) => r.phase === p).map((r) => (r.outcome === 'ghost' ? r.latencyMs : r.outcome)) }])),
      },
      // Of the lines that show ghost text (matched to their completion), how many were answered from the whole
      // window and how many from the quick prompt; share = whole window ÷ both (unknown: served from the cache).
      wholeWindowShare: { all: shareAll, from15sAfterOpen: shareFrom15s },
      // Medians over the lines of each part of the wait (see waitOf); they need not add up to the median latency.
      waitMsP50: waitPercentile(50),
      waitMsP90: waitPercentile(90),
      ...(reading ? {} : { firstSuggestionAfterIdleMs }),
      lines: {
        measured: results.length,
        ghost: results.filter((r) => r.outcome === 'ghost').length,
        timeout: results.filter((r) => r.outcome === 'timeout').length,
        noSuggestion: results.filter((r) => r.outcome === 'no-suggestion').length,
        escapedBeforeLastKey: results.filter((r) => r.escapedBeforeLastKey).length,
        from15sAfterOpen: results.filter(fromOpen).length,
      },
      perLine,
      rereadTokens: { p50: percentile(rereads, 50), p90: rereadP90, max: rereads.length ? Math.max(...rereads) : null, count: rereads.length },
      rereadTokensFinished: { p50: percentile(finishedRereads, 50), p90: percentile(finishedRereads, 90), max: finishedRereads.length ? Math.max(...finishedRereads) : null, count: finishedRereads.length },
      requests: {
        countedFrom: reading ? `${sources.A.name} opened` : 'the start',
        generated: counted.length,
        quickPrompt: counted.filter((c) => c.quick).length,
        finished: counted.filter((c) => c.finishReason !== 'cancelled').length,
        cancelled: counted.filter((c) => c.finishReason === 'cancelled').length,
        // Finished requests answered from the whole window, and how many lines logged their context (0: an extension without it).
        finishedFromWholeWindow: counted.filter((c) => c.finishReason !== 'cancelled' && c.contextKind === 'whole window').length,
        contextLogged: counted.filter((c) => c.contextTokens !== null).length,
        servedFromCache: [...text.matchAll(new RegExp(`^(\\S+ \\S+) .*${CACHE_LINE.source}`, 'gm'))].filter((m) => readingFrom === undefined || logTime(m[1]) >= readingFrom).length,
        finishReasons: counted.reduce((counts, c) => ({ ...counts, [c.finishReason]: (counts[c.finishReason] ?? 0) + 1 }), {}),
        firstTokenMsP50: percentile(counted.filter((c) => c.finishReason !== 'cancelled').map((c) => c.firstTokenMs), 50),
      },
      // The warmer's reads, per outcome (busy: the worker was generating, so the warm-up did not run).
      warmUps: warmUpSummary(warmUps),
      worker: { ...memory, cacheBudgetMB },
      documents,
      targets,
      wallSeconds: Math.round((Date.now() - started) / 100) / 10,
    };
    if (options.keep) summary.extensionLog = extensionLogFiles(userData);
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return Object.values(documents).every((d) => d === 'as typed') ? 0 : 1;
  } catch (error) {
    const shot = path.join(os.tmpdir(), `phi-bench-editor-failure-${Date.now()}.png`);
    if (await session.browser?.contexts()[0]?.pages()[0]?.screenshot({ path: shot }).then(() => true, () => false)) log(`screenshot of the failure: ${shot}`);
    throw error;
  } finally {
    watcher?.stop();
    await session.cleanup();
  }
}

main().then((code) => process.exit(code), (error) => {
  console.error(`bench:editor: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
