import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GcBenchResult, runGcBench } from "./gc-bench";
import { Lab } from "./lab";
import { CLIENTS, LAYER_BYTES, LAYERS, MirrorBenchResult, runMirrorBench } from "./mirror-bench";
import { killAllChildren } from "./proc";
import { Machine } from "./report";
import { RepeatResult } from "./reps";
import { Budget, round } from "./stats";

/**
 * `npm run bench -- --storage`: the storage lifecycle's write window (issue #9) and concurrent
 * cold pulls through a mirror (issue #10) → docs/benchmarks-storage.{json,md}. A mode of its own
 * so the main run keeps its ~8 minutes. Same rules as the main run: one engine of its own,
 * repetitions bounded by a time budget (cuts are marked), a watchdog at the hard limit.
 */

/** Time the mirror part needs after the gc part (estimate on the 2-vCPU machine, with margin). */
const MIRROR_PHASE_MS = 120_000;

export const STORAGE_PARTS = ["gc", "mirror"] as const;
export type StoragePart = (typeof STORAGE_PARTS)[number];
const STORAGE_PART_TITLES: Record<StoragePart, string> = { gc: "storage lifecycle (gc)", mirror: "mirrors" };

/** When and how one part's figures were measured. */
export interface StoragePartRun {
  readonly generated: string;
  readonly command: string;
  readonly totalRunSeconds: number;
}

export interface StorageReport {
  readonly generated: string;
  readonly command: string;
  readonly totalRunSeconds: number;
  /**
   * Per part, the run its figures come from: a run narrowed with --only=<part> replaces that
   * part's figures, definitions, context, checks and run-quality notes and keeps the others'.
   * @default - both parts from this run (reports written before --only existed)
   */
  readonly parts?: Partial<Record<StoragePart, StoragePartRun>>;
  readonly machine: Machine;
  readonly ratios: Record<string, number>;
  /** Absolute figures users plan with (machine-dependent). */
  readonly figures: Record<string, number>;
  readonly definitions: Record<string, string>;
  readonly context: Record<string, unknown>;
  readonly checks: string[];
  readonly cuts: string[];
  readonly disturbed: string[];
}

export async function runStorageMode(o: {
  budget: Budget;
  hardLimitMs: number;
  cleanupReserveMs: number;
  quick: boolean;
  /** The parts to measure; the others' figures are kept from docs/benchmarks-storage.json. */
  parts: ReadonlySet<StoragePart>;
  docsDir: string;
  machine: () => Promise<Machine>;
  log: (line: string) => void;
}): Promise<number> {
  const jsonFile = path.join(o.docsDir, "benchmarks-storage.json");
  const kept = STORAGE_PARTS.filter((p) => !o.parts.has(p));
  // Read before measuring: a narrowed run without the figures it keeps would fail only at the end.
  const previous = kept.length > 0 ? (JSON.parse(fs.readFileSync(jsonFile, "utf8")) as StorageReport) : undefined;
  const lab = new Lab(o.log);
  let aborted = false;
  const watchdog = new Promise<never>((_, reject) => {
    const timer = setTimeout(() => {
      aborted = true;
      reject(new Error(`time limit of ${o.hardLimitMs / 1000} s reached`));
    }, o.hardLimitMs - o.cleanupReserveMs);
    timer.unref();
  });
  const work = async () => {
    const info = await o.machine();
    o.log("starting the bench engine and importing the e2e images (with distribution v3.1.1)");
    await lab.start();
    let gc: GcBenchResult | undefined;
    let mirror: MirrorBenchResult | undefined;
    if (o.parts.has("gc")) {
      o.log("storage part 1: maintenance job write window");
      gc = await runGcBench(lab, { budget: o.budget, reserveMs: o.cleanupReserveMs + (o.parts.has("mirror") ? MIRROR_PHASE_MS : 0), log: o.log, quick: o.quick });
    }
    if (o.parts.has("mirror")) {
      o.log("storage part 2: concurrent cold pulls through a mirror");
      mirror = await runMirrorBench(lab, { budget: o.budget, reserveMs: o.cleanupReserveMs, log: o.log, quick: o.quick });
    }
    return { info, gc, mirror };
  };
  let result: Awaited<ReturnType<typeof work>>;
  try {
    result = await Promise.race([work(), watchdog]);
  } catch (err) {
    console.error(`bench failed: ${(err as Error).message}`);
    if (aborted) killAllChildren();
    await lab.cleanup();
    return aborted ? 3 : 1;
  }
  await lab.cleanup();
  const only = kept.length > 0 ? ` --only=${[...o.parts].join(",")}` : "";
  const fresh = buildStorageReport(result.info, result.gc, result.mirror, o.budget.elapsedMs() / 1000, `npm run bench -- --storage${only}${o.quick ? " --quick" : ""}`);
  const report = previous ? mergeStorageReports(previous, fresh, kept) : fresh;
  const markdown = renderStorageMarkdown(report);
  console.log(markdown);
  if (o.quick) {
    const file = path.join(os.tmpdir(), "rsbench-storage-quick.md");
    fs.writeFileSync(file, markdown);
    console.log(`quick run: docs not written; rendered to ${file}`);
  } else {
    fs.writeFileSync(jsonFile, JSON.stringify(report, null, 2) + "\n");
    fs.writeFileSync(path.join(o.docsDir, "benchmarks-storage.md"), markdown);
    console.log(`wrote docs/benchmarks-storage.md and docs/benchmarks-storage.json (total ${report.totalRunSeconds} s)`);
  }
  return 0;
}

