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

/** Code spans, then bold and italics around escaped text; links and HTML stay text. */
function renderInline(text: string): string {
  return text.split(/(`[^`\n]+`)/).map((part, i) => {
    if (i % 2 === 1) return `<code>${escapeHtml(part.slice(1, -1))}</code>`;
    return escapeHtml(part)
      .replace(/\*\*(?=\S)(.+?)(?<=\S)\*\*/g, '<strong>$1</strong>')
      .replace(/(^|[^\w*])([*_])(?=\S)(.+?)(?<=\S)\2(?![\w*])/g, '$1<em>$3</em>');
  }).join('');
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const LIST_ITEM = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;

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
    const heading = HEADING.exec(line);
    const quoted = QUOTE.exec(line);
    const item = LIST_ITEM.exec(line);
    if (line.trim() === '') {
      flush();
    } else if (heading) {
      flush();
      html.push(`<h${heading[1].length}>${renderInline(heading[2])}</h${heading[1].length}>`);
    } else if (quoted) {
      if (quote.length === 0) flush();
      quote.push(quoted[1]);
    } else if (item) {
      const tag = /\d/.test(item[1]) ? 'ol' : 'ul';
      if (list?.tag !== tag) flush();
      list ??= { tag, items: [] };
      list.items.push(item[2]);
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
