// Whether a run can serve its positions: a prompt (plus the tokens to generate) longer than the context the
// model was trained at gives garbage, unless something configured stretches or bounds the positions the
// model sees. This is the one place that decides: RoPE scaling, a positional method (Self-Extend, chunked or
// remapped positions; src/model/positions/, whose reach is counted over the scaled context) or windows on
// every layer; a refusal names the options that would serve.
import type { LayerSchedule } from '../../attention/sparse.js';
import type { ModelConfig } from '../types.js';
import { type PositionMethod, positionsServe, suggestPositions, suggestRemap } from '../positions/position-method.js';

export interface ServeOptions {
  /** The attention method of every layer. */
  schedule: LayerSchedule;
  /** Tokens to generate after the prompt (positions they take count too). */
  newTokens?: number;
  /** The training-free positional method of every layer (absent or 'none': plain RoPE). */
  positions?: PositionMethod;
}

export interface ServeVerdict {
  ok: boolean;
  /** Positions the run reaches (prompt + new tokens). */
  positions: number;
  trainedContext: number;
  /** Positions the configured RoPE scaling reaches. */
  ropeContext: number;
  /** What serves the run when it is longer than the trained context. */
  servedBy?: string;
  /** Options that would serve it, for the error message. */
  suggestions: string[];
}

/** Positions a RoPE scaling is made for: the original context times its factor; dynamic NTK adapts to any. */
function ropeContextOf(config: ModelConfig): number {
  const r = config.rope;
  if (r.kind === 'none') return config.contextLength;
  if (r.kind === 'ntk' && r.dynamic) return Number.POSITIVE_INFINITY;
  const original = 'originalContext' in r && r.originalContext ? r.originalContext : config.contextLength;
  return Math.max(config.contextLength, Math.floor(original * r.factor));
}

/** Relative distances a layer sees stay below its window: window and sinks layers serve any length. */
function windowOf(schedule: LayerSchedule, layer: number): number | undefined {
  const m = schedule.methodFor(layer);
  if (m.name !== 'window' && m.name !== 'sinks') return undefined;
  return Number(m.params.left) + (m.name === 'sinks' ? Number(m.params.tokens ?? 0) : 0);
}

export function canServe(config: ModelConfig, options: ServeOptions, promptTokens: number): ServeVerdict {
  const positions = promptTokens + (options.newTokens ?? 0);
  const trained = config.contextLength;
  const ropeContext = ropeContextOf(config);
  const verdict = (servedBy?: string): ServeVerdict => ({
    ok: positions <= trained || servedBy !== undefined,
    positions,
    trainedContext: trained,
    ropeContext,
    servedBy,
    suggestions: [
      `--rope linear:factor=${Math.ceil(positions / trained)}`,
      `--rope yarn:factor=${Math.ceil(positions / trained)},original=${trained}`,
      suggestPositions(trained, positions),
      suggestRemap(trained),
      `--attention window:left=${trained - 1}`,
      `--attention sinks:tokens=4,left=${Math.max(1, trained - 5)}`,
    ],
  });
  if (positions <= trained) return verdict();
  if (positions <= ropeContext) return verdict(`RoPE ${config.rope.kind} scaling (to ${ropeContext} positions)`);
  const byPositions = positionsServe(options.positions, ropeContext, positions);
  if (byPositions) return verdict(byPositions);
  const windows = Array.from({ length: config.layers }, (_, i) => windowOf(options.schedule, i));
  if (windows.every((w) => w !== undefined && w < ropeContext))
    return verdict(`windowed attention on every layer (at most ${Math.max(...(windows as number[]))} keys back)`);
  return verdict();
}
