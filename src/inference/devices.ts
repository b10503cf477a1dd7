/**
 * Choosing where the model runs. onnxruntime-node throws when a provider cannot be loaded or cannot create
 * the session (it never falls back by itself), so the worker tries candidates in order and records why
 * each one it passed over failed.
 */
import { returnsCache, type KvOutputs } from '../model/manifest';
import type { Device } from '../shared/engineTypes';

/** The ONNX Runtime execution provider behind each device. */
const PROVIDER: Record<Exclude<Device, 'auto'>, string> = { cpu: 'cpu', cuda: 'cuda', dml: 'dml', coreml: 'coreml', webgpu: 'webgpu' };

/** GPU devices each platform can have, in the order `auto` tries them. */
const PLATFORM_GPUS: Partial<Record<NodeJS.Platform, readonly Exclude<Device, 'auto' | 'cpu'>[]>> = {
  linux: ['cuda'],
  win32: ['cuda', 'dml'],
  darwin: ['coreml'],
};

export function providerOf(device: Exclude<Device, 'auto'>): string {
  return PROVIDER[device];
}

/**
 * Devices to try, most preferred first; the CPU always comes last. `auto` tries WebGPU too for a model built to
 * keep its cache on a GPU (`present`, `present_settled`): the user chose a GPU build, and on the CPU it is slower.
 */
export function deviceCandidates(requested: Device, platform: NodeJS.Platform = process.platform, kvOutputs: KvOutputs = 'present_rows'): Exclude<Device, 'auto'>[] {
  if (requested === 'cpu') return ['cpu'];
  if (requested === 'auto') return [...(PLATFORM_GPUS[platform] ?? []), ...(returnsCache(kvOutputs) ? ['webgpu' as const] : []), 'cpu'];
  return [requested, 'cpu'];
}

/** Why a device cannot work on this platform at all, before ONNX Runtime is even asked. */
export function platformObstacle(device: Exclude<Device, 'auto'>, platform: NodeJS.Platform = process.platform): string | undefined {
  if (device === 'dml' && platform !== 'win32') return 'DirectML is only available on Windows';
  if (device === 'coreml' && platform !== 'darwin') return 'CoreML is only available on macOS';
  if (device === 'cuda' && platform === 'darwin') return 'CUDA is not available on macOS';
  return undefined;
}

/**
 * How a model's cache layout suits the device it loaded on, when it does not: on WebGPU a `present_rows` graph's
 * cache lives in host memory and is uploaded at every step, and a `present` graph's is copied whole on the GPU at
 * every step; on the CPU a `present(_settled)` graph's cache is copied out at every step. All of them decode slower
 * as the context grows (README, GPU).
 */
export function layoutAdvice(device: Exclude<Device, 'auto'>, kvOutputs: KvOutputs): string | undefined {
  const gpuModels = 'for WebGPU choose the model phi-1_5-int4-gpu or phi-1_5-fp16 (or build one with --kv-cache float --kv-outputs present_settled)';
  if (device === 'webgpu' && kvOutputs === 'present_rows') return `this model keeps its KV cache in host memory, which WebGPU must upload at every step: ${gpuModels}`;
  if (device === 'webgpu' && kvOutputs === 'present') return `this model (Optimum's layout) copies its whole KV cache at every step: ${gpuModels}`;
  if (device === 'cpu' && returnsCache(kvOutputs)) return 'this model is built to keep its KV cache on a GPU, which makes it slower on the CPU: for the CPU choose the model phi-1_5-int4';
  return undefined;
}
