// `longctx bench kernels`: times every kernel version on this device (bench/kernel-bench.ts), writes
// kernels.json, kernels.md and kernels.svg; --reference adds PyTorch's rates for the same work
// (scripts/torch_kernels_bench.py) and the ratio; --toggles enables Dawn toggles for an A/B run.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { attachTorch, benchFlash, benchGemv, benchMatmul, type KernelBenchRow } from '../bench/kernel-bench.js';
import { escapeXml } from '../bench/svg-plot.js';
import { DeviceError, InputError } from '../errors.js';
import { acquireGpu } from '../runtime/acquire-gpu.js';
import { intList, numberOption, parse } from './args.js';

export const BENCH_KERNELS_USAGE = `usage: longctx bench kernels [--families flash,matmul,gemv] [--lengths 16K,32K,64K,128K]
                      [--versions NAME,...] [--seconds 0.3] [--toggles disable_robustness,...]
                      [--reference torch.json] [--out-dir bench-kernels] [--tag T] [--small]
  --small: small shapes, a smoke test on a CPU adapter.`;

export async function benchKernelsCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    families: { type: 'string' },
    lengths: { type: 'string' },
    versions: { type: 'string' },
    seconds: { type: 'string' },
    toggles: { type: 'string' },
    reference: { type: 'string' },
    'out-dir': { type: 'string' },
    tag: { type: 'string' },
    small: { type: 'boolean' },
  });
  const families = String(v.families ?? 'flash,matmul,gemv').split(',');
  for (const f of families)
    if (!['flash', 'matmul', 'gemv'].includes(f))
      throw new InputError(`--families: '${f}' is not flash, matmul or gemv`);
  const toggles = typeof v.toggles === 'string' && v.toggles ? v.toggles.split(',') : [];
  const outDir = String(v['out-dir'] ?? 'bench-kernels');
  const tag = String(v.tag ?? (toggles.length ? toggles.join('+') : 'default'));
  const gpu = await acquireGpu(toggles);
  if (!gpu) throw new DeviceError('bench kernels needs a WebGPU adapter');
  mkdirSync(outDir, { recursive: true });
  const log = (line: string) => {
    process.stdout.write(`${line}\n`);
    writeFileSync(join(outDir, `kernels-${tag}.log`), `${line}\n`, { flag: 'a' });
  };
  log(`device: ${gpu.adapterName} ${JSON.stringify(gpu.features)} toggles: ${toggles.join(',') || 'none'}`);
  const opts = {
    lengths: intList(v, 'lengths', [16384, 32768, 65536, 131072]),
    versions: typeof v.versions === 'string' ? v.versions.split(',') : [],
    targetSeconds: numberOption(v, 'seconds') ?? 0.3,
    small: v.small === true,
    log,
  };
  const rows: KernelBenchRow[] = [];
  try {
    if (families.includes('matmul')) rows.push(...(await benchMatmul(gpu, opts)));
    if (families.includes('gemv')) rows.push(...(await benchGemv(gpu, opts)));
    if (families.includes('flash')) rows.push(...(await benchFlash(gpu, opts)));
  } finally {
    gpu.destroy();
  }
  if (typeof v.reference === 'string') {
    try {
      attachTorch(rows, (JSON.parse(readFileSync(v.reference, 'utf8')) as { rows: KernelBenchRow[] }).rows);
    } catch (e) {
      throw new InputError(`--reference ${v.reference}: ${(e as Error).message}`);
    }
  }
  const report = { device: gpu.adapterName, toggles, date: new Date().toISOString(), rows };
  writeFileSync(join(outDir, `kernels-${tag}.json`), `${JSON.stringify(report, null, 2)}\n`);
  const md = kernelsMarkdown(rows);
  writeFileSync(join(outDir, `kernels-${tag}.md`), md);
  writeFileSync(join(outDir, `kernels-${tag}.svg`), kernelsSvg(rows, `${gpu.adapterName} (${tag})`));
  process.stdout.write(md);
}

function kernelsMarkdown(rows: KernelBenchRow[]): string {
  const lines = [
    '| family | case | version | ms | rate | torch | ratio |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    const rate =
      r.tflops !== undefined
        ? `${r.tflops.toFixed(1)} TFLOP/s`
        : r.gbps !== undefined
          ? `${r.gbps.toFixed(0)} GB/s`
          : (r.error ?? '');
    const torch = r.torch !== undefined ? r.torch.toFixed(r.tflops !== undefined ? 1 : 0) : '';
    const ratio = [
      r.ratio !== undefined ? `${r.ratio.toFixed(3)}x` : '',
      r.vsCopy !== undefined ? `${(100 * r.vsCopy).toFixed(0)}% of copy` : '',
    ]
      .filter((s) => s)
      .join(', ');
    lines.push(
      `| ${r.family} | ${r.case} | ${r.version} | ${r.ms === null ? '' : r.ms.toFixed(3)} | ${rate} | ${torch} | ${ratio} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Horizontal bars: each row's rate as a fraction of PyTorch's (or of the family's best row without one). */
function kernelsSvg(rows: KernelBenchRow[], title: string): string {
  const shown = rows.filter((r) => r.ms !== null);
  const best = new Map<string, number>();
  for (const r of shown) best.set(r.family, Math.max(best.get(r.family) ?? 0, r.tflops ?? r.gbps ?? 0));
  const bar = 18;
  const W = 980;
  const L = 430;
  const H = 60 + shown.length * (bar + 6);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
  ];
  parts.push(
    `<text x="10" y="24" font-size="15">${escapeXml(`Kernel versions on ${title}: rate / PyTorch's (or / family best)`)}</text>`,
  );
  shown.forEach((r, i) => {
    const rate = r.tflops ?? r.gbps ?? 0;
    const frac = r.ratio ?? rate / (best.get(r.family) || 1);
    const y = 44 + i * (bar + 6);
    const w = Math.max(1, Math.min(1, frac) * (W - L - 120));
    const unit = r.tflops !== undefined ? `${rate.toFixed(1)} TF/s` : `${rate.toFixed(0)} GB/s`;
    parts.push(
      `<text x="${L - 6}" y="${y + 13}" text-anchor="end">${escapeXml(`${r.family} ${r.case} ${r.version}`)}</text>`,
    );
    parts.push(
      `<rect x="${L}" y="${y}" width="${w.toFixed(1)}" height="${bar}" fill="${r.ratio !== undefined ? '#1f77b4' : '#7f7f7f'}"/>`,
    );
    parts.push(
      `<text x="${L + w + 6}" y="${y + 13}">${escapeXml(`${unit}${r.ratio !== undefined ? ` (${r.ratio.toFixed(3)}x)` : ''}`)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
