// Bundles the two shipped entry points (extension host side and inference worker) with esbuild.
// onnxruntime-node stays external: its native binaries ship in the VSIX under node_modules.
import { build } from 'esbuild';

const production = process.argv.includes('--production');

await build({
  entryPoints: { extension: 'src/extension.ts', worker: 'src/worker/main.ts' },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: !production,
  minify: production,
  external: ['vscode', 'onnxruntime-node'],
  logLevel: 'warning',
});
