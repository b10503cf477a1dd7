/**
 * What Verify Model asks of a model, and how its answer is judged and told: the same for the local model
 * (src/lifecycle/modelLifecycle.ts) and for a server (src/server/serverCheck.ts).
 */
import type { GenerationStats } from './engineTypes';

/** A prompt any working phi model completes sensibly (phi-1.5 answers " a + b"). */
export const VERIFY_PROMPT = 'def add(a, b):\n    return';
/** Greedy, one line at most (a GenerationParams, src/protocol.ts, checked where it is passed). */
export const VERIFY_PARAMS = { maxNewTokens: 16, temperature: 0, topK: 0, topP: 1, seed: 0, stop: ['\n'] as readonly string[], speculative: false };

/**
 * The report of an answer to VERIFY_PROMPT from `who` ("the model", "the server at 127.0.0.1:8080"), `where` it ran
 * (" on the CPU", or ""): sane when the answer has text and no undecodable bytes.
 */
export function verifyReport(who: string, where: string, text: string, stats: Pick<GenerationStats, 'generatedTokens' | 'decodeMs' | 'firstTokenMs'>): { sane: boolean; report: string } {
  const rate = stats.generatedTokens / Math.max(1e-3, stats.decodeMs / 1000);
  const sane = text.trim() !== '' && !text.includes('\uFFFD');
  const report = `${who} ${sane ? 'answers' : 'answered nothing usable'}: "def add(a, b): return${text}" — ${stats.generatedTokens} tokens, `
    + `first after ${Math.round(stats.firstTokenMs)} ms, ${rate.toFixed(1)} tokens/s${where}`;
  return { sane, report };
}
