// The page in a real browser: Debian's Chromium, headless, driven by puppeteer-core. It loads the embedded
// stories260K and generates llama2.c's greedy text on the CPU backend; draws a window pattern whose pixels
// must be filled exactly on the tiles the library's block mask keeps; shows the loader's typed error for a
// truncated GGUF; saves a 1280x800 screenshot; and tries WebGPU in that Chromium, reporting which path ran
// (and, where an adapter exists, generating the same golden text through it).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import puppeteer, { type Browser, type ElementHandle, type Page } from 'puppeteer-core';
import { windowMask } from '../src/attention/sparse.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { buildBlockMask } from '../src/spine/block-mask.js';
import { serveWebPage, webRoot } from '../src/cli/web.js';
import { loadModel } from '../src/api/model.js';
import { expectedText, FIXTURE_GGUF } from './model-support.js';

const CHROMIUM = process.env.LONGCTX_CHROMIUM ?? '/usr/bin/chromium';
/** Flags that gave Chromium 156 a WebGPU adapter here (SwiftShader's Vulkan; see docs/WEB.md for lavapipe). */
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan'];
const OUT = join(tmpdir(), 'longctx-web');
const have = existsSync(CHROMIUM);
if (!have && process.env.CI) throw new Error(`${CHROMIUM} is missing: CI installs Debian's chromium (.ci/run)`);

interface PageState {
  backend?: string;
  deviceNote?: string;
  model?: string;
  generating: boolean;
  text: string;
  result?: { completionTokens: number; prefillTps: number; decodeTps: number; kvBytes: number };
  error?: string;
  pattern?: { tile: number; tilesPerSide: number; cell: number; spec: string };
}
const pageState = (page: Page) => page.evaluate(() => (globalThis as { longctxPage?: PageState }).longctxPage!);

async function waitState(page: Page, what: string, until: string, timeoutMs: number): Promise<PageState> {
  await page.waitForFunction(until, { timeout: timeoutMs }).catch(async (e: Error) => {
    throw new Error(`waiting for ${what}: ${e.message}; page state ${JSON.stringify(await pageState(page))}`);
  });
  return pageState(page);
}

async function generateGolden(page: Page, cpu: boolean, tokens = 200, timeoutMs = 30_000): Promise<PageState> {
  await page.$eval('#force-cpu', (e, v) => ((e as HTMLInputElement).checked = v), cpu);
  await page.evaluate(() => ((globalThis as { longctxPage?: PageState }).longctxPage!.model = undefined));
  await page.click('#load-embedded');
  await waitState(page, 'the model', 'globalThis.longctxPage.model || globalThis.longctxPage.error', 20_000);
  await page.$eval('#max-tokens', (e, n) => ((e as HTMLInputElement).value = String(n)), tokens);
  await page.click('#generate');
  return waitState(
    page,
    'generation',
    '!globalThis.longctxPage.generating && (globalThis.longctxPage.result || globalThis.longctxPage.error)',
    timeoutMs,
  );
}

