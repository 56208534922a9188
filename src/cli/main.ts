#!/usr/bin/env node
// The `longctx` command: dispatches to subcommands; typed input errors exit 2 with one line on stderr.
import { LongctxError, OutOfMemoryError, DeviceError, UnsupportedError } from '../errors.js';
import { ATTEND_USAGE, attendCommand } from './attend.js';
import { BENCH_USAGE, benchCommand } from './bench.js';
import { BENCH_STAR_MODEL_USAGE, benchStarModelCommand } from './bench-star-model.js';
import { DEMO_USAGE, demoCommand } from './demo.js';
import { EVAL_MASS_USAGE, evalMassCommand } from './eval-mass.js';
import { EVAL_USAGE, evalCommand } from './eval.js';
import { GENERATE_USAGE, generateCommand } from './generate.js';
import { INFO_USAGE, infoCommand } from './info.js';
import { runFiltered } from './quiet-dawn.js';
import { HOST_USAGE, hostCommand } from './host.js';
import { PLAN_USAGE, planCommand } from './plan.js';
import { SERVE_USAGE, serveCommand } from './serve.js';
import { TRAIN_INDEXER_USAGE, trainIndexerCommand } from './train-indexer.js';
import { WEB_USAGE, webCommand } from './web.js';

const USAGE = `longctx: long-context attention on WebGPU and the CPU

  longctx demo [--backend cpu|webgpu|auto]      dense against flash as the length grows
  longctx attend ...                            run one attention call on .npy arrays
  longctx bench attention|dsa|star|kernels|model|peers ... speed and memory sweeps (JSON, markdown, SVG)
  longctx eval-mass ...                         attention mass DSA's indexer keeps, per layer, on real text
  longctx info [--backend ...]                  the device, its features and limits
  longctx host --nats URL --token T ...         a context host for star/ring across processes
  longctx generate --model F --prompt TEXT ...  text from a GGUF model, any attention method per layer
  longctx plan --model F --context N ...        memory a model needs: weights, KV cache per method, activations
  longctx serve --model F [--port 8080] ...     an OpenAI-compatible HTTP server for one model
  longctx eval --model F --tasks T --lengths L  long-context accuracy: needle, RULER, BABILong, loss by position
  longctx train-indexer --model F --data T ...  train DSA's lightning indexer against the frozen model's attention
  longctx web [--port 8090]                     the page that runs longctx in a browser (WebGPU or the CPU)

${ATTEND_USAGE}

${BENCH_USAGE}

${GENERATE_USAGE}

${PLAN_USAGE}

${SERVE_USAGE}

${HOST_USAGE}

${EVAL_MASS_USAGE}

${EVAL_USAGE}

${TRAIN_INDEXER_USAGE}

${WEB_USAGE}`;

/** Each subcommand's usage, printed by `longctx <subcommand> --help` (every case of main's switch). */
const SUBCOMMAND_USAGE: Record<string, string> = {
  attend: ATTEND_USAGE,
  bench: BENCH_USAGE,
  'bench-star-model': BENCH_STAR_MODEL_USAGE,
  demo: DEMO_USAGE,
  eval: EVAL_USAGE,
  'eval-mass': EVAL_MASS_USAGE,
  generate: GENERATE_USAGE,
  info: INFO_USAGE,
  host: HOST_USAGE,
  plan: PLAN_USAGE,
  serve: SERVE_USAGE,
  'train-indexer': TRAIN_INDEXER_USAGE,
  web: WEB_USAGE,
};

/** Subcommands that may open a WebGPU adapter (and so get Dawn's warnings filtered), unless --backend cpu. */
const MAY_USE_WEBGPU = new Set(['attend', 'bench', 'demo', 'generate', 'info', 'host', 'eval']);

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && Object.hasOwn(SUBCOMMAND_USAGE, command) && wantsHelp(rest)) {
    process.stdout.write(SUBCOMMAND_USAGE[command] + '\n');
    return 0;
  }
  const cpuOnly = rest.some((a, i) => a === '--backend=cpu' || (a === '--backend' && rest[i + 1] === 'cpu'));
  if (command !== undefined && MAY_USE_WEBGPU.has(command) && !cpuOnly) {
    const filtered = runFiltered(argv);
    if (filtered) return filtered;
  }
  switch (command) {
    case 'attend':
      await attendCommand(rest);
      return 0;
    case 'bench':
      await benchCommand(rest);
      return 0;
    case 'bench-star-model':
      return benchStarModelCommand(rest).then(() => 0);
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
    case 'serve':
      await serveCommand(rest);
      return 0;
    case 'eval':
      await evalCommand(rest);
      return 0;
    case 'web':
      await webCommand(rest);
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

/** `--help` or `-h` anywhere but as the value of an option (`--prompt --help` is a prompt). */
function wantsHelp(args: string[]): boolean {
  return args.some((a, i) => (a === '--help' || a === '-h') && !(i > 0 && /^--(prompt|title)$/.test(args[i - 1])));
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const err = e as Error;
    // One line, whatever a message holds (a driver's multi-line text included).
    const line = (message: string) => message.replace(/\s*\n\s*/g, '; ');
    if (err instanceof LongctxError) {
      process.stderr.write(`longctx: ${err.name}: ${line(err.message)}\n`);
      // Input problems are the caller's to fix (2); device, memory and support limits are ours to report (1).
      const ours = err instanceof DeviceError || err instanceof OutOfMemoryError || err instanceof UnsupportedError;
      process.exit(ours ? 1 : 2);
    }
    // Last resorts, each still one line: a system error that escaped its reader or writer, an allocation V8
    // refused. Anything else is a bug in longctx and keeps its stack.
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
      const device = ['ENOSPC', 'EIO', 'EDQUOT', 'ENOMEM'].includes(code);
      process.stderr.write(`longctx: ${device ? 'DeviceError' : 'InputError'}: ${line(err.message)}\n`);
      process.exit(device ? 1 : 2);
    }
    if (err instanceof RangeError && /allocation failed|Invalid typed array length|Array buffer/.test(err.message)) {
      process.stderr.write(`longctx: OutOfMemoryError: ${line(err.message)} (the run needs more memory than it got)\n`);
      process.exit(1);
    }
    process.stderr.write(`longctx: internal error: ${err?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
