import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PhiConfig, PHI_TINY } from '../../src/model/config';
import { mulberry32 } from '../../src/util/rng';
import { gelu_new, referenceLogits, WeightLookup } from '../support/referenceForward';


function smallConfig(overrides: Partial<PhiConfig> = {}): PhiConfig {
  return {
    vocab_size: 11,
    hidden_size: 8,
    intermediate_size: 16,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 2,
    partial_rotary_factor: 0.5,
    rope_theta: 10000,
    layer_norm_eps: 1e-5,
    max_position_embeddings: 64,
    bos_token_id: 0,
    eos_token_id: 0,
    ...overrides,
  };
}

/** Every tensor of the model, filled with seeded random values (LayerNorm weights near 1). */
function randomWeights(config: PhiConfig, seed: number): Map<string, Float32Array> {
  const rand = mulberry32(seed);
  const uniform = (length: number, scale: number, centre = 0): Float32Array => {
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) out[i] = centre + scale * (2 * rand() - 1);
    return out;
  };
  const H = config.hidden_size;
  const I = config.intermediate_size;
  const V = config.vocab_size;
  const w = new Map<string, Float32Array>();
  w.set('model.embed_tokens.weight', uniform(V * H, 1));
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    w.set(`${p}input_layernorm.weight`, uniform(H, 0.3, 1));
    w.set(`${p}input_layernorm.bias`, uniform(H, 0.2));
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'dense']) {
      w.set(`${p}self_attn.${proj}.weight`, uniform(H * H, 1 / Math.sqrt(H)));
      w.set(`${p}self_attn.${proj}.bias`, uniform(H, 0.2));
    }
    w.set(`${p}mlp.fc1.weight`, uniform(I * H, 1 / Math.sqrt(H)));
    w.set(`${p}mlp.fc1.bias`, uniform(I, 0.2));
    w.set(`${p}mlp.fc2.weight`, uniform(H * I, 1 / Math.sqrt(I)));
    w.set(`${p}mlp.fc2.bias`, uniform(H, 0.2));
  }
  w.set('model.final_layernorm.weight', uniform(H, 0.3, 1));
  w.set('model.final_layernorm.bias', uniform(H, 0.2));
  w.set('lm_head.weight', uniform(V * H, 1 / Math.sqrt(H)));
  w.set('lm_head.bias', uniform(V, 0.2));
  return w;
}

function lookup(weights: Map<string, Float32Array>): WeightLookup {
  return (name) => {
    const value = weights.get(name);
    if (value === undefined) throw new Error(`no tensor ${name}`);
    return value;
  };
}

/** Replaces the named tensor with zeros of the same length. */
function zero(weights: Map<string, Float32Array>, name: string): void {
  const old = weights.get(name);
  if (old === undefined) throw new Error(`no tensor ${name}`);
  weights.set(name, new Float32Array(old.length));
}

// --- A separate, direct computation of the pieces the expected values need. ---

function directLayerNorm(x: number[], w: Float32Array, b: Float32Array, eps: number): number[] {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
  return x.map((v, i) => ((v - mean) / Math.sqrt(variance + eps)) * w[i] + b[i]);
}

function directLinear(w: Float32Array, b: Float32Array, x: number[]): number[] {
  return Array.from(b, (bias, o) => x.reduce((acc, v, i) => acc + w[o * x.length + i] * v, bias));
}

function row(matrix: Float32Array, index: number, width: number): number[] {
  return Array.from(matrix.subarray(index * width, (index + 1) * width));
}

function directHead(weights: Map<string, Float32Array>, config: PhiConfig, x: number[]): number[] {
  const get = lookup(weights);
  const normed = directLayerNorm(x, get('model.final_layernorm.weight'), get('model.final_layernorm.bias'), config.layer_norm_eps);
  return directLinear(get('lm_head.weight'), get('lm_head.bias'), normed);
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    assert.ok(diff <= tolerance, `${label}[${i}]: ${actual[i]} vs ${expected[i]} (diff ${diff})`);
  }
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const ATTN_MLP_TENSORS = [
  'self_attn.q_proj.weight', 'self_attn.q_proj.bias', 'self_attn.k_proj.weight', 'self_attn.k_proj.bias',
  'self_attn.v_proj.weight', 'self_attn.v_proj.bias', 'self_attn.dense.weight', 'self_attn.dense.bias',
  'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias',
];

test('with attention and MLP zeroed, logits are lm_head(final LayerNorm(embedding))', () => {
  const config = smallConfig();
  const weights = randomWeights(config, 1);
  for (let l = 0; l < config.num_hidden_layers; l++) {
    for (const t of ATTN_MLP_TENSORS) zero(weights, `model.layers.${l}.${t}`);
  }
  const tokens = [3, 0, 10, 3, 7];
  const logits = referenceLogits(config, lookup(weights), tokens);
  assert.equal(logits.length, tokens.length);
  const embed = lookup(weights)('model.embed_tokens.weight');
  tokens.forEach((token, t) => {
    assert.ok(logits[t] instanceof Float64Array);
    assertClose(logits[t], directHead(weights, config, row(embed, token, config.hidden_size)), 1e-12, `position ${t}`);
  });
});