function loopInfo(r: RepeatResult) {
  return {
    background_cores_per_repetition: r.background.map((v) => round(v, 2)),
    medians_over_repetitions: r.used.map((i) => i + 1),
    disturbed: r.disturbed,
    cut: r.cut,
    wanted: r.wanted,
  };
}

/** Whether a key of figures/ratios/definitions, or a check or run-quality line, belongs to `part`. */
function ofPart(part: StoragePart, entry: string): boolean {
  return entry.startsWith(part === "gc" ? "gc" : "mirror");
}

/**
 * `fresh` measured some parts; the `kept` parts come from `previous`, with the run they were
 * measured in (its own `parts` entry, or its top-level date and command).
 */
export function mergeStorageReports(previous: StorageReport, fresh: StorageReport, kept: readonly StoragePart[]): StorageReport {
  const keepEntry = (entry: string) => kept.some((p) => ofPart(p, entry));
  const pick = <T>(record: Record<string, T>, mine: boolean) => Object.fromEntries(Object.entries(record).filter(([k]) => keepEntry(k) === mine));
  const merged = <T>(old: Record<string, T>, now: Record<string, T>) => ({ ...pick(old, true), ...pick(now, false) });
  const lines = (old: string[], now: string[]) => [...old.filter(keepEntry), ...now.filter((l) => !keepEntry(l))];
  const parts: Partial<Record<StoragePart, StoragePartRun>> = {};
  for (const part of STORAGE_PARTS) {
    parts[part] = kept.includes(part)
      ? (previous.parts?.[part] ?? { generated: previous.generated, command: previous.command, totalRunSeconds: previous.totalRunSeconds })
      : { generated: fresh.generated, command: fresh.command, totalRunSeconds: fresh.totalRunSeconds };
  }
  return {
    ...fresh,
    parts,
    ratios: merged(previous.ratios, fresh.ratios),
    figures: merged(previous.figures, fresh.figures),
    definitions: merged(previous.definitions, fresh.definitions),
    context: merged(previous.context, fresh.context),
    checks: lines(previous.checks, fresh.checks),
    cuts: lines(previous.cuts, fresh.cuts),
    disturbed: lines(previous.disturbed, fresh.disturbed),
  };
}

