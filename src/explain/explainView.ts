/**
 * The Explanation panel's page, built without VS Code (so it is tested alone). The model's text is Markdown
 * rendered here, not by VS Code's renderer (which passes raw HTML through): every character of it is escaped, so
 * no element or attribute the model writes survives; only the few elements below are made, around escaped text.
 * The page's Content-Security-Policy allows nothing but its own style and script, by a nonce fresh for every page.
 *
 * Structure: `#explanation` holds the rendered text, `#status` how it stands ("Explaining…", "Done.",
 * "Interrupted…"), and the `#continue` button, hidden unless the explanation can be continued. The script shows
 * each ViewMessage and posts `ready` (loaded, or reloaded after the panel was hidden) and `continue` (clicked).
 */
import { randomBytes } from 'node:crypto';
import type { ExplainView } from './explanation';

/** Host → page: the whole view (so a lost or late message is made good by the next). */
export interface ViewMessage {
  readonly type: 'view';
  readonly html: string;
  readonly status: string;
  readonly canContinue: boolean;
}

/** Page → host: `ready` when its script has started (send it the view), `continue` when the button is clicked. */
export type PageMessage = 'ready' | 'continue';

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/*
 * Parsing is linear in the length of a line: the model's text is re-rendered on every streamed piece, and a
 * backtracking regex (overlapping quantifiers such as `\s+(.*?)\s*#*\s*$`, or a lazy `(.+?)` tried from every
 * opening `**`) takes quadratic or cubic time on a long run of spaces, stars or hashes. So lines are scanned by
 * hand, with the meaning those regexes had: `.` stops at a line terminator, \s and \w are JavaScript's.
 */

/** Whether the code unit is one of JavaScript's \s (white space and line terminators). */
function isSpaceCode(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a)
    || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

const isSpace = (text: string, i: number): boolean => i < text.length && isSpaceCode(text.charCodeAt(i));

/** Whether text[i] is a line terminator (what `.` does not match). */
function isLineTerminator(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  return c === 0x0a || c === 0x0d || c === 0x2028 || c === 0x2029;
}

const hasLineTerminator = (text: string): boolean => /[\n\r\u2028\u2029]/.test(text);

/** Whether text[i] is \w or `*` (undefined past the end: false). */
function isWordOrStar(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x2a;
}

/**
 * The first index at or after `from` where `matches` holds (`length` when none), for positions asked in
 * increasing order: no index is tested twice, so a whole line's questions cost one pass over it.
 */
function forwardSearch(length: number, matches: (i: number) => boolean): (from: number) => number {
  let found = -1;
  return (from) => {
    if (found >= from) return found;
    let i = from;
    while (i < length && !matches(i)) i++;
    found = i;
    return i;
  };
}

/**
 * `**bold**` as the regex `\*\*(?=\S)(.+?)(?<=\S)\*\*` (global) replaced it: from each `**` before a non-space, to the first `**`
 * after a non-space on the same line.
 */
function renderBold(text: string): string {
  if (!text.includes('**')) return text;
  const n = text.length;
  const closing = forwardSearch(n, (q) => text[q] === '*' && text[q + 1] === '*' && !isSpace(text, q - 1));
  const lineEnd = forwardSearch(n, (i) => isLineTerminator(text, i));
  let html = '';
  let done = 0;
  for (let p = 0; p + 1 < n; p++) {
    if (text[p] !== '*' || text[p + 1] !== '*' || p + 2 >= n || isSpace(text, p + 2)) continue;
    const q = closing(p + 3);
    if (q >= n || lineEnd(p + 2) < q) continue;
    html += `${text.slice(done, p)}<strong>${text.slice(p + 2, q)}</strong>`;
    done = q + 2;
    p = q + 1;
  }
  return html + text.slice(done);
}

/**
 * `*italics*` and `_italics_` as `/(^|[^\w*])([*_])(?=\S)(.+?)(?<=\S)\2(?![\w*])/g` replaces them: a delimiter at
 * the start or after neither a word character nor `*`, before a non-space, to the first same delimiter on the
 * same line after a non-space and before neither a word character nor `*`.
 */
