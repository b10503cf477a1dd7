/**
 * An independent reference forward pass of the phi architecture (Hugging Face PhiForCausalLM), in plain
 * float64 TypeScript straight from the weights. It is the oracle the ONNX graph is tested against, so it is
 * written for obviousness, not speed.
 */
import { PhiConfig, headDim, rotaryDim } from '../../src/model/config';

/** Returns a Hugging Face tensor by name, row-major (Linear weights are [out, in]). */
export type WeightLookup = (name: string) => Float32Array;

export interface ReferenceOptions {
  /** Position of tokenIds[0] for the rotary embedding (default 0); token t sits at positionOffset + t. */
  readonly positionOffset?: number;
  /** Return only the last position's logits (greedy decoding needs no more; lm_head dominates the cost). */
  readonly lastPositionOnly?: boolean;
}

/** GPT-2's tanh approximation of GELU, as phi uses ("gelu_new"). */
export function gelu_new(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/** LayerNorm over the whole vector, with biased variance as torch.nn.LayerNorm. */
function layerNorm(x: Float64Array, weight: Float64Array, bias: Float64Array, eps: number): Float64Array {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i];
  mean /= n;
  let variance = 0;
  for (let i = 0; i < n; i++) variance += (x[i] - mean) * (x[i] - mean);
  variance /= n;
  const scale = 1 / Math.sqrt(variance + eps);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (x[i] - mean) * scale * weight[i] + bias[i];
  return out;
}

/** y = W·x + b with W [outDim, inDim] row-major. */
function linear(weight: Float64Array, bias: Float64Array, x: Float64Array): Float64Array {
  const outDim = bias.length;
  const inDim = x.length;
  const y = new Float64Array(outDim);
  for (let o = 0; o < outDim; o++) {
    let sum = bias[o];
    const row = o * inDim;
    for (let i = 0; i < inDim; i++) sum += weight[row + i] * x[i];
    y[o] = sum;
  }
  return y;
}

/**
 * Rotates, in place, the first `rDim` dims of the head starting at `start` in `vec` (non-interleaved halves:
 * dim j pairs with dim j + rDim/2), for the given position.
 */
function applyRotary(vec: Float64Array, start: number, rDim: number, position: number, theta: number): void {
  const half = rDim / 2;
  for (let j = 0; j < half; j++) {
    const invFreq = 1 / Math.pow(theta, (2 * j) / rDim);
    const angle = position * invFreq;
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    const a = vec[start + j];
    const b = vec[start + j + half];
    vec[start + j] = a * cos - b * sin;
    vec[start + j + half] = b * cos + a * sin;
  }
}

