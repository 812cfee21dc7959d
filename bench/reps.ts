import { CpuMeter, QUIET_THRESHOLD_CORES, waitQuiet } from "./cpu";
import { Budget, median } from "./stats";

export type Log = (line: string) => void;

export interface RepeatOptions {
  readonly what: string;
  /** Undisturbed repetitions wanted. */
  readonly minClean: number;
  /** Repetitions wanted even when some are disturbed (default: minClean); the time budget may cut below it. */
  readonly minReps?: number;
  /** Hard bound on repetitions. */
  readonly maxReps: number;
  readonly budget: Budget;
  /** Time the rest of the run needs; no optional repetition starts if it would eat into it. */
  readonly reserveMs: number;
  readonly meter: CpuMeter;
  /** Bounded wait for a quiet machine before each repetition. */
  readonly quietWaitMs: number;
  readonly log: Log;
}

export interface RepeatResult {
  /** Background cores (CPU used by everything else) during each repetition. */
  readonly background: number[];
  /** Indices of the repetitions the medians use: the undisturbed ones if there are enough, else all. */
  readonly used: number[];
  readonly disturbed: boolean;
  /** The time budget stopped the repetitions before `wanted` undisturbed ones ran. */
  readonly cut: boolean;
  /** Undisturbed repetitions that were wanted (minClean). */
  readonly wanted: number;
}

/**
 * Runs `body` until `minClean` repetitions ran on a quiet machine (background below
 * QUIET_THRESHOLD_CORES), at most `maxReps` times. The time budget comes first: after the
 * first repetition, none starts unless it (as long as the last one) still leaves `reserveMs`
 * for the rest of the run; the result then says it was cut, so the report can mark it.
 */
export async function repeat(o: RepeatOptions, body: (rep: number) => Promise<void>): Promise<RepeatResult> {
  const background: number[] = [];
  let lastMs = 0;
  let cut = false;
  for (let rep = 0; rep < o.maxReps; rep++) {
    const clean = background.filter((b) => b < QUIET_THRESHOLD_CORES).length;
    if (clean >= o.minClean && rep >= (o.minReps ?? 0)) break;
    if (rep >= 1 && !o.budget.allows(lastMs + o.reserveMs)) {
      cut = clean < o.minClean || rep < (o.minReps ?? 0);
      o.log(`${o.what}: stopped after ${rep} repetitions (time budget), ${clean} undisturbed${cut ? " — CUT" : ""}`);
      break;
    }
    // The wait for a quiet machine never eats into what the rest of the run needs.
    const spareMs = o.budget.remainingMs() - o.reserveMs - lastMs;
    await waitQuiet(o.meter, Math.max(0, Math.min(o.quietWaitMs, spareMs)));
    const started = Date.now();
    const a = o.meter.sample();
    await body(rep);
    const bg = CpuMeter.backgroundCores(a, o.meter.sample());
    background.push(bg);
    lastMs = Date.now() - started;
    if (bg >= QUIET_THRESHOLD_CORES) o.log(`${o.what}: repetition ${rep + 1} disturbed (other processes used ${bg.toFixed(2)} cores)`);
  }
  const cleanIdx = background.map((b, i) => [b, i] as const).filter(([b]) => b < QUIET_THRESHOLD_CORES).map(([, i]) => i);
  const disturbed = cleanIdx.length < o.minClean;
  return { background, used: disturbed ? background.map((_, i) => i) : cleanIdx, disturbed, cut, wanted: o.minClean };
}

export function medianOf(values: readonly number[], used: readonly number[]): number {
  return median(used.map((i) => values[i]).filter((v) => v !== undefined));
}
