/**
 * A weight source that hands out what the int4 graph's kernels will actually multiply by: every matrix
 * quantised and dequantised with the builder's own choices (INT4_LAYOUT). An fp32 model built from it must compute what the int4 model computes, which
 * checks the MatMulNBits packing against ONNX Runtime's kernel independently of quantisation error.
 */
import { INT4_LAYOUT } from '../../src/model/manifest';
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
      const [bits, blockSize]: [4 | 8, number] = name === 'lm_head.weight' ? [INT4_LAYOUT.lmHeadBits, 32]
        : name === 'model.embed_tokens.weight' ? [4, INT4_LAYOUT.embeddingBlockSize] : [4, INT4_LAYOUT.blockSize];
      return dequantizeMatrix(quantizeMatrix(values, shape[0], shape[1], bits, blockSize));
    },
    close: () => source.close(),
  };
}