export function buildStorageReport(machine: Machine, gc: GcBenchResult | undefined, mirror: MirrorBenchResult | undefined, totalS: number, command: string): StorageReport {
  const ratios: Record<string, number> = {};
  const figures: Record<string, number> = {};
  const definitions: Record<string, string> = {};
  const cuts: string[] = [];
  const disturbed: string[] = [];
  const loop = (name: string, r: RepeatResult) => {
    if (r.cut) cuts.push(`${name}: ${r.background.length} repetitions run, ${r.wanted} undisturbed wanted`);
    if (r.disturbed) disturbed.push(`${name}: fewer than ${r.wanted} undisturbed repetitions; medians over all ${r.background.length}`);
  };
  const context: Record<string, unknown> = {};
  if (gc) {
    const settleMs = gc.settleSeconds * 1000;
    const gcContext: Record<string, unknown> = { write_settle_seconds: gc.settleSeconds };
    for (const s of gc.shapes) {
      loop(`gc ${s.shape.key}`, s.reps);
      const k = s.shape.key;
      figures[`gc_${k}_write_window_s`] = round(s.writeWindowMedianMs / 1000, 2);
      figures[`gc_${k}_collector_s`] = round(s.collectorMedianMs / 1000, 2);
      figures[`gc_${k}_retention_s`] = round(s.retentionMedianMs / 1000, 2);
      definitions[`gc_${k}_write_window_s`] = `write window of one maintenance run on the ${s.shape.label} store (${s.store.blobs} blobs, ${s.store.manifests} manifests), median, seconds; includes writeSettleSeconds ${gc.settleSeconds}`;
      definitions[`gc_${k}_collector_s`] = `wall time of \`registry garbage-collect\` in that run (the job's durationsMs.collector), median, seconds`;
      definitions[`gc_${k}_retention_s`] = `planning + deleting tags and manifests in that run (durationsMs.retention), median, seconds`;
      gcContext[k] = {
        shape: s.shape,
        store: s.store,
        runs: s.runs,
        ...loopInfo(s.reps),
      };
    }
    const large = gc.shapes.find((s) => s.shape.key === "large");
    if (large) {
      figures.gc_write_window_per_10k_blobs_s = round((large.writeWindowMedianMs / large.store.blobs) * 10_000 / 1000, 2);
      definitions.gc_write_window_per_10k_blobs_s = `write window of the large store scaled to 10,000 blobs (median window ÷ ${large.store.blobs} × 10,000), seconds, writeSettleSeconds included`;
      figures.gc_work_per_10k_blobs_s = round(((large.writeWindowMedianMs - settleMs) / large.store.blobs) * 10_000 / 1000, 2);
      definitions.gc_work_per_10k_blobs_s = "the same without the fixed writeSettleSeconds (retention step + collector + blob listing), seconds per 10,000 blobs";
      const suite = gc.shapes.find((s) => s.shape.key === "suite");
      if (suite) {
        ratios.gc_large_vs_suite_window = round(large.writeWindowMedianMs / suite.writeWindowMedianMs, 2);
        definitions.gc_large_vs_suite_window = "write window on the large store ÷ on the suite-sized store (same run, same settle time)";
      }
    }
    context.gc = gcContext;
  }
  if (mirror) {
    loop("mirror pulls", mirror.reps);
    ratios.mirror_cold_vs_upstream = round(mirror.coldMedianS / mirror.directMedianS, 2);
    ratios.mirror_warm_vs_upstream = round(mirror.warmMedianS / mirror.directMedianS, 2);
    definitions.mirror_cold_vs_upstream = `time until ${CLIENTS} concurrent pulls of the ${LAYERS}-layer image all finished through a cold mirror ÷ the same ${CLIENTS} pulls straight from the upstream (lower is better)`;
    definitions.mirror_warm_vs_upstream = `the same through the mirror once it holds the image ÷ straight from the upstream (lower is better)`;
    const perBlob = mirror.coldFetches.flatMap((c) => Object.values(c));
    const perRound = mirror.coldFetches.map((c) => Object.values(c).reduce((a, b) => a + b, 0));
    figures.mirror_cold_upstream_fetches_per_blob_max = Math.max(...perBlob);
    figures.mirror_cold_upstream_fetches_per_blob_min = Math.min(...perBlob);
    figures.mirror_cold_upstream_fetches_per_blob_mean = round(perBlob.reduce((a, b) => a + b, 0) / perBlob.length, 2);
    figures.mirror_warm_upstream_fetches = Math.max(...mirror.warmFetches);
    definitions.mirror_cold_upstream_fetches_per_blob_max = `most upstream downloads of one blob during one cold round of ${CLIENTS} concurrent pulls (the issue asks for 1)`;
    definitions.mirror_cold_upstream_fetches_per_blob_min = "fewest upstream downloads of one blob during one cold round";
    definitions.mirror_cold_upstream_fetches_per_blob_mean = "mean upstream downloads per blob over all cold rounds";
    definitions.mirror_warm_upstream_fetches = "upstream blob downloads during a warm round (all blobs, most of any round)";
    context.mirror = {
      clients: CLIENTS,
      layers: LAYERS,
      layer_bytes: LAYER_BYTES,
      blobs: mirror.blobs.length,
      image_bytes: mirror.imageBytes,
      direct_s: mirror.directS.map((v) => round(v, 2)),
      cold_s: mirror.coldS.map((v) => round(v, 2)),
      warm_s: mirror.warmS.map((v) => round(v, 2)),
      direct_median_s: round(mirror.directMedianS, 2),
      cold_median_s: round(mirror.coldMedianS, 2),
      warm_median_s: round(mirror.warmMedianS, 2),
      cold_upstream_fetches_per_round: perRound,
      cold_upstream_fetches_per_blob: mirror.coldFetches.map((c) => mirror.blobs.map((b) => c[b])),
      warm_upstream_fetches_per_round: mirror.warmFetches,
      cold_proxy_cache_statuses: mirror.coldCacheStatuses,
      warm_proxy_cache_statuses: mirror.warmCacheStatuses,
      ...loopInfo(mirror.reps),
    };
  }
  return {
    generated: new Date().toISOString(),
    command,
    totalRunSeconds: round(totalS, 0),
    machine,
    ratios,
    figures,
    definitions,
    context,
    checks: [...(gc?.checks ?? []), ...(mirror?.checks ?? [])],
    cuts,
    disturbed,
  };
}

