// Star and Ring layers in the model runner, in one process. Star: the first forward of a sequence is its
// prompt; its last `query` tokens (default 0) are the query, the rest the context, encoded block by block
// with the anchor (phase 1); the query and every generated token see all before them (phase 2). In one
// process that is flash attention under one block mask (attention/star-mask.ts) — the same visible sets a
// multi-host run computes and merges. Ring is exact attention, so one process runs it as flash.
import { ShapeError, UnsupportedError } from '../../errors.js';
import type { MaskNode } from '../../spine/mask.js';
import type { MethodSpec } from '../../attention/spec.js';
import { starParams } from '../../attention/star.js';
import { starMask } from '../../attention/star-mask.js';

/** Refuses what the runner cannot do for these methods: layers spread over hosts. */
export function checkStarRingLayer(method: MethodSpec): void {
  if (method.name !== 'star' && method.name !== 'ring') return;
  const hosts = Number(method.params.hosts ?? 1);
  if (hosts > 1) {
    throw new UnsupportedError(
      `${method.name}:hosts=${hosts} in the model runner: layers run in one process (the same visible sets as ` +
        `across hosts); drop hosts=, or use \`longctx attend --hosts\` for one attention call across hosts`,
    );
  }
  if (method.name === 'star') starParams(method); // spec errors before any weight is touched
}

/** The Star mask of every star layer for the current sequence, fixed by its prompt length. */
export class StarMasks {
  private prompt?: number;
  private readonly masks = new Map<string, MaskNode>();

  constructor(private readonly capacity: number) {}

  /** The first forward of a sequence: its tokens are the prompt. */
  begin(promptTokens: number): void {
    this.prompt = promptTokens;
    this.masks.clear();
  }

  mask(method: MethodSpec): MaskNode {
    if (this.prompt === undefined)
      throw new ShapeError('star: no prompt yet (the first forward of a sequence fixes the context)');
    const key = JSON.stringify(method.params);
    let m = this.masks.get(key);
    if (!m) {
      const p = starParams(method);
      if (p.query > this.prompt)
        throw new ShapeError(`star: query=${p.query} exceeds the prompt's ${this.prompt} tokens`);
      m = starMask(p, this.prompt - p.query, this.capacity);
      this.masks.set(key, m);
    }
    return m;
  }
}
