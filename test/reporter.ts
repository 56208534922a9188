// The tests' reporter (package.json's `npm test`): node's own, spec on a terminal and tap otherwise (as with no
// --test-reporter), without Dawn's two "artificially reduced" warnings, which every test file that opens
// WebGPU on lavapipe printed from C++ to its stderr (twice per file, ~50 lines a run). The filter is the CLI's
// (cli/quiet-dawn.ts): exactly those two lines go, everything else a test writes passes through.
import { Readable } from 'node:stream';
import { spec, tap } from 'node:test/reporters';
import { dropDawnWarnings } from '../src/cli/quiet-dawn.js';

interface Event {
  type: string;
  data: { file?: string; message?: string };
}

async function* withoutDawn(source: AsyncIterable<Event>): AsyncGenerator<Event> {
  const pending = new Map<string, string>();
  for await (const event of source) {
    if (event.type !== 'test:stderr' || typeof event.data.message !== 'string') {
      yield event;
      continue;
    }
    const file = event.data.file ?? '';
    const r = dropDawnWarnings(pending.get(file) ?? '', event.data.message);
    pending.set(file, r.pending);
    if (r.out) yield { ...event, data: { ...event.data, message: r.out } };
  }
}

export default async function* reporter(source: AsyncIterable<Event>): AsyncGenerator<string | Buffer> {
  if (process.stdout.isTTY) {
    const s = new spec();
    yield* Readable.from(withoutDawn(source)).pipe(s) as AsyncIterable<string | Buffer>;
  } else yield* tap(withoutDawn(source) as unknown as Parameters<typeof tap>[0]);
}
