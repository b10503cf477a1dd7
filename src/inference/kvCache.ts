import * as ort from 'onnxruntime-node';
import type { KvOutputs } from '../model/manifest';

/** Element types a cache tensor may have (float16 as bit patterns, since JavaScript has no float16 arrays). */
export type KvDtype = 'float32' | 'float16' | 'int8';
export type KvArray = Float32Array | Uint16Array | Int8Array;

/**
 * One of a layer's cache tensors: [1, heads, positions, width], or [1, heads, width, positions] when
 * `transposed` (int8 keys are stored so, because MatMulInteger has no transpose flag). The graph's input is
 * `past_key_values.{layer}.{name}` and its new rows come back as `present_rows.{layer}.{name}` in the same layout.
 */
export interface KvPlane {
  readonly name: string;
  readonly dtype: KvDtype;
  readonly width: number;
  readonly transposed: boolean;
}

/** Float keys and values, as in Optimum's exports. */
export function floatPlanes(headDim: number, dtype: 'float32' | 'float16'): KvPlane[] {
  return [
    { name: 'key', dtype, width: headDim, transposed: false },
    { name: 'value', dtype, width: headDim, transposed: false },
  ];
}

/** int8 keys (transposed) and values, each position with a float32 scale per head, [1, heads, 1, positions] (see src/model/phiGraph.ts). */
export function int8Planes(headDim: number): KvPlane[] {
  return [
    { name: 'key', dtype: 'int8', width: headDim, transposed: true },
    { name: 'key_scale', dtype: 'float32', width: 1, transposed: true },
    { name: 'value', dtype: 'int8', width: headDim, transposed: false },
    { name: 'value_scale', dtype: 'float32', width: 1, transposed: true },
  ];
}

/** Bytes of one element of each cache element type. */
export const KV_DTYPE_BYTES: Record<KvDtype, number> = { float32: 4, float16: 2, int8: 1 };

/**
 * Bytes one cached position takes over all layers: the full-size phi-1.5's int8 cache (24 layers, 32 heads of 64,
 * int8 keys and values plus a float32 scale per head for each) takes 24 · 32 · (64 + 4 + 64 + 4) = 104,448 (102 KiB).
 */
export function bytesPerPosition(layers: number, heads: number, planes: readonly KvPlane[]): number {
  return layers * heads * planes.reduce((sum, plane) => sum + plane.width * KV_DTYPE_BYTES[plane.dtype], 0);
}

/** A pass's inputs or outputs by name (`past_key_values.{layer}.{plane}` and the like). */
export type NamedTensors = Readonly<Record<string, ort.Tensor>>;

/**
 * A decoder's KV cache, whichever graph outputs it takes: host buffers for `present_rows` graphs (KvCache), the
 * graph's own outputs for `present(_settled)` graphs (ResidentKvCache, which can stay on a GPU). The decoder and
 * the generator use a cache through this interface alone.
 */
export interface DecoderCache {
  /** Number of token positions cached. */
  readonly length: number;
  /** Bytes the cache holds now. */
  readonly bytes: number;
  /** Bytes the cache will hold once `rows` more positions are in it (for a memory budget, before they are). */
  projectedBytes(rows: number): number;
  /** Makes room for `rows` more positions (or checks that they fit in the model). */
  reserve(rows: number): void;
  /** Before a pass over `rows` new tokens (their room reserved): lays the cache out for what the pass must read. */
  layOutFor(rows: number): void;
  /** Forgets every position from `n` on. */
  rewindTo(n: number): void;
  /** The attention mask of a pass over `newRows` tokens: 1 at cached positions and new tokens, 0 elsewhere. */
  attentionMask(newRows: number): BigInt64Array;
  dispose(): void;
  /** The graph outputs it takes: a decoder refuses a cache made for another graph. */
  readonly kvOutputs: KvOutputs;
  /** Whether copyPrefixFrom can fill it with another cache's rows: host buffers can; a GPU-resident cache cannot (it rewinds in place). */
  readonly canCopyRows: boolean;
  /** Fills this empty cache with the first `rows` positions of `source`, a cache of the same kind and shape: copied rather than recomputed. */
  copyPrefixFrom(source: DecoderCache, rows: number): void;
  /** The cache's inputs to a pass: `past_key_values.{layer}.{plane}` (and `settled_key_values.*`). */
  pastInputs(): NamedTensors;
  /** Takes a pass's cache outputs, which hold its `rows` new positions. */
  takeOutputs(outputs: NamedTensors, rows: number): void;
  /** The merge graph's inputs when a merge is due before the next pass (src/model/mergeGraph.ts); undefined when none is. */
  mergeInputs(): NamedTensors | undefined;
  /** Takes the merge graph's outputs. */
  takeMerged(outputs: NamedTensors): void;
}

