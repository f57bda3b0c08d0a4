// Small promise helpers for the client loops: every wait must also end when the run stops,
// so a broker that blocks publishers or stops confirming cannot hang a thread.

/** A promise that can be resolved from outside, re-armed after each use. */
export class Gate {
  private waiting: Promise<void> | undefined;
  private release: (() => void) | undefined;

  wait(): Promise<void> {
    if (this.waiting === undefined) {
      this.waiting = new Promise<void>((resolve) => {
        this.release = resolve;
      });
    }
    return this.waiting;
  }

  open(): void {
    const release = this.release;
    this.waiting = undefined;
    this.release = undefined;
    release?.();
  }
}

export function sleepMillis(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis));
}

export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Resolves with true when `work` settles first, false when `stop` does. */
export async function unlessStopped(work: Promise<unknown>, stop: Promise<void>): Promise<boolean> {
  return Promise.race([work.then(() => true), stop.then(() => false)]);
}

/** Resolves with true when `work` settles within `millis`, false otherwise; the timer never outlives the wait. */
export async function withinMillis(work: Promise<unknown>, millis: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, millis);
  });
  try {
    return await unlessStopped(work, expired);
  } finally {
    clearTimeout(timer);
  }
}
