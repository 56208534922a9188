// The README's library example and docs/LIBRARY.md's guide run as written (import 'longctx' pointed at this
// build), from the repository root, and print what the text says they print.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const INDEX = new URL('../src/index.js', import.meta.url).href;

/** The ```js block after `<!-- example: NAME -->` in a markdown file, importing this build. */
function example(file: string, name: string): string {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const at = text.indexOf(`<!-- example: ${name} -->`);
  assert.ok(at >= 0, `${file} has no example ${name}`);
  const m = /```js\n([\s\S]*?)```/.exec(text.slice(at));
  assert.ok(m, `${file}: example ${name} has no js block`);
  return m[1].replaceAll("from 'longctx'", `from '${INDEX}'`);
}

function run(code: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'longctx-example-'));
  const file = join(dir, 'example.mjs');
  writeFileSync(file, code);
  return execFileSync(process.execPath, [file], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
}

describe('documented examples', () => {
  it("README's library example", () => {
    const lines = run(example('README.md', 'readme-library')).trim().split('\n');
    // stories260K: 5 layers x 4 KV heads x 8 dims x 2 (K, V), a window of 1025 rows, f32 or f16.
    assert.ok([5 * 1025 * 2 * 4 * 8 * 4, 5 * 1025 * 2 * 4 * 8 * 2].includes(Number(lines[0])), lines[0]);
    assert.equal(lines[1], ', there was a little girl named Lily 15');
  });

  it("docs/LIBRARY.md's guide", () => {
    const out = run(example('docs/LIBRARY.md', 'library-guide'));
    assert.match(out, /^128K exact: KV 167772160 bytes, fits: true$/m);
    assert.match(out, /^refused: needs \d+ bytes; fits: sinks:tokens=4,left=4096$/m);
    assert.match(out, /^stop: \d+ tokens, 16 of 17 from the cache$/m);
    assert.match(out, /^chat: true$/m);
    assert.match(out, /^aborted: AbortError$/m);
  });
});
