import * as vscode from 'vscode';

/** Extension entry point. The inference worker, completions and commands are wired here as they land. */
export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('phi-complete', { log: true });
  context.subscriptions.push(
    log,
    vscode.commands.registerCommand('phiComplete.showLog', () => log.show()),
  );
  log.info('phi-complete activated');
}

export function deactivate(): void {
  // Everything is registered in context.subscriptions and disposed by VS Code.
}
