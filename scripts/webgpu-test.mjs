#!/usr/bin/env node
/**
 * `npm run test:webgpu`: the device suite (test/unit/device.test.ts) on ONNX Runtime's WebGPU provider, after
 * `npm run test:unit` has compiled it. Without a GPU it runs WebGPU on SwiftShader, the Vulkan implementation on
 * the CPU that ships with Debian's chromium, so the WebGPU code path (the KV cache kept in GPU buffers and fed
 * back, rewinds, the fallback of a model the adapter cannot run) is tested on every machine, CI included.
 * SwiftShader proves behaviour, not speed, and compiles shaders slowly, so it runs the suite's quick mode (fewer
 * steps, the shipped builds). `--system` runs the whole suite on the machine's own Vulkan driver (a real GPU).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const suite = path.join(repo, 'out/test/unit/device.test.js');
const swiftShader = process.env.PHI_SWIFTSHADER_ICD ?? '/usr/lib/chromium/vk_swiftshader_icd.json';
const log = (message) => console.log(`[test:webgpu] ${message}`);

if (!fs.existsSync(suite)) {
  log(`${path.relative(repo, suite)} is missing: run npm run test:unit (or npm run compile) first`);
  process.exit(1);
}
const env = { ...process.env, PHI_TEST_DEVICE: 'webgpu' };
// Dawn (WebGPU) asks for a runtime directory; a headless CI machine has none.
if (!env.XDG_RUNTIME_DIR) env.XDG_RUNTIME_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'phi-webgpu-'));
if (process.argv.includes('--system')) {
  log('WebGPU on this machine\'s Vulkan driver');
} else {
  if (!fs.existsSync(swiftShader)) {
    log(`SwiftShader's Vulkan driver is missing (${swiftShader}); install Debian's chromium (sudo apt-get install -y chromium) or set PHI_SWIFTSHADER_ICD`);
    process.exit(1);
  }
  log(`WebGPU on SwiftShader (${swiftShader}), quick mode: behaviour, not speed`);
  env.PHI_TEST_DEVICE_QUICK = '1';
  env.VK_DRIVER_FILES = swiftShader;
  env.VK_ICD_FILENAMES = swiftShader;
  // chromium ships its own Vulkan loader beside SwiftShader: the fallback where the system has none (libvulkan1).
  env.LD_LIBRARY_PATH = [env.LD_LIBRARY_PATH, path.dirname(swiftShader)].filter(Boolean).join(':');
}
const run = spawnSync(process.execPath, ['--test', suite], { cwd: repo, env, stdio: 'inherit' });
process.exit(run.status ?? 1);
