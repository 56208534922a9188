// Runs an eval grid (configuration x task x length x depth x case) in one process: the model is loaded once,
// each configuration gets one decoder sized for the longest case, reset between cases, every finished case
// is appended to results.jsonl (so a rerun skips it), and a progress bar on stderr shows the ETA.
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { scheduleFromSpec } from '../attention/sparse.js';
import { parseMethodSpec } from '../attention/spec.js';
import { ProgressBar } from '../bench/progress.js';
import { createDecoder } from '../model/forward/create-decoder.js';
import type { Decoder } from '../model/forward/decoder-cpu.js';
import { generate } from '../model/generation/generate.js';
import { parseRopeSpec } from '../model/positions/rope-scaling.js';
import { parsePositionSpec } from '../model/positions/position-method.js';
import type { LoadedModel } from '../model/types.js';
import type { Device } from '../runtime/device.js';
import type { CaseCoordinates, EvalCase, LmCase, QaCase, TaskContext } from './case.js';
import { hashSeed } from './rng.js';
import { appendResult, type CaseResult, readResults, resultKey } from './results.js';
import { answerRecall } from './score.js';
import { taskByName } from './tasks/index.js';

export interface EvalConfig {
  attention: string;
  /** 'model' keeps the model's own RoPE scaling. */
  rope: string;
  /** 'none' is plain RoPE. */
  positions: string;
  /** WebGPU's weights and KV cache in half precision (f16 subgroup-matrix kernels where the device has them);
   * absent is f32, so results of earlier runs keep their keys. */
  storage?: 'f16';
}

export function configName(c: EvalConfig): string {
  return [
    c.attention,
    c.rope === 'model' ? '' : `rope=${c.rope}`,
    c.positions === 'none' ? '' : `positions=${c.positions}`,
    c.storage ? `storage=${c.storage}` : '',
  ]
    .filter(Boolean)
    .join(' ');
}

export interface EvalGrid {
  configs: EvalConfig[];
  tasks: string[];
  lengths: number[];
  /** Needle depths in percent (tasks that take one; none: each case draws its own, as sample() does). */
  depths: number[];
  casesPerCell: number;
  seed: number;
  /** `--cases` prompts, run under every configuration beside the generated tasks. */
  extraCases?: QaCase[];
}

export interface PlannedCase extends CaseCoordinates {
  make(): EvalCase;
}

/** Every case coordinate of the grid (the cases themselves are built when run). */
export function gridCases(grid: EvalGrid, ctx: TaskContext): PlannedCase[] {
  const out: PlannedCase[] = [];
  for (const name of grid.tasks) {
    const task = taskByName(name);
    for (const length of grid.lengths)
      for (const depth of task.usesDepth && grid.depths.length > 0 ? grid.depths : [undefined])
        for (let index = 0; index < grid.casesPerCell; index++) {
          const seed = hashSeed(grid.seed, name, length, depth ?? '-', index);
          const coords = { task: name, length, depth, index, seed };
          out.push({ ...coords, make: () => task.make(ctx, coords) });
        }
  }
  for (const c of grid.extraCases ?? []) out.push({ ...c, make: () => c });
  return out;
}

export interface RunOptions {
  outDir: string;
  chunk?: number;
  /** Longest case the decoders must hold (prompt and answers). */
  maxTokens: number;
  onResult?: (r: CaseResult) => void;
  quiet?: boolean;
  /** Start no case after this many seconds (what finished is kept; a rerun continues). */
  budgetSeconds?: number;
  /** Run only jobs i, i + count, ... of the grid's fixed order (parallel processes, one results file each). */
  shard?: { index: number; count: number };
}

async function runQa(
  decoder: Decoder,
  model: LoadedModel,
  c: QaCase,
): Promise<Pick<CaseResult, 'score' | 'correct' | 'output' | 'answers'>> {
  let unfed: number | undefined;
  const outputs: string[] = [];
  let scoreSum = 0;
  let correct = true;
  for (const turn of c.turns) {
    // The previous turn's last token was sampled but not fed: it leads the next turn's tokens.
    const ids = unfed === undefined ? turn.ids : [unfed, ...turn.ids];
    const r = await generate(decoder, model.tokenizer, ids, { maxTokens: turn.maxNewTokens, temperature: 0 });
    unfed = r.stoppedAtEos || r.ids.length === 0 ? undefined : r.ids[r.ids.length - 1];
    outputs.push(r.text);
    const recall = answerRecall(r.text, turn.answers);
    scoreSum += recall;
    correct &&= recall === 1;
  }
  return {
    score: scoreSum / c.turns.length,
    correct,
    output: outputs.join(' ‖ '),
    answers: c.turns.flatMap((t) => t.answers),
  };
}

