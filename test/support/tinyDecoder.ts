/** The engine tests' model: the tiny fp32 bigram model, loaded, with its tokenizer. */
import * as path from 'node:path';
import { PhiDecoder } from '../../src/inference/decoder';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { TOKENIZER_FILE } from '../../src/model/manifest';
import { buildScriptedModel } from './scriptedModel';
import { scratchDir, tinyModelDir } from './tinyModels';

/** Loads the tiny fp32 bigram model (built once per process); the caller disposes the decoder. */
export async function openTinyDecoder(): Promise<{ decoder: PhiDecoder; tokenizer: PhiTokenizer }> {
  const dir = tinyModelDir('fp32', 'bigram');
  return { decoder: await PhiDecoder.load(dir), tokenizer: PhiTokenizer.fromFile(path.join(dir, 'tokenizer.json')) };
}

/** A scripted model (buildScriptedModel: answers a prompt ending in `lastPromptText` with `text`), built into a scratch folder `name` and loaded on the CPU. */
export async function openScriptedDecoder(name: string, lastPromptText: string, text: string): Promise<{ decoder: PhiDecoder; tokenizer: PhiTokenizer }> {
  const dir = path.join(scratchDir(), name);
  buildScriptedModel(dir, lastPromptText, text);
  return { decoder: await PhiDecoder.load(dir, { executionProviders: ['cpu'] }), tokenizer: PhiTokenizer.fromFile(path.join(dir, TOKENIZER_FILE)) };
}