/**
 * What every KV cache shares: its shape, how many positions it holds, and forgetting the latest of them
 * (rewindTo: the forgotten rows are masked out until overwritten or dropped).
 */
export abstract class CachedPositions implements DecoderCache {
  protected filled = 0;

  constructor(
    readonly layers: number,
    readonly heads: number,
    readonly planes: readonly KvPlane[],
    readonly maxLength: number,
  ) {}

  /** Number of token positions cached. */
  get length(): number {
    return this.filled;
  }

  /** Bytes one position takes over all layers and planes. */
  get bytesPerPosition(): number {
    return bytesPerPosition(this.layers, this.heads, this.planes);
  }

  /** Bytes the cache holds now (its positions' room, filled or not). */
  abstract get bytes(): number;

  /** Bytes the cache will hold once `rows` more positions are in it (for a memory budget, before they are). */
  abstract projectedBytes(rows: number): number;

  /** Forgets every position from `n` on. */
  rewindTo(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.filled) throw new RangeError(`KV cache: rewindTo(${n}), but it holds ${this.filled} positions`);
    this.filled = n;
  }

  /** Makes room for `rows` more positions (or checks that they fit in the model). */
  abstract reserve(rows: number): void;

  /** Before a pass over `rows` new tokens: nothing to do where the cache holds exactly its positions. */
  layOutFor(rows: number): void {
    this.checkRoom(rows);
  }

  /** The attention mask of a pass over `newRows` tokens: 1 at cached positions and new tokens, 0 at unused or forgotten slots. */
  abstract attentionMask(newRows: number): BigInt64Array;

  abstract dispose(): void;

  abstract readonly kvOutputs: KvOutputs;
  abstract readonly canCopyRows: boolean;
  abstract copyPrefixFrom(source: DecoderCache, rows: number): void;
  abstract pastInputs(): NamedTensors;
  abstract takeOutputs(outputs: NamedTensors, rows: number): void;
  abstract mergeInputs(): NamedTensors | undefined;
  abstract takeMerged(outputs: NamedTensors): void;

  /** The tensors `${prefix}.{layer}.{plane}` of a pass's outputs, as [layer][plane]. */
  protected perLayerAndPlane(outputs: NamedTensors, prefix: string): ort.Tensor[][] {
    return Array.from({ length: this.layers }, (_, i) => this.planes.map((plane) => outputs[`${prefix}.${i}.${plane.name}`]));
  }

  protected checkRoom(rows: number): void {
    const needed = this.filled + rows;
    if (needed > this.maxLength) throw new RangeError(`KV cache: ${needed} positions exceed the model's ${this.maxLength}`);
  }
}

/** Capacity grows in steps of this many positions, so growing (which copies) is rare. */
const GROWTH_STEP = 128;

function allocate(dtype: KvDtype, length: number): KvArray {
  if (dtype === 'float16') return new Uint16Array(length);
  if (dtype === 'int8') return new Int8Array(length);
  return new Float32Array(length);
}

/**
 * Copies `positions` positions of every head from `from` (holding `fromSlots` positions per head) into `to`
 * (holding `toSlots`), starting at position `at` in `to`. A head's positions are one contiguous run of
 * positions·width elements, or, transposed, `width` runs of `positions` elements.
 */
function copyPositions(plane: KvPlane, heads: number, from: KvArray, fromSlots: number, to: KvArray, toSlots: number, at: number, positions: number): void {
  const runs = plane.transposed ? heads * plane.width : heads;
  const run = plane.transposed ? positions : positions * plane.width;
  const fromStride = plane.transposed ? fromSlots : fromSlots * plane.width;
  const toStride = plane.transposed ? toSlots : toSlots * plane.width;
  const offset = plane.transposed ? at : at * plane.width;
  if (run >= 16) {
    for (let r = 0; r < runs; r++) to.set(from.subarray(r * fromStride, r * fromStride + run), r * toStride + offset);
    return;
  }
  // Short runs (a decode step's one position of a transposed plane): a subarray per run would cost more than the copy.
  for (let r = 0; r < runs; r++) {
    const source = r * fromStride;
    const target = r * toStride + offset;
    for (let i = 0; i < run; i++) to[target + i] = from[source + i];
  }
}

