// GGUF: the fixture loads with the right config; malformed files are InputErrors naming the file and
// the problem; unsupported tensor types are UnsupportedErrors naming the type; F16, BF16 and Q8_0
// re-encodings of the fixture load and dequantise to the F32 values within their precision.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InputError, UnsupportedError } from '../src/errors.js';
import { ggufModel, loadGguf } from '../src/model/load/gguf.js';
import { WeightMatrix } from '../src/weights/weight-matrix.js';
import { FIXTURE_GGUF, fixtureBytes } from './model-support.js';
import { reencodeGguf } from './gguf-builder.js';

describe('GGUF loader', () => {
  it('reads the stories260K config and weights', () => {
    const m = loadGguf(FIXTURE_GGUF);
    const c = m.config;
    assert.deepEqual(
      [c.architecture, c.vocabSize, c.hiddenSize, c.intermediateSize, c.layers, c.heads, c.kvHeads, c.headDim],
      ['llama', 512, 64, 172, 5, 8, 4, 8],
    );
    assert.equal(c.ropeLayout, 'interleaved');
    assert.equal(c.ropeTheta, 10000);
    assert.ok(Math.abs(c.rmsNormEps - 1e-5) < 1e-10);
    assert.equal(c.bosTokenId, 1);
    assert.equal(c.eosTokenId, 2);
    assert.deepEqual(m.weights.layers[0].wk.shape, [32, 64]);
    assert.deepEqual(m.weights.layers[0].wDown.shape, [64, 172]);
    assert.equal(m.weights.layers.length, 5);
  });

  it('gives InputError for a file truncated anywhere', () => {
    const buf = fixtureBytes();
    for (const at of [0, 3, 7, 15, 23, 30, 200, 5000, 14000, 14176, 145300, buf.length - 1]) {
      assert.throws(
        () => ggufModel(buf.subarray(0, at), 'cut.gguf'),
        (e: Error) => e instanceof InputError && /cut\.gguf/.test(e.message),
        `truncated at ${at}`,
      );
    }
  });

  it('gives InputError for bad magic, absurd counts, dims and offsets', () => {
    const corrupt = (what: string, edit: (b: Buffer) => void, pattern: RegExp) => {
      const b = Buffer.from(fixtureBytes());
      edit(b);
      assert.throws(
        () => ggufModel(b, 'bad.gguf'),
        (e: Error) => e instanceof InputError && /bad\.gguf/.test(e.message) && pattern.test(e.message),
        what,
      );
    };
    corrupt('magic', (b) => b.write('GGUX', 0), /not a GGUF file/);
    corrupt('version', (b) => b.writeUInt32LE(99, 4), /version 99/);
    corrupt('tensor count', (b) => b.writeBigUInt64LE(1n << 40n, 8), /tensor count/);
    corrupt('metadata count', (b) => b.writeBigUInt64LE(1n << 62n, 16), /metadata count/);
    // The first key's length (at byte 24) far beyond the file.
    corrupt('key length', (b) => b.writeBigUInt64LE(1n << 50n, 24), /truncated|beyond/);
    // tokenizer.ggml.tokens: key (8 + 21 bytes) + type (4) + item type (4), then the array length.
    corrupt('array length', (b) => b.writeBigUInt64LE(1n << 40n, 24 + 8 + 21 + 4 + 4), /array of \d+ items cannot fit/);
    const infoAt = (b: Buffer, name: string) => b.indexOf(Buffer.from(name)) + name.length;
    corrupt(
      'tensor dims',
      (b) => b.writeBigUInt64LE(1n << 40n, infoAt(b, 'output.weight') + 4),
      /larger than the file|beyond the end/,
    );
    corrupt(
      'tensor offset',
      (b) => b.writeBigUInt64LE(1n << 30n, infoAt(b, 'output.weight') + 4 + 16 + 4),
      /beyond the end of the file/,
    );
    corrupt('dimension count', (b) => b.writeUInt32LE(9, infoAt(b, 'output.weight')), /9 dimensions/);
  });

  it('names an unsupported tensor type', () => {
    const b = Buffer.from(fixtureBytes());
    const at = b.indexOf(Buffer.from('blk.0.attn_q.weight')) + 'blk.0.attn_q.weight'.length + 4 + 16;
    b.writeUInt32LE(3, at); // Q4_1 (not supported; Q4_0 is): smaller than F32, so it lies inside the file
    assert.throws(
      () => ggufModel(b, 'q4.gguf'),
      (e: Error) => e instanceof UnsupportedError && /Q4_1/.test(e.message),
    );
  });

  for (const [name, type, tolerance] of [
    ['F16', 1, 1e-3],
    ['BF16', 30, 8e-3],
    ['Q8_0', 8, 1.5e-2],
  ] as const) {
    it(`loads ${name} weights (GGUF v2) and dequantises them`, () => {
      const f32 = ggufModel(fixtureBytes(), 'f32.gguf');
      const q = ggufModel(
        reencodeGguf(fixtureBytes(), () => type, 2),
        `${name}.gguf`,
      );
      assert.equal(q.weights.layers[2].wUp.dtype, name.toLowerCase());
      const a = new WeightMatrix(f32.weights.layers[2].wUp).toFloat32();
      const b = new WeightMatrix(q.weights.layers[2].wUp).toFloat32();
      let maxAbs = 0;
      let err = 0;
      for (let i = 0; i < a.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(a[i]));
        err = Math.max(err, Math.abs(a[i] - b[i]));
      }
      assert.ok(err > 0 && err <= tolerance * maxAbs, `${name}: error ${err} of max ${maxAbs}`);
    });
  }
});
