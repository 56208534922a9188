// The house rules that no formatter keeps: the layer rule over the real import graph of src/ (docs/DESIGN.md's
// layer list is its source of truth), the line budget of a file and the length of a line.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/test/ -> the repository
const DESIGN = 'docs/DESIGN.md';
const REFERENCE = 'src/reference/';
/** The package root re-exports the float64 references on purpose: a user's truth to check a result against. */
const MAY_IMPORT_REFERENCE = new Set(['src/index.ts']);

/** One item of the layer list: its number (bottom 1) and the paths it holds (`src/x/` folders, `src/y.ts` files). */
export interface Layer {
  rank: number;
  paths: string[];
}

export interface ImportEdge {
  from: string;
  to: string;
  typeOnly: boolean;
}

/** The numbered list under DESIGN.md's "## Layers" heading: `3. \`src/spine/\`, \`src/weights/\`: ...`. */
export function parseLayers(markdown: string): Layer[] {
  const section = markdown.split(/^## /m).find((s) => s.startsWith('Layers'));
  if (!section) throw new Error(`${DESIGN} has no "## Layers" section`);
  const layers: Layer[] = [];
  for (const line of section.split('\n')) {
    const item = /^(\d+)\. ([^:]*):/.exec(line);
    if (!item) continue;
    const paths = [...item[2].matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    layers.push({ rank: Number(item[1]), paths });
  }
  if (layers.length === 0) throw new Error(`${DESIGN}'s "## Layers" section lists no layers`);
  return layers;
}

/** The layer of a file: the item whose path matches it longest (a file beats its folder). */
export function layerOf(file: string, layers: Layer[]): { rank: number; path: string } | undefined {
  let best: { rank: number; path: string } | undefined;
  for (const layer of layers)
    for (const path of layer.paths) {
      const hit = path.endsWith('/') ? file.startsWith(path) : file === path;
      if (hit && (!best || path.length > best.path.length)) best = { rank: layer.rank, path };
    }
  return best;
}

/** What breaks the rule, one line each: upward imports, production code that imports the references,
 * references that import code (not types) from above layer 1, files in no layer. */
export function layerViolations(edges: ImportEdge[], files: string[], layers: Layer[]): string[] {
  const problems: string[] = [];
  for (const file of files)
    if (!layerOf(file, layers))
      problems.push(`${file} is in no layer of ${DESIGN}: add it (or its folder) to the list`);
  const reference = layerOf(REFERENCE, layers)?.rank;
  for (const { from, to, typeOnly } of edges) {
    const a = layerOf(from, layers);
    const b = layerOf(to, layers);
    if (!a || !b) continue;
    const what = `${from} (layer ${a.rank}, ${a.path}) imports ${to} (layer ${b.rank}, ${b.path})`;
    if (b.rank > a.rank) problems.push(`${what}: an upward import`);
    else if (to.startsWith(REFERENCE) && !from.startsWith(REFERENCE) && !MAY_IMPORT_REFERENCE.has(from))
      problems.push(`${what}: production code never imports the float64 references`);
    else if (from.startsWith(REFERENCE) && !to.startsWith(REFERENCE) && !typeOnly && b.rank > 1 && b.rank !== reference)
      problems.push(`${what}: a reference imports only types from above layer 1, so it shares no code it checks`);
  }
  return problems;
}

/** Relative import and export-from specifiers of a TypeScript file (dynamic imports too), resolved to files. */
export function importsOf(file: string, text: string): ImportEdge[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const edges: ImportEdge[] = [];
  const add = (specifier: ts.Expression | undefined, typeOnly: boolean) => {
    if (!specifier || !ts.isStringLiteral(specifier) || !specifier.text.startsWith('.')) return;
    const to = posix.normalize(posix.join(posix.dirname(file), specifier.text)).replace(/\.js$/, '.ts');
    edges.push({ from: file, to, typeOnly });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      const named = clause?.namedBindings;
      const allTypes =
        !!clause &&
        (clause.isTypeOnly ||
          (!clause.name &&
            !!named &&
            ts.isNamedImports(named) &&
            named.elements.length > 0 &&
            named.elements.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier, allTypes);
    } else if (ts.isExportDeclaration(node)) {
      const named = node.exportClause;
      const allTypes =
        node.isTypeOnly ||
        (!!named && ts.isNamedExports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly));
      add(node.moduleSpecifier, allTypes);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0], false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return edges;
}

function filesUnder(dir: string, ending: RegExp): string[] {
  const abs = join(ROOT, dir);
  try {
    statSync(abs);
  } catch {
    return [];
  }
  return readdirSync(abs, { recursive: true, encoding: 'utf8' })
    .filter((f) => ending.test(f) && statSync(join(abs, f)).isFile())
    .map((f) => posix.join(dir, f.split('\\').join('/')))
    .sort();
}

const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');
const sources = filesUnder('src', /\.ts$/);
const lineCount = (text: string) => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);

describe('the layer rule', () => {
  const layers = parseLayers(read(DESIGN));

  test('the checker names an upward import, a reference import and a file in no layer', () => {
    const demo: Layer[] = [
      { rank: 1, paths: ['src/tensor.ts'] },
      { rank: 2, paths: ['src/kernels/'] },
      { rank: 3, paths: ['src/reference/'] },
      { rank: 4, paths: ['src/attention/'] },
    ];
    const edges: ImportEdge[] = [
      { from: 'src/kernels/a.ts', to: 'src/attention/b.ts', typeOnly: true },
      { from: 'src/attention/b.ts', to: 'src/reference/r.ts', typeOnly: false },
      { from: 'src/reference/r.ts', to: 'src/kernels/a.ts', typeOnly: false },
      { from: 'src/reference/r.ts', to: 'src/kernels/a.ts', typeOnly: true },
      { from: 'src/reference/r.ts', to: 'src/tensor.ts', typeOnly: false },
      { from: 'src/attention/b.ts', to: 'src/kernels/a.ts', typeOnly: false },
    ];
    const problems = layerViolations(edges, ['src/kernels/a.ts', 'src/misc.ts'], demo);
    assert.deepEqual(problems, [
      `src/misc.ts is in no layer of ${DESIGN}: add it (or its folder) to the list`,
      'src/kernels/a.ts (layer 2, src/kernels/) imports src/attention/b.ts (layer 4, src/attention/): an upward import',
      'src/attention/b.ts (layer 4, src/attention/) imports src/reference/r.ts (layer 3, src/reference/): ' +
        'production code never imports the float64 references',
      'src/reference/r.ts (layer 3, src/reference/) imports src/kernels/a.ts (layer 2, src/kernels/): ' +
        'a reference imports only types from above layer 1, so it shares no code it checks',
    ]);
  });

  test('the parser sees imports, type-only imports, export-from and dynamic imports', () => {
    const text = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      "import { type C, type D } from './c.js';",
      "import { type E, f } from './e.js';",
      "export { g } from './g.js';",
      "export type { H } from './h.js';",
      "import assert from 'node:assert';",
      "const m = await import('../model/m.js');",
      "let t: import('./t.js').T;",
    ].join('\n');
    const edges = importsOf('src/x/y.ts', text).map((e) => `${e.to}${e.typeOnly ? ' (type)' : ''}`);
    assert.deepEqual(edges, [
      'src/x/a.ts',
      'src/b.ts (type)',
      'src/x/c.ts (type)',
      'src/x/e.ts',
      'src/x/g.ts',
      'src/x/h.ts (type)',
      'src/model/m.ts',
      'src/x/t.ts (type)',
    ]);
  });

  test(`every import in src/ goes down the layers of ${DESIGN}`, () => {
    assert.ok(sources.length > 50, `found only ${sources.length} files under src/`);
    const edges = sources.flatMap((file) => importsOf(file, read(file)));
    const missing = edges.filter((e) => !sources.includes(e.to)).map((e) => `${e.from} imports ${e.to}, not found`);
    assert.deepEqual(missing, []);
    assert.deepEqual(layerViolations(edges, sources, layers), []);
  });

  test('every path in the layer list exists or is marked as not yet written', () => {
    const listed = layers.flatMap((l) => l.paths);
    const design = read(DESIGN);
    const absent = listed.filter((p) => {
      try {
        statSync(join(ROOT, p));
        return false;
      } catch {
        return !design.includes(`\`${p}\` (not yet)`);
      }
    });
    assert.deepEqual(absent, []);
  });
});

