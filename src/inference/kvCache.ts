/**
 * The decoder's key/value cache: for every layer, keys and values of the tokens seen so far,
 * each [1, heads, length, headDim] float32, in the layout the ONNX graph takes as `past_key_values.*`.
 */
export class KvCache {
  private keys: Float32Array[];
  private values: Float32Array[];
  private cachedLength = 0;

  constructor(readonly layers: number, readonly heads: number, readonly headDim: number) {
    this.keys = Array.from({ length: layers }, () => new Float32Array(0));
    this.values = Array.from({ length: layers }, () => new Float32Array(0));
  }

  /** Number of token positions cached. */
  get length(): number {
    return this.cachedLength;
  }

  key(layer: number): Float32Array {
    return this.keys[layer];
  }

  value(layer: number): Float32Array {
    return this.values[layer];
  }

  /** Takes the graph's `present.*` outputs (the old cache plus the new rows) as the cache. */
  replace(keys: Float32Array[], values: Float32Array[], length: number): void {
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
    const shrink = (tensor: Float32Array): Float32Array => {
      const out = new Float32Array(this.heads * n * this.headDim);
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
