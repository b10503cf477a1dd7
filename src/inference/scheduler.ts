/**
 * Who runs next. The model runs one piece of work at a time, in the order the work came; each has a priority, and
 * the rules below, the only place they are written, say what a newcomer does to the work already held (running or
 * waiting its turn):
 *
 *   request      a completion: the latest wins. It cancels the requests and window reads held, and waits behind an
 *                explanation, so the completion for where the user is now runs as soon as the explanation ends.
 *   explanation  Explain Selection, which the user asked for and reads as it streams: it cancels everything held,
 *                and only a newer explanation cancels it.
 *   windowRead   a warm-up prefill (reading a window before a request for it comes): it runs only while no request
 *                or explanation is held (otherwise it is refused at once), and any later work cancels it.
 *
 * Cancelled work stops at its next step boundary, leaving the cache consistent; cancelled while it waits, it is
 * answered at once and its place in the queue passes without work. A new priority is a member of Priority, a row
 * of RULES, and its name in the `preempts` of the priorities that may cancel it.
 */

export type Priority = 'request' | 'explanation' | 'windowRead';

interface Rule {
  /** The priorities of held work that a newcomer of this priority cancels. */
  readonly preempts: readonly Priority[];
  /**
   * Whether it waits behind held work it does not cancel; otherwise it is refused while any such work is held
   * (work called and not yet answered: running, or waiting its turn).
   */
  readonly waits: boolean;
}

const RULES: Readonly<Record<Priority, Rule>> = {
  request: { preempts: ['request', 'windowRead'], waits: true },
  explanation: { preempts: ['request', 'explanation', 'windowRead'], waits: true },
  windowRead: { preempts: ['windowRead'], waits: false },
};

/** Work taken into the queue and not yet finished (running or waiting): how to cancel it, and its priority. */
interface Turn {
  readonly controller: AbortController;
  readonly priority: Priority;
}

/** What work of a priority is answered when it never ran. */
export interface Unrun<T> {
  /** Cancelled (by the caller's signal, or by newer work) before it started. */
  readonly cancelled: T;
  /** Refused because work it does not cancel was held (only priorities that do not wait). */
  readonly refused: T;
}

export class Scheduler {
  private readonly turns = new Set<Turn>();
  /** Work called and not yet answered, by priority (it counts from the call, before its turn is taken, to the answer). */
  private readonly held = new Map<Priority, number>();
  private queue: Promise<unknown> = Promise.resolve();

  /**
   * Runs `work` once the work before it in the queue has ended, with a signal that the caller's `signal` or newer
   * work that preempts it aborts. Cancels the held work that `priority` preempts; refused at once where its rule
   * says so.
   */
  run<T>(priority: Priority, signal: AbortSignal | undefined, unrun: Unrun<T>, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const rule = RULES[priority];
    if (!rule.waits && this.holdsOtherThan(rule.preempts)) return Promise.resolve(unrun.refused);
    this.count(priority, +1);
    return this.takeOver(priority, signal, unrun.cancelled, work).finally(() => this.count(priority, -1));
  }

  /** Cancels all work, running or waiting. */
  cancel(): void {
    for (const turn of this.turns) turn.controller.abort();
  }

  /** Resolves once the work queued until now has ended. */
  async drained(): Promise<void> {
    await this.queue;
  }

  private count(priority: Priority, change: number): void {
    this.held.set(priority, (this.held.get(priority) ?? 0) + change);
  }

  private holdsOtherThan(priorities: readonly Priority[]): boolean {
    return [...this.held].some(([priority, count]) => count > 0 && !priorities.includes(priority));
  }

  /**
   * Cancels the held work that `priority` preempts and queues `work` after it, cancelled by `signal` or by newer
   * work that preempts it. Cancelled while it waits, it answers `cancelled` at once (a completion waiting behind an
   * explanation).
   */
  private takeOver<T>(priority: Priority, signal: AbortSignal | undefined, cancelled: T, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    for (const turn of this.turns) if (RULES[priority].preempts.includes(turn.priority)) turn.controller.abort();
    const turn: Turn = { controller: new AbortController(), priority };
    this.turns.add(turn);
    const cancel = (): void => turn.controller.abort();
    signal?.addEventListener('abort', cancel, { once: true });
    if (signal?.aborted) cancel();
    let started = false;
    const ran = this.queue.then(() => {
      started = true;
      return turn.controller.signal.aborted ? cancelled : work(turn.controller.signal);
    });
    this.queue = ran.catch(() => undefined);
    const gaveUp = new Promise<T>((resolve) => {
      const stopWaiting = (): void => {
        if (!started) resolve(cancelled);
      };
      if (turn.controller.signal.aborted) stopWaiting();
      else turn.controller.signal.addEventListener('abort', stopWaiting, { once: true });
    });
    return Promise.race([ran, gaveUp]).finally(() => {
      signal?.removeEventListener('abort', cancel);
      this.turns.delete(turn);
    });
  }
}