/**
 * Moves `positions` positions of every head within `buffer` from a layout of `fromSlots` positions a head to one of
 * `toSlots` (more): the last head first, so that no run is overwritten before it has moved.
 */
function spreadPositions(plane: KvPlane, heads: number, buffer: KvArray, fromSlots: number, toSlots: number, positions: number): void {
  const runs = plane.transposed ? heads * plane.width : heads;
  const run = plane.transposed ? positions : positions * plane.width;
  const fromStride = plane.transposed ? fromSlots : fromSlots * plane.width;
  const toStride = plane.transposed ? toSlots : toSlots * plane.width;
  for (let r = runs - 1; r > 0; r--) buffer.copyWithin(r * toStride, r * fromStride, r * fromStride + run);
}

/**
 * The decoder's key/value cache. Every layer's tensors (its planes) live in preallocated buffers with room
 * for `capacity` positions, handed to ONNX Runtime as `past_key_values.*` without a copy; the first `length`
 * positions are filled and the rest are masked out by the attention mask. New rows returned by the graph
 * are appended in place, so a decode step copies only the new token's rows, whatever the context.
 *
 * A pass reads `slotsRead` positions a head, not always all of the room: while a long prompt is read into a cache
 * sized for the whole request, its heads are laid out in a smaller room that doubles as it fills (the rows move
 * within the same buffers, a few times a prompt), so that attention does not run over a thousand empty slots for
 * every chunk of the prompt's start.
 */
export class KvCache extends CachedPositions {
  /** buffers[layer][plane] */
  private buffers: KvArray[][] = [];
  /** Positions a head has room for in the buffers. */
  private slots = 0;
  /** Positions a head holds in the buffers' layout now (≤ slots): what a pass reads. */
  private layoutSlots = 0;

  constructor(layers: number, heads: number, planes: readonly KvPlane[], maxLength: number) {
    super(layers, heads, planes, maxLength);
    this.resize(0);
  }

  /** Positions the buffers hold (filled or not). */
  get capacity(): number {
    return this.slots;
  }

  /** Positions a head holds in the buffers' layout now (≤ capacity): what a pass reads. */
  get slotsRead(): number {
    return this.layoutSlots;
  }

  /** Layer's buffer for `planes[plane]`, laid out with `slotsRead` positions a head. */
  buffer(layer: number, plane: number): KvArray {
    return this.buffers[layer][plane];
  }

  /** The ONNX shape of a plane holding `positions` positions. */
  shape(plane: number, positions: number): number[] {
    const { width, transposed } = this.planes[plane];
    return transposed ? [1, this.heads, width, positions] : [1, this.heads, positions, width];
  }

  get bytes(): number {
    return this.slots * this.bytesPerPosition;
  }

  projectedBytes(rows: number): number {
    return Math.max(this.slots, this.slotsFor(this.filled + rows)) * this.bytesPerPosition;
  }

  /** Makes room for `rows` more positions. */
  reserve(rows: number): void {
    this.checkRoom(rows);
    const needed = this.filled + rows;
    if (needed > this.slots) this.resize(this.slotsFor(needed));
  }

  /** Before a pass over `rows` new tokens: the layout holds them (see slotsRead). */
  override layOutFor(rows: number): void {
    this.reserve(rows);
    const needed = this.filled + rows;
    if (needed > this.layoutSlots) this.spread(this.layoutFor(needed, this.slots));
  }

  readonly kvOutputs = 'present_rows';
  readonly canCopyRows = true;

  /**
   * Fills this empty cache with the first `rows` positions of `source` (a KvCache of the same shape): another
   * window's prefix, copied rather than recomputed.
   */
  copyPrefixFrom(source: DecoderCache, rows: number): void {
    if (!(source instanceof KvCache)) throw new Error('KvCache.copyPrefixFrom: the source cache is not in host buffers');
    if (this.filled !== 0) throw new Error(`KvCache.copyPrefixFrom: the cache already holds ${this.filled} positions`);
    if (!Number.isInteger(rows) || rows < 0 || rows > source.length) throw new RangeError(`KvCache.copyPrefixFrom: ${rows} rows, but the source holds ${source.length}`);
    if (source.layers !== this.layers || source.heads !== this.heads || source.planes.length !== this.planes.length
      || source.planes.some((plane, p) => plane.width !== this.planes[p].width || plane.dtype !== this.planes[p].dtype || plane.transposed !== this.planes[p].transposed)) {
      throw new Error('KvCache.copyPrefixFrom: the source cache has another shape');
    }
    this.layOutFor(rows);
    for (let layer = 0; layer < this.layers; layer++) {
      this.planes.forEach((plane, p) => copyPositions(plane, this.heads, source.buffers[layer][p], source.layoutSlots, this.buffers[layer][p], this.layoutSlots, 0, rows));
    }
    this.filled = rows;
  }

