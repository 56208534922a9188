// RoPE scalings against values worked out by hand from transformers' formulas (modeling_rope_utils.py).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SpecError } from '../src/errors.js';
import {
  baseInverseFrequencies,
  parseRopeSpec,
  scaledRope,
  yarnCorrectionRange,
  yarnLinearRamp,
  type RopeConfig,
} from '../src/model/positions/rope-scaling.js';
import type { RopeScaling } from '../src/model/types.js';

function close(actual: number, expected: number, rel = 1e-12, what = ''): void {
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected) + 1e-300, `${what}: ${actual} != ${expected}`);
}

function cfg(headDim: number, ropeTheta: number, rope: RopeScaling, contextLength = 2048): RopeConfig {
  return { headDim, ropeTheta, rope, contextLength };
}

describe('RoPE scaling', () => {
  it('unscaled: theta^(-2i/d)', () => {
    const { inverseFrequencies: f, attentionFactor } = scaledRope(cfg(4, 10000, { kind: 'none' }));
    assert.equal(f.length, 2);
    close(f[0], 1);
    close(f[1], 0.01);
    assert.equal(attentionFactor, 1);
  });

  it('linear divides every frequency by factor', () => {
    const f = scaledRope(cfg(4, 10000, { kind: 'linear', factor: 4 })).inverseFrequencies;
    close(f[0], 0.25);
    close(f[1], 0.0025);
  });

  it('NTK-aware raises the base to theta * factor^(d/(d-2))', () => {
    // d = 4: base 10000 * 8^2 = 640000, inv_freq[1] = 640000^(-1/2) = 1/800.
    const r = scaledRope(cfg(4, 10000, { kind: 'ntk', factor: 8 }));
    close(r.inverseFrequencies[0], 1);
    close(r.inverseFrequencies[1], 1 / 800);
    assert.equal(r.attentionFactor, 1);
  });

  it('dynamic NTK is unscaled up to the original context, then grows with the length', () => {
    const rope: RopeScaling = { kind: 'ntk', factor: 2, dynamic: true, originalContext: 1000 };
    close(scaledRope(cfg(4, 10000, rope), 500).inverseFrequencies[1], 0.01);
    close(scaledRope(cfg(4, 10000, rope)).inverseFrequencies[1], 0.01);
    // seqLen 3000: (2 * 3000/1000 - 1)^2 = 25, base 250000, inv_freq[1] = 1/500.
    close(scaledRope(cfg(4, 10000, rope), 3000).inverseFrequencies[1], 1 / 500);
    // Without originalContext, transformers uses max_position_embeddings (the model's context).
    const fromModel = scaledRope(cfg(4, 10000, { kind: 'ntk', factor: 2, dynamic: true }, 1000), 3000);
    close(fromModel.inverseFrequencies[1], 1 / 500);
  });

  it('YaRN: correction range, ramp and mscale as transformers computes them', () => {
    // d = 64, theta 1e4, N0 = 2048: dims 64 ln(2048 / (2 pi b)) / (2 ln 1e4) = 8.064 (b = 32), 20.105 (b = 1).
    assert.deepEqual(yarnCorrectionRange(32, 1, 64, 10000, 2048), [8, 21]);
    const rope: RopeScaling = { kind: 'yarn', factor: 4, originalContext: 2048, betaFast: 32, betaSlow: 1 };
    const { inverseFrequencies: f, attentionFactor } = scaledRope(cfg(64, 10000, rope));
    assert.equal(f.length, 32);
    const base = (i: number): number => Math.pow(10000, -(2 * i) / 64);
    close(f[0], 1, 1e-12, 'pair 0 extrapolates');
    close(f[8], base(8), 1e-12, 'pair 8 (ramp 0)');
    // Pair 14: ramp (14 - 8) / 13 = 6/13 of the way to f/4: f (1 - 3/4 * 6/13) = f * 34/52.
    close(f[14], (base(14) * 34) / 52, 1e-12, 'pair 14');
    close(f[21], base(21) / 4, 1e-12, 'pair 21 interpolates');
    close(f[31], base(31) / 4, 1e-12, 'pair 31 interpolates');
    close(attentionFactor, 0.1 * Math.log(4) + 1);
    assert.equal(scaledRope(cfg(64, 10000, { ...rope, attentionFactor: 0.5 })).attentionFactor, 0.5);
  });

  it('YaRN ramp: clamped, and nudged when low == high', () => {
    assert.deepEqual([...yarnLinearRamp(1, 3, 5)], [0, 0, 0.5, 1, 1]);
    const r = yarnLinearRamp(2, 2, 4);
    assert.deepEqual([r[0], r[1], r[2]], [0, 0, 0]);
    close(r[3], 1);
  });

  it('Llama 3: high frequencies kept, low divided by factor, smooth between', () => {
    // N0 = 1000, low 1, high 4: wavelengths below 250 kept, above 1000 divided by 8.
    const rope: RopeScaling = { kind: 'llama3', factor: 8, originalContext: 1000, lowFreqFactor: 1, highFreqFactor: 4 };
    // theta with pair 1's wavelength 2 pi sqrt(theta) = 500: smooth (1000/500 - 1) / 3 = 1/3,
    // inv = 2/3 f/8 + 1/3 f = 5/12 f.
    const mid = Math.pow(500 / (2 * Math.PI), 2);
    const f = scaledRope(cfg(4, mid, rope)).inverseFrequencies;
    close(f[0], 1, 1e-12, 'wavelength 2 pi is kept');
    close(f[1], ((2 * Math.PI) / 500) * (5 / 12), 1e-12, 'medium');
    // theta 1e8: pair 1 wavelength 2 pi 1e4 > 1000: divided by 8.
    close(scaledRope(cfg(4, 1e8, rope)).inverseFrequencies[1], 1e-4 / 8);
    assert.equal(scaledRope(cfg(4, 1e8, rope)).attentionFactor, 1);
  });

  it('Llama 3.1 8B shape: first pairs unchanged, last divided by 8, monotone', () => {
    const rope: RopeScaling = { kind: 'llama3', factor: 8, originalContext: 8192, lowFreqFactor: 1, highFreqFactor: 4 };
    const f = scaledRope(cfg(128, 500000, rope, 131072)).inverseFrequencies;
    const base = baseInverseFrequencies(128, 500000);
    close(f[0], base[0]);
    close(f[63], base[63] / 8);
    for (let i = 1; i < 64; i++) assert.ok(f[i] < f[i - 1]);
  });
});