/** Logits for every position: result[t] has config.vocab_size entries (float64). */
export function referenceLogits(
  config: PhiConfig,
  weight: WeightLookup,
  tokenIds: readonly number[],
  options: ReferenceOptions = {},
): Float64Array[] {
  const hidden = config.hidden_size;
  const inter = config.intermediate_size;
  const vocab = config.vocab_size;
  const heads = config.num_attention_heads;
  const hd = headDim(config);
  const rDim = rotaryDim(config);
  const offset = options.positionOffset ?? 0;
  if (!Number.isInteger(hd) || hd * heads !== hidden) throw new Error('hidden_size must be divisible by num_attention_heads');
  if (rDim % 2 !== 0 || rDim < 0 || rDim > hd) throw new Error(`rotary dimension ${rDim} must be even and at most ${hd}`);
  if (!Number.isInteger(offset) || offset < 0) throw new Error(`positionOffset must be a non-negative integer, got ${offset}`);
  for (const id of tokenIds) {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`token id ${id} is outside [0, ${vocab})`);
  }

  const cache = new Map<string, Float64Array>();
  const param = (name: string, length: number): Float64Array => {
    const cached = cache.get(name);
    if (cached !== undefined) return cached;
    const raw = weight(name);
    if (raw.length !== length) throw new Error(`${name}: expected ${length} values, got ${raw.length}`);
    const converted = Float64Array.from(raw);
    cache.set(name, converted);
    return converted;
  };

  const T = tokenIds.length;
  const embed = param('model.embed_tokens.weight', vocab * hidden);
  let xs: Float64Array[] = tokenIds.map((id) => embed.slice(id * hidden, (id + 1) * hidden));

  for (let layer = 0; layer < config.num_hidden_layers; layer++) {
    const p = (suffix: string, length: number): Float64Array => param(`model.layers.${layer}.${suffix}`, length);
    const lnW = p('input_layernorm.weight', hidden);
    const lnB = p('input_layernorm.bias', hidden);
    const qW = p('self_attn.q_proj.weight', hidden * hidden);
    const qB = p('self_attn.q_proj.bias', hidden);
    const kW = p('self_attn.k_proj.weight', hidden * hidden);
    const kB = p('self_attn.k_proj.bias', hidden);
    const vW = p('self_attn.v_proj.weight', hidden * hidden);
    const vB = p('self_attn.v_proj.bias', hidden);
    const dW = p('self_attn.dense.weight', hidden * hidden);
    const dB = p('self_attn.dense.bias', hidden);
    const fc1W = p('mlp.fc1.weight', inter * hidden);
    const fc1B = p('mlp.fc1.bias', inter);
    const fc2W = p('mlp.fc2.weight', hidden * inter);
    const fc2B = p('mlp.fc2.bias', hidden);

    const hs = xs.map((x) => layerNorm(x, lnW, lnB, config.layer_norm_eps));
    const qs = hs.map((h) => linear(qW, qB, h));
    const ks = hs.map((h) => linear(kW, kB, h));
    const vs = hs.map((h) => linear(vW, vB, h));
    for (let t = 0; t < T; t++) {
      for (let head = 0; head < heads; head++) {
        applyRotary(qs[t], head * hd, rDim, offset + t, config.rope_theta);
        applyRotary(ks[t], head * hd, rDim, offset + t, config.rope_theta);
      }
    }

    const scale = 1 / Math.sqrt(hd);
    const next: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      // Attention, causal: position t attends to positions 0..t.
      const context = new Float64Array(hidden);
      for (let head = 0; head < heads; head++) {
        const base = head * hd;
        const scores = new Float64Array(t + 1);
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += qs[t][base + d] * ks[s][base + d];
          scores[s] = dot * scale;
          if (scores[s] > max) max = scores[s];
        }
        let total = 0;
        for (let s = 0; s <= t; s++) {
          scores[s] = Math.exp(scores[s] - max);
          total += scores[s];
        }
        for (let s = 0; s <= t; s++) {
          const prob = scores[s] / total;
          for (let d = 0; d < hd; d++) context[base + d] += prob * vs[s][base + d];
        }
      }
      const attn = linear(dW, dB, context);

      // MLP, in parallel from the same normalised input.
      const up = linear(fc1W, fc1B, hs[t]);
      for (let i = 0; i < inter; i++) up[i] = gelu_new(up[i]);
      const mlp = linear(fc2W, fc2B, up);

      const x = new Float64Array(hidden);
      for (let i = 0; i < hidden; i++) x[i] = xs[t][i] + attn[i] + mlp[i];
      next.push(x);
    }
    xs = next;
  }

  const finalW = param('model.final_layernorm.weight', hidden);
  const finalB = param('model.final_layernorm.bias', hidden);
  const headW = param('lm_head.weight', vocab * hidden);
  const headB = param('lm_head.bias', vocab);
  const outputs = options.lastPositionOnly ? xs.slice(-1) : xs;
  return outputs.map((x) => linear(headW, headB, layerNorm(x, finalW, finalB, config.layer_norm_eps)));
}

/**
 * `count` greedy tokens after `prompt`, recomputing the whole sequence at every step (no cache to get wrong),
 * choosing among the first `sampleable` ids (phi's logits are padded past the tokenizer's tokens).
 */
export function referenceGreedy(config: PhiConfig, weight: WeightLookup, prompt: readonly number[], count: number, sampleable: number): number[] {
  const tokens = [...prompt];
  for (let step = 0; step < count; step++) {
    const [logits] = referenceLogits(config, weight, tokens, { lastPositionOnly: true });
    let best = 0;
    for (let v = 1; v < sampleable; v++) if (logits[v] > logits[best]) best = v;
    tokens.push(best);
  }
  return tokens.slice(prompt.length);
}
