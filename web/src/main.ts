// The page: loads a model (embedded stories260K or a picked GGUF), runs it with the chosen attention per layer,
// RoPE scaling and positional method, streams the text, and shows the pattern, cost and accuracy beside it.
// window.longctxPage holds what the CI test (test/web.test.ts) reads: the backend, the last result, the drawing.
import type { Device, Model, Session } from '../../src/index.js';
import { intParam, parseMethodSpec } from '../../src/attention/spec.js';
import { accuracySvg, type EvalReport, reportTasks, runNeedleEval } from './accuracy.js';
import { byId, el, formatBytes } from './dom.js';
import { dsaCells, layerActivations } from './dsa-pattern.js';
import {
  createPageSession,
  loadHfFiles,
  loadPageModel,
  pageDevice,
  plannedKvBytes,
  type SessionChoice,
} from './engine.js';
import { adapterLimits, checkFitsAdapter, describeLimits } from './limits.js';
import { MethodForm } from './methods.js';
import { drawPattern, type Drawn, keptKeys, patternFor } from './pattern.js';

interface PageState {
  backend?: 'cpu' | 'webgpu';
  deviceNote?: string;
  model?: string;
  generating: boolean;
  text: string;
  result?: { promptTokens: number; completionTokens: number; prefillTps: number; decodeTps: number; kvBytes: number };
  error?: string;
  pattern?: Drawn & { spec: string };
  needle?: Array<{ depth: number; correct: boolean }>;
}
const state: PageState = { generating: false, text: '' };
(globalThis as { longctxPage?: PageState }).longctxPage = state;

let device: Device | undefined;
let model: Model | undefined;
let form: MethodForm | undefined;
let running: AbortController | undefined;

function showError(e: unknown): void {
  const err = e as Error;
  const line = `${err?.name ?? 'Error'}: ${err?.message ?? String(e)}`;
  state.error = line;
  const box = byId('error');
  box.textContent = line;
  box.hidden = false;
}

function clearError(): void {
  state.error = undefined;
  byId('error').hidden = true;
}

const num = (id: string) => Number(byId<HTMLInputElement>(id).value);

function ropeSpec(): string {
  const kind = byId<HTMLSelectElement>('rope-kind').value;
  const f = byId<HTMLInputElement>('rope-factor').value;
  const o = byId<HTMLInputElement>('rope-original').value;
  if (kind === 'model' || kind === 'none') return kind;
  if (kind === 'linear' || kind === 'ntk') return `${kind}:factor=${f}`;
  return `${kind}:factor=${f},original=${o}`;
}

const POSITION_KEYS: Record<string, [string, string]> = {
  'self-extend': ['window', 'group'],
  chunked: ['chunk', 'local'],
  remap: ['window', 'topk'],
};

function positionsSpec(): string {
  const kind = byId<HTMLSelectElement>('positions-kind').value;
  const keys = POSITION_KEYS[kind];
  byId('positions-help').textContent = keys ? `a = ${keys[0]}, b = ${keys[1]} (CPU decoder only)` : '';
  if (!keys) return 'none';
  return `${kind}:${keys[0]}=${num('positions-a')},${keys[1]}=${num('positions-b')}`;
}

function choice(): SessionChoice {
  if (!form) throw new Error('load a model first');
  return {
    layers: form.specs(),
    rope: ropeSpec(),
    positions: positionsSpec(),
    contextSize: num('context'),
    chunk: num('chunk'),
  };
}

function showSpec(): void {
  if (!form) return;
  const c = choice();
  byId('spec').textContent = `layers: ${c.layers.join(' | ')}; rope: ${c.rope}; positions: ${c.positions}`;
  if (model) {
    try {
      const planned = plannedKvBytes(model, c);
      setCost({ 'KV cache at full context (planned)': formatBytes(planned) });
    } catch (e) {
      showError(e);
    }
  }
}

