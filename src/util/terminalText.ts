/** Text that native libraries write for a terminal, made fit for a log. */

// ONNX Runtime colours its own log lines (`ESC[1;31m…ESC[m`); a log view shows the codes as garbage.
const ESCAPE_SEQUENCE = /\x1b\[[0-9;]*[A-Za-z]/g;

export function stripTerminalCodes(text: string): string {
  return text.replace(ESCAPE_SEQUENCE, '');
}

/** ONNX Runtime's own log lines (`… [E:onnxruntime:…] …`): what it tried and passed over, not news for the user. */
export function isRuntimeLogLine(line: string): boolean {
  return /\[[VIWEF]:onnxruntime:/.test(line);
}
