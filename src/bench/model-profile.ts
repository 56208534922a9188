// The per-kernel GPU time of a model benchmark run (`bench model --profile`, runtime/gpu-profile.ts): for the
// prefill and for a decoded token, each kernel's share of the GPU time, beside the wall time, so that a missed
// speed target names the kernel that holds it and its share (issue 11), or shows the GPU idle (the host's
// recording and submission holding it).
import type { PhaseProfile } from '../runtime/gpu-profile.js';
import { formatTokens } from './report.js';

export interface ModelProfile {
  /** The prefill's kernels (ms over the whole prefill). */
  prefill?: PhaseProfile;
  /** Decoding's kernels, ms summed over `decodeSteps` tokens. */
  decode?: PhaseProfile;
  decodeSteps: number;
}

export function modelProfile(phases: PhaseProfile[], decodeSteps: number): ModelProfile {
  const find = (name: string) => phases.find((p) => p.phase === name);
  return { prefill: find('prefill'), decode: find('decode'), decodeSteps };
}

interface ProfiledRow {
  method: string;
  context: number;
  prefillSeconds?: number;
  decodeTokensPerSecond?: number;
  profile?: ModelProfile;
}

/** Kernels are listed down to this share of a phase's GPU time; the rest are summed in one line. */
const LIST_SHARE = 0.01;

function phaseTable(p: PhaseProfile, per: number, unit: string, wall: number | undefined): string[] {
  const busy = p.ms / per;
  const scale = unit === 'us' ? 1000 : 1;
  const lines = [
    `GPU busy ${(busy * scale).toFixed(1)} ${unit}` +
      (wall ? ` of ${(wall * scale).toFixed(1)} ${unit} wall (${((100 * busy) / wall).toFixed(0)}%)` : '') +
      (p.untimed ? `; ${p.untimed} dispatches untimed` : ''),
    '',
    `| kernel | dispatches | ${unit} | share |`,
    '| --- | ---: | ---: | ---: |',
  ];
  let rest = 0;
  let restCount = 0;
  for (const k of p.kernels) {
    const share = p.ms > 0 ? k.ms / p.ms : 0;
    if (share < LIST_SHARE) {
      rest += k.ms;
      restCount += k.dispatches;
      continue;
    }
    const name = k.kernel.replace(/\|/g, '\\|');
    lines.push(
      `| ${name} | ${(k.dispatches / per).toFixed(1)} | ${((k.ms / per) * scale).toFixed(1)} | ${(100 * share).toFixed(1)}% |`,
    );
  }
  if (rest > 0)
    lines.push(
      `| (others) | ${(restCount / per).toFixed(1)} | ${((rest / per) * scale).toFixed(1)} | ` +
        `${((100 * rest) / p.ms).toFixed(1)}% |`,
    );
  return lines;
}

/** A section per profiled row: the prefill's kernels (ms), a decoded token's kernels (us per token). */
export function modelProfileMarkdown(rows: ProfiledRow[]): string {
  const out: string[] = [];
  for (const r of rows) {
    const p = r.profile;
    if (!p) continue;
    out.push('', `### Profile: ${r.method} at ${formatTokens(r.context)}`, '');
    if (p.prefill) {
      const t = phaseTable(p.prefill, 1, 'ms', r.prefillSeconds && r.prefillSeconds * 1000);
      out.push('Prefill. ' + t[0], ...t.slice(1));
    }
    if (p.decode && p.decodeSteps > 0) {
      const wall = r.decodeTokensPerSecond ? 1000 / r.decodeTokensPerSecond : undefined;
      const t = phaseTable(p.decode, p.decodeSteps, 'us', wall);
      out.push('', 'A decoded token. ' + t[0], ...t.slice(1));
    }
  }
  if (!out.length) return '';
  return (
    [
      '',
      '## Where the GPU time goes (profiled runs: one timed pass per dispatch, so their tokens/s are below an',
      "unprofiled run's; shares, not speeds)",
    ].join('\n') +
    out.join('\n') +
    '\n'
  );
}
