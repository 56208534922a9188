// Builds the page into dist/web: the library and the page's code bundled by esbuild for the browser, the
// HTML and CSS, the embedded stories260K and the H200 eval report. The browser gets WebGPU from
// navigator.gpu; Node's modules and Dawn's `webgpu` package are replaced by a stub that throws an
// UnsupportedError if anything reaches it, so the bundle holds no node: import and no native addon
// (test/web.test.ts checks the bundle's text).
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'web');
const NODE_ONLY = new Set(['webgpu', ...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

const nodeStub = {
  name: 'node-stub',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) =>
      NODE_ONLY.has(args.path) ? { path: args.path, namespace: 'node-stub' } : undefined,
    );
    // CommonJS, so that any named import resolves (to a function that throws when called).
    b.onLoad({ filter: /.*/, namespace: 'node-stub' }, (args) => ({
      contents: `const name = ${JSON.stringify(args.path)};
const fail = () => { const e = new Error(name + ' is not available in a browser'); e.name = 'UnsupportedError'; throw e; };
module.exports = new Proxy({}, { get: (_, key) => (key === '__esModule' ? false : fail) });`,
      loader: 'js',
    }));
  },
};

mkdirSync(join(out, 'assets'), { recursive: true });
const result = await build({
  entryPoints: [join(root, 'web', 'src', 'main.ts')],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  outfile: join(out, 'app.js'),
  sourcemap: true,
  minify: false,
  logLevel: 'warning',
  metafile: true,
  plugins: [nodeStub],
});
const stubbed = Object.keys(result.metafile.inputs).filter((p) => p.startsWith('node-stub:'));
writeFileSync(join(out, 'stubbed.json'), JSON.stringify(stubbed.map((p) => p.slice('node-stub:'.length))));
for (const f of ['index.html', 'style.css']) copyFileSync(join(root, 'web', f), join(out, f));
copyFileSync(
  join(root, 'test', 'fixtures', 'stories260K', 'stories260K.gguf'),
  join(out, 'assets', 'stories260K.gguf'),
);
const report = JSON.parse(readFileSync(join(root, 'docs', 'eval-h200', 'report.json'), 'utf8'));
writeFileSync(join(out, 'assets', 'eval-report.json'), JSON.stringify(report));
