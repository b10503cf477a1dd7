/**
 * A tiny phi model that answers every prompt ending in a given token with a fixed text, built through the same
 * builder as phi-1.5: for tests of what the extension does with text the model writes (the Explain panel's
 * escaping), which a random model cannot be made to write.
 *
 * How: every attention and MLP weight is zero, so the residual stream is the current token's embedding and the
 * next token depends on the current one alone (a bigram model); lm_head's row for token b is the unit-length
 * embedding of the token a that b must follow. The final layer norm maps a's embedding to about √d along that row
 * (random embeddings of other tokens score ~N(0, 1) against it, all other rows 0), so greedy decoding follows the
 * chain: the prompt's last token → the text's tokens → <|endoftext|>. A token can have one successor only, so every
 * token of the text must be followed by the same token wherever it occurs (scriptedChain checks).
 */
import { PHI_TINY } from '../../src/model/config';
import { buildModel } from '../../src/model/build';
import { phiTensorShapes, type WeightSource } from '../../src/model/weights';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { buildPhiTokenizerJson } from '../../src/tokenizer/tokenizerJson';
import { seededUniform } from '../../src/util/rng';

const SEED = 4321;
const EMBEDDING_STD = 0.05;

/**
 * The token chain for `text` after a prompt ending in `lastPromptToken`: a map from each token to its successor.
 * Throws when a token of the text would need two different successors.
 */
export function scriptedChain(tokenizer: PhiTokenizer, lastPromptToken: number, text: string): Map<number, number> {
  const ids = [lastPromptToken, ...tokenizer.encode(text), tokenizer.eosTokenId];
  const next = new Map<number, number>();
  for (let i = 0; i + 1 < ids.length; i++) {
    const known = next.get(ids[i]);
    if (known !== undefined && known !== ids[i + 1]) {
      throw new Error(`a scripted model cannot write ${JSON.stringify(text)}: token ${JSON.stringify(tokenizer.decode([ids[i]]))} is followed by two different tokens`);
    }
    next.set(ids[i], ids[i + 1]);
  }
  return next;
}

class ScriptedWeights implements WeightSource {
  readonly config = PHI_TINY;
  readonly description: Record<string, unknown>;
  private readonly shapes = phiTensorShapes(PHI_TINY);

  constructor(private readonly next: Map<number, number>, text: string) {
    this.description = { kind: 'scripted', shape: 'tiny', text };
  }

  tensor(name: string): Float32Array {
    const shape = this.shapes.get(name);
    if (!shape) throw new Error(`scripted weights: phi has no tensor named ${name}`);
    const count = shape.reduce((a, b) => a * b, 1);
    if (name === 'model.embed_tokens.weight') return seededUniform(SEED, name, count, 0, EMBEDDING_STD);
    if (name.endsWith('layernorm.weight')) return new Float32Array(count).fill(1);
    if (name === 'lm_head.weight') return this.head();
    return new Float32Array(count);
  }

  private head(): Float32Array {
    const d = this.config.hidden_size;
    const embedding = this.tensor('model.embed_tokens.weight');
    const head = new Float32Array(this.config.vocab_size * d);
    for (const [token, successor] of this.next) {
      const row = embedding.subarray(token * d, (token + 1) * d);
      const norm = Math.hypot(...row);
      for (let k = 0; k < d; k++) head[successor * d + k] += row[k] / norm;
    }
    return head;
  }

  close(): void {}
}

/** Builds (fp32) into `dir` a tiny model that answers any prompt ending in `lastPromptText`'s last token with `text`. */
export function buildScriptedModel(dir: string, lastPromptText: string, text: string): void {
  const tokenizer = PhiTokenizer.fromJson(buildPhiTokenizerJson());
  const promptTokens = tokenizer.encode(lastPromptText);
  const next = scriptedChain(tokenizer, promptTokens[promptTokens.length - 1], text);
  buildModel(new ScriptedWeights(next, text), dir, { format: 'fp32', overwrite: true });
}

/**
 * Text that would run a script, show an image (running its onerror) and restyle the page were it rendered as
 * HTML; spelt so that the scripted model can write it (no token followed by two different ones).
 */
export const HOSTILE_TEXT = '<script>alert(1)</SCRIPT > <img src=x onerror="print()"><Style/>*{background:#f00}</style>.';
