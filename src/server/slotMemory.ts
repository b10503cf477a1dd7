/**
 * Which llama-server slot holds which window of a document: what was last read in each slot the extension used,
 * so that a request names the slot (id_slot) whose cache it continues. The rule is the worker's own
 * (src/inference/windows.ts): a prompt continues the window of its document that shares the longest prefix with
 * it, if that is at least half of the window; otherwise (the window warmed ahead, another place in the file) it
 * names no slot, and llama-server gives it the idle slot whose cache shares the most with it.
 */

/** Slots remembered (the most recently used first out last). */
const REMEMBERED = 256;

interface Entry {
  readonly sequence: string;
  readonly slot: number;
  readonly prompt: string;
}

function commonPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

export class SlotMemory {
  private entries: Entry[] = [];

  /** The slot whose cache `prompt` of `sequence` continues, or undefined for none. */
  slotFor(sequence: string, prompt: string): number | undefined {
    let best: Entry | undefined;
    let bestShared = 0;
    for (const entry of this.entries) {
      if (entry.sequence !== sequence) continue;
      const shared = commonPrefix(entry.prompt, prompt);
      if (shared > bestShared) [best, bestShared] = [entry, shared];
    }
    return best && bestShared * 2 >= best.prompt.length ? best.slot : undefined;
  }

  /** `slot` now holds `prompt` of `sequence` (what it held before is gone from it). */
  remember(sequence: string, slot: number, prompt: string): void {
    this.entries = this.entries.filter((entry) => entry.slot !== slot);
    this.entries.push({ sequence, slot, prompt });
    if (this.entries.length > REMEMBERED) this.entries.shift();
  }
}
