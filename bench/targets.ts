/**
 * The one table of performance targets: the report judges against it and docs/benchmarks.md
 * quotes it. A figure is the median of paired repetitions (each repetition measures both sides
 * of the ratio back to back); a target is met when the median meets the limit, and the spread
 * (min, max) is shown next to it. Never loosen a limit here to turn a miss into "met": a target
 * that cannot be met on a machine is shown missed, with what bounds it.
 */

export type Comparison = "at most" | "at least";

export interface Target {
  readonly id: string;
  /** The issue that set the target. */
  readonly issue: number;
  readonly what: string;
  readonly comparison: Comparison;
  readonly limit: number;
  /** A stretch goal: reported like the others, a miss does not fail the run. */
  readonly stretch?: boolean;
}

/** Paired repetitions a ratio needs before it is judged at all. */
export const MIN_REPETITIONS = 5;

export const TARGETS: readonly Target[] = [
  { id: "auth_pull_vs_anonymous", issue: 22, what: "authenticated cached pull time / anonymous pull time", comparison: "at most", limit: 1.1 },
  { id: "upload_vs_direct", issue: 22, what: "upload throughput through the proxy / straight to the registry's socket", comparison: "at least", limit: 0.95 },
  { id: "flood_p99_vs_quiet", issue: 22, what: "valid users' p99 during a wrong-password flood from 8 addresses / without it", comparison: "at most", limit: 1.5 },
  { id: "download_vs_registry_tls", issue: 22, what: "download throughput through the proxy / the registry's own TLS (proxy: false)", comparison: "at least", limit: 1.0 },
  { id: "download_vs_direct", issue: 22, what: "download throughput through the proxy / straight from the registry's socket", comparison: "at least", limit: 0.8, stretch: true },
  { id: "deploy_failures", issue: 19, what: "failed requests of the client loop during a deploy that adds a user", comparison: "at most", limit: 0 },
];

/** Figures recorded without a limit: how things grow with the data (issue 22 item 4) and deploy latency (issue 19 item 5). */
export interface Recorded {
  readonly id: string;
  readonly issue: number;
  readonly what: string;
}

export const RECORDED: readonly Recorded[] = [
  { id: "deploy_p99_vs_before", issue: 19, what: "p99 of the client loop during the deploy (user added) / in the 10 s before it" },
  { id: "catalog_growth", issue: 22, what: "full catalog listing time, 1,000 / 100 repositories" },
  { id: "tags_growth", issue: 22, what: "tag listing time, 50 / 5 tags" },
  { id: "pull_growth", issue: 22, what: "32 concurrent clients pulling a 50-layer / a 5-layer image, wall time" },
  // Not 500 / 50: 50 idle connections add less to nginx's memory than the measurement's noise.
  { id: "memory_per_connection", issue: 22, what: "proxy memory per idle keep-alive TLS connection between 50 and 500 of them, KiB" },
];

export type Verdict = "met" | "MISSED" | "too few repetitions" | "not measured";

export interface Spread {
  readonly n: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export interface Judged extends Target {
  readonly spread?: Spread;
  readonly verdict: Verdict;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function spreadOf(values: readonly number[]): Spread | undefined {
  if (values.length === 0) return undefined;
  return { n: values.length, median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** Judges one target on its samples; a single sample is enough for a count (limit 0 failures). */
export function judge(target: Target, samples: readonly number[] | undefined, minRepetitions = MIN_REPETITIONS): Judged {
  const spread = samples ? spreadOf(samples) : undefined;
  if (!spread) return { ...target, verdict: "not measured" };
  const isCount = target.limit === 0;
  if (!isCount && spread.n < minRepetitions) return { ...target, spread, verdict: "too few repetitions" };
  const ok = target.comparison === "at most" ? spread.median <= target.limit : spread.median >= target.limit;
  return { ...target, spread, verdict: ok ? "met" : "MISSED" };
}

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));

/** One line per target, e.g. `MISSED  #22 upload … ≥ 0.95: median 0.91 (min 0.85, max 0.97, n 5)`. */
export function describeJudged(j: Judged): string {
  const sign = j.comparison === "at most" ? "≤" : "≥";
  const figure = j.spread ? `median ${fmt(j.spread.median)} (min ${fmt(j.spread.min)}, max ${fmt(j.spread.max)}, n ${j.spread.n})` : "no figure";
  return `${j.verdict}${j.stretch ? " (stretch)" : ""}  #${j.issue} ${j.what} ${sign} ${j.limit}: ${figure}`;
}