export function renderStorageMarkdown(r: StorageReport): string {
  const gc = r.context.gc as unknown as Record<string, { shape: { label: string; repositories: number; keepNewest: number; tagsPerRepository: number }; store: { blobs: number; manifests: number }; runs: { writeWindowMs: number; collectorMs: number; retentionMs: number; deletedBlobs: number }[]; medians_over_repetitions: number[]; background_cores_per_repetition: number[] }>;
  const m = r.context.mirror as { clients: number; layers: number; layer_bytes: number; blobs: number; direct_s: number[]; cold_s: number[]; warm_s: number[]; direct_median_s: number; cold_median_s: number; warm_median_s: number; cold_upstream_fetches_per_round: number[]; cold_upstream_fetches_per_blob: number[][]; warm_upstream_fetches_per_round: number[]; cold_proxy_cache_statuses?: Record<string, number>[]; warm_proxy_cache_statuses?: Record<string, number>[] };
  const shapes = ["suite", "large"].filter((k) => gc[k]);
  const f = r.figures;
  const settle = (r.context.gc as { write_settle_seconds: number }).write_settle_seconds;
  const row = (cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
  return [
    "# Storage benchmarks (lifecycle write window, mirror cold pulls)",
    "",
    ...(r.parts
      ? [
          "Generated by bench/storage-mode.ts, gc-bench.ts and mirror-bench.ts; the parts come from these runs:",
          "",
          ...STORAGE_PARTS.flatMap((p) => {
            const x = r.parts?.[p];
            return x ? [`- ${STORAGE_PART_TITLES[p]}: \`${x.command}\` on ${x.generated} (${x.totalRunSeconds} s)`] : [];
          }),
          "",
        ]
      : [`Generated by \`${r.command}\` (bench/storage-mode.ts, gc-bench.ts, mirror-bench.ts) on ${r.generated}; the run took ${r.totalRunSeconds} s.`]),
    "A mode of its own, not part of `npm run bench` (which would outgrow its ~8 minutes). Absolute times",
    "depend on the machine (below); `docs/benchmarks-storage.json` holds the same figures.",
    "",
    ...(r.cuts.length + r.disturbed.length > 0
      ? ["**Run quality:**", "", ...r.cuts.map((c) => `- CUT by the time limit: ${c}`), ...r.disturbed.map((d) => `- DISTURBED: ${d}`), ""]
      : ["Run quality: every repetition loop got its undisturbed repetitions within the time limit.", ""]),
    "## Storage lifecycle: the write window (issue #9)",
    "",
    "The stack's maintenance job (maintenance.sh in the registry v3.1.1 image, as constructs/maintenance.ts",
    `declares the container; run as \`npm run gc\` runs it, \`docker exec … maintenance.sh run\`) on a store written`,
    "in distribution's filesystem layout, which a v3.1.1 registry served before the run. The rule keeps",
    `the newest tags of each repository; writeSettleSeconds ${settle} (the default). Durations are the job's own report.`,
    "",
    row(["store", "blobs", "manifests", "deleted blobs", "write window (s)", "collector (s)", "retention step (s)", "runs (window, ms)"]),
    row(["---", "---:", "---:", "---:", "---:", "---:", "---:", "---"]),
    ...shapes.map((k) => {
      const g = gc[k];
      return row([g.shape.label, g.store.blobs, g.store.manifests, g.runs[0].deletedBlobs, f[`gc_${k}_write_window_s`], f[`gc_${k}_collector_s`], f[`gc_${k}_retention_s`], g.runs.map((x) => x.writeWindowMs).join(", ")]);
    }),
    "",
    f.gc_write_window_per_10k_blobs_s !== undefined
      ? `**Write window per 10,000 blobs: ${f.gc_write_window_per_10k_blobs_s} s** (of which the fixed settle time is ${settle} s; the work itself ${f.gc_work_per_10k_blobs_s} s per 10,000 blobs).`
      : "",
    "",
    "## Mirrors: concurrent cold pulls (issue #10)",
    "",
    `${m.clients} skopeo clients pull the same ${m.layers}-layer image (${m.blobs} blobs, ${m.layer_bytes / 1024 / 1024} MiB random layers) at once:`,
    "straight from the upstream, through a fresh (cold) mirror, then through the same mirror again (warm).",
    "The mirror is a distribution v3.1.1 registry in proxy mode behind the stack's nginx with its blob cache (both",
    "as the stack renders them: anonymous pulls, the default ttl and blobCacheMb); \"directly\" is the upstream",
    "(v3.1.1) behind the same nginx, so both paths have the same TLS hop. A fresh mirror, cache volume and nginx",
    "per repetition; the upstream's access log counts the mirror's blob downloads.",
    "",
    row(["path", "all clients done (median s)", "per repetition (s)", "vs upstream"]),
    row(["---", "---:", "---", "---:"]),
    row(["upstream directly", m.direct_median_s, m.direct_s.join(", "), "1"]),
    row(["cold mirror", m.cold_median_s, m.cold_s.join(", "), r.ratios.mirror_cold_vs_upstream]),
    row(["warm mirror", m.warm_median_s, m.warm_s.join(", "), r.ratios.mirror_warm_vs_upstream]),
    "",
    `**Upstream downloads per blob in a cold round: ${f.mirror_cold_upstream_fetches_per_blob_min} to ${f.mirror_cold_upstream_fetches_per_blob_max}, mean ${f.mirror_cold_upstream_fetches_per_blob_mean}** (the issue asks for exactly 1: ${f.mirror_cold_upstream_fetches_per_blob_max === 1 && f.mirror_cold_upstream_fetches_per_blob_min === 1 ? "met" : "not met"}).`,
    `Per round, all ${m.blobs} blobs together: ${m.cold_upstream_fetches_per_round.join(", ")} downloads; warm rounds: ${m.warm_upstream_fetches_per_round.join(", ")}.`,
    ...(m.cold_proxy_cache_statuses
      ? [`The proxy's access log, blob GETs per round by cache status: cold ${m.cold_proxy_cache_statuses.map((c) => JSON.stringify(c)).join(", ")}; warm ${(m.warm_proxy_cache_statuses ?? []).map((c) => JSON.stringify(c)).join(", ")}.`]
      : []),
    "distribution v3.1.1 alone sends a request for a blob that another request is still fetching to the upstream",
    "again (`inflight` in registry/proxy/proxyblobstore.go guards only the copy to its storage): 1 to 6 downloads",
    "per blob in the run before the blob cache. The proxy's cache lock (`proxy_cache_lock`) lets one request",
    "fetch a blob and the others wait for it (README, Mirrors).",
    "",
    "## Definitions",
    "",
    ...Object.entries(r.definitions).map(([k, d]) => `- \`${k}\` = ${k in r.ratios ? r.ratios[k] : r.figures[k]}: ${d}`),
    "",
    "## Machine",
    "",
    `${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, ${r.machine.kernel}, ${r.machine.dockerd}, ${r.machine.skopeo}.`,
    "",
    "## Checks made during the run",
    "",
    ...r.checks.map((c) => `- ${c}`),
    "",
  ].join("\n");
}
