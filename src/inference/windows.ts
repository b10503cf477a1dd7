/**
 * The cached windows of the files being read. A window is a stretch of a file's tokens whose keys and values a
 * cache holds, position for position; a sequence (a document, or Explain Selection) may hold several, since the
 * end of a file and a function in its middle read different text. The pool finds where a prompt's tokens are
 * cached longest, starts a new window from another's rows where it can copy them, and keeps all windows within
 * a memory budget, least recently used out first.
 */
import type { DecoderCache } from './kvCache';

/** One cached window of a sequence: its cache and the token at each of its positions. */
export class CacheWindow {
  /** tokens[i] is the token at cached position i. */
  tokens: number[] = [];
  /** When it was last used (the pool's clock): least recently used goes first. */
  used = 0;

  constructor(
    /** The key it is stored under: the sequence's name, then `#n` for further windows. */
    readonly key: string,
    /** The sequence's name. */
    readonly name: string,
    readonly cache: DecoderCache,
    /** Whether its last request was a side request (an explanation). */
    public aside: boolean,
  ) {}

  /** Forgets every position from `length` on. */
  rewindTo(length: number): void {
    this.cache.rewindTo(length);
    this.tokens.length = length;
  }
}

/** Where a prompt's tokens are cached longest (WindowPool.cachedPrefix). */
export interface CachedPrefix {
  /** The window of the prompt's sequence sharing the longest prefix with it, and how long that prefix is. */
  readonly window: CacheWindow | undefined;
  readonly windowCommon: number;
  /** The window, of any sequence, whose cache can copy rows and shares the longest prefix: a new window copies from it. */
  readonly donor: CacheWindow | undefined;
  readonly donorCommon: number;
}

/** A prompt's window made ready for a request: rewound to the prefix it reuses, and sized for the request. */
export interface PreparedWindow {
  readonly window: CacheWindow;
  /** Prompt tokens it holds (at most all but the last). */
  readonly reusedTokens: number;
  /** Of those, the ones copied from another window. */
  readonly copiedTokens: number;
}

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Prompt tokens a request would feed: those cached nowhere it can reuse or copy from (at least one). */
export function uncachedTokens(found: CachedPrefix, tokens: readonly number[]): number {
  return tokens.length - Math.min(Math.max(found.windowCommon, found.donorCommon), tokens.length - 1);
}

export class WindowPool {
  private readonly windows = new Map<string, CacheWindow>();
  private clock = 0;
  /** Windows created after a sequence's first (their keys' numbers). */
  private extraWindows = 0;
  /** The window the work in flight uses (never evicted). */
  active: CacheWindow | undefined;

  constructor(private readonly createCache: () => DecoderCache, private budgetBytes: number) {}

  /** The memory budget for all caches together, in bytes. */
  get budget(): number {
    return this.budgetBytes;
  }

  /**
   * Sets the memory budget and evicts least recently used windows down to it now (never the one in use, or,
   * while none is, the most recently used).
   */
  set budget(bytes: number) {
    this.budgetBytes = bytes;
    const keep = this.active ?? this.leastRecentlyUsed().at(-1);
    if (keep) this.fit(keep, keep.cache.bytes);
  }

  /** Bytes the windows' caches hold together. */
  get bytes(): number {
    let total = 0;
    for (const window of this.windows.values()) total += window.cache.bytes;
    return total;
  }

  /** The windows' sequence names, a name per window, least recently used first. */
  get names(): string[] {
    return this.leastRecentlyUsed().map((window) => window.name);
  }

  /** The tokens cached in sequence `name`'s most recently used window. */
  tokensOf(name: string): readonly number[] {
    return this.leastRecentlyUsed().filter((window) => window.name === name).at(-1)?.tokens ?? [];
  }

  /**
   * Where `tokens` are cached longest: in a window of sequence `name`, and in any cache that can copy rows (a new
   * window copies from it). One pass over the windows serves `use`, `prepare` and the quick prompt's choice.
   */
  cachedPrefix(name: string, tokens: readonly number[]): CachedPrefix {
    let window: CacheWindow | undefined;
    let windowCommon = -1;
    let donor: CacheWindow | undefined;
    let donorCommon = 0;
    for (const candidate of this.windows.values()) {
      const common = commonPrefixLength(candidate.tokens, tokens);
      if (candidate.name === name && common > windowCommon) [window, windowCommon] = [candidate, common];
      if (candidate.cache.canCopyRows && common > donorCommon) [donor, donorCommon] = [candidate, common];
    }
    return { window, windowCommon: Math.max(0, windowCommon), donor, donorCommon };
  }

