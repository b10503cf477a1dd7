/**
 * The bench's head-to-head rounds: our engine's runner (and llama.cpp's, where node-llama-cpp is installed) as real
 * child processes on the tiny model, answering decode and prefill rounds over their stdin/stdout until told to stop;
 * and the compute probe that measures prefill's limit.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { PHI_1_5 } from '../../src/model/config';
import { TOKENIZER_FILE } from '../../src/model/manifest';
import { prefillOpsPerToken, startComputeProbe, type Int8Throughput } from '../../bench/compute';
import { writePhiGguf } from '../../bench/peers/gguf';
import { NODE_LLAMA_CPP_VERSION, startLlamaCppRounds } from '../../bench/peers/llamaCpp';
import { nodeKind } from '../../bench/prefill';
import { defaultCacheDir, installedVersion } from '../../bench/support/cache';
import { roundsRequest, startRoundsChild, type DecodeRound, type PrefillRun, type RoundsChild } from '../../bench/support/child';
import { scratchDir, tinyModelDir, tinyWeights } from '../support/tinyModels';

const ENGINE_RUNNER = path.resolve(__dirname, '../../bench/engineRunner.js');
const ids = (count: number): number[] => Array.from({ length: count }, (_, i) => (i * 37 + 11) % 1000);

/** Decode rounds with prefills in between (as the bench interleaves them), then the child is closed. */
async function exercise(child: RoundsChild<DecodeRound>, rounds: number, prefillPrompts: readonly (readonly number[])[]): Promise<{ decodes: DecodeRound[]; prefills: PrefillRun[] }> {
  const decodes: DecodeRound[] = [];
  const prefills: PrefillRun[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      decodes.push(await child.next());
      for (let p = 0; p < prefillPrompts.length; p++) prefills.push(await child.prefill(p));
    }
  } finally {
    await child.close();
  }
  return { decodes, prefills };
}

function checkRounds(decodes: readonly DecodeRound[], prefills: readonly PrefillRun[], rounds: number, prefillPrompts: readonly (readonly number[])[]): void {
  assert.equal(decodes.length, rounds);
  for (const round of decodes) {
    for (const rate of [round.context128, round.context1024]) assert.ok(Number.isFinite(rate) && rate > 0, `decode rate ${rate}`);
  }
  assert.equal(prefills.length, rounds * prefillPrompts.length);
  prefills.forEach((run, i) => {
    assert.equal(run.promptTokens, prefillPrompts[i % prefillPrompts.length].length);
    assert.ok(run.ms > 0 && Number.isFinite(run.tokensPerSecond) && run.tokensPerSecond > 0, `prefill ${JSON.stringify(run)}`);
    assert.ok(Math.abs(run.tokensPerSecond - (run.promptTokens * 1000) / run.ms) < 1e-6 * run.tokensPerSecond);
  });
}

test('the engine runner answers decode rounds and prefills in between, each continuing after both prompts, and exits when closed', async () => {
  const prefillPrompts = [ids(20), ids(70)];
  const request = roundsRequest({ modelDir: tinyModelDir('int4'), device: 'cpu' as const, threads: 1 }, { prompt128: ids(12), prompt1024: ids(40), decodeTokens: 6 }, 3, prefillPrompts);
  const { decodes, prefills } = await exercise(await startRoundsChild<DecodeRound>(ENGINE_RUNNER, 'engine runner', request), request.rounds, prefillPrompts);
  checkRounds(decodes, prefills, 3, prefillPrompts);
});

test('a prefill the request did not give fails the runner with its reason', async () => {
  const request = roundsRequest({ modelDir: tinyModelDir('int4'), device: 'cpu' as const, threads: 1 }, { prompt128: ids(4), prompt1024: ids(8), decodeTokens: 2 }, 1, [ids(6)]);
  const child = await startRoundsChild<DecodeRound>(ENGINE_RUNNER, 'engine runner', request);
  await assert.rejects(child.prefill(1), /engine runner failed \(exit code 1\)/);
  await assert.rejects(child.close(), /engine runner failed/);
});

const llamaCppInstalled = installedVersion(path.join(defaultCacheDir(), `node-llama-cpp-${NODE_LLAMA_CPP_VERSION}`), 'node-llama-cpp') === NODE_LLAMA_CPP_VERSION;

