/**
 * Block-wise asymmetric quantisation in the layout of ONNX Runtime's `MatMulNBits` (com.microsoft):
 * a weight W [N, K] (Hugging Face's [out, in]) is cut along K into blocks of `blockSize`; each block stores
 * `bits`-bit codes q with a float scale and an integer zero point, and W ≈ (q − zeroPoint) · scale.
 */

export interface QuantizedMatrix {
  readonly bits: 4 | 8;
  readonly blockSize: number;
  /** Rows of W (MatMulNBits' N) and columns (K). */
  readonly n: number;
  readonly k: number;
  /** [N, blocksPerRow, blockSize·bits/8] codes, low nibble first for 4 bits. */
  readonly codes: Uint8Array;
  /** [N, blocksPerRow] */
  readonly scales: Float32Array;
  /** [N, ceil(blocksPerRow·bits/8)] zero points, packed like the codes. */
  readonly zeroPoints: Uint8Array;
}

/** Fractions of the block's range tried as the quantisation range. */
const CLIP_CANDIDATES = [1, 0.95, 0.9, 0.85, 0.8, 0.75];

function clampCode(code: number, maxCode: number): number {
  return code < 0 ? 0 : code > maxCode ? maxCode : code;
}

export function quantizeMatrix(weight: Float32Array, n: number, k: number, bits: 4 | 8, blockSize = 32): QuantizedMatrix {
  if (weight.length !== n * k) throw new Error(`quantizeMatrix: ${weight.length} values is not ${n}×${k}`);
  const maxCode = (1 << bits) - 1;
  const blocksPerRow = Math.ceil(k / blockSize);
  const blobBytes = (blockSize * bits) / 8;
  const zeroPointBytesPerRow = Math.ceil((blocksPerRow * bits) / 8);
  const codes = new Uint8Array(n * blocksPerRow * blobBytes);
  const scales = new Float32Array(n * blocksPerRow);
  const zeroPoints = new Uint8Array(n * zeroPointBytesPerRow);
  const block = new Uint8Array(blockSize);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocksPerRow; b++) {
      const start = row * k + b * blockSize;
      const end = row * k + Math.min(k, (b + 1) * blockSize);
      // The range always includes 0 so that zero stays exactly representable (padding, pruned weights).
      let min = 0;
      let max = 0;
      for (let i = start; i < end; i++) {
        min = Math.min(min, weight[i]);
        max = Math.max(max, weight[i]);
      }
      // Round-to-nearest on the full range wastes codes on the block's extremes: try a few narrower ranges
      // (clipping the extremes) and keep the one with the least squared error.
      let scale = 1;
      let zeroPoint = 0;
      let bestError = Infinity;
      for (const shrink of CLIP_CANDIDATES) {
        const lo = min * shrink;
        const hi = max * shrink;
        const candidateScale = hi > lo ? (hi - lo) / maxCode : 1;
        const inverse = 1 / candidateScale;
        const candidateZero = clampCode(Math.round(-lo * inverse), maxCode);
        let error = 0;
        for (let i = start; i < end; i++) {
          const code = clampCode(Math.floor(weight[i] * inverse + 0.5) + candidateZero, maxCode);
          const difference = (code - candidateZero) * candidateScale - weight[i];
          error += difference * difference;
        }
        if (error < bestError) {
          bestError = error;
          scale = candidateScale;
          zeroPoint = candidateZero;
        }
      }
      const inverse = 1 / scale;
      block.fill(zeroPoint);
      for (let i = start; i < end; i++) block[i - start] = clampCode(Math.floor(weight[i] * inverse + 0.5) + zeroPoint, maxCode);
      scales[row * blocksPerRow + b] = scale;
      const blob = (row * blocksPerRow + b) * blobBytes;
      if (bits === 8) {
        codes.set(block, blob);
        zeroPoints[row * zeroPointBytesPerRow + b] = zeroPoint;
      } else {
        for (let j = 0; j < blobBytes; j++) codes[blob + j] = block[2 * j] | (block[2 * j + 1] << 4);
        zeroPoints[row * zeroPointBytesPerRow + (b >> 1)] |= b & 1 ? zeroPoint << 4 : zeroPoint;
      }
    }
  }
  return { bits, blockSize, n, k, codes, scales, zeroPoints };
}

/** W as the kernel will see it: (q − zeroPoint) · scale. Used to measure quantisation error. */
export function dequantizeMatrix(q: QuantizedMatrix): Float32Array {
  const { n, k, bits, blockSize } = q;
  const blocksPerRow = Math.ceil(k / blockSize);
  const blobBytes = (blockSize * bits) / 8;
  const zeroPointBytesPerRow = Math.ceil((blocksPerRow * bits) / 8);
  const out = new Float32Array(n * k);
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < k; col++) {
      const b = Math.floor(col / blockSize);
      const j = col % blockSize;
      const blob = (row * blocksPerRow + b) * blobBytes;
      let code: number;
      let zeroPoint: number;
      if (bits === 8) {
        code = q.codes[blob + j];
        zeroPoint = q.zeroPoints[row * zeroPointBytesPerRow + b];
      } else {
        const byte = q.codes[blob + (j >> 1)];
        code = j & 1 ? byte >> 4 : byte & 15;
        const zpByte = q.zeroPoints[row * zeroPointBytesPerRow + (b >> 1)];
        zeroPoint = b & 1 ? zpByte >> 4 : zpByte & 15;
      }
      out[row * k + col] = (code - zeroPoint) * q.scales[row * blocksPerRow + b];
    }
  }
  return out;
}
