/**
 * A KV cache made of the graph's own `present.*` outputs (kept past rows + new rows), fed back unchanged as the
 * next pass's `past_key_values.*`. On a GPU the decoder asks ONNX Runtime to leave those outputs in device memory
 * ('gpu-buffer'), so the cache never crosses to the host: each step moves only token ids in and logits out. (On
 * the CPU it works too, but onnxruntime-node copies every output, so KvCache with `present_rows` graphs is the
 * CPU's cache.)
 *
 * A `present_settled` graph also reads a settled part, fed unchanged pass after pass, so a pass copies only the
 * recent rows (past) rather than the whole cache; the decoder merges past into settled when wantsMerge() says so.
 * The settled part keeps its keys transposed (settledPlanes), as attention reads them.
 * Slots, in the attention mask's order: settled (its first settledLength rows cached, the rest forgotten), past
 * (its first length − settledLength rows cached, the rest forgotten), then the pass's new tokens.
 *
 * Forgetting positions costs nothing here: rewindTo(n) only lowers `length`; the next pass masks the forgotten
 * rows out (attention_mask 0) and the graph drops them from its present.* (see src/model/phiGraph.ts), as the
 * merge does from settled.
 * Dispose it before its decoder: on a GPU its buffers belong to the decoder's sessions.
 */
import * as ort from 'onnxruntime-node';
import { CachedPositions, type KvPlane, type NamedTensors } from './kvCache';

/** Tensors of every layer's planes: [layer][plane], each [1, heads, rows, width] (transposed: [1, heads, width, rows]). */
export type LayerTensors = readonly (readonly ort.Tensor[])[];

/** The settled part's planes: keys transposed, [1, heads, headDim, rows], the layout QKᵀ reads. */
export function settledPlanes(planes: readonly KvPlane[]): KvPlane[] {
  return planes.map((plane) => (plane.name === 'key' ? { ...plane, transposed: true } : plane));
}

export class ResidentKvCache extends CachedPositions {
  /** The past part: what the last pass returned. */
  private pastTensors: ort.Tensor[][] = [];
  private pastHeld = 0;
  private settledTensors: ort.Tensor[][] = [];
  private settledHeld = 0;
  private settledFilled = 0;
  /** Past rows the passes since the last merge have copied (each pass copies its whole past part). */
  private copiedRows = 0;

  /** `settledPartPlanes`: the graph reads a settled part in these planes (present_settled; see settledPlanes). */
  constructor(layers: number, heads: number, planes: readonly KvPlane[], maxLength: number, private readonly settledPartPlanes?: readonly KvPlane[]) {
    super(layers, heads, planes, maxLength);
    if ([...planes, ...(settledPartPlanes ?? [])].some((plane) => plane.dtype === 'int8') || planes.some((plane) => plane.transposed)) {
      throw new Error('ResidentKvCache holds float planes only, its past part untransposed (present.* graphs have a float cache)');
    }
    this.reset();
  }

  /** Whether the cache has a settled part (present_settled graphs). */
  get settled(): boolean {
    return this.settledPartPlanes !== undefined;
  }

  get kvOutputs(): 'present' | 'present_settled' {
    return this.settled ? 'present_settled' : 'present';
  }

  /** Its rows are the graph's outputs (on a GPU, in device memory): a new cache starts empty and reads its prompt. */
  get canCopyRows(): boolean {
    return false;
  }

  copyPrefixFrom(): never {
    throw new Error('ResidentKvCache.copyPrefixFrom: a resident cache cannot copy rows (canCopyRows is false)');
  }

  /** The past part as it is, and the settled part where there is one. */
  pastInputs(): NamedTensors {
    const inputs: Record<string, ort.Tensor> = {};
    for (let layer = 0; layer < this.layers; layer++) {
      this.planes.forEach((plane, p) => {
        inputs[`past_key_values.${layer}.${plane.name}`] = this.past(layer, p);
        if (this.settled) inputs[`settled_key_values.${layer}.${plane.name}`] = this.settledPart(layer, p);
      });
    }
    return inputs;
  }

  /** Takes a pass's `present.*` outputs (see replace). */
  takeOutputs(outputs: NamedTensors, rows: number): void {
    this.replace(this.perLayerAndPlane(outputs, 'present'), rows);
  }

  /** Both parts and the rows to keep of each, when wantsMerge says a merge is due. */
  mergeInputs(): NamedTensors | undefined {
    if (!this.wantsMerge()) return undefined;
    const [settledKept, pastKept] = this.mergeCounts();
    const inputs: Record<string, ort.Tensor> = {
      settled_kept: new ort.Tensor('int64', BigInt64Array.of(BigInt(settledKept)), [1]),
      past_kept: new ort.Tensor('int64', BigInt64Array.of(BigInt(pastKept)), [1]),
    };
    for (let layer = 0; layer < this.layers; layer++) {
      this.planes.forEach((plane, p) => {
        inputs[`settled.${layer}.${plane.name}`] = this.settledPart(layer, p);
        inputs[`past.${layer}.${plane.name}`] = this.past(layer, p);
      });
    }
    return inputs;
  }

  /** Takes the merge graph's `merged.*` outputs (see settle). */
  takeMerged(outputs: NamedTensors): void {
    this.settle(this.perLayerAndPlane(outputs, 'merged'));
  }

  /** Positions the past part's tensors hold: its cached ones, then any forgotten since the last pass. */
  get heldRows(): number {
    return this.pastHeld;
  }

  /** Positions the settled part's tensors hold (0 without one). */
  get settledRows(): number {
    return this.settledHeld;
  }