test('one layer with constant-value attention: x + dense(v bias) + fc2(gelu_new(fc1(LN(x)))), in parallel', () => {
  const config = smallConfig({ num_hidden_layers: 1 });
  const weights = randomWeights(config, 2);
  // q, k, v independent of the input: every position's attention output is exactly v's bias, whatever the pattern.
  for (const t of ['self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'self_attn.v_proj.weight']) zero(weights, `model.layers.0.${t}`);
  const get = lookup(weights);
  const P = 'model.layers.0.';
  const tokens = [4, 9, 1];
  const logits = referenceLogits(config, get, tokens);
  tokens.forEach((token, t) => {
    const x = row(get('model.embed_tokens.weight'), token, config.hidden_size);
    const h = directLayerNorm(x, get(`${P}input_layernorm.weight`), get(`${P}input_layernorm.bias`), config.layer_norm_eps);
    const attn = directLinear(get(`${P}self_attn.dense.weight`), get(`${P}self_attn.dense.bias`), Array.from(get(`${P}self_attn.v_proj.bias`)));
    const up = directLinear(get(`${P}mlp.fc1.weight`), get(`${P}mlp.fc1.bias`), h).map((u) => 0.5 * u * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (u + 0.044715 * u ** 3))));
    const mlp = directLinear(get(`${P}mlp.fc2.weight`), get(`${P}mlp.fc2.bias`), up);
    const out = x.map((v, i) => v + attn[i] + mlp[i]);
    assertClose(logits[t], directHead(weights, config, out), 1e-12, `position ${t}`);
  });
});

test('causal: logits at position t do not depend on the tokens after it, but do on those before', () => {
  const config = smallConfig();
  const get = lookup(randomWeights(config, 3));
  const tokens = [5, 2, 8, 8, 1, 0, 6];
  const full = referenceLogits(config, get, tokens);
  for (let n = 1; n <= tokens.length; n++) {
    const prefix = referenceLogits(config, get, tokens.slice(0, n));
    for (let t = 0; t < n; t++) assert.deepEqual(prefix[t], full[t], `prefix ${n}, position ${t}`);
  }
  const changedFirst = referenceLogits(config, get, [9, ...tokens.slice(1)]);
  for (let t = 1; t < tokens.length; t++) {
    assert.ok(maxDiff(changedFirst[t], full[t]) > 1e-6, `position ${t} should see the first token`);
  }
  assert.deepEqual(referenceLogits(config, get, []), []);
});

/**
 * A hand-derived rotary attention check. Heads of 8 dims, partial_rotary_factor 0.5: rotary on each head's dims
 * 0..3, non-interleaved, so dim 0 pairs with dim 2 (inv_freq 1) and dim 1 with dim 3 (inv_freq 1/sqrt(theta));
 * dims 4..7 pass through. q and k are their biases alone (q_proj/k_proj weights zero), so for query position
 * t and key position s, rotating q by t·f and k by s·f, each pair (a, b) contributes
 *   q·k = cos(φ)(qa·ka + qb·kb) + sin(φ)(qb·ka − qa·kb),  φ = (s − t)·f,
 * which depends only on s − t. `pairs` swaps in another pairing to show the test would catch it.
 */
function handScore(q: number[], k: number[], t: number, s: number, theta: number, pairs: [number, number, number][]): number {
  let dot = 0;
  for (let d = 4; d < 8; d++) dot += q[d] * k[d];
  for (const [a, b, freqExponent] of pairs) {
    const phi = (s - t) / Math.pow(theta, freqExponent);
    dot += Math.cos(phi) * (q[a] * k[a] + q[b] * k[b]) + Math.sin(phi) * (q[b] * k[a] - q[a] * k[b]);
  }
  return dot / Math.sqrt(8); // headDim 8
}

