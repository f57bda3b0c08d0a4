/**
 * Typed access to Atomics.waitAsync (Node 20 has it; the ES2023 lib the project compiles
 * against does not declare it, that arrived with ES2024).
 */
import assert from 'node:assert/strict';

export type WaitAsyncResult =
  | { async: false; value: 'not-equal' | 'timed-out' }
  | { async: true; value: Promise<'ok' | 'timed-out'> };

type WaitAsync = (words: Int32Array, index: number, expected: number, timeoutMs?: number) => WaitAsyncResult;

const waitAsyncFunction = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync;
assert(typeof waitAsyncFunction === 'function', 'Atomics.waitAsync is missing: rings need Node.js 20 or later');
const boundWaitAsync: WaitAsync = waitAsyncFunction.bind(Atomics);

/** Resolves when `words[index]` is notified; returns at once if it no longer holds `expected`. */
export function waitAsync(words: Int32Array, index: number, expected: number): WaitAsyncResult {
  return boundWaitAsync(words, index, expected);
}