  /** Cached positions in the settled part (the first ones). */
  get settledLength(): number {
    return this.settledFilled;
  }

  /** Bytes both parts' tensors hold (the settled part's planes differ from the past part's only in layout). */
  get bytes(): number {
    return (this.settledHeld + this.pastHeld) * this.bytesPerPosition;
  }

  /** After `rows` more positions the past part holds every cached position not settled, and the settled part is unchanged. */
  projectedBytes(rows: number): number {
    return Math.max(this.bytes, (this.settledHeld + this.filled - this.settledFilled + rows) * this.bytesPerPosition);
  }

  /** Layer's past tensor for `planes[plane]`, holding `heldRows` positions. */
  past(layer: number, plane: number): ort.Tensor {
    return this.pastTensors[layer][plane];
  }

  /** Layer's settled tensor for `planes[plane]`, holding `settledRows` positions (keys transposed). */
  settledPart(layer: number, plane: number): ort.Tensor {
    return this.settledTensors[layer][plane];
  }

  /** The attention mask of a pass over `newRows` tokens: 1 at cached positions and new tokens, 0 at forgotten ones. */
  attentionMask(newRows: number): BigInt64Array {
    const mask = new BigInt64Array(this.settledHeld + this.pastHeld + newRows);
    mask.fill(1n, 0, this.settledFilled);
    mask.fill(1n, this.settledHeld, this.settledHeld + this.filled - this.settledFilled);
    mask.fill(1n, this.settledHeld + this.pastHeld);
    return mask;
  }

  override rewindTo(n: number): void {
    super.rewindTo(n);
    this.settledFilled = Math.min(this.settledFilled, n);
  }

  /** Checks that `rows` more positions fit in the model (the tensors grow with every pass; nothing to allocate). */
  reserve(rows: number): void {
    this.checkRoom(rows);
  }

  /** Takes a pass's present.* outputs: the past part's cached positions, then `rows` new ones. */
  replace(present: LayerTensors, rows: number): void {
    const expected = this.filled - this.settledFilled + rows;
    this.checkRows(present, this.planes, expected, 'present.*', 'the graph does not drop masked rows; rebuild the model with this version\'s builder');
    disposeAll(this.pastTensors);
    this.pastTensors = present.map((tensors) => [...tensors]);
    this.pastHeld = expected;
    this.filled += rows;
    this.copiedRows += expected;
  }

  /**
   * Whether merging past into settled now costs less than it saves: a merge copies every cached row once, while
   * every pass copies the past part, so merge once the passes since the last merge have copied as many rows as the
   * cache holds (≈ every √(2·length) decode steps; a ski-rental rule, within twice the best schedule's copying).
   */
  wantsMerge(): boolean {
    return this.settledPartPlanes !== undefined && this.filled > 0 && this.copiedRows >= this.filled;
  }

  /** Rows a merge keeps from each part: [settled, past]. */
  mergeCounts(): [number, number] {
    return [this.settledFilled, this.filled - this.settledFilled];
  }

  /** Takes a merge's output: every cached position, now settled; the past part is empty again. */
  settle(merged: LayerTensors): void {
    if (!this.settledPartPlanes) throw new Error('ResidentKvCache.settle: this cache has no settled part');
    this.checkRows(merged, this.settledPartPlanes, this.filled, 'the merged cache', 'the merge graph does not match this cache');
    disposeAll(this.settledTensors);
    disposeAll(this.pastTensors);
    this.settledTensors = merged.map((tensors) => [...tensors]);
    this.settledHeld = this.filled;
    this.settledFilled = this.filled;
    this.pastTensors = this.emptyPart(this.planes);
    this.pastHeld = 1;
    this.copiedRows = 0;
  }

  dispose(): void {
    disposeAll(this.pastTensors);
    disposeAll(this.settledTensors);
    this.reset();
  }

  /** Empties the cache: both parts hold one forgotten row (see emptyPart). */
  private reset(): void {
    this.pastTensors = this.emptyPart(this.planes);
    this.pastHeld = 1;
    if (this.settledPartPlanes) {
      this.settledTensors = this.emptyPart(this.settledPartPlanes);
      this.settledHeld = 1;
    }
    this.settledFilled = 0;
    this.filled = 0;
    this.copiedRows = 0;
  }

  private checkRows(tensors: LayerTensors, planes: readonly KvPlane[], expected: number, what: string, why: string): void {
    for (const layer of tensors) {
      layer.forEach((tensor, p) => {
        const rows = tensor.dims[planes[p].transposed ? 3 : 2];
        // A graph that keeps masked rows (a published export's plain Concat) would grow garbage at every rewind.
        if (rows !== expected) throw new Error(`${what} holds ${rows} positions where ${expected} were expected: ${why}`);
      });
    }
  }

  /**
   * An empty part: one forgotten (masked) row of zeros rather than none, because onnxruntime-node crashed
   * (SIGSEGV) on WebGPU given zero-length inputs; a pass (or a merge) drops the row like any forgotten one.
   */
  private emptyPart(planes: readonly KvPlane[]): ort.Tensor[][] {
    return Array.from({ length: this.layers }, () => planes.map((plane) => {
      const size = this.heads * plane.width;
      const dims = plane.transposed ? [1, this.heads, plane.width, 1] : [1, this.heads, 1, plane.width];
      return new ort.Tensor(plane.dtype, plane.dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size), dims);
    }));
  }
}

/** Frees tensors' memory now (on a GPU it is otherwise held until the session ends). */
function disposeAll(tensors: LayerTensors): void {
  for (const layer of tensors) for (const tensor of layer) tensor.dispose();
}
