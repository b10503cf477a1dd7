/** float32 values, or float16 bit patterns. */
export type KvDtype = 'float32' | 'float16';
export type KvArray = Float32Array | Uint16Array;

/**
 * The decoder's key/value cache: for every layer, keys and values of the tokens seen so far,
 * each [1, heads, length, headDim], in the layout the ONNX graph takes as `past_key_values.*`.
 */
export class KvCache {
  private keys: KvArray[];
  private values: KvArray[];
  private cachedLength = 0;

  constructor(readonly layers: number, readonly heads: number, readonly headDim: number, readonly dtype: KvDtype = 'float32') {
    this.keys = Array.from({ length: layers }, () => this.allocate(0));
    this.values = Array.from({ length: layers }, () => this.allocate(0));
  }

  private allocate(elements: number): KvArray {
    return this.dtype === 'float16' ? new Uint16Array(elements) : new Float32Array(elements);
  }

  /** Number of token positions cached. */
  get length(): number {
    return this.cachedLength;
  }

  key(layer: number): KvArray {
    return this.keys[layer];
  }

  value(layer: number): KvArray {
    return this.values[layer];
  }

  /** Takes the graph's `present.*` outputs (the old cache plus the new rows) as the cache. */
  replace(keys: KvArray[], values: KvArray[], length: number): void {
    const expected = this.heads * length * this.headDim;
    if (keys.length !== this.layers || values.length !== this.layers || keys.some((k) => k.length !== expected) || values.some((v) => v.length !== expected)) {
      throw new Error(`KvCache.replace: expected ${this.layers} layers of [1, ${this.heads}, ${length}, ${this.headDim}]`);
    }
    this.keys = keys;
    this.values = values;
    this.cachedLength = length;
  }

  /** Forgets every position from `n` on, so decoding can resume after the first n tokens. */
  rewindTo(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.cachedLength) throw new RangeError(`KvCache.rewindTo(${n}): cache holds ${this.cachedLength} positions`);
    if (n === this.cachedLength) return;
    const shrink = (tensor: KvArray): KvArray => {
      const out = this.allocate(this.heads * n * this.headDim);
      const rowBytes = n * this.headDim;
      for (let head = 0; head < this.heads; head++) {
        const from = head * this.cachedLength * this.headDim;
        out.set(tensor.subarray(from, from + rowBytes), head * rowBytes);
      }
      return out;
    };
    this.keys = this.keys.map(shrink);
    this.values = this.values.map(shrink);
    this.cachedLength = n;
  }

  dispose(): void {
    this.keys = [];
    this.values = [];
    this.cachedLength = 0;
  }
}
