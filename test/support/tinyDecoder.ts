/** The engine tests' model: the tiny fp32 bigram model, loaded, with its tokenizer. */
import * as path from 'node:path';
import { PhiDecoder } from '../../src/inference/decoder';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { tinyModelDir } from './tinyModels';

/** Loads the tiny fp32 bigram model (built once per process); the caller disposes the decoder. */
export async function openTinyDecoder(): Promise<{ decoder: PhiDecoder; tokenizer: PhiTokenizer }> {
  const dir = tinyModelDir('fp32', 'bigram');
  return { decoder: await PhiDecoder.load(dir), tokenizer: PhiTokenizer.fromFile(path.join(dir, 'tokenizer.json')) };
}
