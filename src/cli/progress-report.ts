// Progress of the steps that can take long (reading a model, prefilling a long prompt) on stderr through
// RateBar: a bar with rate and ETA on a terminal, plain lines otherwise.
import { RateBar } from '../bench/progress.js';
import type { LoadProgress } from '../api/source.js';
import type { PrefillProgress } from '../api/session.js';

/** onProgress for loadModel: MiB read of the file. Files under 64 MiB are read in one slice and show nothing. */
export function loadProgress(label: string, stream: NodeJS.WriteStream = process.stderr): (p: LoadProgress) => void {
  let bar: RateBar | undefined;
  return (p) => {
    if (p.phase !== 'read') return bar?.done();
    if (!bar && p.loadedBytes >= p.totalBytes) return;
    bar ??= new RateBar(p.totalBytes, label, { unit: 'B', stream });
    bar.update(p.loadedBytes);
  };
}

/** onProgress for a prefill of more than `minTokens` tokens. */
export function prefillProgress(
  label: string,
  minTokens = 2048,
  stream: NodeJS.WriteStream = process.stderr,
): (p: PrefillProgress) => void {
  let bar: RateBar | undefined;
  return (p) => {
    if (p.totalTokens < minTokens) return;
    bar ??= new RateBar(p.totalTokens, label, { unit: 'tokens', stream });
    bar.update(p.tokens);
  };
}

/** onPrefillProgress for generation/generate.ts (tokens done, total). */
export function prefillBar(label: string, minTokens = 2048, stream: NodeJS.WriteStream = process.stderr) {
  const report = prefillProgress(label, minTokens, stream);
  return (tokens: number, totalTokens: number) => report({ tokens, totalTokens, tokensPerSecond: 0, etaSeconds: 0 });
}
