/**
 * Inline completions, the VS Code side: turns VS Code's request into the pipeline's (./pipeline.ts: prefilter,
 * cache, prompt, request, first line, post-process) and its text into an inline completion item. When the
 * suggestion grows after its first line was shown, and the user is still in that document, VS Code is asked again.
 */
import * as vscode from 'vscode';
import { documentLength, type CompletionPipeline } from './pipeline';

export class InlineCompletionProvider implements vscode.InlineCompletionItemProvider {
  constructor(private readonly pipeline: CompletionPipeline) {}

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    const text = await this.pipeline.complete({
      document,
      sequence: document.uri.toString(),
      position,
      length: documentLength(document),
      eol: document.eol === vscode.EndOfLine.CRLF ? '\r\n' : '\n',
      automatic: context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic,
      showAgain: () => {
        if (vscode.window.activeTextEditor?.document === document) void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
      },
    }, token);
    return text === undefined ? undefined : [new vscode.InlineCompletionItem(text, new vscode.Range(position, position))];
  }
}
