/**
 * What a server has read of each document, as far as the extension can tell: the prompts its answered requests sent.
 *
 * - Which llama-server slot holds which window (llama.cpp reports the slot): a request names the slot (id_slot)
 *   whose cache it continues. The rule is the worker's own (src/inference/windows.ts): a prompt continues the window
 *   of its document that shares the longest prefix with it, if that is at least half of the window; otherwise (the
 *   window warmed ahead, another place in the file) it names no slot, and llama-server gives it the idle slot whose
 *   cache shares the most with it.
 * - How much of a prompt the server has read already (any server: an OpenAI-compatible one reports no slot, and is
 *   assumed to keep what it read, as servers with prefix caching do): what decides whether a completion answers from
 *   its quick prompt while the server reads the rest.
 */

/** Prompts remembered (the most recently used first out last). */
const REMEMBERED = 256;
/** Prompts remembered per document of a server that reports no slots. */
const UNSLOTTED_PER_SEQUENCE = 4;

interface Entry {
  readonly sequence: string;
  /** The llama-server slot that read it; undefined where the server did not say. */
  readonly slot: number | undefined;
  readonly prompt: string;
}

function commonPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** Whether `prompt` continues `window` (the worker's rule): they share at least half of the window from its start. */
export function continuesWindow(window: string, prompt: string): boolean {
  return commonPrefix(window, prompt) * 2 >= window.length;
}

export class SlotMemory {
  private entries: Entry[] = [];

  /** The slot whose cache `prompt` of `sequence` continues, or undefined for none. */
  slotFor(sequence: string, prompt: string): number | undefined {
    const { entry } = this.longestShared(sequence, prompt, (candidate) => candidate.slot !== undefined);
    return entry && continuesWindow(entry.prompt, prompt) ? entry.slot : undefined;
  }

  /** Characters at the start of `prompt` that the server read for `sequence` (in any slot, or none reported). */
  readChars(sequence: string, prompt: string): number {
    return this.longestShared(sequence, prompt, () => true).shared;
  }

  /** The server read `prompt` of `sequence`, in `slot` where it said (what that slot held before is gone from it). */
  remember(sequence: string, slot: number | undefined, prompt: string): void {
    if (slot !== undefined) {
      this.entries = this.entries.filter((entry) => entry.slot !== slot);
    } else {
      // A longer read of the same window supersedes it; a document keeps its last few windows.
      this.entries = this.entries.filter((entry) => !(entry.slot === undefined && entry.sequence === sequence && prompt.startsWith(entry.prompt)));
      const unslotted = this.entries.filter((entry) => entry.slot === undefined && entry.sequence === sequence);
      if (unslotted.length >= UNSLOTTED_PER_SEQUENCE) this.entries = this.entries.filter((entry) => entry !== unslotted[0]);
    }
    this.entries.push({ sequence, slot, prompt });
    if (this.entries.length > REMEMBERED) this.entries.shift();
  }

  private longestShared(sequence: string, prompt: string, eligible: (entry: Entry) => boolean): { entry: Entry | undefined; shared: number } {
    let entry: Entry | undefined;
    let shared = 0;
    for (const candidate of this.entries) {
      if (candidate.sequence !== sequence || !eligible(candidate)) continue;
      const length = commonPrefix(candidate.prompt, prompt);
      if (length > shared) [entry, shared] = [candidate, length];
    }
    return { entry, shared };
  }
}
