// The markdown of `longctx eval-mass --needle`: the run's setting, then per context the model's first answer
// token, and three tables: value tokens inside each selector's keys (all / any, with 95% intervals), the
// exact mass on the needle and the share each selector keeps, and CCA's cores.
import type { NeedleHitRow, NeedleProgress, Share } from './needle-eval.js';

const f3 = (x: number) => x.toFixed(3);
const pct = (s: Share) => `${s.share.toFixed(2)} (${s.low.toFixed(2)}-${s.high.toFixed(2)})`;

/** Rows (k, layer), a column per selector; `lead` adds a column after the layer (the needle's mass). */
function selectorTable(
  p: NeedleProgress,
  context: number,
  cell: (r: NeedleHitRow) => string,
  lead?: { title: string; value: (r: NeedleHitRow) => string },
): string[] {
  const rows = p.hits.filter((r) => r.context === context);
  const budgets = [...new Set(rows.map((r) => r.budget))];
  const layers = [...new Set(rows.map((r) => r.layer))];
  const head = ['k', 'layer', ...(lead ? [lead.title] : []), ...p.selectors];
  const out = [`| ${head.join(' | ')} |`, `|${head.map(() => ' ---: |').join('')}`];
  for (const k of budgets)
    for (const layer of layers) {
      const of = (s: string) => rows.find((r) => r.budget === k && r.layer === layer && r.selector === s)!;
      const cells = [
        k,
        layer,
        ...(lead ? [lead.value(of(p.selectors[0]))] : []),
        ...p.selectors.map((s) => cell(of(s))),
      ];
      out.push(`| ${cells.join(' | ')} |`);
    }
  return out;
}

export function needleMarkdown(p: NeedleProgress, setting: string): string {
  const out = [
    '# The DSA indexer and CCA cores as retrieval: the asked pass key at the answer position',
    '',
    setting,
    '',
    'Selectors: `oracle` = the k keys of largest exact attention mass (mean over query heads); `indexer:P` =',
    "a training-free indexer's top-k over every visible key (float scores); `trained` = the model file's",
    'trained indexer; `dsa:P`, `dsa:trained` = what `dsa:topk=k` attends with that indexer: 4 sinks + the last 64 keys +',
    "its top-k of the keys between. Needle = the asked value's own tokens (the digits and the space before",
    'them). Shares of cases with Wilson 95% intervals.',
  ];
  for (const context of p.done) {
    const first = p.firstToken.find((x) => x.context === context)!;
    out.push(
      '',
      `## ${context} tokens (${first.n} cases; the model's greedy first answer token is the value's: ${pct(first)})`,
      '',
      '**All value tokens inside the selected keys** (share of cases):',
      '',
      ...selectorTable(p, context, (r) => pct(r.all)),
      '',
      '**Any value token inside the selected keys:**',
      '',
      ...selectorTable(p, context, (r) => pct(r.any)),
      '',
      '**Exact attention mass on the value tokens** (mean over cases) and the mean share of it each selector keeps:',
      '',
      ...selectorTable(p, context, (r) => f3(r.kept), {
        title: 'needle mass',
        value: (r) => r.needleMass.toExponential(2),
      }),
    );
    const cca = p.cca.filter((r) => r.context === context);
    if (cca.length === 0) continue;
    out.push(
      '',
      '**CCA** (exact mass on the core(s) holding value tokens behind the raw window, and on the window; under',
      "CCA's own softmax over its pooled cores and raw keys: mass on the needle's core(s), on the window, and",
      'the share of cases whose most attended core holds the needle, over the cases with the needle behind the window):',
      '',
      '| cca | layer | needle in window | exact: core | exact: window | cca: core | cca: window | cca: top core |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...cca.map(
        (r) =>
          `| ${r.cca} | ${r.layer} | ${pct(r.inWindow)} | ${f3(r.coreMass)} | ${f3(r.windowMass)} | ` +
          `${f3(r.ccaCoreMass)} | ${f3(r.ccaWindowMass)} | ${r.top1.n ? pct(r.top1) : '-'} |`,
      ),
    );
  }
  return out.join('\n');
}
