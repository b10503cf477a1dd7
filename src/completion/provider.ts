/**
 * Inline completions, the VS Code side: turns VS Code's request into the pipeline's (./pipeline.ts: prefilter,
 * cache, prompt, request, first line, post-process) and its text into an inline completion item. In a notebook,
 * the document it reads is the cell with the code cells above it (./notebookText.ts). When the
 * suggestion grows after its first line was shown, and the user is still in that document, VS Code is asked again.
 */
import * as vscode from 'vscode';
import { completionSource } from './notebookText';
import { documentLength, type CompletionPipeline } from './pipeline';

export class InlineCompletionProvider implements vscode.InlineCompletionItemProvider {
  constructor(private readonly pipeline: CompletionPipeline) {}

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    // A notebook cell is read with the code cells above it.
    const source = completionSource(vscode.workspace, document, position);
    const text = await this.pipeline.complete({
      ...source,
      length: documentLength(source.document),
      eol: document.eol === vscode.EndOfLine.CRLF ? '\r\n' : '\n',
      automatic: context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic,
      showAgain: () => {
        if (vscode.window.activeTextEditor?.document === document) void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
      },
    }, token);
    return text === undefined ? undefined : [new vscode.InlineCompletionItem(text, new vscode.Range(position, position))];
  }
}
