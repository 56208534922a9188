// The method form: per layer a method and one field per parameter the spec grammar knows for it
// (src/attention/spec.ts METHOD_KEYS), composed into spec strings; a hybrid preset fills the layers the way
// hybrid:every=E,window=W schedules them (src/attention/sparse.ts).
import { formatMethodSpec, METHOD_KEYS, parseMethodSpec } from '../../src/attention/spec.js';
import { hybridSchedule } from '../../src/attention/sparse.js';
import { el } from './dom.js';

/** Methods a layer can run (hybrid is a schedule over layers: the preset below). */
export const LAYER_METHODS = ['flash', 'dense', 'window', 'sinks', 'cca', 'dsa', 'star', 'ring'] as const;

/** Defaults sized for a small demo context (the library's own defaults target 128K). */
const DEFAULTS: Record<string, Record<string, string>> = {
  flash: {},
  dense: {},
  window: { left: '64' },
  sinks: { tokens: '4', left: '64' },
  cca: { group: '8', window: '64' },
  dsa: { topk: '48', sinks: '4', local: '16' },
  star: { block: '64' },
  ring: {},
};

/** Keys shown as fields: the grammar's keys minus the ones a page run has no use for. */
const HIDDEN_KEYS = new Set(['variant', 'hosts', 'layer', 'right', 'indexer', 'query']);

export function fieldsOf(method: string): string[] {
  return (METHOD_KEYS[method] ?? []).filter((k) => !HIDDEN_KEYS.has(k));
}

export class MethodForm {
  private rows: HTMLElement[] = [];
  readonly root: HTMLElement;
  private readonly list: HTMLElement;

  constructor(
    layers: number,
    private readonly onChange: () => void,
  ) {
    const every = el('input', { type: 'number', min: '1', value: '2', id: 'hybrid-every', 'aria-label': 'every' });
    const win = el('input', { type: 'number', min: '1', value: '64', id: 'hybrid-window', 'aria-label': 'window' });
    const apply = el('button', { type: 'button', id: 'hybrid-apply' }, 'hybrid preset');
    const same = el('button', { type: 'button', id: 'same-all' }, 'layer 0 on every layer');
    apply.addEventListener('click', () => this.applyHybrid(Number(every.value), Number(win.value)));
    same.addEventListener('click', () => this.setAll(this.specs()[0]));
    this.list = el('div', { class: 'layers' });
    this.root = el(
      'div',
      {},
      this.list,
      el(
        'div',
        { class: 'row' },
        same,
        ' ',
        apply,
        el('label', {}, ' every ', every),
        el('label', {}, ' window ', win),
      ),
    );
    for (let i = 0; i < layers; i++) this.list.append(this.layerRow(i, 'flash'));
  }

  private layerRow(i: number, spec: string): HTMLElement {
    const parsed = parseMethodSpec(spec);
    const select = el('select', { id: `layer-${i}-method`, 'aria-label': `layer ${i} attention method` });
    for (const m of LAYER_METHODS) select.append(el('option', { value: m }, m));
    select.value = parsed.name;
    const params = el('span', { class: 'params' });
    const fill = (method: string, given: Record<string, string>) => {
      params.replaceChildren();
      for (const key of fieldsOf(method)) {
        const input = el('input', {
          type: 'number',
          min: '0',
          id: `layer-${i}-${key}`,
          'data-key': key,
          value: given[key] ?? DEFAULTS[method]?.[key] ?? '',
        });
        input.addEventListener('change', this.onChange);
        params.append(el('label', {}, ` ${key} `, input));
      }
    };
    fill(parsed.name, parsed.params);
    select.addEventListener('change', () => {
      fill(select.value, {});
      this.onChange();
    });
    const row = el('div', { class: 'layer', 'data-layer': String(i) }, el('span', {}, `layer ${i} `), select, params);
    this.rows[i] = row;
    return row;
  }

  /** One spec per layer, e.g. ['flash', 'window:left=64', ...]. */
  specs(): string[] {
    return this.rows.map((row) => {
      const name = row.querySelector('select')!.value;
      const params: Record<string, string> = {};
      for (const input of row.querySelectorAll<HTMLInputElement>('input[data-key]'))
        if (input.value !== '') params[input.dataset.key!] = input.value;
      return formatMethodSpec({ name, params });
    });
  }

  setAll(spec: string): void {
    this.setLayers(this.rows.map(() => spec));
  }

  setLayers(specs: string[]): void {
    this.list.replaceChildren();
    specs.forEach((s, i) => this.list.append(this.layerRow(i, s)));
    this.onChange();
  }

  private applyHybrid(every: number, window: number): void {
    const schedule = hybridSchedule(every, window);
    this.setLayers(this.rows.map((_, i) => formatMethodSpec(schedule.methodFor(i))));
  }
}
