/**
 * Reading (and, for test fixtures, writing) the safetensors format: an 8-byte little-endian header length,
 * a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}}`, then the raw tensor bytes.
 * Errors always name the file and, where there is one, the tensor.
 */
import * as fs from 'node:fs';
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from './float16';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

export interface TensorEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Absolute byte offset of the tensor's data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly tensors: ReadonlyMap<string, TensorEntry>,
  ) {}

  /** Opens the file and validates its header against the file size; the tensor data is read on demand. */
  static open(path: string): SafetensorsFile {
    const fd = fs.openSync(path, 'r');
    try {
      const fileSize = fs.fstatSync(fd).size;
      const fail = (what: string): never => {
        throw new Error(`${path}: ${what}`);
      };
      if (fileSize < 8) fail(`not a safetensors file (only ${fileSize} bytes; truncated?)`);
      const lengthBytes = Buffer.alloc(8);
      fs.readSync(fd, lengthBytes, 0, 8, 0);
      const headerLength = Number(lengthBytes.readBigUInt64LE(0));
      if (headerLength > MAX_HEADER_BYTES) fail(`header length ${headerLength} is implausible: not a safetensors file?`);
      if (8 + headerLength > fileSize) fail(`file is truncated: header needs ${8 + headerLength} bytes, file has ${fileSize}`);
      const headerBytes = Buffer.alloc(headerLength);
      fs.readSync(fd, headerBytes, 0, headerLength, 8);
      let header: unknown;
      try {
        header = JSON.parse(headerBytes.toString('utf8'));
      } catch (error) {
        fail(`header is not valid JSON (${(error as Error).message})`);
      }
      if (typeof header !== 'object' || header === null) fail('header is not a JSON object');
      const dataStart = 8 + headerLength;
      const tensors = new Map<string, TensorEntry>();
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === '__metadata__') continue;
        const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
        const dtype = info.dtype;
        if (typeof dtype !== 'string' || !(dtype in BYTES_PER_ELEMENT)) {
          fail(`tensor ${name} has dtype ${String(dtype)}; supported dtypes are F32, F16 and BF16`);
        }
        const shape = info.shape;
        if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`tensor ${name} has an invalid shape`);
        const offsets = info.data_offsets;
        if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
          fail(`tensor ${name} has invalid data_offsets`);
        }
        const [begin, end] = offsets as number[];
        const elements = (shape as number[]).reduce((a, b) => a * b, 1);
        const expectedBytes = elements * BYTES_PER_ELEMENT[dtype as SafetensorsDtype];
        if (end - begin !== expectedBytes) fail(`tensor ${name} has ${end - begin} bytes of data, its shape and dtype need ${expectedBytes}`);
        if (dataStart + end > fileSize) {
          fail(`file is truncated: tensor ${name} ends at byte ${dataStart + end}, file has ${fileSize} bytes`);
        }
        tensors.set(name, { name, dtype: dtype as SafetensorsDtype, shape: shape as number[], offset: dataStart + begin, byteLength: expectedBytes });
      }
      return new SafetensorsFile(path, fd, tensors);
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
  }

  /** The tensor's values as float32, whatever its stored dtype. */
  readFloat32(name: string): Float32Array {
    const entry = this.tensors.get(name);
    if (!entry) throw new Error(`${this.path}: no tensor named ${name}`);
    const bytes = new Uint8Array(entry.byteLength);
    let done = 0;
    while (done < bytes.length) {
      const n = fs.readSync(this.fd, bytes, done, Math.min(bytes.length - done, 1 << 30), entry.offset + done);
      if (n === 0) throw new Error(`${this.path}: file is truncated inside tensor ${name}`);
      done += n;
    }
    switch (entry.dtype) {
      case 'F32':
        return new Float32Array(bytes.buffer);
      case 'F16':
        return float16ToFloat32(new Uint16Array(bytes.buffer));
      case 'BF16':
        return bfloat16ToFloat32(new Uint16Array(bytes.buffer));
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** Writes float32 tensors as a safetensors file in the given dtype (for fixtures and tests). */
export function writeSafetensors(path: string, tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>, dtype: SafetensorsDtype): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, { shape, data }] of tensors) {
    const encoded = dtype === 'F32' ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array((dtype === 'F16' ? float32ToFloat16(data) : float32ToBfloat16(data)).buffer);
    header[name] = { dtype, shape, data_offsets: [offset, offset + encoded.length] };
    chunks.push(encoded);
    offset += encoded.length;
  }
  let headerText = JSON.stringify(header);
  headerText += ' '.repeat((8 - (headerText.length % 8)) % 8);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(headerBytes.length));
  fs.writeFileSync(path, Buffer.concat([length, headerBytes, ...chunks]));
}
