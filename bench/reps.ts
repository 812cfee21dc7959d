import { CpuMeter, QUIET_THRESHOLD_CORES, waitQuiet } from "./cpu";
import { Budget, median } from "./stats";

export type Log = (line: string) => void;

export interface RepeatOptions {
  readonly what: string;
  /** Undisturbed repetitions wanted. */
  readonly minClean: number;
  /** Repetitions run whatever the budget says (default: minClean). */
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
}

/**
 * Runs `body` until `minClean` repetitions ran on a quiet machine (background below
 * QUIET_THRESHOLD_CORES), at most `maxReps` times, and no optional repetition when the
 * budget is short.
 */
export async function repeat(o: RepeatOptions, body: (rep: number) => Promise<void>): Promise<RepeatResult> {
  const background: number[] = [];
  let lastMs = 0;
  for (let rep = 0; rep < o.maxReps; rep++) {
    const clean = background.filter((b) => b < QUIET_THRESHOLD_CORES).length;
    if (clean >= o.minClean) break;
    if (rep >= (o.minReps ?? o.minClean) && !o.budget.allows(lastMs + o.reserveMs)) {
      o.log(`${o.what}: stopped after ${rep} repetitions (time budget), ${clean} undisturbed`);
      break;
    }
    await waitQuiet(o.meter, o.quietWaitMs);
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
  return { background, used: disturbed ? background.map((_, i) => i) : cleanIdx, disturbed };
}

export function medianOf(values: readonly number[], used: readonly number[]): number {
  return median(used.map((i) => values[i]));
}