test('rotary: attention follows hand-derived, relative-position scores (non-interleaved, partial, per head, scaled)', () => {
  const theta = 10000;
  const config = smallConfig({ hidden_size: 16, num_attention_heads: 2, num_key_value_heads: 2, num_hidden_layers: 1, intermediate_size: 4, rope_theta: theta });
  const weights = randomWeights(config, 4);
  const P = 'model.layers.0.';
  for (const t of ['self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias']) zero(weights, P + t);
  // Per head: q and k biases. Head 1 is sharper, so each head's pattern matters.
  const q = [[2, -1.5, 1.5, 3, 0.3, -0.2, 0.1, 0.4], [-1, 3, 2.5, -2, 1, 0.5, -0.5, 1.5]];
  const k = [[1, 2.5, -1, 1, 0.5, 0.5, -0.3, 0.2], [2, -1, 1.5, 2, -0.5, 1, 0.5, -1]];
  weights.set(`${P}self_attn.q_proj.bias`, Float32Array.from(q.flat()));
  weights.set(`${P}self_attn.k_proj.bias`, Float32Array.from(k.flat()));
  const get = lookup(weights);
  const tokens = [3, 7, 5, 1, 10];
  const H = config.hidden_size;

  const expected = (pairs: [number, number, number][]): number[][] => {
    const xs = tokens.map((token) => row(get('model.embed_tokens.weight'), token, H));
    const vs = xs.map((x) => directLinear(get(`${P}self_attn.v_proj.weight`), get(`${P}self_attn.v_proj.bias`),
      directLayerNorm(x, get(`${P}input_layernorm.weight`), get(`${P}input_layernorm.bias`), config.layer_norm_eps)));
    return xs.map((x, t) => {
      const context: number[] = [];
      for (let head = 0; head < 2; head++) {
        const exps = vs.slice(0, t + 1).map((_, s) => Math.exp(handScore(q[head], k[head], t, s, theta, pairs)));
        const total = exps.reduce((a, e) => a + e, 0);
        for (let d = 0; d < 8; d++) context.push(exps.reduce((acc, e, s) => acc + (e / total) * vs[s][head * 8 + d], 0));
      }
      const attn = directLinear(get(`${P}self_attn.dense.weight`), get(`${P}self_attn.dense.bias`), context);
      // The MLP is all zeros, so it adds nothing.
      return directHead(weights, config, x.map((v, i) => v + attn[i]));
    });
  };
  const rotateHalf = expected([[0, 2, 0], [1, 3, 0.5]]);
  const interleaved = expected([[0, 1, 0], [2, 3, 0.5]]);
  const noRotation = expected([]);
  // The test discriminates: the wrong pairings or no rotary at all change the logits well beyond the tolerance.
  for (let t = 1; t < tokens.length; t++) {
    assert.ok(maxDiff(rotateHalf[t], interleaved[t]) > 1e-3, `interleaved differs at ${t}`);
    assert.ok(maxDiff(rotateHalf[t], noRotation[t]) > 1e-3, `unrotated differs at ${t}`);
  }

  const logits = referenceLogits(config, get, tokens);
  tokens.forEach((_, t) => assertClose(logits[t], rotateHalf[t], 1e-12, `position ${t}`));
  // Scores depend only on relative position, so shifting every position leaves the logits unchanged.
  const shifted = referenceLogits(config, get, tokens, { positionOffset: 37 });
  tokens.forEach((_, t) => assertClose(shifted[t], rotateHalf[t], 1e-10, `offset position ${t}`));
});

test('positionOffset: with all weights random, logits are invariant to shifting positions', () => {
  const config = smallConfig({ hidden_size: 16, num_attention_heads: 2, num_key_value_heads: 2 });
  const get = lookup(randomWeights(config, 5));
  const tokens = [1, 4, 1, 5, 9, 2, 6];
  const base = referenceLogits(config, get, tokens);
  for (const offset of [1, 100]) {
    const shifted = referenceLogits(config, get, tokens, { positionOffset: offset });
    tokens.forEach((_, t) => assertClose(shifted[t], base[t], 1e-9, `offset ${offset}, position ${t}`));
  }
});

test('gelu_new matches 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³)))', () => {
  assert.equal(gelu_new(1), 0.8411919906082768);
  assert.equal(gelu_new(0), 0);
  for (const x of [-3, -1, -0.25, 0.5, 2, 7.5]) {
    const expected = 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    assert.ok(Math.abs(gelu_new(x) - expected) <= 1e-15, `gelu_new(${x}) = ${gelu_new(x)}, expected ${expected}`);
  }
  assert.ok(Math.abs(gelu_new(-10)) < 1e-12);
  assert.ok(Math.abs(gelu_new(10) - 10) < 1e-12);
});

test('rejects out-of-range tokens and mis-sized tensors', () => {
  const config = smallConfig();
  const weights = randomWeights(config, 6);
  assert.throws(() => referenceLogits(config, lookup(weights), [11]), /token id 11/);
  assert.throws(() => referenceLogits(config, lookup(weights), [1.5]), /token id/);
  assert.throws(() => referenceLogits(config, lookup(weights), [0], { positionOffset: -1 }), /positionOffset/);
  weights.set('model.layers.1.mlp.fc1.bias', new Float32Array(3));
  assert.throws(() => referenceLogits(config, lookup(weights), [0]), /model\.layers\.1\.mlp\.fc1\.bias/);
});

test('PHI_TINY shapes: 64 tokens give 64 finite vocab-sized rows', () => {
  const weights = randomWeights(PHI_TINY, 7);
  const tokens = Array.from({ length: 64 }, (_, i) => (i * 7919) % PHI_TINY.vocab_size);
  const logits = referenceLogits(PHI_TINY, lookup(weights), tokens);
  assert.equal(logits.length, 64);
  for (const position of logits) {
    assert.equal(position.length, PHI_TINY.vocab_size);
    assert.ok(position.every(Number.isFinite));
  }
});