/** Files over the budget that are being split now, each with who splits it. Keep this list empty. */
/** Files allowed over the budget, each with the reason (none today). */
const OVER_BUDGET = new Map<string, string>();
const LINE_BUDGET = 400;

describe('the line budget', () => {
  test(`no file in src/ is over ${LINE_BUDGET} lines`, (t) => {
    const sizes = sources.map((file) => ({ file, lines: lineCount(read(file)) })).sort((a, b) => b.lines - a.lines);
    t.diagnostic(
      `largest: ${sizes
        .slice(0, 5)
        .map((s) => `${s.file} ${s.lines}`)
        .join(', ')}`,
    );
    const over = sizes.filter((s) => s.lines > LINE_BUDGET && !OVER_BUDGET.has(s.file));
    assert.deepEqual(
      over.map((s) => `${s.file}: ${s.lines} lines`),
      [],
    );
  });
});

const MAX_LINE = 150;

describe('the line length', () => {
  test(`no line of TypeScript in src/, test/ or scripts/ is over ${MAX_LINE} characters (split strings, comments)`, () => {
    const files = [...sources, ...filesUnder('test', /\.ts$/), ...filesUnder('scripts', /\.ts$/)].filter(
      (f) => !f.startsWith('test/fixtures/'),
    );
    const long: string[] = [];
    for (const file of files)
      read(file)
        .split('\n')
        .forEach((line, i) => {
          const length = [...line].length;
          if (length > MAX_LINE) long.push(`${file}:${i + 1} has ${length} characters`);
        });
    assert.deepEqual(long, []);
  });
});