async function runLm(decoder: Decoder, c: LmCase): Promise<[number, number][]> {
  const losses: [number, number][] = [];
  let fed = 0;
  for (const p of c.positions) {
    const logits = await decoder.forward(c.ids.slice(fed, p));
    fed = p;
    let max = -Infinity;
    for (const v of logits) max = Math.max(max, v);
    let sum = 0;
    for (const v of logits) sum += Math.exp(v - max);
    losses.push([p, max + Math.log(sum) - logits[c.ids[p]]]);
  }
  return losses;
}

function caseTokens(c: EvalCase): number {
  return c.kind === 'lm' ? c.ids.length : c.turns.reduce((a, t) => a + t.ids.length + t.maxNewTokens + 1, 0);
}

/** Runs what results.jsonl in outDir does not hold yet; returns every result (old and new). */
export async function runEval(
  model: LoadedModel,
  device: Device,
  grid: EvalGrid,
  ctx: TaskContext,
  opts: RunOptions,
): Promise<CaseResult[]> {
  const path = join(opts.outDir, 'results.jsonl');
  const results = readResults(path);
  const done = new Set(results.map((r) => r.key));
  const planned = gridCases(grid, ctx);
  // Round robin: case 0 of every (task, length, depth, configuration), then case 1, ...: a run cut short by its
  // budget still has every cell, with one case more or less. Shards take every n-th job of this fixed order.
  const all = planned
    .flatMap((p, order) =>
      grid.configs.map((config) => {
        const name = configName(config);
        return {
          config,
          name,
          make: p.make,
          length: p.length,
          index: p.index,
          order,
          key: resultKey(name, p.task, p.length, p.depth, p.index, p.seed),
        };
      }),
    )
    .sort((x, y) => x.index - y.index || x.order - y.order);
  const shard = opts.shard ?? { index: 0, count: 1 };
  const pending = all.filter((j, i) => i % shard.count === shard.index && !done.has(j.key));
  const bar = opts.quiet ? undefined : new ProgressBar(pending.length, 'eval');
  const totalTokens = pending.reduce((a, j) => a + j.length, 0);
  let doneTokens = 0;
  let finished = 0;
  const t0 = performance.now();
  const decoders = new Map<EvalConfig, { decoder: Decoder; model: LoadedModel }>();
  const decoderFor = async (config: EvalConfig) => {
    let d = decoders.get(config);
    if (!d) {
      const configured: LoadedModel = {
        ...model,
        config: config.rope === 'model' ? model.config : { ...model.config, rope: parseRopeSpec(config.rope) },
      };
      const decoder = await createDecoder(device, configured, scheduleFromSpec(parseMethodSpec(config.attention)), {
        maxTokens: opts.maxTokens,
        chunk: opts.chunk,
        positions: parsePositionSpec(config.positions),
        storage: config.storage ?? 'f32',
      });
      decoders.set(config, (d = { decoder, model: configured }));
    }
    return d;
  };
  try {
    for (const job of pending) {
      if (opts.budgetSeconds !== undefined && (performance.now() - t0) / 1000 > opts.budgetSeconds) {
        process.stderr.write(
          `eval: the ${opts.budgetSeconds} s budget is spent; ${pending.length - finished} cases left for a rerun\n`,
        );
        break;
      }
      const { decoder, model: configured } = await decoderFor(job.config);
      const config = job.config;
      const c = job.make();
      if (caseTokens(c) > opts.maxTokens)
        throw new InputError(`case ${job.key} needs ${caseTokens(c)} tokens; the decoders hold ${opts.maxTokens}`);
      decoder.reset();
      const start = performance.now();
      const common = {
        key: job.key,
        config: job.name,
        ...config,
        task: c.task,
        length: c.length,
        depth: c.depth ?? null,
        index: c.index,
        seed: c.seed,
        promptTokens: c.kind === 'lm' ? c.ids.length : c.turns[0].ids.length,
        device: device.name,
      };
      let row: CaseResult;
      if (c.kind === 'lm') {
        const losses = await runLm(decoder, c);
        const mean = losses.reduce((a, [, l]) => a + l, 0) / losses.length;
        row = { ...common, score: mean, correct: false, answers: [], output: '', losses, seconds: 0, cacheBytes: 0 };
      } else row = { ...common, ...(await runQa(decoder, configured, c)), seconds: 0, cacheBytes: 0 };
      row.seconds = (performance.now() - start) / 1000;
      row.cacheBytes = decoder.cacheBytes;
      appendResult(path, row);
      results.push(row);
      opts.onResult?.(row);
      doneTokens += job.length;
      finished++;
      const elapsed = (performance.now() - t0) / 1000;
      const eta = doneTokens > 0 ? (elapsed * (totalTokens - doneTokens)) / doneTokens : 0;
      bar?.tick(
        `${job.name} ${c.task} ${c.length} ${row.task === 'lm' ? `loss ${row.score.toFixed(2)}` : row.correct ? 'ok' : 'miss'}; ` +
          `${formatSeconds(elapsed)} elapsed, ETA ${formatSeconds(eta)}`,
      );
    }
  } finally {
    for (const { decoder } of decoders.values()) decoder.destroy();
  }
  bar?.done();
  return results;
}

export function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}
