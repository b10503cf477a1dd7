/**
 * The model builder from a Hugging Face style folder (safetensors in fp16, bf16 and fp32), its manifest, its
 * handling of bad input (one clear error naming file and tensor, nothing half-written left behind), and its CLI.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { PHI_TINY, type PhiConfig } from '../../src/model/config';
import { buildModel } from '../../src/model/build';
import { MANIFEST_FILE, type ModelManifest } from '../../src/model/manifest';
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from '../../src/model/float16';
import { writeSafetensors, type SafetensorsDtype } from '../../src/model/safetensors';
import { HuggingFaceWeights, phiTensorShapes, type WeightSource } from '../../src/model/weights';
import { PhiDecoder } from '../../src/inference/decoder';
import { referenceLogits } from '../support/referenceForward';
import { scratchDir, tinyWeights } from '../support/tinyModels';

const CLI = path.resolve(__dirname, '../../src/model/cli.js');

type Tensors = Map<string, { shape: number[]; data: Float32Array }>;

function tinyTensors(config: PhiConfig = PHI_TINY): Tensors {
  const weights = tinyWeights();
  const tensors: Tensors = new Map();
  for (const [name, shape] of phiTensorShapes(config)) tensors.set(name, { shape, data: weights.tensor(name) });
  return tensors;
}

/** Writes a Hugging Face style folder; `shards` splits the tensors over that many safetensors files. */
function writeCheckpoint(dir: string, tensors: Tensors, dtype: SafetensorsDtype, shards = 1, config: object = { model_type: 'phi', ...PHI_TINY }): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const entries = [...tensors];
  const perShard = Math.ceil(entries.length / shards);
  for (let s = 0; s < shards; s++) {
    const file = path.join(dir, shards === 1 ? 'model.safetensors' : `model-0000${s + 1}-of-0000${shards}.safetensors`);
    writeSafetensors(file, new Map(entries.slice(s * perShard, (s + 1) * perShard)), dtype);
  }
  return dir;
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Asserts that building from `folder` fails with a message matching every pattern and leaves nothing behind. */
function assertBuildFails(folder: string, patterns: RegExp[]): void {
  const out = path.join(scratchDir(), 'model');
  let message = '';
  try {
    const source = new HuggingFaceWeights(folder);
    try {
      buildModel(source, out, { format: 'int4' });
    } finally {
      source.close();
    }
  } catch (error) {
    message = (error as Error).message;
  }
  for (const pattern of patterns) assert.match(message, pattern);
  assert.deepEqual(fs.readdirSync(path.dirname(out)), [], 'nothing is left in the destination folder');
}

describe('half-precision conversions', () => {
  test('fp16 and bf16 bit patterns decode to the IEEE values', () => {
    assert.deepEqual([...float16ToFloat32(Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00))], [1, -2, 65504, 2 ** -24, -0, Infinity]);
    assert.deepEqual([...bfloat16ToFloat32(Uint16Array.of(0x3f80, 0xc040, 0x0000))], [1, -3, 0]);
  });
  test('float32 → fp16 rounds to nearest even, including subnormals and overflow', () => {
    assert.deepEqual([...float32ToFloat16(Float32Array.of(1, -2, 65504, 2 ** -24, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1e6, 2 ** -26))], [0x3c00, 0xc000, 0x7bff, 0x0001, 0x3c00, 0x3c02, 0x7c00, 0x0000]);
    assert.deepEqual([...float32ToBfloat16(Float32Array.of(1, -3, 1 + 2 ** -8))], [0x3f80, 0xc040, 0x3f80]);
  });
});

