/**
 * "Explain selection": streams the model's explanation of the selected code into a side panel, rendered as
 * Markdown by VS Code's built-in renderer. One panel, reused; closing it cancels the generation.
 */
import * as vscode from 'vscode';
import type { Settings } from '../config';
import type { WorkerClient } from '../client/workerClient';
import { EXPLAIN_SEQUENCE } from '../protocol';
import { Disposable } from '../util/disposable';
import { buildExplainPrompt, EXPLAIN_STOPS } from './explainPrompt';

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

async function renderMarkdown(markdown: string): Promise<string> {
  try {
    const html: unknown = await vscode.commands.executeCommand('markdown.api.render', markdown);
    if (typeof html === 'string') return html;
  } catch {
    // The built-in Markdown extension is missing or disabled: show the text as it is.
  }
  return `<pre>${escapeHtml(markdown)}</pre>`;
}

export class ExplainPanel extends Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private current: AbortController | undefined;

  constructor(private readonly client: WorkerClient, private readonly settings: () => Settings, private readonly ensureModel: () => Promise<boolean>) {
    super();
    this.register({ dispose: () => { this.panel?.dispose(); } });
  }

  async explain(editor: vscode.TextEditor | undefined): Promise<void> {
    const selection = editor?.selection;
    if (!editor || !selection || selection.isEmpty || editor.document.getText(selection).trim() === '') {
      void vscode.window.showInformationMessage('phi-complete: select some code first, then run "Explain Selection".');
      return;
    }
    if (!(await this.ensureModel())) return;
    const { prompt, truncated } = buildExplainPrompt(editor.document.getText(selection), editor.document.languageId);
    this.current?.abort();
    const controller = new AbortController();
    this.current = controller;
    const panel = this.show();
    const header = truncated ? '> The selection is long: only its first part was explained.\n\n' : '';
    let text = '';
    let rendering = Promise.resolve();
    const update = (final: boolean): void => {
      const markdown = header + text + (final ? '' : ' ▍');
      rendering = rendering.then(async () => {
        if (this.panel === panel) await panel.webview.postMessage({ html: await renderMarkdown(markdown) });
      });
    };
    update(false);
    const settings = this.settings();
    try {
      await this.client.generate(prompt, {
        maxNewTokens: settings.explainMaxTokens,
        temperature: settings.temperature,
        topK: 0,
        topP: settings.topP,
        seed: 0,
        stop: EXPLAIN_STOPS,
        speculative: false,
      }, (delta) => {
        text += delta;
        update(false);
      }, controller.signal, EXPLAIN_SEQUENCE);
      if (text.trim() === '') text = '_The model gave no explanation. Try selecting a smaller, complete piece of code._';
    } catch (error) {
      text += `\n\n**Stopped:** ${(error as Error).message}`;
    }
    update(true);
    await rendering;
  }

  private show(): vscode.WebviewPanel {
    if (this.panel) {
      this.panel.reveal(vscode.ViewColumn.Beside, true);
      return this.panel;
    }
    const panel = vscode.window.createWebviewPanel('phiComplete.explain', 'Explanation', { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, { enableScripts: true });
    panel.webview.html = `<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-phi';">
<style>body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); line-height: 1.5; }
pre, code { font-family: var(--vscode-editor-font-family); } pre { background: var(--vscode-textCodeBlock-background); padding: 8px; overflow-x: auto; }</style>
</head><body><div id="content" class="explanation"></div>
<script nonce="phi">window.addEventListener('message', (e) => { document.getElementById('content').innerHTML = e.data.html; });</script>
</body></html>`;
    panel.onDidDispose(() => {
      this.current?.abort();
      this.panel = undefined;
    });
    this.panel = panel;
    return panel;
  }
}
