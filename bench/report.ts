import { describeJudged, judge, Judged, RECORDED, Recorded, Spread, spreadOf, TARGETS } from "./targets";

/**
 * docs/benchmarks.json and docs/benchmarks.md from what a run measured: every target of
 * bench/targets.ts judged (a miss printed as a miss), the recorded figures with their spread,
 * the absolute figures behind each ratio, the machine and its load.
 */

export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  /** `uptime` at the start and at the end of the run: the machine is shared. */
  readonly uptimeAtStart: string;
  readonly uptimeAtEnd?: string;
  /** openssl speed of the TLS ciphers on one core, MB/s (16 KiB records): a bound on TLS throughput. */
  readonly aeadMBps: Record<string, number>;
  /**
   * The kernel's TCP upper-layer protocols (/proc/sys/net/ipv4/tcp_available_ulp): without "tls"
   * nginx cannot sendfile a blob through TLS and copies it through user space.
   */
  readonly tcpUlps?: string;
}

export interface Measured {
  /** Samples per id of TARGETS or RECORDED: one per paired repetition. */
  readonly samples: Record<string, number[]>;
  /** Absolute figures behind the ratios and what bounds them, by name. */
  readonly figures: Record<string, string>;
}

export interface Report {
  readonly generatedAt: string;
  readonly note: string;
  readonly complete: boolean;
  /** What the time budget or an error stopped, and why. */
  readonly cuts: string[];
  readonly seconds: number;
  readonly machine: Machine;
  readonly targets: Judged[];
  readonly recorded: Array<Recorded & { spread?: Spread }>;
  readonly samples: Record<string, number[]>;
  readonly figures: Record<string, string>;
}

export const SHARED_MACHINE_NOTE =
  "Taken on a shared 2-core machine: the load averages at the start and at the end (uptime) say how quiet it was, and the figures vary between runs by as much as some margins.";

export function buildReport(machine: Machine, measured: Measured, run: { seconds: number; cuts: string[]; now?: Date }): Report {
  const round = (xs: number[]) => xs.map((x) => Math.round(x * 1000) / 1000);
  return {
    generatedAt: (run.now ?? new Date()).toISOString(),
    note: SHARED_MACHINE_NOTE,
    complete: run.cuts.length === 0,
    cuts: run.cuts,
    seconds: Math.round(run.seconds),
    machine,
    targets: TARGETS.map((t) => judge(t, measured.samples[t.id])),
    recorded: RECORDED.map((r) => ({ ...r, spread: spreadOf(measured.samples[r.id] ?? []) })),
    samples: Object.fromEntries(Object.entries(measured.samples).map(([k, v]) => [k, round(v)])),
    figures: measured.figures,
  };
}

const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));

/** The lines printed at the end of a run. */
export function renderTable(report: Report): string {
  const lines = report.targets.map(describeJudged);
  for (const r of report.recorded) {
    const s = r.spread;
    lines.push(`recorded  #${r.issue} ${r.what}: ${s ? `median ${num(s.median)} (min ${num(s.min)}, max ${num(s.max)}, n ${s.n})` : "not measured"}`);
  }
  if (!report.complete) lines.push(`INCOMPLETE: ${report.cuts.join("; ")}`);
  return lines.join("\n");
}

export function renderMarkdown(report: Report): string {
  const cell = (s?: Spread) => (s ? `${num(s.median)} | ${num(s.min)} – ${num(s.max)} | ${s.n}` : "– | – | 0");
  const m = report.machine;
  return [
    "# Benchmarks",
    "",
    "Written by `npm run bench` (bench/run.ts) from docs/benchmarks.json; the targets come from",
    "[bench/targets.ts](../bench/targets.ts), the one table of targets. Every figure is measured on the",
    "stack as deployed by `cdktf deploy` (the e2e harness: private engine, real providers). How the bench",
    "works: [docs/testing.md](testing.md) (`npm run bench`).",
    "",
    ...(report.complete ? [] : [`**INCOMPLETE**: ${report.cuts.join("; ")}`, ""]),
    `**${report.note}**`,
    "",
    `Run of ${report.generatedAt}, ${report.seconds} s; ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.kernel}, Node ${m.node}.`,
    `uptime at the start: \`${m.uptimeAtStart}\`; at the end: \`${m.uptimeAtEnd ?? "not reached"}\`.`,
    "",
    "## Targets",
    "",
    "Met when the median of the paired repetitions meets the limit.",
    "",
    "| verdict | issue | ratio | limit | median | min – max | n |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...report.targets.map(
      (t) => `| ${t.verdict === "met" ? "met" : `**${t.verdict}**`}${t.stretch ? " (stretch)" : ""} | #${t.issue} | ${t.what} | ${t.comparison === "at most" ? "≤" : "≥"} ${t.limit} | ${cell(t.spread)} |`,
    ),
    "",
    "## Recorded (no limit set)",
    "",
    "| issue | figure | median | min – max | n |",
    "| --- | --- | --- | --- | --- |",
    ...report.recorded.map((r) => `| #${r.issue} | ${r.what} | ${cell(r.spread)} |`),
    "",
    "## Figures behind the ratios, and what bounds them",
    "",
    ...Object.entries(report.figures).map(([k, v]) => `- ${k}: ${v}`),
    `- TLS ciphers on one core (openssl speed, 16 KiB records): ${Object.entries(m.aeadMBps).map(([c, v]) => `${c} ${v} MB/s`).join(", ") || "not measured"}`,
    `- kernel TLS (sendfile through TLS): ${m.tcpUlps === undefined ? "not checked" : m.tcpUlps.split(" ").includes("tls") ? "available" : `not available (TCP upper-layer protocols: ${m.tcpUlps || "none"})`}`,
    "",
  ].join("\n");
}