describe('building from a Hugging Face folder', () => {
  const tensors = tinyTensors();
  const prompt = [4299, 6616, 7, 87, 2599, 198, 50284, 7783, 2124, 1635, 2124];

  for (const [dtype, shards] of [['F16', 1], ['BF16', 1], ['F32', 3]] as [SafetensorsDtype, number][]) {
    test(`${dtype} checkpoint in ${shards} file(s) → fp32 ONNX equals the reference on the stored weights`, async () => {
      const folder = writeCheckpoint(path.join(scratchDir(), 'hf'), tensors, dtype, shards);
      const source = new HuggingFaceWeights(folder);
      const out = path.join(scratchDir(), 'model');
      const manifest = buildModel(source, out, { format: 'fp32' });
      const rounding = dtype === 'F16' ? (v: Float32Array) => float16ToFloat32(float32ToFloat16(v))
        : dtype === 'BF16' ? (v: Float32Array) => bfloat16ToFloat32(float32ToBfloat16(v)) : (v: Float32Array) => v;
      // The reference reads the original tensors rounded to the stored dtype: independent of the reader.
      const reference = referenceLogits(PHI_TINY, (name) => rounding(tensors.get(name)!.data), prompt);
      source.close();
      const decoder = await PhiDecoder.load(out);
      const logits = await decoder.forward(prompt, decoder.createCache());
      await decoder.dispose();
      let worst = 0;
      reference.forEach((row, t) => row.forEach((value, v) => (worst = Math.max(worst, Math.abs(value - logits[t * PHI_TINY.vocab_size + v])))));
      assert.ok(worst < 1e-4, `max abs diff ${worst}`);
      assert.equal(manifest.source.kind, 'huggingface');
      assert.deepEqual(manifest.source.dtypes, [dtype]);
    });
  }

  test('manifest records config, format and the sha256 of every file; the checkpoint tokenizer.json is used', () => {
    const folder = writeCheckpoint(path.join(scratchDir(), 'hf'), tensors, 'F16');
    fs.writeFileSync(path.join(folder, 'tokenizer.json'), '{"marker": "from the checkpoint"}');
    const out = path.join(scratchDir(), 'model');
    const source = new HuggingFaceWeights(folder);
    buildModel(source, out, { format: 'int4' });
    source.close();
    const manifest = JSON.parse(fs.readFileSync(path.join(out, MANIFEST_FILE), 'utf8')) as ModelManifest;
    assert.equal(manifest.weights, 'int4');
    assert.deepEqual(manifest.config, PHI_TINY);
    assert.deepEqual(Object.keys(manifest.files).sort(), ['model.onnx', 'model.onnx.data', 'tokenizer.json']);
    for (const [name, record] of Object.entries(manifest.files)) {
      assert.equal(record.sha256, sha256(path.join(out, name)), name);
      assert.equal(record.bytes, fs.statSync(path.join(out, name)).size, name);
    }
    assert.equal(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8'), '{"marker": "from the checkpoint"}');
  });
});

describe('bad input: one clear error, nothing left behind', () => {
  const tensors = tinyTensors();

  test('missing tensor → names the tensor and the folder', () => {
    const partial = new Map(tensors);
    partial.delete('model.layers.1.mlp.fc2.bias');
    const folder = writeCheckpoint(path.join(scratchDir(), 'hf'), partial, 'F16');
    assertBuildFails(folder, [/missing tensor model\.layers\.1\.mlp\.fc2\.bias/, new RegExp(folder.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))]);
  });

  test('wrong shape → names the file, the tensor and both shapes', () => {
    const wrong = new Map(tensors);
    wrong.set('model.layers.0.self_attn.k_proj.weight', { shape: [64, 128], data: new Float32Array(64 * 128) });
    const folder = writeCheckpoint(path.join(scratchDir(), 'hf'), wrong, 'F32');
    assertBuildFails(folder, [/model\.safetensors: tensor model\.layers\.0\.self_attn\.k_proj\.weight has shape \[64, 128\], config\.json implies \[128, 128\]/]);
  });

  test('unknown dtype → names the file, the tensor and the dtype', () => {
    const folder = writeCheckpoint(path.join(scratchDir(), 'hf'), tensors, 'F32');
    const file = path.join(folder, 'model.safetensors');
    const bytes = fs.readFileSync(file);
    const header = bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0)));
    const at = header.indexOf('"dtype":"F32"', header.indexOf('"lm_head.bias"'));
    header.write('"dtype":"I32"', at);
    fs.writeFileSync(file, bytes);
    assertBuildFails(folder, [/model\.safetensors: tensor lm_head\.bias has dtype I32; supported dtypes are F32, F16 and BF16/]);
  });

  test('truncated safetensors → names the file and the tensor cut off', () => {
    const folder = writeCheckpoint(path.join(scratchDir(), 'hf'), tensors, 'F16');
    const file = path.join(folder, 'model.safetensors');
    fs.truncateSync(file, fs.statSync(file).size - 1000);
    assertBuildFails(folder, [/model\.safetensors: file is truncated: tensor \S+ ends at byte \d+, file has \d+ bytes/]);
  });

  test('bad config.json → names the file and the field', () => {
    const folder = writeCheckpoint(path.join(scratchDir(), 'hf'), tensors, 'F16', 1, { model_type: 'phi', ...PHI_TINY, hidden_size: 'big' });
    assertBuildFails(folder, [/config\.json: hidden_size must be a number/]);
    const llama = writeCheckpoint(path.join(scratchDir(), 'hf'), tensors, 'F16', 1, { ...PHI_TINY, model_type: 'llama' });
    assertBuildFails(llama, [/config\.json: model_type is "llama", only "phi" is supported/]);
  });

  test('a failure in the middle of writing removes the partial model', () => {
    const inner = tinyWeights();
    const failing: WeightSource = {
      config: inner.config,
      description: inner.description,
      tensor: (name) => {
        if (name === 'lm_head.weight') throw new Error('disk went away');
        return inner.tensor(name);
      },
      close: () => undefined,
    };
    const out = path.join(scratchDir(), 'model');
    assert.throws(() => buildModel(failing, out, { format: 'int4' }), /disk went away/);
    assert.deepEqual(fs.readdirSync(path.dirname(out)), []);
  });

  test('an existing model is replaced only when asked', () => {
    const out = path.join(scratchDir(), 'model');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'keep.txt'), 'mine');
    assert.throws(() => buildModel(tinyWeights(), out, { format: 'fp32' }), /already exists \(pass --force to replace it\)/);
    assert.equal(fs.readFileSync(path.join(out, 'keep.txt'), 'utf8'), 'mine');
    buildModel(tinyWeights(), out, { format: 'fp32', overwrite: true });
    assert.ok(!fs.existsSync(path.join(out, 'keep.txt')));
    assert.ok(fs.existsSync(path.join(out, MANIFEST_FILE)));
  });
});

describe('build-model CLI', () => {
  test('--random --shape tiny builds a loadable model', async () => {
    const out = path.join(scratchDir(), 'tiny');
    const run = spawnSync(process.execPath, [CLI, '--random', '--shape', 'tiny', '--seed', '7', '--out', out], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /built .*: int4, [\d.]+ MiB/);
    const decoder = await PhiDecoder.load(out);
    assert.equal((await decoder.forward([50256], decoder.createCache())).length, PHI_TINY.vocab_size);
    await decoder.dispose();
  });

  test('bad arguments → exit 2 with the reason and the usage', () => {
    for (const args of [['--random', '--shape', 'huge', '--out', 'x'], ['--out', 'x'], ['--random', '--shape', 'tiny']]) {
      const run = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
      assert.equal(run.status, 2, args.join(' '));
      assert.match(run.stderr, /build-model: .+\nusage:/);
    }
  });

  test('a folder that is not a checkpoint → exit 1 with the reason', () => {
    const run = spawnSync(process.execPath, [CLI, '--from', scratchDir(), '--out', path.join(scratchDir(), 'm')], { encoding: 'utf8' });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /build-model: .*no config\.json \(expected a Hugging Face model folder\)/);
  });
});
