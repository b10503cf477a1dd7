/**
 * The bench's head-to-head rounds: our engine's runner as a real child process on the tiny model, answering
 * rounds over its stdin/stdout until told to stop.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { roundsRequest, startRoundsChild, type DecodeRound } from '../../bench/support/child';
import { tinyModelDir } from '../support/tinyModels';

const ENGINE_RUNNER = path.resolve(__dirname, '../../bench/engineRunner.js');
const ids = (count: number): number[] => Array.from({ length: count }, (_, i) => (i * 37 + 11) % 1000);

test('the engine runner answers decode rounds, each continuing after both prompts, and exits when closed', async () => {
  const request = roundsRequest({ modelDir: tinyModelDir('int4'), device: 'cpu' as const, threads: 1 }, { prompt128: ids(12), prompt1024: ids(40), decodeTokens: 6 }, 3);
  const child = await startRoundsChild<DecodeRound>(ENGINE_RUNNER, 'engine runner', request);
  const rounds: DecodeRound[] = [];
  try {
    for (let i = 0; i < request.rounds; i++) rounds.push(await child.next());
  } finally {
    await child.close();
  }
  assert.equal(rounds.length, 3);
  for (const round of rounds) {
    for (const rate of [round.context128, round.context1024]) assert.ok(Number.isFinite(rate) && rate > 0, `decode rate ${rate}`);
  }
});

test('a runner that cannot prepare its rounds fails with its reason, not a hang', async () => {
  const request = roundsRequest({ modelDir: path.join(__dirname, 'no-such-model'), device: 'cpu' as const, threads: 1 }, { prompt128: ids(4), prompt1024: ids(8), decodeTokens: 2 }, 1);
  await assert.rejects(startRoundsChild<DecodeRound>(ENGINE_RUNNER, 'engine runner', request), /engine runner failed \(exit code 1\)/);
});

test('rounds requests are checked before a child starts', () => {
  const common = { threads: 1 };
  assert.throws(() => roundsRequest(common, { prompt128: ids(4), prompt1024: ids(8), decodeTokens: 0 }, 1), /decodeTokens must be an integer ≥ 1/);
  assert.throws(() => roundsRequest(common, { prompt128: ids(4), prompt1024: ids(8), decodeTokens: 2 }, 0), /rounds must be an integer ≥ 1/);
});
