// Assertions for invariants: a failure is a bug in Tessera, never a user error, so it throws loudly.

export class AssertionError extends Error {
  override name = 'AssertionError';
}

/** Throws AssertionError when `condition` is false. Use for invariants, not for input validation. */
export function assert(condition: unknown, message: string | (() => string) = 'assertion failed'): asserts condition {
  if (!condition) throw new AssertionError(typeof message === 'function' ? message() : message);
}

export function unreachable(value: never, what = 'value'): never {
  throw new AssertionError(`unexpected ${what}: ${JSON.stringify(value)}`);
}
