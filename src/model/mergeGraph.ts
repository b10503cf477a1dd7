/**
 * The small graph that merges a present_settled model's two cache parts (see src/model/phiGraph.ts): for every
 * layer and plane, merged = settled's first `settled_kept` rows ++ past's first `past_kept` rows, along positions.
 * Run now and then (ResidentKvCache.wantsMerge), it is the only whole-cache copy such a model makes; it has no
 * weights, so the worker builds it from the model's shape when it loads.
 *   inputs   settled.{i}.{plane} [1, heads, settled, width] ([1, heads, width, settled] for a transposed plane),
 *            past.{i}.{plane} [1, heads, past, width], settled_kept [1] int64, past_kept [1] int64
 *   outputs  merged.{i}.{plane}, in the settled part's layout with settled_kept + past_kept positions
 * (the settled keys are kept transposed, so attention reads them without a Transpose at every step).
 */
import { DataType, GraphBuilder } from './onnx/graphBuilder';

/** A plane of the settled part; `transposed`: positions on the last axis. */
export interface MergedPlane {
  readonly name: string;
  readonly width: number;
  readonly transposed: boolean;
}

export function buildMergeGraph(layers: number, heads: number, planes: readonly MergedPlane[], dtype: 'float32' | 'float16'): Uint8Array {
  const g = new GraphBuilder();
  const type = dtype === 'float16' ? DataType.FLOAT16 : DataType.FLOAT;
  const start = g.constant('start', new BigInt64Array([0n]), [1]);
  const rowsAxis = g.constant('rows_axis', new BigInt64Array([2n]), [1]);
  const transposedRowsAxis = g.constant('transposed_rows_axis', new BigInt64Array([3n]), [1]);
  const settledKept = g.input('settled_kept', DataType.INT64, [1]);
  const pastKept = g.input('past_kept', DataType.INT64, [1]);
  for (let i = 0; i < layers; i++) {
    for (const { name, width, transposed } of planes) {
      const settledDims = transposed ? [1, heads, width, 'settled_rows'] : [1, heads, 'settled_rows', width];
      const settled = g.input(`settled.${i}.${name}`, type, settledDims);
      const past = g.input(`past.${i}.${name}`, type, [1, heads, 'past_rows', width]);
      let pastRows = g.node('Slice', [past, start, pastKept, rowsAxis], [`past.${i}.${name}/kept`])[0];
      if (transposed) pastRows = g.node('Transpose', [pastRows], [`past.${i}.${name}/kept_t`], { perm: [0, 1, 3, 2] })[0];
      g.node('Concat', [
        g.node('Slice', [settled, start, settledKept, transposed ? transposedRowsAxis : rowsAxis], [`settled.${i}.${name}/kept`])[0],
        pastRows,
      ], [`merged.${i}.${name}`], { axis: transposed ? 3 : 2 });
      g.output(`merged.${i}.${name}`, type, transposed ? [1, heads, width, 'merged_rows'] : [1, heads, 'merged_rows', width]);
    }
  }
  return g.encode('merge_kv_cache', { '': 17 }, { purpose: 'merges a present_settled model\'s KV cache parts' });
}