const cost: Record<string, string> = {};
function setCost(entries: Record<string, string>): void {
  Object.assign(cost, entries);
  byId('cost').replaceChildren(...Object.entries(cost).flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

async function ensureDevice(): Promise<Device> {
  const want = byId<HTMLInputElement>('force-cpu').checked ? 'cpu' : 'auto';
  if (device && (want === 'cpu') === (device.backend === 'cpu')) return device;
  device?.destroy();
  const got = await pageDevice(want);
  device = got.device;
  state.backend = device.backend;
  state.deviceNote = got.note;
  byId('device-status').textContent = got.note;
  byId('limits').textContent = `adapter limits: ${describeLimits(adapterLimits(device))}`;
  return device;
}

async function load(source: Blob | File[], name: string): Promise<void> {
  clearError();
  const status = byId('model-status');
  try {
    model?.dispose();
    model = undefined;
    byId<HTMLButtonElement>('generate').disabled = true;
    const d = await ensureDevice();
    status.textContent = `loading ${name}…`;
    const t0 = performance.now();
    const progress = (p: { loadedBytes: number; totalBytes: number }) => {
      status.textContent = `loading ${name}: ${formatBytes(p.loadedBytes)} of ${formatBytes(p.totalBytes)}`;
    };
    model = Array.isArray(source) ? await loadHfFiles(source, d, progress) : await loadPageModel(source, d, progress);
    const c = model.config;
    status.textContent =
      `${name}: ${c.layers} layers, ${c.heads} heads (${c.kvHeads} KV), head dim ${c.headDim}, vocab ${c.vocabSize}, ` +
      `trained context ${c.contextLength}; loaded in ${((performance.now() - t0) / 1000).toFixed(2)} s`;
    state.model = name;
    form = new MethodForm(c.layers, showSpec);
    byId('methods').replaceChildren(form.root);
    const layerSelect = byId<HTMLSelectElement>('pattern-layer');
    layerSelect.replaceChildren(
      ...Array.from({ length: c.layers }, (_, i) => el('option', { value: String(i) }, `${i}`)),
    );
    byId<HTMLButtonElement>('generate').disabled = false;
    byId<HTMLButtonElement>('needle-run').disabled = false;
    showSpec();
  } catch (e) {
    status.textContent = `could not load ${name}`;
    showError(e);
  }
}

async function generate(): Promise<void> {
  if (!model || state.generating) return;
  clearError();
  const out = byId('output');
  out.textContent = '';
  state.text = '';
  state.result = undefined;
  let session: Session | undefined;
  running = new AbortController();
  state.generating = true;
  byId<HTMLButtonElement>('generate').disabled = true;
  byId<HTMLButtonElement>('stop').disabled = false;
  try {
    const c = choice();
    byId('limits').textContent =
      `adapter limits: ${describeLimits(adapterLimits(model.device))}; ` +
      checkFitsAdapter(model, c.contextSize, adapterLimits(model.device));
    session = await createPageSession(model, c);
    const g = session.generate(byId<HTMLTextAreaElement>('prompt').value, {
      maxTokens: num('max-tokens'),
      signal: running.signal,
    });
    for await (const piece of g) {
      state.text += piece;
      out.textContent = state.text;
    }
    const r = g.result!;
    state.result = {
      promptTokens: r.promptTokens,
      completionTokens: r.completionTokens,
      prefillTps: r.promptTokens / Math.max(1e-9, r.prefillSeconds),
      decodeTps: Math.max(0, r.completionTokens - 1) / Math.max(1e-9, r.decodeSeconds),
      kvBytes: session.cacheBytes,
    };
    setCost({
      'KV cache held (measured)': formatBytes(session.cacheBytes),
      prefill: `${r.promptTokens} tokens, ${state.result.prefillTps.toFixed(1)} tok/s`,
      decode: `${r.completionTokens} tokens, ${state.result.decodeTps.toFixed(1)} tok/s`,
      backend: model.device.name,
    });
  } catch (e) {
    showError(e);
  } finally {
    session?.dispose();
    state.generating = false;
    running = undefined;
    byId<HTMLButtonElement>('generate').disabled = false;
    byId<HTMLButtonElement>('stop').disabled = true;
  }
}

async function drawChosenPattern(): Promise<void> {
  clearError();
  try {
    if (!form || !model) throw new Error('load a model first');
    const layer = Number(byId<HTMLSelectElement>('pattern-layer').value);
    const spec = form.specs()[layer];
    const n = num('pattern-tokens');
    let dsa: Uint8Array | undefined;
    if (spec.startsWith('dsa')) {
      const ids = model.tokenizer.encode(byId<HTMLTextAreaElement>('prompt').value || 'Once upon a time');
      const filled = Array.from({ length: n }, (_, i) => ids[i % Math.max(1, ids.length)] ?? 1);
      const a = await layerActivations(model, filled, layer);
      const s = parseMethodSpec(spec);
      dsa = await dsaCells(model, a, {
        topk: intParam(s, 'topk', 2048),
        sinks: intParam(s, 'sinks', 4),
        local: intParam(s, 'local', 64),
        pairs: intParam(s, 'pairs', 4),
      });
    }
    const p = patternFor(spec, n, num('pattern-tile'), dsa && (() => dsa));
    const query = num('pattern-query');
    const drawn = drawPattern(byId<HTMLCanvasElement>('pattern'), p, query);
    state.pattern = { ...drawn, spec };
    byId('pattern-note').textContent =
      `layer ${layer}: ${spec}; query ${drawn.query} attends ${keptKeys(p, drawn.query)} of ${drawn.query + 1} keys. ${p.note}`;
  } catch (e) {
    showError(e);
  }
}

async function needle(): Promise<void> {
  if (!model) return;
  clearError();
  const list = byId('needle-results');
  list.replaceChildren();
  const ac = new AbortController();
  running = ac;
  byId<HTMLButtonElement>('stop').disabled = false;
  try {
    const results = await runNeedleEval(
      model,
      choice(),
      num('needle-tokens'),
      (r) =>
        list.append(
          el(
            'li',
            {},
            `depth ${Math.round(r.depth * 100)}%: ${r.correct ? 'found' : 'missed'} (${r.tokens} tokens, ` +
              `${r.prefillTokensPerSecond.toFixed(0)} tok/s prefill): "${r.answer.trim()}"`,
          ),
        ),
      ac.signal,
    );
    state.needle = results.map((r) => ({ depth: r.depth, correct: r.correct }));
    list.append(el('li', {}, `accuracy ${results.filter((r) => r.correct).length} of ${results.length}`));
  } catch (e) {
    showError(e);
  } finally {
    running = undefined;
    byId<HTMLButtonElement>('stop').disabled = true;
  }
}

async function showReport(): Promise<void> {
  try {
    const report = (await (await fetch('assets/eval-report.json')).json()) as EvalReport;
    const select = byId<HTMLSelectElement>('acc-task');
    select.replaceChildren(...reportTasks(report).map((t) => el('option', { value: t }, t)));
    const draw = () => (byId('acc-plot').innerHTML = accuracySvg(report, select.value));
    select.addEventListener('change', draw);
    draw();
    byId('acc-title').textContent = `${report.title}; ${report.device}`;
  } catch (e) {
    showError(e);
  }
}

function wire(): void {
  byId('load-embedded').addEventListener('click', async () => {
    try {
      const bytes = await (await fetch('assets/stories260K.gguf')).blob();
      await load(bytes, 'stories260K.gguf');
    } catch (e) {
      showError(e);
    }
  });
  const picked = (ev: Event) => {
    const files = [...((ev.target as HTMLInputElement).files ?? [])];
    const gguf = files.find((f) => f.name.toLowerCase().endsWith('.gguf'));
    if (files.length === 1 && gguf) void load(gguf, gguf.name);
    else if (files.length > 0) void load(files, `${files.length} Hugging Face files`);
  };
  byId<HTMLInputElement>('model-file').addEventListener('change', picked);
  byId<HTMLInputElement>('model-dir').addEventListener('change', picked);
  byId<HTMLInputElement>('prompt-file').addEventListener('change', async (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (f) byId<HTMLTextAreaElement>('prompt').value = await f.text();
  });
  byId('generate').addEventListener('click', () => void generate());
  byId('stop').addEventListener('click', () => running?.abort(new DOMException('stopped by the user', 'AbortError')));
  byId('pattern-draw').addEventListener('click', () => void drawChosenPattern());
  byId('needle-run').addEventListener('click', () => void needle());
  for (const id of [
    'rope-kind',
    'rope-factor',
    'rope-original',
    'positions-kind',
    'positions-a',
    'positions-b',
    'context',
  ])
    byId(id).addEventListener('change', showSpec);
  byId<HTMLInputElement>('force-cpu').addEventListener('change', () => void ensureDevice().catch(showError));
}

wire();
void showReport();
void ensureDevice().catch(showError);
