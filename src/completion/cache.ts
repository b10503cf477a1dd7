/**
 * Recent suggestions by the prefix they were made for. When the user types the first characters of a shown
 * suggestion (or accepts part of it by word or line), the new prefix is the old one plus those characters, and
 * the rest of the suggestion is served at once, without the model.
 *
 * Prefixes can be whole files, so an entry keeps only the end of its prefix verbatim, plus the prefix's length
 * and a 64-bit hash of the part before that end. A wrong match needs the same length, the same last
 * {@link TAIL_LENGTH} characters and a hash collision.
 */

/** Characters at the end of a prefix kept verbatim: where edits near the cursor show up first. */
const TAIL_LENGTH = 2048;

interface Entry {
  /** Length of the whole prefix. */
  readonly length: number;
  /** The prefix's last characters (all of it when short). */
  readonly tail: string;
  /** Hash of the prefix before the tail. */
  readonly headHash: string;
  readonly completion: string;
}

export class CompletionCache {
  /** Insertion order is recency of use: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly capacity = 50) {}

  set(prefix: string, completion: string): void {
    const tailStart = Math.max(0, prefix.length - TAIL_LENGTH);
    const entry: Entry = { length: prefix.length, tail: prefix.slice(tailStart), headHash: hashHead(prefix, tailStart), completion };
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
  lookup(prefix: string): string | undefined {
    const candidates = [...this.entries.entries()].reverse().filter(([, entry]) => typedInto(entry, prefix));
    candidates.sort(([, a], [, b]) => b.length - a.length); // stable: recency breaks ties
    for (const [key, entry] of candidates) {
      if (hashHead(prefix, entry.length - entry.tail.length) !== entry.headHash) continue;
      this.entries.delete(key); // mark as recently used
      this.entries.set(key, entry);
      return entry.completion.slice(prefix.length - entry.length);
    }
    return undefined;
  }

  clear(): void {
    this.entries.clear();
  }
}

function keyOf(entry: Entry): string {
  return `${entry.length}:${entry.headHash}:${entry.tail}`;
}

/**
 * Whether the prefix is the entry's prefix plus the start of its suggestion (short of all of it), judging by
 * the tail only; the head's hash is checked afterwards, for the few entries that pass.
 */
function typedInto(entry: Entry, prefix: string): boolean {
  const typed = prefix.length - entry.length;
  if (typed < 0 || (typed > 0 && typed >= entry.completion.length)) return false;
  return prefix.startsWith(entry.tail, entry.length - entry.tail.length) && entry.completion.startsWith(prefix.slice(entry.length));
}

/** Two independent 32-bit hashes (FNV-1a and a multiply-xorshift) of the first `length` characters. */
function hashHead(text: string, length: number): string {
  let fnv = 0x811c9dc5;
  let mix = 0x9e3779b9;
  for (let at = 0; at < length; at++) {
    const code = text.charCodeAt(at);
    fnv = Math.imul(fnv ^ code, 0x01000193);
    mix = Math.imul(mix ^ code, 0x5bd1e995);
    mix ^= mix >>> 15;
  }
  return `${(fnv >>> 0).toString(16).padStart(8, '0')}${(mix >>> 0).toString(16).padStart(8, '0')}`;
}
