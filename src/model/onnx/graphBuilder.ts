/**
 * A small writer of ONNX models: nodes, graph inputs/outputs and initializers whose bytes go to an external
 * data file as they are added (streamed, hashed on the way), so a model of any size is written with one
 * tensor in memory at a time. The ModelProto itself stays small.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import { onnx } from 'onnx-proto';

export const DataType = onnx.TensorProto.DataType;
export type DataType = onnx.TensorProto.DataType;

/** A dimension: a fixed size, or a symbolic name such as "sequence_length". */
export type Dim = number | string;
export type AttributeValue = number | string | number[] | { float: number };

/** Offsets of large tensors are page-aligned so ONNX Runtime can map them; small ones are kept 64-byte aligned. */
const PAGE = 4096;
const SMALL_ALIGN = 64;

export class ExternalDataFile {
  private offset = 0;
  private readonly hash: Hash = createHash('sha256');
  private readonly fd: number;

  constructor(readonly path: string, readonly location: string) {
    this.fd = fs.openSync(path, 'w');
  }

  /** Appends the bytes (after alignment padding) and returns where they landed. */
  append(bytes: Uint8Array): { offset: number; length: number } {
    const align = bytes.length >= PAGE ? PAGE : SMALL_ALIGN;
    const padding = (align - (this.offset % align)) % align;
    if (padding > 0) this.write(new Uint8Array(padding));
    const offset = this.offset;
    this.write(bytes);
    return { offset, length: bytes.length };
  }

  private write(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, bytes.length - done);
    this.hash.update(bytes);
    this.offset += bytes.length;
  }

  /** Closes the file and returns its size and sha256. */
  close(): { bytes: number; sha256: string } {
    fs.closeSync(this.fd);
    return { bytes: this.offset, sha256: this.hash.digest('hex') };
  }
}

function bytesOf(values: Float32Array | Uint8Array | Uint16Array | Int32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

function valueInfo(name: string, elemType: DataType, dims: readonly Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, value: AttributeValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return { name, type: T.STRING, s: Buffer.from(value, 'utf8') };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if (typeof value === 'object') return { name, type: T.FLOAT, f: value.float };
  return Number.isInteger(value) ? { name, type: T.INT, i: value } : { name, type: T.FLOAT, f: value };
}

export class GraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly usedNames = new Set<string>();

  /** Without an external data file the graph can hold constants only (no weights). */
  constructor(private readonly externalData?: ExternalDataFile) {}

  input(name: string, elemType: DataType, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(name: string, elemType: DataType, dims: readonly Dim[]): void {
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /** A weight: its bytes go to the external data file now. */
  weight(name: string, dataType: DataType, dims: readonly number[], values: Float32Array | Uint8Array | Uint16Array): string {
    const data = this.externalData;
    if (!data) throw new Error(`GraphBuilder: weight ${name} needs an external data file`);
    const { offset, length } = data.append(bytesOf(values));
    this.initializers.push({
      name,
      dataType,
      dims: [...dims],
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: data.location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(length) },
      ],
    });
    return name;
  }

  /** A small constant kept inside the model file (shapes, axes, indices). */
  constant(name: string, values: BigInt64Array | Int32Array | Float32Array | Uint8Array, dims: readonly number[]): string {
    const dataType = values instanceof BigInt64Array ? DataType.INT64 : values instanceof Int32Array ? DataType.INT32
      : values instanceof Uint8Array ? DataType.UINT8 : DataType.FLOAT;
    this.initializers.push({ name, dataType, dims: [...dims], rawData: bytesOf(values) });
    return name;
  }

  /**
   * Adds a node and returns its output names. `outputs` are the names to give them; an empty string leaves
   * an optional output unused. Node names are made unique from the first output.
   */
  node(opType: string, inputs: readonly string[], outputs: readonly string[], attributes: Record<string, AttributeValue> = {}, domain = ''): string[] {
    let name = `${opType}:${outputs.find((o) => o !== '') ?? opType}`;
    for (let i = 1; this.usedNames.has(name); i++) name = `${opType}:${outputs[0]}#${i}`;
    this.usedNames.add(name);
    this.nodes.push({
      name,
      opType,
      domain,
      input: [...inputs],
      output: [...outputs],
      attribute: Object.entries(attributes).map(([key, value]) => attribute(key, value)),
    });
    return [...outputs];
  }

  /** Encodes the whole model (the weights stay in the external data file). */
  encode(graphName: string, opsets: Record<string, number>, metadata: Record<string, string>): Uint8Array {
    const model: onnx.IModelProto = {
      irVersion: 10,
      producerName: 'phi-complete',
      opsetImport: Object.entries(opsets).map(([domain, version]) => ({ domain, version })),
      metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
      graph: {
        name: graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }
}