function renderItalics(text: string): string {
  if (!text.includes('*') && !text.includes('_')) return text;
  const n = text.length;
  const closer = (delimiter: string) => forwardSearch(n, (c) => text[c] === delimiter && !isSpace(text, c - 1) && !isWordOrStar(text, c + 1));
  const closing = { '*': closer('*'), _: closer('_') };
  const lineEnd = forwardSearch(n, (i) => isLineTerminator(text, i));
  let html = '';
  let done = 0;
  for (let o = 0; o < n; o++) {
    const delimiter = text[o];
    if (delimiter !== '*' && delimiter !== '_') continue;
    // The character before the delimiter is part of the match: not one a previous match took.
    if (o > 0 && (o - 1 < done || isWordOrStar(text, o - 1))) continue;
    if (o + 1 >= n || isSpace(text, o + 1)) continue;
    const c = closing[delimiter](o + 2);
    if (c >= n || lineEnd(o + 1) < c) continue;
    html += `${text.slice(done, o)}<em>${text.slice(o + 1, c)}</em>`;
    done = c + 1;
    o = c;
  }
  return html + text.slice(done);
}

/** Code spans (`` `code` ``, within a line), then bold and italics around escaped text; links and HTML stay text. */
function renderInline(text: string): string {
  const emphasis = (part: string): string => renderItalics(renderBold(escapeHtml(part)));
  let html = '';
  let done = 0;
  let open = -1;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\n') {
      open = -1;
    } else if (text[i] === '`') {
      if (open >= 0 && i > open + 1) {
        html += `${emphasis(text.slice(done, open))}<code>${escapeHtml(text.slice(open + 1, i))}</code>`;
        done = i + 1;
        open = -1;
      } else {
        open = i;
      }
    }
  }
  return html + emphasis(text.slice(done));
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/;

/** Up to three spaces: where a heading's or a quote's marker may start. */
function indentOf(line: string): number {
  let i = 0;
  while (i < 3 && line[i] === ' ') i++;
  return i;
}

/** `# Heading #` (as `/^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/`): its level and text, or undefined. */
function parseHeading(line: string): { readonly level: number; readonly text: string } | undefined {
  const start = indentOf(line);
  let i = start;
  while (line[i] === '#') i++;
  const level = i - start;
  if (level < 1 || level > 6 || !isSpace(line, i)) return undefined;
  while (isSpace(line, i)) i++;
  let end = line.length;
  while (end > i && isSpace(line, end - 1)) end--;
  while (end > i && line[end - 1] === '#') end--;
  while (end > i && isSpace(line, end - 1)) end--;
  const text = line.slice(i, end);
  return hasLineTerminator(text) ? undefined : { level, text };
}

/** `> quoted` (as `/^ {0,3}>\s?(.*)$/`): the quoted text, or undefined. */
function parseQuote(line: string): string | undefined {
  const i = indentOf(line);
  if (line[i] !== '>') return undefined;
  const text = line.slice(isSpace(line, i + 1) ? i + 2 : i + 1);
  return hasLineTerminator(text) ? undefined : text;
}

/** `- item` or `1. item` (as `/^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/`): whether it is numbered, and its text. */
function parseListItem(line: string): { readonly ordered: boolean; readonly text: string } | undefined {
  let i = 0;
  while (isSpace(line, i)) i++;
  const start = i;
  const ordered = line[i] !== '-' && line[i] !== '*' && line[i] !== '+';
  if (ordered) {
    while (line[i] >= '0' && line[i] <= '9') i++;
    if (i === start || i - start > 9 || (line[i] !== '.' && line[i] !== ')')) return undefined;
  }
  i++;
  if (!isSpace(line, i)) return undefined;
  while (isSpace(line, i)) i++;
  const text = line.slice(i);
  return hasLineTerminator(text) ? undefined : { ordered, text };
}

/**
 * The Markdown phi writes (paragraphs, fenced code, `code`, **bold**, *italics*, headings, lists, quotes) as HTML
 * in which all of the text is escaped. A fence still open (the text is streaming) runs to the end.
 */
