// The few ONNX protobuf messages a decoder graph needs (ModelProto, GraphProto, NodeProto, TensorProto with
// external data, ValueInfoProto), written by hand: field numbers from onnx/onnx.proto (IR version 8). Repeated
// scalars are written unpacked, which every protobuf parser reads (onnx.proto is proto2). No reader: ONNX
// Runtime is the one that reads these files, so a wrong field fails there, at session creation.

/** ONNX TensorProto.DataType values used here. */
export const OnnxType = { float: 1, int32: 6, int64: 7, float16: 10 } as const;
export type OnnxTypeName = keyof typeof OnnxType;

export type AttributeValue = number | bigint | string | number[] | { float: number };

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attributes?: Record<string, AttributeValue>;
}

/** An initializer whose bytes live in the external data file at [offset, offset + length), or inline in `raw`
 * (small constants: shape inference reads those, and cannot read external data). */
export type OnnxInitializer = { name: string; type: OnnxTypeName; dims: number[] } & (
  | { location: string; offset: number; length: number }
  | { raw: Uint8Array }
);

/** A graph input or output: dims are numbers or symbolic names. */
export interface OnnxValueInfo {
  name: string;
  type: OnnxTypeName;
  dims: Array<number | string>;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** Operator sets: domain -> version ('' is the ONNX domain). */
  opsets: Record<string, number>;
}

/** Appends protobuf fields to a growing byte list. */
class ProtoWriter {
  private bytes: number[] = [];

  private varint(v: bigint): void {
    let x = BigInt.asUintN(64, v);
    while (x >= 0x80n) {
      this.bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.bytes.push(Number(x));
  }

  int(field: number, v: number | bigint): this {
    this.varint(BigInt((field << 3) | 0));
    this.varint(BigInt(v));
    return this;
  }

  float(field: number, v: number): this {
    this.varint(BigInt((field << 3) | 5));
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.bytes.push(...b);
    return this;
  }

  bytesField(field: number, data: Uint8Array): this {
    this.varint(BigInt((field << 3) | 2));
    this.varint(BigInt(data.length));
    for (const b of data) this.bytes.push(b);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }

  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytesField(field, inner.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

// AttributeProto.AttributeType
const ATTR = { float: 1, int: 2, string: 3, ints: 7 } as const;

function writeAttribute(w: ProtoWriter, name: string, v: AttributeValue): void {
  w.string(1, name);
  if (typeof v === 'object' && !Array.isArray(v)) w.float(2, v.float).int(20, ATTR.float);
  else if (typeof v === 'number' || typeof v === 'bigint') w.int(3, v).int(20, ATTR.int);
  else if (typeof v === 'string') w.string(4, v).int(20, ATTR.string);
  else {
    for (const x of v) w.int(8, x);
    w.int(20, ATTR.ints);
  }
}

function writeValueInfo(w: ProtoWriter, v: OnnxValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, OnnxType[v.type]);
      tensor.message(2, (shape) => {
        for (const d of v.dims) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

function writeInitializer(w: ProtoWriter, t: OnnxInitializer): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, OnnxType[t.type]);
  w.string(8, t.name);
  if ('raw' in t) {
    w.bytesField(9, t.raw);
    return;
  }
  const entries: Array<[string, string]> = [
    ['location', t.location],
    ['offset', String(t.offset)],
    ['length', String(t.length)],
  ];
  for (const [key, value] of entries) w.message(13, (e) => e.string(1, key).string(2, value));
  w.int(14, 1); // DataLocation.EXTERNAL
}

/** The ModelProto bytes of a graph (its initializers' data stay in the external file). */
export function encodeOnnxModel(g: OnnxGraph, producer = 'longctx'): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, 8); // ir_version
  for (const [domain, version] of Object.entries(g.opsets)) w.message(8, (o) => o.string(1, domain).int(2, version));
  w.string(2, producer);
  w.message(7, (graph) => {
    for (const n of g.nodes)
      graph.message(1, (node) => {
        for (const i of n.inputs) node.string(1, i);
        for (const o of n.outputs) node.string(2, o);
        if (n.name) node.string(3, n.name);
        node.string(4, n.op);
        for (const [k, v] of Object.entries(n.attributes ?? {})) node.message(5, (a) => writeAttribute(a, k, v));
        if (n.domain) node.string(7, n.domain);
      });
    graph.string(2, g.name);
    for (const t of g.initializers) graph.message(5, (x) => writeInitializer(x, t));
    for (const v of g.inputs) graph.message(11, (x) => writeValueInfo(x, v));
    for (const v of g.outputs) graph.message(12, (x) => writeValueInfo(x, v));
  });
  return w.finish();
}
