/**
 * Recent suggestions by the prefix they were made for. When the user types the first characters of a shown
 * suggestion (or accepts part of it by word or line), the new prefix is the old one plus those characters, and
 * the rest of the suggestion is served at once, without the model.
 *
 * A prefix is what completions read before the cursor (CursorText in ./cursorText.ts: the end of the document's text
 * before it, a bounded neighbourhood, and where that starts). An entry keeps only the end of it verbatim, plus the
 * cursor's offset and a 64-bit hash of the {@link HASHED_LENGTH} characters before that end. A wrong match needs the
 * same offset, the same last {@link TAIL_LENGTH} characters and a hash collision, or an edit further above (more
 * than 4 KB before the cursor) that kept the offset.
 */
/** The text before a cursor as completions read it (a CursorText is one): the document's LF text from `beforeStart` to the cursor. */
export interface CachePrefix {
  readonly before: string;
  readonly beforeStart: number;
}

/** Characters at the end of a prefix kept verbatim: where edits near the cursor show up first. */
export const TAIL_LENGTH = 2048;
/** Characters before the tail that are hashed: completions read more than both (MIN_CHARS_READ_BEFORE_CURSOR in ./cursorText.ts). */
export const HASHED_LENGTH = 2048;

interface Entry {
  /** The cursor's offset in the document (the length of the whole prefix). */
  readonly length: number;
  /** The prefix's last characters (all of it when short). */
  readonly tail: string;
  /** Where the hashed part starts (an offset in the document). */
  readonly headStart: number;
  /** Hash of what was read before the tail. */
  readonly headHash: string;
  readonly completion: string;
}

export class CompletionCache {
  /** Insertion order is recency of use: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly capacity = 50) {}

  set({ before, beforeStart }: CachePrefix, completion: string): void {
    const tailStart = Math.max(0, before.length - TAIL_LENGTH);
    const hashStart = Math.max(0, tailStart - HASHED_LENGTH);
    const entry: Entry = { length: beforeStart + before.length, tail: before.slice(tailStart), headStart: beforeStart + hashStart, headHash: hashHead(before, hashStart, tailStart), completion };
    const key = keyOf(entry);
    this.entries.delete(key);
    this.entries.set(key, entry);
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.capacity) break;
      this.entries.delete(oldest);
    }
  }

  /**
   * The rest of a cached suggestion that the prefix has typed into, or, for the very prefix it was made for,
   * the suggestion itself ('' when the model had nothing to suggest there). Undefined when nothing matches or
   * the whole suggestion has been typed. The entry with the longest prefix wins: it is the latest answer for
   * this spot; among equal ones, the most recent.
   */
  lookup(prefix: CachePrefix): string | undefined {
    const { before, beforeStart } = prefix;
    const candidates = [...this.entries.entries()].reverse().filter(([, entry]) => typedInto(entry, prefix));
    candidates.sort(([, a], [, b]) => b.length - a.length); // stable: recency breaks ties
    for (const [key, entry] of candidates) {
      // What the entry hashed must have been read now too (it was: typing into a suggestion reads on from the same text).
      if (entry.headStart < beforeStart) continue;
      if (hashHead(before, entry.headStart - beforeStart, entry.length - entry.tail.length - beforeStart) !== entry.headHash) continue;
      this.entries.delete(key); // mark as recently used
      this.entries.set(key, entry);
      return entry.completion.slice(beforeStart + before.length - entry.length);
    }
    return undefined;
  }

  clear(): void {
    this.entries.clear();
  }
}

function keyOf(entry: Entry): string {
  return `${entry.length}:${entry.headStart}:${entry.headHash}:${entry.tail}`;
}

/**
 * Whether the prefix is the entry's prefix plus the start of its suggestion (short of all of it), judging by
 * the tail only; the head's hash is checked afterwards, for the few entries that pass.
 */
function typedInto(entry: Entry, { before, beforeStart }: CachePrefix): boolean {
  const typed = beforeStart + before.length - entry.length;
  if (typed < 0 || (typed > 0 && typed >= entry.completion.length)) return false;
  const tailAt = entry.length - entry.tail.length - beforeStart;
  return tailAt >= 0 && before.startsWith(entry.tail, tailAt) && entry.completion.startsWith(before.slice(entry.length - beforeStart));
}

/** Two independent 32-bit hashes (FNV-1a and a multiply-xorshift) of the characters from `start` to `end`. */
function hashHead(text: string, start: number, end: number): string {
  let fnv = 0x811c9dc5;
  let mix = 0x9e3779b9;
  for (let at = start; at < end; at++) {
    const code = text.charCodeAt(at);
    fnv = Math.imul(fnv ^ code, 0x01000193);
    mix = Math.imul(mix ^ code, 0x5bd1e995);
    mix ^= mix >>> 15;
  }
  return `${(fnv >>> 0).toString(16).padStart(8, '0')}${(mix >>> 0).toString(16).padStart(8, '0')}`;
}