export function renderMarkdown(markdown: string): string {
  const lines = markdown.replace(/\r\n?/g, '\n').split('\n');
  const html: string[] = [];
  let paragraph: string[] = [];
  let quote: string[] = [];
  let list: { readonly tag: 'ul' | 'ol'; readonly items: string[] } | undefined;
  const flush = (): void => {
    if (paragraph.length > 0) html.push(`<p>${paragraph.map(renderInline).join('\n')}</p>`);
    if (quote.length > 0) html.push(`<blockquote><p>${quote.map(renderInline).join('\n')}</p></blockquote>`);
    if (list) html.push(`<${list.tag}>${list.items.map((item) => `<li>${renderInline(item)}</li>`).join('')}</${list.tag}>`);
    paragraph = [];
    quote = [];
    list = undefined;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      flush();
      const body: string[] = [];
      const closing = new RegExp(`^ {0,3}${fence[1][0]}{${fence[1].length},}\\s*$`);
      while (++i < lines.length && !closing.test(lines[i])) body.push(lines[i]);
      const language = /^[\w+-]+$/.test(fence[2]) ? ` class="language-${fence[2]}"` : '';
      html.push(`<pre><code${language}>${escapeHtml(body.join('\n'))}</code></pre>`);
      continue;
    }
    const heading = parseHeading(line);
    const quoted = parseQuote(line);
    const item = parseListItem(line);
    if (line.trim() === '') {
      flush();
    } else if (heading) {
      flush();
      html.push(`<h${heading.level}>${renderInline(heading.text)}</h${heading.level}>`);
    } else if (quoted !== undefined) {
      if (quote.length === 0) flush();
      quote.push(quoted);
    } else if (item) {
      const tag = item.ordered ? 'ol' : 'ul';
      if (list?.tag !== tag) flush();
      list ??= { tag, items: [] };
      list.items.push(item.text);
    } else if (list) {
      // A line under a list item continues it.
      list.items[list.items.length - 1] += `\n${line.trim()}`;
    } else {
      if (quote.length > 0) flush();
      paragraph.push(line);
    }
  }
  flush();
  return html.join('\n');
}

export function viewMessage(view: ExplainView): ViewMessage {
  return { type: 'view', html: renderMarkdown(view.markdown), status: view.status, canContinue: view.canContinue };
}

/** A message from the page, checked: the page is ours, but a message is only data. */
export function parsePageMessage(message: unknown): PageMessage | undefined {
  const type = (message as { type?: unknown } | null)?.type;
  return type === 'ready' || type === 'continue' ? type : undefined;
}

const STYLE = `
body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); line-height: 1.5; padding: 0 16px 16px; }
pre, code { font-family: var(--vscode-editor-font-family); font-size: var(--vscode-editor-font-size); }
pre { background: var(--vscode-textCodeBlock-background); padding: 8px; overflow-x: auto; }
:not(pre) > code { background: var(--vscode-textCodeBlock-background); padding: 0 3px; border-radius: 3px; }
blockquote { margin: 0 0 1em; padding: 0 12px; border-left: 3px solid var(--vscode-textBlockQuote-border); background: var(--vscode-textBlockQuote-background); }
footer { display: flex; align-items: center; gap: 12px; margin-top: 12px; color: var(--vscode-descriptionForeground); }
button { color: var(--vscode-button-foreground); background: var(--vscode-button-background); border: none; padding: 4px 12px; cursor: pointer; }
button:hover { background: var(--vscode-button-hoverBackground); }
button[hidden] { display: none; }
`;

const SCRIPT = `
const vscode = acquireVsCodeApi();
const explanation = document.getElementById('explanation');
const status = document.getElementById('status');
const continueButton = document.getElementById('continue');
window.addEventListener('message', (event) => {
  const view = event.data;
  if (!view || view.type !== 'view') return;
  explanation.innerHTML = view.html;
  status.textContent = view.status;
  continueButton.hidden = !view.canContinue;
});
continueButton.addEventListener('click', () => {
  continueButton.hidden = true;
  vscode.postMessage({ type: 'continue' });
});
vscode.postMessage({ type: 'ready' });
`;

/** The whole page showing `view`, with a fresh random nonce: the only style and script it allows are its own. */
export function explainPageHtml(view: ExplainView): string {
  const nonce = randomBytes(18).toString('base64');
  const csp = `default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}'`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<main id="explanation">${renderMarkdown(view.markdown)}</main>
<footer><span id="status" role="status">${escapeHtml(view.status)}</span><button id="continue" type="button"${view.canContinue ? '' : ' hidden'}>Continue</button></footer>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>`;
}
