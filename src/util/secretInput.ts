/** A token typed into a password field and kept in VS Code's secret storage (the hub's, the server's). */
import * as vscode from 'vscode';

/** Asks for `key`'s value (masked, never shown); an empty answer removes it, Escape changes nothing. */
export async function askForSecret(secrets: vscode.SecretStorage, key: string, prompt: string): Promise<void> {
  const value = await vscode.window.showInputBox({ prompt: `${prompt} (stored in VS Code's secret storage; leave empty to remove)`, password: true, ignoreFocusOut: true });
  if (value === undefined) return;
  if (value === '') await secrets.delete(key);
  else await secrets.store(key, value);
}
