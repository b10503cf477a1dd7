/**
 * One explanation as it streams, ends and is continued (no VS Code here, so it is tested alone): the text so far,
 * what the panel says about how it ended, and the request "Continue" sends — the prompt and the text so far,
 * which the worker's cache for Explain Selection already holds, so only the rest is generated.
 */
import type { FinishReason } from '../protocol';
import { EXPLAIN_CONTEXT_TOKENS, type ExplainPlan } from './explainPrompt';

/** What one request for the explanation asks the worker for. */
export interface ExplainRequest {
  readonly prompt: string;
  readonly maxNewTokens: number;
}

/** How a request ended: the worker's answer, or the error that ended it (the worker crashed or restarted). */
export type ExplainOutcome =
  | { readonly finishReason: FinishReason; readonly promptTokens: number; readonly truncatedTokens: number; readonly generatedTokens: number }
  | { readonly error: string };

/** What the panel shows. */
export interface ExplainView {
  readonly markdown: string;
  readonly status: string;
  readonly canContinue: boolean;
}

/** Tokens kept free of the context when continuing: the text re-read as part of the prompt may split into a few more. */
const CONTEXT_MARGIN = 16;

const NO_EXPLANATION = '_The model gave no explanation. Try selecting a smaller, complete piece of code._';

type State = 'running' | 'complete' | 'interrupted' | 'length';

export class Explanation {
  private text = '';
  private state: State = 'running';
  private error: string | undefined;
  /** Tokens generated against the current allowance (plan.maxNewTokens; stopping at it grants a new one on Continue). */
  private spent = 0;
  /** Tokens of the prompt and the text so far (the worker's count once it has answered; an estimate before). */
  private contextTokens: number;
  /** Pieces streamed by the request in flight: at most one token each, the count when the worker died mid-request. */
  private pieces = 0;
  private promptCut = false;

  constructor(private readonly plan: ExplainPlan) {
    this.contextTokens = plan.promptTokens;
  }

  /** The first request. */
  get request(): ExplainRequest {
    return { prompt: this.plan.prompt, maxNewTokens: this.plan.maxNewTokens };
  }

  get running(): boolean {
    return this.state === 'running';
  }

  append(delta: string): void {
    this.text += delta;
    this.pieces++;
  }

  /** Records how the request in flight ended. */
  end(outcome: ExplainOutcome): void {
    if ('error' in outcome) {
      this.state = 'interrupted';
      this.error = outcome.error;
      this.spent += this.pieces;
      this.contextTokens += this.pieces;
      return;
    }
    this.error = undefined;
    this.spent += outcome.generatedTokens;
    this.contextTokens = outcome.promptTokens + outcome.generatedTokens;
    this.promptCut ||= outcome.truncatedTokens > 0;
    this.state = outcome.finishReason === 'cancelled' ? 'interrupted' : outcome.finishReason === 'length' ? 'length' : 'complete';
  }

  /** The request that continues from where it stopped (undefined when it cannot), and the explanation running again. */
  continue(): ExplainRequest | undefined {
    const maxNewTokens = this.continuationTokens();
    if (maxNewTokens === 0) return undefined;
    if (this.state === 'length') this.spent = 0;
    this.state = 'running';
    this.error = undefined;
    this.pieces = 0;
    return { prompt: this.plan.prompt + this.text, maxNewTokens };
  }

  get view(): ExplainView {
    const notes: string[] = [];
    if (this.plan.truncated) notes.push('> The selection is long: only its first part was explained.');
    if (this.promptCut) notes.push('> The start of the selection did not fit in what the model reads, and was left out.');
    const body = this.state === 'complete' && this.text.trim() === '' ? NO_EXPLANATION : this.text;
    return { markdown: [...notes, body].join('\n\n'), status: this.status(), canContinue: this.continuationTokens() > 0 };
  }

  /** Tokens a continuation may generate now: the rest of the allowance (a new one after a length stop), within the context. */
  private continuationTokens(): number {
    if (this.state !== 'interrupted' && this.state !== 'length') return 0;
    const allowance = this.state === 'length' ? this.plan.maxNewTokens : this.plan.maxNewTokens - this.spent;
    return Math.max(0, Math.min(allowance, this.contextRoom()));
  }

  /** Tokens the model can still read after the prompt and the text so far. */
  private contextRoom(): number {
    return EXPLAIN_CONTEXT_TOKENS - this.contextTokens - CONTEXT_MARGIN;
  }

  private status(): string {
    const full = this.contextRoom() <= 0 ? ` The model reads ${EXPLAIN_CONTEXT_TOKENS} tokens at most and this explanation has reached that: select less code for a longer one.` : '';
    switch (this.state) {
      case 'running':
        return 'Explaining…';
      case 'complete':
        return 'Done.';
      case 'interrupted':
        return (this.error === undefined ? 'Interrupted before the end.' : `Interrupted: ${this.error.replace(/\.?$/, '.')}`) + full;
      case 'length':
        return `Stopped at the length limit (phiComplete.explain.maxTokens; ${this.plan.maxNewTokens} tokens here).${full}`;
    }
  }
}
