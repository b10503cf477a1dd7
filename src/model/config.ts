/** The phi architecture's hyper-parameters, in the names Hugging Face's `config.json` uses. */
export interface PhiConfig {
  readonly vocab_size: number;
  readonly hidden_size: number;
  readonly intermediate_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly num_key_value_heads: number;
  readonly partial_rotary_factor: number;
  readonly rope_theta: number;
  readonly layer_norm_eps: number;
  readonly max_position_embeddings: number;
  readonly bos_token_id: number;
  readonly eos_token_id: number;
}

/** microsoft/phi-1_5 (see shared reference). */
export const PHI_1_5: PhiConfig = {
  vocab_size: 51200,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 24,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  partial_rotary_factor: 0.5,
  rope_theta: 10000,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 2048,
  bos_token_id: 50256,
  eos_token_id: 50256,
};

/** The same architecture and vocabulary, small enough for tests: every code path of the real model, in milliseconds. */
export const PHI_TINY: PhiConfig = {
  ...PHI_1_5,
  hidden_size: 128,
  intermediate_size: 512,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 4,
};

export const SHAPES = { tiny: PHI_TINY, 'phi-1_5': PHI_1_5 } as const;
export type ShapeName = keyof typeof SHAPES;

export function headDim(config: PhiConfig): number {
  return config.hidden_size / config.num_attention_heads;
}

/** Rotary embedding covers the first `rotaryDim` of each head's dimensions (non-interleaved halves). */
export function rotaryDim(config: PhiConfig): number {
  return Math.round(headDim(config) * config.partial_rotary_factor);
}

const INTEGER_FIELDS = [
  'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
  'max_position_embeddings',
] as const;

/**
 * Reads a Hugging Face `config.json` object into a PhiConfig, with defaults where phi's config omits a field.
 * Throws one error naming every problem, prefixed with `source` (the file it came from).
 */
export function parsePhiConfig(raw: unknown, source: string): PhiConfig {
  if (typeof raw !== 'object' || raw === null) throw new Error(`${source}: expected a JSON object`);
  const json = raw as Record<string, unknown>;
  const problems: string[] = [];
  if (json.model_type !== undefined && json.model_type !== 'phi') {
    problems.push(`model_type is ${JSON.stringify(json.model_type)}, only "phi" is supported`);
  }
  const num = (key: string, fallback?: number): number => {
    const value = json[key] ?? fallback;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      problems.push(`${key} must be a number`);
      return NaN;
    }
    return value;
  };
  const config: PhiConfig = {
    vocab_size: num('vocab_size'),
    hidden_size: num('hidden_size'),
    intermediate_size: num('intermediate_size'),
    num_hidden_layers: num('num_hidden_layers'),
    num_attention_heads: num('num_attention_heads'),
    num_key_value_heads: num('num_key_value_heads', json.num_attention_heads as number),
    partial_rotary_factor: num('partial_rotary_factor', 0.5),
    rope_theta: num('rope_theta', 10000),
    layer_norm_eps: num('layer_norm_eps', 1e-5),
    max_position_embeddings: num('max_position_embeddings', 2048),
    bos_token_id: num('bos_token_id', 50256),
    eos_token_id: num('eos_token_id', 50256),
  };
  for (const key of INTEGER_FIELDS) {
    const value = config[key];
    if (Number.isFinite(value) && (!Number.isInteger(value) || value <= 0)) problems.push(`${key} must be a positive integer`);
  }
  if (problems.length === 0) {
    if (config.hidden_size % config.num_attention_heads !== 0) problems.push('hidden_size must be divisible by num_attention_heads');
    if (config.num_key_value_heads !== config.num_attention_heads) problems.push('num_key_value_heads must equal num_attention_heads (phi has no grouped KV)');
    const rot = headDim(config) * config.partial_rotary_factor;
    if (!(config.partial_rotary_factor > 0 && config.partial_rotary_factor <= 1) || rot % 2 !== 0 || !Number.isInteger(rot)) {
      problems.push('partial_rotary_factor must give an even number of rotary dimensions per head');
    }
  }
  if (problems.length > 0) throw new Error(`${source}: ${problems.join('; ')}`);
  return config;
}