describe('the web page in Chromium', { skip: !have && `no ${CHROMIUM}` }, () => {
  let browser: Browser;
  let page: Page;
  let close: () => void;
  let url: string;
  const diagnostics: string[] = [];

  before(async () => {
    const served = await serveWebPage(webRoot(), 0, '127.0.0.1');
    url = served.url;
    close = () => served.server.close();
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--window-size=1280,800', ...WEBGPU_FLAGS],
      protocolTimeout: 60_000,
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    page.on('pageerror', (e) => diagnostics.push(`pageerror: ${(e as Error).message}`));
    await page.goto(url, { timeout: 20_000 });
    await waitState(page, 'the device', 'globalThis.longctxPage && globalThis.longctxPage.backend', 20_000);
  });

  after(async () => {
    await browser?.close();
    close?.();
  });

  it('bundles the library without Node modules or Dawn', () => {
    const bundle = readFileSync(join(webRoot(), 'app.js'), 'utf8');
    assert.doesNotMatch(bundle, /\bfrom\s*["']node:|\brequire\(["']node:|\bimport\(["']node:/);
    assert.doesNotMatch(bundle, /dawn\.node|node_modules\/webgpu/);
    assert.match(bundle, /navigator\.gpu/);
  });

  it("generates stories260K's greedy text on the CPU backend, streamed into the page", async () => {
    const s = await generateGolden(page, true);
    assert.equal(s.error, undefined);
    assert.equal(s.backend, 'cpu');
    assert.equal(`${s.text}\n`, expectedText());
    assert.equal(s.result!.completionTokens, 200);
    assert.ok(s.result!.kvBytes > 0 && s.result!.decodeTps > 0);
    assert.match(await page.$eval('#cost', (e) => e.textContent ?? ''), /decode200 tokens, [\d.]+ tok\/s/);
  });

  it('draws a window pattern: filled where the block mask keeps tiles, blank where it drops them', async () => {
    const [n, tile, left] = [128, 16, 40];
    await page.select('#layer-0-method', 'window');
    await page.$eval('#layer-0-left', (e, v) => ((e as HTMLInputElement).value = String(v)), left);
    await page.select('#pattern-layer', '0');
    for (const [id, v] of [
      ['#pattern-tokens', n],
      ['#pattern-tile', tile],
      ['#pattern-query', 100],
    ] as const)
      await page.$eval(id, (e, x) => ((e as HTMLInputElement).value = String(x)), v);
    await page.click('#pattern-draw');
    const s = await waitState(
      page,
      'the pattern',
      'globalThis.longctxPage.pattern || globalThis.longctxPage.error',
      10_000,
    );
    assert.equal(s.error, undefined);
    assert.equal(s.pattern!.spec, `window:left=${left}`);
    const side = Math.ceil(n / tile);
    const cell = s.pattern!.cell;
    const centres = await page.$eval(
      '#pattern',
      (c, side, cell) => {
        const ctx = (c as HTMLCanvasElement).getContext('2d')!;
        const out: boolean[] = [];
        for (let qt = 0; qt < side; qt++)
          for (let kt = 0; kt < side; kt++) {
            const [r, g, b] = ctx.getImageData(kt * cell + cell / 2, qt * cell + cell / 2, 1, 1).data;
            out.push(!(r === 255 && g === 255 && b === 255));
          }
        return out;
      },
      side,
      cell,
    );
    // The library's own block mask for the same spec, built here in Node, decides which tiles are kept.
    const b = buildBlockMask(windowMask(parseMethodSpec(`window:left=${left}`), true), n, n, tile, tile);
    const kept = new Set<number>();
    for (let qt = 0; qt < b.queryTiles; qt++)
      for (let i = b.offsets[qt]; i < b.offsets[qt + 1]; i++) kept.add(qt * side + (b.tiles[i] >> 1));
    assert.ok(kept.size > side && kept.size < side * side, 'the window keeps some tiles and drops others');
    centres.forEach((filled, i) =>
      assert.equal(
        filled,
        kept.has(i),
        `tile (${Math.floor(i / side)}, ${i % side}) drawn ${filled}, kept ${kept.has(i)}`,
      ),
    );
  });

  it('shows the typed error for a truncated model file', async () => {
    mkdirSync(OUT, { recursive: true });
    const truncated = join(OUT, 'stories260K-truncated.gguf');
    const bytes = readFileSync(FIXTURE_GGUF);
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    await page.evaluate(() => ((globalThis as { longctxPage?: PageState }).longctxPage!.error = undefined));
    const input = (await page.$('#model-file')) as ElementHandle<HTMLInputElement>;
    await input.uploadFile(truncated);
    const s = await waitState(page, 'the error', 'globalThis.longctxPage.error', 10_000);
    assert.match(s.error!, /^InputError: stories260K-truncated\.gguf: not a valid GGUF file: tensor .* beyond the end/);
    assert.equal(await page.$eval('#error', (e) => (e as HTMLElement).hidden), false);
    assert.match(await page.$eval('#error', (e) => e.textContent ?? ''), /truncated\?/);
  });

  it("loads a Hugging Face directory's files in pieces and generates what Node's loader generates", async () => {
    const dir = join('test', 'fixtures', 'passkey-2k');
    const prompt = 'The pass key for bramble is 4821930. What is the pass key for bramble? The pass key for bramble is';
    const node = await loadModel(dir, { device: 'cpu' });
    const session = await node.createSession({ contextSize: 128 });
    const want = await session.generate(prompt, { maxTokens: 8 }).text();
    node.dispose();
    await page.$eval('#force-cpu', (e) => ((e as HTMLInputElement).checked = true));
    await page.evaluate(() => {
      const s = (globalThis as { longctxPage?: PageState }).longctxPage!;
      s.model = undefined;
      s.error = undefined;
    });
    const input = (await page.$('#model-file')) as ElementHandle<HTMLInputElement>;
    await input.uploadFile(...['config.json', 'tokenizer.json', 'model.safetensors'].map((f) => join(dir, f)));
    const loaded = await waitState(
      page,
      'passkey-2k',
      'globalThis.longctxPage.model || globalThis.longctxPage.error',
      20_000,
    );
    assert.equal(loaded.error, undefined);
    assert.match(
      await page.$eval('#model-status', (e) => e.textContent ?? ''),
      /6 layers, 8 heads \(2 KV\), head dim 32/,
    );
    await page.$eval('#prompt', (e, p) => ((e as HTMLTextAreaElement).value = p), prompt);
    await page.$eval('#max-tokens', (e) => ((e as HTMLInputElement).value = '8'));
    await page.click('#generate');
    const s = await waitState(
      page,
      'generation',
      '!globalThis.longctxPage.generating && (globalThis.longctxPage.result || globalThis.longctxPage.error)',
      30_000,
    );
    assert.equal(s.error, undefined);
    assert.equal(s.text, want);
    assert.match(want, /4821930/, 'passkey-2k retrieves the key it was given');
    await page.$eval('#prompt', (e) => ((e as HTMLTextAreaElement).value = ''));
  });

  it('fits 1280x800 and a narrow window, keyboard reachable; saves a screenshot', async () => {
    await page.setViewport({ width: 1280, height: 800 });
    const shot = join(OUT, 'web-1280x800.png');
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: shot as `${string}.png` });
    assert.ok(readFileSync(shot).length > 10_000);
    diagnostics.push(`screenshot: ${shot}`);
    for (const width of [1280, 420]) {
      await page.setViewport({ width, height: 800 });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `at ${width} px the page is ${overflow} px wider than the window`);
    }
    await page.setViewport({ width: 1280, height: 800 });
    const unreachable = await page.$$eval('button, select, input, textarea', (els) =>
      els.filter((e) => (e as HTMLElement).tabIndex < 0).map((e) => e.id),
    );
    assert.deepEqual(unreachable, []);
    const unlabelled = await page.$$eval('select, input, textarea', (els) =>
      els
        .filter(
          (e) =>
            !e.closest('label') && !e.getAttribute('aria-label') && !document.querySelector(`label[for="${e.id}"]`),
        )
        .map((e) => e.id),
    );
    assert.deepEqual(unlabelled, []);
  });

  it('tries WebGPU in this Chromium and reports which path ran', async (t) => {
    const probe = await page.evaluate(async () => {
      const gpu = (navigator as { gpu?: GPU }).gpu;
      if (!gpu) return 'no navigator.gpu';
      const a = await gpu.requestAdapter();
      return a ? `adapter ${a.info.vendor} ${a.info.architecture} ${a.info.description}`.trim() : 'no adapter';
    });
    let path = `CPU backend (WebGPU: ${probe})`;
    if (probe.startsWith('adapter')) {
      // SwiftShader decodes one to a few tokens a second here: 16 tokens keep the test short; they must begin the golden text.
      const s = await generateGolden(page, false, 16, 45_000);
      assert.equal(s.error, undefined, s.error);
      assert.equal(s.backend, 'webgpu', s.deviceNote);
      assert.ok(s.text.length > 40 && expectedText().startsWith(s.text), `WebGPU's greedy text: ${s.text}`);
      path =
        `WebGPU in the page: ${s.deviceNote}; its 16 greedy tokens begin the golden text; ` +
        `prefill ${s.result!.prefillTps.toFixed(1)} tok/s, decode ${s.result!.decodeTps.toFixed(1)} tok/s`;
    }
    diagnostics.push(`path: ${path} (flags ${WEBGPU_FLAGS.join(' ')})`);
    for (const d of diagnostics) t.diagnostic(d);
    writeFileSync(join(OUT, 'path.txt'), `${diagnostics.join('\n')}\n`);
  });
});
