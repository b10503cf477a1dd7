/**
 * Where a model's weights come from: a Hugging Face checkpoint folder (the real phi-1.5 download) or seeded
 * random initialisation. Both hand out float32 tensors by their Hugging Face names, one at a time, so that
 * building even the full-size model never holds more than one tensor in memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mulberry32, seededUniform } from '../util/rng';
import { parsePhiConfig, type PhiConfig } from './config';
import { SafetensorsFile } from './safetensors';

export interface WeightSource {
  readonly config: PhiConfig;
  /** Plain-data description for the model manifest. */
  readonly description: Record<string, unknown>;
  /** The checkpoint's own tokenizer.json, when it has one; otherwise phi-1.5's is generated. */
  readonly tokenizerPath?: string;
  /** The tensor as float32, row-major; Linear weights are [out, in]. */
  tensor(name: string): Float32Array;
  close(): void;
}

/** Every tensor phi has, with its shape. */
export function phiTensorShapes(config: PhiConfig): Map<string, number[]> {
  const { hidden_size: d, intermediate_size: ff, vocab_size: vocab } = config;
  const shapes = new Map<string, number[]>([['model.embed_tokens.weight', [vocab, d]]]);
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    shapes.set(`${p}input_layernorm.weight`, [d]);
    shapes.set(`${p}input_layernorm.bias`, [d]);
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'dense']) {
      shapes.set(`${p}self_attn.${proj}.weight`, [d, d]);
      shapes.set(`${p}self_attn.${proj}.bias`, [d]);
    }
    shapes.set(`${p}mlp.fc1.weight`, [ff, d]);
    shapes.set(`${p}mlp.fc1.bias`, [ff]);
    shapes.set(`${p}mlp.fc2.weight`, [d, ff]);
    shapes.set(`${p}mlp.fc2.bias`, [d]);
  }
  shapes.set('model.final_layernorm.weight', [d]);
  shapes.set('model.final_layernorm.bias', [d]);
  shapes.set('lm_head.weight', [vocab, d]);
  shapes.set('lm_head.bias', [vocab]);
  return shapes;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * How random weights are drawn.
 * - flat: as Hugging Face initialises phi (std 0.02, initializer_range). Its next-token logits are nearly flat:
 *   the top two of 51,200 differ by about 0.2 standard deviations, unlike any trained model's.
 * - bigram: the same, but a random bigram chain is planted: lm_head row v is the unit-length embedding of
 *   token perm(v) (a seeded permutation) and embeddings have std 0.05, so each token strongly predicts one
 *   successor while attention and the MLP still move the logits. Its top-1 margins (≈0.2–2 logits) resemble
 *   a trained model's, which is what quantisation-agreement checks need.
 */
export type RandomInit = 'flat' | 'bigram';

const INITIALIZER_RANGE = 0.02;
const BIGRAM_EMBEDDING_STD = 0.05;

/** Seeded random weights (see RandomInit). Biases are non-zero so every bias path is exercised. */
export class RandomWeights implements WeightSource {
  readonly description: Record<string, unknown>;
  private readonly shapes: Map<string, number[]>;

  constructor(readonly config: PhiConfig, readonly seed: number, shapeName: string, readonly init: RandomInit = 'flat') {
    this.shapes = phiTensorShapes(config);
    this.description = { kind: 'random', seed, shape: shapeName, init };
  }

  tensor(name: string): Float32Array {
    const shape = this.shapes.get(name);
    if (!shape) throw new Error(`random weights: phi has no tensor named ${name}`);
    const count = shape.reduce((a, b) => a * b, 1);
    if (name.endsWith('layernorm.weight')) return seededUniform(this.seed, name, count, 1, 0.1);
    if (name.endsWith('layernorm.bias')) return seededUniform(this.seed, name, count, 0, 0.1);
    if (this.init === 'bigram') {
      if (name === 'model.embed_tokens.weight') return seededUniform(this.seed, name, count, 0, BIGRAM_EMBEDDING_STD);
      if (name === 'lm_head.weight') return this.bigramHead();
    }
    return seededUniform(this.seed, name, count, 0, INITIALIZER_RANGE);
  }

