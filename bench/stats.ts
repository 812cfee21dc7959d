/** Median (mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1];
}

export function round(value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/**
 * A wall-clock budget for the whole run. Phases ask before each repetition whether enough
 * time is left; a watchdog in run.ts aborts the run at the hard limit regardless.
 */
export class Budget {
  private readonly started = Date.now();
  constructor(readonly totalMs: number) {}
  elapsedMs(): number {
    return Date.now() - this.started;
  }
  remainingMs(): number {
    return this.totalMs - this.elapsedMs();
  }
  /** True when at least `ms` are left. */
  allows(ms: number): boolean {
    return this.remainingMs() >= ms;
  }
}