describe('--rope parser', () => {
  it('parses each kind with defaults', () => {
    assert.deepEqual(parseRopeSpec('none'), { kind: 'none' });
    assert.deepEqual(parseRopeSpec('linear:factor=4'), { kind: 'linear', factor: 4 });
    assert.deepEqual(parseRopeSpec('ntk:factor=8'), { kind: 'ntk', factor: 8, dynamic: false });
    assert.deepEqual(parseRopeSpec('ntk:factor=2,dynamic=1,original=4096'), {
      kind: 'ntk',
      factor: 2,
      dynamic: true,
      originalContext: 4096,
    });
    assert.deepEqual(parseRopeSpec('yarn:factor=4,original=2048'), {
      kind: 'yarn',
      factor: 4,
      originalContext: 2048,
      betaFast: 32,
      betaSlow: 1,
    });
    assert.deepEqual(parseRopeSpec('yarn:factor=4,original=2048,fast=16,slow=2,attention=1.2'), {
      kind: 'yarn',
      factor: 4,
      originalContext: 2048,
      betaFast: 16,
      betaSlow: 2,
      attentionFactor: 1.2,
    });
    assert.deepEqual(parseRopeSpec('llama3:factor=8,original=8192,low=1,high=4'), {
      kind: 'llama3',
      factor: 8,
      originalContext: 8192,
      lowFreqFactor: 1,
      highFreqFactor: 4,
    });
    assert.deepEqual(parseRopeSpec(' llama3:factor=32, original=8192 '), {
      kind: 'llama3',
      factor: 32,
      originalContext: 8192,
      lowFreqFactor: 1,
      highFreqFactor: 4,
    });
  });

  it('rejects bad input with SpecError', () => {
    for (const bad of [
      '',
      'cubic:factor=2',
      'linear',
      'linear:factor=',
      'linear:factor=abc',
      'linear:factor=0.5',
      'linear:factor=-2',
      'linear:factor=Infinity',
      'linear:factor=2,factor=3',
      'linear:scale=2',
      'linear:factor',
      'yarn:factor=4',
      'yarn:factor=4,original=20.5',
      'yarn:factor=4,original=2048,fast=1,slow=32',
      'llama3:factor=8,original=8192,low=4,high=1',
      'ntk:factor=2,dynamic=maybe',
      'none:factor=2',
      'constructor',
      'toString:factor=2',
    ]) {
      assert.throws(() => parseRopeSpec(bad), SpecError, bad);
    }
  });
});