  /**
   * Finds the prefix of `tokens` that sequence `name` has cached (a window with nothing cached copies the longest
   * prefix another shares), rewinds the window to it, evicts what the budget needs and sizes the cache for
   * `positions` positions in all. `keepLonger`: a cache that already holds every token but the last is left as it
   * is (a prefill must not forget a completion generated after it). `found`: cachedPrefix(name, tokens).
   */
  prepare(name: string, aside: boolean, tokens: readonly number[], positions: number, keepLonger: boolean, found: CachedPrefix): PreparedWindow {
    const window = this.use(name, aside, found);
    let copiedTokens = 0;
    const { donor } = found;
    const shared = Math.min(found.donorCommon, tokens.length - 1);
    if (window.tokens.length === 0 && window.cache.canCopyRows && donor && donor !== window && shared > 0) {
      // A new window (a file opened after another with the same header): copy rather than recompute what another one shares.
      this.fit(window, window.cache.projectedBytes(positions), donor);
      window.cache.reserve(positions);
      window.cache.copyPrefixFrom(donor.cache, shared);
      window.tokens = tokens.slice(0, shared);
      copiedTokens = shared;
    }
    const common = commonPrefixLength(window.tokens, tokens);
    const reusedTokens = keepLonger && common >= tokens.length - 1 ? window.tokens.length : Math.min(common, tokens.length - 1);
    window.rewindTo(reusedTokens);
    // Size the cache for the whole request now: growing it later copies it, and holds two copies meanwhile.
    const rows = Math.max(0, positions - reusedTokens);
    this.fit(window, window.cache.projectedBytes(rows));
    window.cache.reserve(rows);
    return { window, reusedTokens: Math.min(reusedTokens, tokens.length - 1), copiedTokens };
  }

  /** Frees every window's cache. */
  dispose(): void {
    for (const window of [...this.windows.values()]) this.drop(window);
  }

  /**
   * The window of sequence `name` that the prompt continues (`found.window`), made the most recently used. A prompt
   * that shares less than half of the best window's cached tokens reads other text of the same file (the cursor
   * moved far away, or the prompt's start jumped): it gets a window of its own (created empty; prepare copies into
   * it the longest prefix another window shares), so that going back to where the user was re-reads nothing. Old
   * windows age out with the LRU.
   */
  private use(name: string, aside: boolean, found: CachedPrefix): CacheWindow {
    let window = found.window;
    // Only a cache that can copy rows starts a window from another's; a GPU-resident cache rewinds in place instead.
    const otherText = window !== undefined && window.cache.canCopyRows && window.tokens.length > 0 && 2 * found.windowCommon < window.tokens.length;
    if (!window || otherText) {
      const key = window ? `${name}#${++this.extraWindows}` : name;
      window = new CacheWindow(key, name, this.createCache(), aside);
      this.windows.set(key, window);
    }
    window.used = ++this.clock;
    window.aside = aside;
    return window;
  }

  private leastRecentlyUsed(): CacheWindow[] {
    return [...this.windows.values()].sort((a, b) => a.used - b.used);
  }

  /**
   * Evicts least recently used windows until all caches fit the budget, `inUse` counted at `inUseBytes` (what it
   * is about to hold). Never evicted: `inUse`, `alsoKeep`, and, when `inUse` is a side request's, the most recently
   * used window that is not (the file being edited). When even those do not fit, they are kept over the budget.
   */
  private fit(inUse: CacheWindow, inUseBytes: number, alsoKeep?: CacheWindow): void {
    const others = this.leastRecentlyUsed().filter((window) => window !== inUse);
    let total = inUseBytes + others.reduce((sum, window) => sum + window.cache.bytes, 0);
    const editing = inUse.aside ? others.filter((window) => !window.aside).at(-1) : undefined;
    for (const window of others) {
      if (total <= this.budgetBytes) break;
      if (window === editing || window === alsoKeep) continue;
      total -= window.cache.bytes;
      this.drop(window);
    }
  }

  private drop(window: CacheWindow): void {
    window.cache.dispose();
    window.tokens = [];
    this.windows.delete(window.key);
  }
}