  private bigramHead(): Float32Array {
    const { vocab_size: vocab, hidden_size: d } = this.config;
    const embedding = this.tensor('model.embed_tokens.weight');
    const random = mulberry32(this.seed ^ 0x5eed);
    const perm = Int32Array.from({ length: vocab }, (_, i) => i);
    for (let i = vocab - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    const head = new Float32Array(vocab * d);
    for (let v = 0; v < vocab; v++) {
      const row = embedding.subarray(perm[v] * d, (perm[v] + 1) * d);
      let sumOfSquares = 0;
      for (let k = 0; k < d; k++) sumOfSquares += row[k] * row[k];
      const norm = Math.sqrt(sumOfSquares);
      for (let k = 0; k < d; k++) head[v * d + k] = row[k] / norm;
    }
    return head;
  }

  close(): void {}
}

/**
 * A Hugging Face checkpoint folder: config.json plus one or more *.safetensors files (fp32, fp16 or bf16).
 * The constructor checks that every tensor phi needs is present with the right shape before anything is built.
 */
export class HuggingFaceWeights implements WeightSource {
  readonly config: PhiConfig;
  readonly description: Record<string, unknown>;
  readonly tokenizerPath?: string;
  private readonly files: SafetensorsFile[] = [];
  private readonly fileOf = new Map<string, SafetensorsFile>();

  constructor(readonly folder: string) {
    const configPath = path.join(folder, 'config.json');
    if (!fs.existsSync(configPath)) throw new Error(`${folder}: no config.json (expected a Hugging Face model folder)`);
    let rawConfig: unknown;
    try {
      rawConfig = JSON.parse(fs.readFileSync(configPath, 'utf8'));
    } catch (error) {
      throw new Error(`${configPath}: not valid JSON (${(error as Error).message})`);
    }
    this.config = parsePhiConfig(rawConfig, configPath);
    const names = fs.readdirSync(folder).filter((f) => f.endsWith('.safetensors')).sort();
    if (names.length === 0) throw new Error(`${folder}: no *.safetensors files`);
    try {
      for (const name of names) {
        const file = SafetensorsFile.open(path.join(folder, name));
        this.files.push(file);
        for (const tensorName of file.tensors.keys()) {
          const other = this.fileOf.get(tensorName);
          if (other) throw new Error(`${file.path}: tensor ${tensorName} is also in ${other.path}`);
          this.fileOf.set(tensorName, file);
        }
      }
      for (const [name, shape] of phiTensorShapes(this.config)) {
        const file = this.fileOf.get(name);
        if (!file) throw new Error(`${folder}: missing tensor ${name} (looked in ${names.join(', ')})`);
        const actual = file.tensors.get(name)!.shape;
        if (shapeText(actual) !== shapeText(shape)) {
          throw new Error(`${file.path}: tensor ${name} has shape ${shapeText(actual)}, config.json implies ${shapeText(shape)}`);
        }
      }
    } catch (error) {
      this.close();
      throw error;
    }
    const dtypes = [...new Set([...this.fileOf.values()].flatMap((f) => [...f.tensors.values()].map((t) => t.dtype)))];
    this.description = { kind: 'huggingface', folder: path.resolve(folder), files: names, dtypes };
    const tokenizerPath = path.join(folder, 'tokenizer.json');
    if (fs.existsSync(tokenizerPath)) this.tokenizerPath = tokenizerPath;
  }

  tensor(name: string): Float32Array {
    const file = this.fileOf.get(name);
    if (!file) throw new Error(`${this.folder}: missing tensor ${name}`);
    return file.readFloat32(name);
  }

  close(): void {
    for (const file of this.files.splice(0)) file.close();
  }
}
