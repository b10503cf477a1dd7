/**
 * A KV cache made of the graph's own `present.*` outputs (Optimum's layout: kept past rows + new rows), fed back
 * unchanged as the next pass's `past_key_values.*`. On a GPU the decoder asks ONNX Runtime to leave those
 * outputs in device memory ('gpu-buffer'), so the cache never crosses to the host: each step moves only token
 * ids in and logits out. (On the CPU it works too, but onnxruntime-node copies every output, so KvCache with
 * `present_rows` graphs is the CPU's cache.)
 *
 * Forgetting positions costs nothing here: rewindTo(n) only lowers `length`; the next pass masks the forgotten
 * rows out (attention_mask 0) and the graph drops them from its present.* (see src/model/phiGraph.ts).
 * Dispose it before its decoder: on a GPU its buffers belong to the decoder's session.
 */
import * as ort from 'onnxruntime-node';
import { CachedPositions, type KvPlane } from './kvCache';

export class ResidentKvCache extends CachedPositions {
  /** tensors[layer][plane], each [1, heads, heldRows, width] (planes are never transposed here). */
  private tensors: ort.Tensor[][] = [];
  private held = 0;

  constructor(layers: number, heads: number, planes: readonly KvPlane[], maxLength: number) {
    super(layers, heads, planes, maxLength);
    if (planes.some((plane) => plane.transposed || plane.dtype === 'int8')) throw new Error('ResidentKvCache holds float planes only (present.* graphs have a float cache)');
    this.reset();
  }

  /** Positions the tensors hold: the cached ones, then any forgotten since the last pass. */
  get heldRows(): number {
    return this.held;
  }

  /** Layer's tensor for `planes[plane]`, holding `heldRows` positions. */
  past(layer: number, plane: number): ort.Tensor {
    return this.tensors[layer][plane];
  }

  /** Checks that `rows` more positions fit in the model (the tensors grow with every pass; nothing to allocate). */
  reserve(rows: number): void {
    this.checkRoom(rows);
  }

  /** Takes a pass's present.* outputs (present[layer][plane]): the `length` cached positions, then `rows` new ones. */
  replace(present: readonly (readonly ort.Tensor[])[], rows: number): void {
    const expected = this.filled + rows;
    for (const tensors of present) {
      for (const tensor of tensors) {
        if (tensor.dims[2] !== expected) {
          // A graph that keeps masked rows (a published export's plain Concat) would grow garbage at every rewind.
          throw new Error(`present.* holds ${tensor.dims[2]} positions where ${expected} were expected: the graph does not drop masked rows; rebuild the model with this version's builder`);
        }
      }
    }
    this.disposeTensors();
    this.tensors = present.map((tensors) => [...tensors]);
    this.held = expected;
    this.filled = expected;
  }

  dispose(): void {
    this.disposeTensors();
    this.reset();
  }

  /** Frees the tensors' memory now (on a GPU it is otherwise held until the session ends). */
  private disposeTensors(): void {
    for (const tensors of this.tensors) for (const tensor of tensors) tensor.dispose();
  }

  /**
   * Empties the cache: one forgotten (masked) row of zeros rather than none, because onnxruntime-node crashed
   * (SIGSEGV) on WebGPU given zero-length inputs; the first pass drops the row like any forgotten one.
   */
  private reset(): void {
    this.tensors = Array.from({ length: this.layers }, () => this.planes.map((plane) => {
      const size = this.heads * plane.width;
      return new ort.Tensor(plane.dtype, plane.dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size), [1, this.heads, 1, plane.width]);
    }));
    this.held = 1;
    this.filled = 0;
  }
}
