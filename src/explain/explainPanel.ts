/**
 * "Explain selection": streams the model's explanation of the selected code into a side panel (page:
 * ./explainView.ts; the explanation's state: ./explanation.ts). One panel, reused; a new explanation replaces the
 * one shown, and closing the panel cancels it. It asks the backend completions use (the worker, or a server). Completions do not interrupt it (the generator lets only a newer
 * explanation cancel one); when it is interrupted all the same (the worker restarted, the model was reloaded),
 * or stops at its length limit, the panel says so and offers to continue.
 */
import * as vscode from 'vscode';
import type { CompletionBackend } from '../completion/backend';
import { EXPLAIN_SEQUENCE } from '../protocol';
import { Disposable } from '../util/disposable';
import { EXPLAIN_STOPS, planExplanation } from './explainPrompt';
import { Explanation, type ExplainRequest } from './explanation';
import { explainPageHtml, parsePageMessage, viewMessage } from './explainView';

/** The settings an explanation reads (a Settings snapshot fits). */
export interface ExplainSettings {
  readonly explainMaxTokens: number;
  readonly temperature: number;
  readonly topP: number;
}

export class ExplainPanel extends Disposable {
  private panel: vscode.WebviewPanel | undefined;
  /** The explanation shown, and the request for it in flight. */
  private explanation: Explanation | undefined;
  private inFlight: AbortController | undefined;

  constructor(private readonly client: CompletionBackend, private readonly settings: () => ExplainSettings, private readonly ensureModel: () => Promise<boolean>) {
    super();
    this.register({ dispose: () => { this.panel?.dispose(); } });
  }

  /** Explains the editor's selection; resolves once the explanation has ended and the panel shows how. */
  async explain(editor: vscode.TextEditor | undefined): Promise<void> {
    const selection = editor?.selection;
    if (!editor || !selection || selection.isEmpty || editor.document.getText(selection).trim() === '') {
      void vscode.window.showInformationMessage('phi-complete: select some code first, then run "Explain Selection".');
      return;
    }
    if (!(await this.ensureModel())) return;
    const { explainMaxTokens } = this.settings();
    const plan = planExplanation(editor.document.getText(selection), editor.document.languageId, explainMaxTokens);
    // An explain.maxTokens that leaves the selection no room is reported once, when settings change (src/settings/warnings.ts).
    const explanation = new Explanation(plan);
    this.explanation = explanation;
    // A new page (and nonce) for every explanation.
    this.show().webview.html = explainPageHtml(explanation.view);
    await this.generate(explanation, explanation.request);
  }

  /** Continues the explanation shown from where it stopped (the panel's Continue button). */
  private async continueExplanation(): Promise<void> {
    const explanation = this.explanation;
    if (!explanation || explanation.running) return;
    // The page hid the button when it was clicked: whenever this does not continue (the model did not load, the
    // worker is paused: ensureModel told the user why), the view goes back to the page, with Continue offered again.
    const request = (await this.ensureModel()) && this.explanation === explanation ? explanation.continue() : undefined;
    if (request) await this.generate(explanation, request);
    else await this.post(explanation);
  }

  private async generate(explanation: Explanation, request: ExplainRequest): Promise<void> {
    this.inFlight?.abort();
    const controller = new AbortController();
    this.inFlight = controller;
    void this.post(explanation);
    const settings = this.settings();
    try {
      const done = await this.client.generate(request.prompt, {
        maxNewTokens: request.maxNewTokens,
        temperature: settings.temperature,
        topK: 0,
        topP: settings.topP,
        seed: 0,
        stop: EXPLAIN_STOPS,
        speculative: false,
      }, (delta) => {
        explanation.append(delta);
        void this.post(explanation);
      }, controller.signal, EXPLAIN_SEQUENCE);
      explanation.end({ finishReason: done.finishReason, ...done.stats });
    } catch (error) {
      explanation.end({ error: error instanceof Error ? error.message : String(error) });
    }
    if (this.inFlight === controller) this.inFlight = undefined;
    await this.post(explanation);
  }

  /** Shows `explanation` in the panel, if it is still the one the panel is for. */
  private async post(explanation: Explanation): Promise<void> {
    if (this.panel && this.explanation === explanation) await this.panel.webview.postMessage(viewMessage(explanation.view));
  }

  private show(): vscode.WebviewPanel {
    if (this.panel) {
      this.panel.reveal(vscode.ViewColumn.Beside, true);
      return this.panel;
    }
    const panel = vscode.window.createWebviewPanel('phiComplete.explain', 'Explanation', { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, {
      enableScripts: true,
      localResourceRoots: [],
    });
    const received = panel.webview.onDidReceiveMessage((message: unknown) => {
      const type = parsePageMessage(message);
      // A page (re)loaded after the panel was hidden shows only what its HTML held: send it the view now.
      if (type === 'ready' && this.explanation) void this.post(this.explanation);
      if (type === 'continue') void this.continueExplanation();
    });
    panel.onDidDispose(() => {
      received.dispose();
      this.inFlight?.abort();
      this.panel = undefined;
      this.explanation = undefined;
    });
    this.panel = panel;
    return panel;
  }
}
