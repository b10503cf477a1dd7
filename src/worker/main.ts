/**
 * Inference worker entry point: runs in its own process (forked with ELECTRON_RUN_AS_NODE=1) so that
 * ONNX Runtime's native code can never take the extension host down. The message protocol lands with the
 * worker issue; for now the process only answers the parent's shutdown and exits when the parent is gone.
 */
process.on('message', (message: unknown) => {
  if (typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'shutdown') {
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
