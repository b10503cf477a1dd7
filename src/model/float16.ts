/** Conversions between IEEE half / bfloat16 bit patterns and float32, for reading and writing weights. */

let halfTable: Float32Array | undefined;

/** All 65,536 half-precision values as float32, built once: a lookup beats bit twiddling per element. */
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) table[h] = sign * mantissa * 2 ** -24;
    else if (exponent === 31) table[h] = mantissa ? NaN : sign * Infinity;
    else table[h] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  halfTable = table;
  return table;
}

export function float16ToFloat32(bits: Uint16Array): Float32Array {
  const table = halfToFloatTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

export function bfloat16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** Round-to-nearest-even float32 → half. */
export function float32ToFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    scratch[0] = values[i];
    const x = scratchBits[0];
    const sign = (x >>> 16) & 0x8000;
    const exponent = (x >>> 23) & 0xff;
    let mantissa = x & 0x7fffff;
    if (exponent === 0xff) {
      out[i] = sign | 0x7c00 | (mantissa ? 0x200 : 0);
      continue;
    }
    const e = exponent - 127 + 15;
    if (e >= 31) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mantissa |= 0x800000;
      const shift = 14 - e;
      const halfMantissa = mantissa >>> shift;
      const remainder = mantissa & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      const roundUp = remainder > halfway || (remainder === halfway && (halfMantissa & 1) === 1);
      out[i] = sign | (halfMantissa + (roundUp ? 1 : 0));
    } else {
      const halfMantissa = mantissa >>> 13;
      const remainder = mantissa & 0x1fff;
      const roundUp = remainder > 0x1000 || (remainder === 0x1000 && (halfMantissa & 1) === 1);
      // A carry out of the mantissa correctly bumps the exponent (and may reach infinity).
      out[i] = (sign | (e << 10) | halfMantissa) + (roundUp ? 1 : 0);
    }
  }
  return out;
}

/** float32 → bfloat16 with round-to-nearest-even (used to write bf16 test checkpoints). */
export function float32ToBfloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = bits[i];
    out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}