test('the llama.cpp runner answers decode rounds and prefills on the tiny model', { skip: llamaCppInstalled ? false : 'node-llama-cpp is installed on the first npm run bench' }, async () => {
  const ggufPath = path.join(scratchDir(), 'tiny-f32.gguf');
  writePhiGguf(tinyWeights(), path.join(tinyModelDir('int4'), TOKENIZER_FILE), ggufPath, 'F32');
  const prefillPrompts = [ids(20), ids(70)];
  const child = await startLlamaCppRounds({ ggufPath, threads: 1, prompt128: ids(12), prompt1024: ids(40), decodeTokens: 6, rounds: 2, prefillPrompts });
  const { decodes, prefills } = await exercise(child, 2, prefillPrompts);
  checkRounds(decodes, prefills, 2, prefillPrompts);
});

test('the compute probe measures int8 matrix products, round after round', async () => {
  const probe = await startComputeProbe(1);
  const measured: Int8Throughput[] = [];
  try {
    for (let i = 0; i < 2; i++) measured.push(await probe.next());
  } finally {
    await probe.close();
  }
  for (const m of measured) {
    for (const gops of [m.matMulInteger, m.matMulNBits.rows512, m.matMulNBits.rows32]) assert.ok(Number.isFinite(gops) && gops > 0, JSON.stringify(m));
  }
});

test("a prefill's operations a token: every layer matrix once, attention over the positions so far, lm_head once", () => {
  const weights = 24 * (4 * 2048 * 2048 + 2 * 2048 * 8192);
  // One token: the matrices, attention over itself, lm_head.
  assert.equal(prefillOpsPerToken(PHI_1_5, 1), 2 * (weights + 24 * 2 * 2048 + 2048 * 51200));
  // Phi-1.5 is ≈2.42 G operations a token, attention adding ≈1% at 256 tokens and ≈4% at 1,024.
  assert.ok(Math.abs(prefillOpsPerToken(PHI_1_5, 256) / 1e9 - 2.44) < 0.01);
  assert.ok(Math.abs(prefillOpsPerToken(PHI_1_5, 1024) / 1e9 - 2.52) < 0.01);
});

test("the profile's kinds of node follow the graph's names", () => {
  assert.equal(nodeKind('MatMulNBits', 'MatMulNBits:model.layers.3/fc1'), 'int4 matrix products (MatMulNBits)');
  assert.equal(nodeKind('MatMulNBits', 'MatMulNBits:logits'), 'lm_head (MatMulNBits, 8-bit)');
  assert.equal(nodeKind('MatMulInteger', 'MatMulInteger:model.layers.0/past_score_codes'), "attention's int8 products (MatMulInteger)");
  assert.equal(nodeKind('Round', 'Round:model.layers.0/value_weights/rounded'), 'int8 quantisation of the attention weights (before ·V)');
  assert.equal(nodeKind('Mul', 'Mul:model.layers.0/value_weights'), 'attention: scores, mask, softmax, scales');
  for (const [op, node] of [['Abs', 'Abs:model.layers.0/query/abs'], ['Cast', 'Cast:present_rows.0.value'], ['Transpose', 'Transpose:present_rows.1.key_scale']]) {
    assert.equal(nodeKind(op, node), 'int8 quantisation of the query and new keys/values');
  }
  assert.equal(nodeKind('Reshape', 'Reshape:model.layers.0/query/bshd'), 'other (head reshapes and transposes, adds, mask, embedding)');
  assert.equal(nodeKind('Softmax', 'Softmax:model.layers.0/probs'), 'attention: scores, mask, softmax, scales');
});

test('a runner that cannot prepare its rounds fails with its reason, not a hang', async () => {
  const request = roundsRequest({ modelDir: path.join(__dirname, 'no-such-model'), device: 'cpu' as const, threads: 1 }, { prompt128: ids(4), prompt1024: ids(8), decodeTokens: 2 }, 1);
  await assert.rejects(startRoundsChild<DecodeRound>(ENGINE_RUNNER, 'engine runner', request), /engine runner failed \(exit code 1\)/);
});

test('rounds requests are checked before a child starts', () => {
  const common = { threads: 1 };
  assert.throws(() => roundsRequest(common, { prompt128: ids(4), prompt1024: ids(8), decodeTokens: 0 }, 1), /decodeTokens must be an integer ≥ 1/);
  assert.throws(() => roundsRequest(common, { prompt128: ids(4), prompt1024: ids(8), decodeTokens: 2 }, 0), /rounds must be an integer ≥ 1/);
  assert.throws(() => roundsRequest(common, { prompt128: ids(4), prompt1024: ids(8), decodeTokens: 2 }, 1, [ids(4), []]), /prefillPrompts\[1\] must be a non-empty list of token ids/);
});
