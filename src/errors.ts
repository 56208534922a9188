// Typed errors: callers catch by class, and every message says what was wrong and what to do.

export class LongctxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Shapes or dtypes that do not fit together (wrong rank, Hq not a multiple of Hkv, ...). */
export class ShapeError extends LongctxError {}

/** A file or argument that cannot be read as what it claims to be. */
export class InputError extends LongctxError {}

/** A method spec that does not parse or names an unknown method or key. */
export class SpecError extends LongctxError {}

/** A feature or size that the chosen backend or kernel does not support. */
export class UnsupportedError extends LongctxError {}

/** The work needs more memory than the device allows; nothing was allocated. */
export class OutOfMemoryError extends LongctxError {
  constructor(
    message: string,
    readonly requestedBytes: number,
    readonly limitBytes: number,
  ) {
    super(message);
  }
}

/** The device could not be acquired, or it reported an error. */
export class DeviceError extends LongctxError {}

/** A host of a distributed run (Star, Ring over NATS) died, stopped answering or failed; `host` names it. */
export class HostError extends DeviceError {
  constructor(
    message: string,
    readonly host: string,
  ) {
    super(message);
  }
}

/** A host of a distributed model run loaded a different model (its weights and config hash differently). */
export class ModelMismatchError extends InputError {
  constructor(
    message: string,
    readonly host: string,
  ) {
    super(message);
  }
}

/** A value that must be finite is not: a weight at load, or an activation of a layer while decoding. */
export class NonFiniteError extends InputError {
  constructor(
    message: string,
    /** The tensor or layer named, e.g. "blk.3.attn_q.weight" or "layer 5". */
    readonly where: string,
  ) {
    super(message);
  }
}
