#!/usr/bin/env node
// The `longctx` command: dispatches to subcommands; typed input errors exit 2 with one line on stderr.
import { LongctxError, OutOfMemoryError, DeviceError, UnsupportedError } from '../errors.js';
import { ATTEND_USAGE, attendCommand } from './attend.js';
import { BENCH_USAGE, benchCommand } from './bench.js';
import { demoCommand } from './demo.js';
import { EVAL_MASS_USAGE, evalMassCommand } from './eval-mass.js';
import { GENERATE_USAGE, generateCommand } from './generate.js';
import { infoCommand } from './info.js';
import { HOST_USAGE, hostCommand } from './host.js';
import { PLAN_USAGE, planCommand } from './plan.js';
import { TRAIN_INDEXER_USAGE, trainIndexerCommand } from './train-indexer.js';

const USAGE = `longctx: long-context attention on WebGPU and the CPU

  longctx demo [--backend cpu|webgpu|auto]      dense against flash as the length grows
  longctx attend ...                            run one attention call on .npy arrays
  longctx bench attention|dsa|star ...          speed and memory sweeps (JSON, markdown, SVG)
  longctx eval-mass ...                         attention mass DSA's indexer keeps, per layer, on real text
  longctx info [--backend ...]                  the device, its features and limits
  longctx host --nats URL --token T ...         a context host for star/ring across processes
  longctx generate --model F --prompt TEXT ...  text from a GGUF model, any attention method per layer
  longctx plan --model F --context N ...        memory a model needs: weights, KV cache per method, activations
  longctx train-indexer --model F --data T ...  train DSA's lightning indexer against the frozen model's attention

${ATTEND_USAGE}

${BENCH_USAGE}

${GENERATE_USAGE}

${PLAN_USAGE}

${HOST_USAGE}

${EVAL_MASS_USAGE}

${TRAIN_INDEXER_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'attend':
      await attendCommand(rest);
      return 0;
    case 'bench':
      await benchCommand(rest);
      return 0;
    case 'eval-mass':
      return evalMassCommand(rest).then(() => 0);
    case 'demo':
      await demoCommand(rest);
      return 0;
    case 'generate':
      await generateCommand(rest);
      return 0;
    case 'info':
      await infoCommand(rest);
      return 0;
    case 'host':
      await hostCommand(rest);
      return 0;
    case 'train-indexer':
      return trainIndexerCommand(rest).then(() => 0);
    case 'plan':
      await planCommand(rest);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`longctx: unknown command '${command}' (try longctx help)\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const err = e as Error;
    if (err instanceof LongctxError) {
      process.stderr.write(`longctx: ${err.name}: ${err.message}\n`);
      // Input problems are the caller's to fix (2); device, memory and support limits are ours to report (1).
      const ours = err instanceof DeviceError || err instanceof OutOfMemoryError || err instanceof UnsupportedError;
      process.exit(ours ? 1 : 2);
    }
    process.stderr.write(`longctx: internal error: ${err?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