  /** Slots [0, length) hold the context, [length, slotsRead) are unused or forgotten, then come the new tokens. */
  attentionMask(newRows: number): BigInt64Array {
    const mask = new BigInt64Array(this.layoutSlots + newRows);
    mask.fill(1n, 0, this.filled);
    mask.fill(1n, this.layoutSlots);
    return mask;
  }

  /** Every layer's buffers as laid out now (slotsRead positions a head): the positions past `length` are masked out (attentionMask). */
  pastInputs(): NamedTensors {
    const inputs: Record<string, ort.Tensor> = {};
    for (let layer = 0; layer < this.layers; layer++) {
      this.planes.forEach((plane, p) => {
        const elements = this.heads * this.layoutSlots * plane.width;
        inputs[`past_key_values.${layer}.${plane.name}`] = new ort.Tensor(plane.dtype, this.buffers[layer][p].subarray(0, elements), this.shape(p, this.layoutSlots));
      });
    }
    return inputs;
  }

  /** Appends a pass's `present_rows.*` outputs. */
  takeOutputs(outputs: NamedTensors, rows: number): void {
    this.append(this.perLayerAndPlane(outputs, 'present_rows').map((planes) => planes.map((tensor) => tensor.data as KvArray)), rows);
  }

  /** Host buffers never merge: every pass appends its rows in place. */
  mergeInputs(): undefined {
    return undefined;
  }

  takeMerged(): never {
    throw new Error('KvCache.takeMerged: a host cache has no settled part to merge into');
  }

  /** Appends `rows` positions; newRows[layer][plane] holds them in the plane's layout with `rows` positions. */
  append(newRows: readonly (readonly KvArray[])[], rows: number): void {
    this.layOutFor(rows);
    for (let layer = 0; layer < this.layers; layer++) {
      this.planes.forEach((plane, p) => {
        const source = newRows[layer][p];
        if (source.length !== this.heads * rows * plane.width) {
          throw new Error(`KvCache.append: layer ${layer} ${plane.name} rows are not [${this.shape(p, rows).join(', ')}]`);
        }
        copyPositions(plane, this.heads, source, rows, this.buffers[layer][p], this.layoutSlots, this.filled, rows);
      });
    }
    this.filled += rows;
  }

  dispose(): void {
    this.buffers = [];
    this.filled = 0;
    this.slots = 0;
    this.layoutSlots = 0;
  }

  /** The capacity that holds `positions` positions: whole growth steps, at most the model's positions. */
  private slotsFor(positions: number): number {
    return Math.min(this.maxLength, Math.ceil(positions / GROWTH_STEP) * GROWTH_STEP);
  }

  /**
   * The layout for `needed` positions in a room of `slots`: from GROWTH_STEP, doubling (so the rows move a few times
   * a prompt, not at every chunk), and all of the room once past half of it (so the decoding that follows a
   * prefill does not move them again).
   */
  private layoutFor(needed: number, slots: number): number {
    let layout = GROWTH_STEP;
    while (layout < needed) layout *= 2;
    return layout > slots / 2 ? slots : layout;
  }

  /** Lays the buffers out with `layoutSlots` positions a head, in place (more than now). */
  private spread(layoutSlots: number): void {
    for (const layerBuffers of this.buffers) {
      this.planes.forEach((plane, p) => spreadPositions(plane, this.heads, layerBuffers[p], this.layoutSlots, layoutSlots, this.filled));
    }
    this.layoutSlots = layoutSlots;
  }

  /** Moves to buffers of `slots` positions, keeping the filled rows. */
  private resize(slots: number): void {
    const layoutSlots = this.layoutFor(this.filled, slots);
    this.buffers = Array.from({ length: this.layers }, (_, layer) => this.planes.map((plane, p) => {
      const next = allocate(plane.dtype, this.heads * slots * plane.width);
      const old = this.buffers[layer]?.[p];
      if (old) copyPositions(plane, this.heads, old, this.layoutSlots, next, layoutSlots, 0, this.filled);
      return next;
    }));
    this.slots = slots;
    this.layoutSlots = layoutSlots;
  }
}
