/**
 * A weight source that hands out what the int4 graph's kernels will actually multiply by: every matrix
 * quantised and dequantised with the builder's own choices (4 bits in the blocks and the embedding, 8 bits
 * for lm_head). An fp32 model built from it must compute what the int4 model computes, which
 * checks the MatMulNBits packing against ONNX Runtime's kernel independently of quantisation error.
 */
import { dequantizeMatrix, quantizeMatrix } from '../../src/model/quantize';
import { phiTensorShapes, type WeightSource } from '../../src/model/weights';

export function dequantizedWeights(source: WeightSource): WeightSource {
  const shapes = phiTensorShapes(source.config);
  return {
    config: source.config,
    description: { kind: 'dequantized', of: source.description },
    tensor(name: string): Float32Array {
      const values = source.tensor(name);
      const shape = shapes.get(name)!;
      if (shape.length !== 2) return values;
      return dequantizeMatrix(quantizeMatrix(values, shape[0], shape[1], name === 'lm_head.weight' ? 8 : 4));
    },
    close: () => source.close(),
  };
}
