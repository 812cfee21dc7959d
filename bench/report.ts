import { DEFAULT_AUTH_CACHE_SECONDS } from "../config/schema";
import { MIN_BCRYPT_COST } from "../config/rules";
import { DEFAULT_PROXY_TUNING } from "../renderers/nginx/nginx-conf";
import { AUTH_CACHE_SECONDS, AUTH_COSTS, AuthBenchResult, AuthTargetKey, CACHED_COST, CONCURRENCY, CONCURRENT_PULLS, IMAGE_LAYERS, LAYER_BYTES } from "./auth-bench";
import { QUIET_THRESHOLD_CORES } from "./cpu";
import { REGISTRY_V3_IMAGE } from "../e2e/images";
import { ADDRESS_POOL } from "./lab";
import { BLOB_BYTES, NegotiatedTls, ProxyBenchResult, TransferResult } from "./proxy-bench";
import { RepeatResult } from "./reps";
import { median, round } from "./stats";
import { SynthBenchResult, TYPECHECKED_APP, USER_COUNTS } from "./synth-bench";

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  dockerd: string;
  curl: string;
  skopeo: string;
  /** Whether the kernel offers TLS offload (kTLS), which nginx needs for sendfile over TLS. */
  kernelTls: string;
  /** OpenSSL's AEAD speed on this CPU (16 KiB records), MB/s. */
  aeadMBps: Record<string, number>;
}

type Direction = "higher-is-better" | "lower-is-better";

interface Target {
  readonly figure: string;
  readonly target: string;
  readonly met: boolean;
}

export interface Report {
  readonly generated: string;
  readonly command: string;
  readonly totalRunSeconds: number;
  readonly machine: Machine;
  /** Every claim: a ratio of two figures measured in the same run. */
  readonly ratios: Record<string, number>;
  readonly ratioDefinitions: Record<string, { readonly definition: string; readonly direction: Direction }>;
  readonly targets: Target[];
  /** Absolute values, context only (they depend on the machine). */
  readonly context: Record<string, unknown>;
  readonly checks: string[];
  /** False when the watchdog stopped the run or a part was not measured; `cuts` says what is missing. */
  readonly complete: boolean;
  /** Repetition loops the time limit stopped before they had what they wanted (figures over fewer repetitions), and parts it stopped or left out. */
  readonly cuts: string[];
  /** Repetition loops without enough undisturbed repetitions (their medians use all of them). */
  readonly disturbed: string[];
  readonly explore?: unknown;
}

const MiB = 1024 * 1024;

function byKey(p: ProxyBenchResult, key: string): TransferResult {
  const r = p.results.find((x) => x.key === key);
  if (!r) throw new Error(`no transfer result for ${key}`);
  return r;
}

/** How the run ended: `stoppedIn` names where the watchdog stopped it; `notMeasured` the parts (proxy, auth, synth) it has no results for. */
export interface RunEnd {
  readonly stoppedIn?: string;
  readonly notMeasured: readonly string[];
}

/** Builds the report from whatever parts were measured; a part left out is named in `cuts` and `complete` is false. */
export function buildReport(
  machine: Machine,
  parts: { proxy?: ProxyBenchResult; negotiated?: Record<string, NegotiatedTls>; auth?: AuthBenchResult; synth?: SynthBenchResult },
  totalRunSeconds: number,
  explore: unknown,
  end: RunEnd = { notMeasured: [] },
): Report {
  const ratios: Record<string, number> = {};
  const defs: Report["ratioDefinitions"] = {};
  const targets: Target[] = [];
  const context: Record<string, unknown> = {};
  const checks: string[] = [];
  const ratio = (key: string, value: number, definition: string, direction: Direction) => {
    ratios[key] = round(value, 3);
    defs[key] = { definition, direction };
  };

  const { proxy, auth, synth } = parts;
  if (proxy) {
    const direct = byKey(proxy, "direct");
    const thr = (key: string, dir: "upload" | "download") => {
      const x = byKey(proxy, key);
      return dir === "upload" ? direct.uploadMedianS / x.uploadMedianS : direct.downloadMedianS / x.downloadMedianS;
    };
    for (const [prefix, key, what] of [
      ["proxy", "proxy", "our proxy (TLS, DEFAULT_PROXY_TUNING)"],
      ["recipe", "recipe", "distribution's nginx recipe (TLS)"],
      ["plain_proxy", "proxy_plain", "our proxy over plain HTTP"],
      ["registry_tls", "direct_tls", "the registry terminating TLS itself"],
    ] as const) {
      for (const dir of ["upload", "download"] as const) {
        ratio(`${prefix}_${dir}_vs_direct`, thr(key, dir), `${dir} throughput of ${what} ÷ ${dir} throughput directly to the registry (plain HTTP), medians of the same run`, "higher-is-better");
      }
    }
    for (const [prefix, key, what] of [
      ["proxy", "proxy", "our proxy (TLS)"],
      ["recipe", "recipe", "the recipe (TLS)"],
      ["plain_proxy", "proxy_plain", "our proxy over plain HTTP"],
      ["registry_tls", "direct_tls", "the registry terminating TLS itself"],
    ] as const) {
      const x = byKey(proxy, key);
      ratio(`${prefix}_upload_server_cpu_vs_direct`, x.uploadServerCpuS / direct.uploadServerCpuS, `server-side CPU seconds (containers + docker-proxy) of an upload through ${what} ÷ directly to the registry`, "lower-is-better");
      ratio(`${prefix}_download_server_cpu_vs_direct`, x.downloadServerCpuS / direct.downloadServerCpuS, `server-side CPU seconds of a download through ${what} ÷ directly to the registry`, "lower-is-better");
    }
    const viaRegistry = byKey(proxy, "proxy_via_registry");
    const registryTls = byKey(proxy, "direct_tls");
    const ours = byKey(proxy, "proxy");
    ratio(
      "proxy_download_vs_registry_tls",
      registryTls.downloadMedianS / ours.downloadMedianS,
      "download throughput of our proxy (TLS, as deployed: blobs served from storage) ÷ the registry terminating TLS itself (no proxy), medians of the same run",
      "higher-is-better",
    );
    ratio(
      "proxy_via_registry_download_vs_direct",
      direct.downloadMedianS / viaRegistry.downloadMedianS,
      "download throughput of our proxy with every blob through the registry (serveBlobsFromStorage: false) ÷ directly to the registry (plain HTTP)",
      "higher-is-better",
    );
    ratio(
      "proxy_via_registry_download_vs_registry_tls",
      registryTls.downloadMedianS / viaRegistry.downloadMedianS,
      "download throughput of our proxy with every blob through the registry ÷ the registry terminating TLS itself",
      "higher-is-better",
    );
    ratio(
      "proxy_via_registry_download_server_cpu_vs_direct",
      viaRegistry.downloadServerCpuS / direct.downloadServerCpuS,
      "server-side CPU seconds of a download through our proxy with every blob through the registry ÷ directly to the registry",
      "lower-is-better",
    );
    const output32k = byKey(proxy, "proxy_output_32k");
    ratio(
      "proxy_download_vs_output_32k",
      output32k.downloadMedianS / ours.downloadMedianS,
      `download throughput of our proxy as deployed (blobOutputBuffers ${DEFAULT_PROXY_TUNING.blobOutputBuffers ?? "unset"}) ÷ the same with nginx's output_buffers 2 32k`,
      "higher-is-better",
    );
    const recipe = byKey(proxy, "recipe");
    ratio("proxy_upload_vs_recipe", recipe.uploadMedianS / ours.uploadMedianS, "upload throughput of our proxy ÷ the recipe's", "higher-is-better");
    ratio("proxy_download_vs_recipe", recipe.downloadMedianS / ours.downloadMedianS, "download throughput of our proxy ÷ the recipe's", "higher-is-better");
    targets.push(
      { figure: "proxy_upload_vs_direct", target: "≥ 0.95", met: ratios.proxy_upload_vs_direct >= 0.95 },
      { figure: "proxy_download_vs_registry_tls", target: "≥ 1.0", met: ratios.proxy_download_vs_registry_tls >= 1.0 },
      { figure: "proxy_download_vs_direct", target: "≥ 0.8 (stretch)", met: ratios.proxy_download_vs_direct >= 0.8 },
      { figure: "proxy_upload_vs_recipe", target: "> 1 (ahead of the recipe)", met: ratios.proxy_upload_vs_recipe > 1 },
      { figure: "proxy_download_vs_recipe", target: "> 1 (ahead of the recipe)", met: ratios.proxy_download_vs_recipe > 1 },
    );
    context.transfer = {
      blob_bytes: BLOB_BYTES,
      repetitions: proxy.repetitions,
      repetitions_run: proxy.reps.background.length,
      background_cores_per_repetition: proxy.reps.background.map((v) => round(v, 2)),
      medians_over_repetitions: proxy.reps.used.map((i) => i + 1),
      disturbed: proxy.reps.disturbed,
      cut: proxy.reps.cut,
      wanted: proxy.reps.wanted,
      longest_upload_commit_s: round(proxy.maxCommitSeconds, 3),
      targets: Object.fromEntries(
        proxy.results.map((x) => [
          x.key,
          {
            label: x.label,
            upload_median_s: round(x.uploadMedianS, 3),
            download_median_s: round(x.downloadMedianS, 3),
            upload_mib_per_s: round(x.uploadMiBps, 0),
            download_mib_per_s: round(x.downloadMiBps, 0),
            upload_server_cpu_s: round(x.uploadServerCpuS, 2),
            download_server_cpu_s: round(x.downloadServerCpuS, 2),
            upload_client_cpu_s: round(x.uploadClientCpuS, 2),
            download_client_cpu_s: round(x.downloadClientCpuS, 2),
            upload_s: x.uploads.map((v) => round(v, 3)),
            download_s: x.downloads.map((v) => round(v, 3)),
          },
        ]),
      ),
    };
    context.negotiated_tls = parts.negotiated;
    context.default_proxy_tuning = DEFAULT_PROXY_TUNING;
  }
  context.address_pool = ADDRESS_POOL;
  context.registry_image = REGISTRY_V3_IMAGE;

  if (auth) {
    const pull = (k: AuthTargetKey) => {
      const v = auth.pullMedianS[k];
      if (v === undefined) throw new Error(`no pull figure for ${k}`);
      return v;
    };
    const anon = pull("anonymous");
    ratio("auth_pull_vs_anonymous", pull("cost10") / anon, `time of an authenticated pull of the ${IMAGE_LAYERS}-layer image (htpasswd in the registry, bcrypt cost 10) ÷ anonymous pull`, "lower-is-better");
    ratio("auth_cached_pull_vs_anonymous", pull("cached10") / anon, `time of an authenticated pull through the auth cache (cost ${CACHED_COST}, warm cache) ÷ anonymous pull`, "lower-is-better");
    ratio("auth_cached_cold_pull_vs_anonymous", auth.cachedColdPullS / anon, "time of the first pull through a fresh auth cache (one sample) ÷ anonymous pull", "lower-is-better");
    for (const cost of AUTH_COSTS.filter((c) => c !== 10)) {
      const v = auth.pullMedianS[`cost${cost}` as AuthTargetKey];
      if (v !== undefined) ratio(`auth_pull_cost${cost}_vs_anonymous`, v / anon, `time of an authenticated pull at bcrypt cost ${cost} ÷ anonymous pull`, "lower-is-better");
    }
    for (const [name, slug] of [
      ["GET /v2/", "get_v2"],
      ["HEAD blob", "head_blob"],
    ] as const) {
      const base = auth.load[name].anonymous;
      for (const key of ["cost5", "cost10", "cost12", "cached10"] as const) {
        ratio(`auth_rps_${slug}_${key}_vs_anonymous`, auth.load[name][key].rps / base.rps, `requests/s of authenticated ${name} (${auth.labels[key]}) ÷ anonymous, concurrency ${CONCURRENCY}`, "higher-is-better");
      }
    }
    ratio(
      "concurrent_pull_proxy_vs_direct",
      auth.concurrentPulls.directMedianS / auth.concurrentPulls.proxyMedianS,
      `throughput of ${CONCURRENT_PULLS} simultaneous pulls of the ${IMAGE_LAYERS}-layer image through the proxy as deployed (logged in, auth cache, blobs from storage, TLS) ÷ the same pulls straight from the registry (anonymous, plain HTTP); wall time of each batch, medians`,
      "higher-is-better",
    );
    targets.push(
      { figure: "concurrent_pull_proxy_vs_direct", target: "≥ 0.9", met: ratios.concurrent_pull_proxy_vs_direct >= 0.9 },
      { figure: "auth_pull_vs_anonymous", target: "≤ 1.25 (cost 10, no cache)", met: ratios.auth_pull_vs_anonymous <= 1.25 },
      { figure: "auth_cached_pull_vs_anonymous", target: "≤ 1.25 (cost 10, auth cache)", met: ratios.auth_cached_pull_vs_anonymous <= 1.25 },
    );
    context.auth = {
      concurrency: CONCURRENCY,
      image: { layers: IMAGE_LAYERS, layer_random_bytes: LAYER_BYTES, total_bytes: auth.imageBytes },
      auth_cache_ttl_s: AUTH_CACHE_SECONDS,
      labels: auth.labels,
      load: Object.fromEntries(
        Object.entries(auth.load).map(([name, perTarget]) => [
          name,
          Object.fromEntries(
            Object.entries(perTarget).map(([k, r]) => [
              k,
              { rps: round(r.rps, 1), p50_ms: round(r.p50Ms, 2), p99_ms: round(r.p99Ms, 2), requests: r.requests, seconds: round(r.seconds, 2), stopped_by: r.stoppedBy },
            ]),
          ),
        ]),
      ),
      load_background_cores: Object.fromEntries(
        Object.entries(auth.loadBackground).map(([n, per]) => [n, Object.fromEntries(Object.entries(per).map(([k, v]) => [k, round(v, 2)]))]),
      ),
      pull_repetitions: auth.pullReps.used.length,
      pull_background_cores_per_repetition: auth.pullReps.background.map((v) => round(v, 2)),
      pull_medians_over_repetitions: auth.pullReps.used.map((i) => i + 1),
      pull_disturbed: auth.pullReps.disturbed,
      pull_cut: auth.pullReps.cut,
      pull_wanted: auth.pullReps.wanted,
      pull_median_s: Object.fromEntries(Object.entries(auth.pullMedianS).map(([k, v]) => [k, round(v ?? NaN, 3)])),
      pull_s: Object.fromEntries(Object.entries(auth.pulls).map(([k, v]) => [k, (v ?? []).map((x) => round(x, 3))])),
      cached_cold_pull_s: round(auth.cachedColdPullS, 3),
      concurrent_pulls: {
        clients: CONCURRENT_PULLS,
        proxy_median_s: round(auth.concurrentPulls.proxyMedianS, 3),
        direct_median_s: round(auth.concurrentPulls.directMedianS, 3),
        proxy_s: auth.concurrentPulls.proxy.map((v) => round(v, 3)),
        direct_s: auth.concurrentPulls.direct.map((v) => round(v, 3)),
        background_cores_per_repetition: auth.concurrentPulls.reps.background.map((v) => round(v, 2)),
        medians_over_repetitions: auth.concurrentPulls.reps.used.map((i) => i + 1),
        disturbed: auth.concurrentPulls.reps.disturbed,
        cut: auth.concurrentPulls.reps.cut,
        wanted: auth.concurrentPulls.reps.wanted,
      },
      credentials_in_auth_cache_files: auth.credentialsInCacheFiles,
      auth_cache_entries_seen: auth.cacheFiles,
    };
    checks.push(...auth.checks);
    checks.push(
      auth.credentialsInCacheFiles
        ? "the auth cache files in the proxy's /tmp/nginx-auth-cache (a tmpfs, as the construct mounts it) contain the client's base64 Authorization header (nginx stores the cache key in each file)"
        : "the client's Authorization header was NOT found in the auth cache files (unexpected: nginx stores the cache key in each file)",
    );
  }

  if (synth) {
    ratio("resynth_100_vs_1_users", synth.resynthMedianS[100] / synth.resynthMedianS[1], "`cdktf synth` time with 100 unchanged users ÷ with 1 unchanged user", "lower-is-better");
    ratio("resynth_10_vs_1_users", synth.resynthMedianS[10] / synth.resynthMedianS[1], "`cdktf synth` time with 10 unchanged users ÷ with 1", "lower-is-better");
    ratio("cold_synth_vs_resynth_1_user", synth.coldMedianS / synth.resynthMedianS[1], "cold `cdktf synth` (fresh material directory) ÷ re-synth, 1 user", "lower-is-better");
    ratio(
      "synth_vs_typechecked_synth",
      synth.resynthMedianS[1] / synth.typecheckedMedianS,
      `\`cdktf synth\` as shipped (cdktf.json app \`${synth.shippedApp}\`) ÷ the same synth with the app type-checked at run time (\`--app "${TYPECHECKED_APP}"\`), 1 user, unchanged, interleaved`,
      "lower-is-better",
    );
    targets.push(
      { figure: "resynth_100_vs_1_users", target: "≤ 1.5", met: ratios.resynth_100_vs_1_users <= 1.5 },
      { figure: "synth_vs_typechecked_synth", target: "≤ 0.6", met: ratios.synth_vs_typechecked_synth <= 0.6 },
    );
    context.synth = {
      repetitions: synth.resynthS[1].length,
      shipped_app: synth.shippedApp,
      typechecked_app: TYPECHECKED_APP,
      cold_median_s: round(synth.coldMedianS, 2),
      resynth_median_s: Object.fromEntries(USER_COUNTS.map((n) => [`${n}_users`, round(synth.resynthMedianS[n], 2)])),
      typechecked_median_s: round(synth.typecheckedMedianS, 2),
      seed_100_users_s: round(synth.seed100S, 2),
      cold_s: synth.coldS.map((v) => round(v, 2)),
      resynth_s: Object.fromEntries(USER_COUNTS.map((n) => [`${n}_users`, synth.resynthS[n].map((v) => round(v, 2))])),
      typechecked_s: synth.typecheckedS.map((v) => round(v, 2)),
      background_cores_per_repetition: Object.fromEntries(
        Object.entries(synth.background).map(([k, rr]) => [k, { background: rr.background.map((v) => round(v, 2)), used: rr.used.map((i) => i + 1), disturbed: rr.disturbed, cut: rr.cut, wanted: rr.wanted }]),
      ),
    };
    checks.push(...synth.checks);
  }

  const loops: { name: string; reps: RepeatResult }[] = [];
  if (proxy) loops.push({ name: "blob transfers", reps: proxy.reps });
  if (auth) loops.push({ name: "pulls (auth)", reps: auth.pullReps }, { name: "concurrent pulls", reps: auth.concurrentPulls.reps });
  if (synth) loops.push({ name: "cold synth", reps: synth.background.cold }, { name: "re-synth", reps: synth.background.resynth });
  const quality = runQuality(loops);
  const partCuts = [
    ...(end.stoppedIn ? [end.stoppedIn] : []),
    ...end.notMeasured.map((part) => `${part}: not measured${end.stoppedIn ? " (the run was stopped before it finished)" : ""}`),
  ];
  return {
    generated: new Date().toISOString(),
    command: "npm run bench",
    totalRunSeconds: round(totalRunSeconds, 0),
    machine,
    ratios,
    ratioDefinitions: defs,
    targets,
    complete: partCuts.length === 0,
    cuts: [...partCuts, ...quality.cuts],
    disturbed: quality.disturbed,
    context,
    checks,
    explore,
  };
}

// ---------------------------------------------------------------------------------------------
// Rendering

function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...cells.slice(1).map(line)].join("\n");
}

const fmt = (v: unknown, digits = 2) => (typeof v === "number" ? v.toFixed(digits) : String(v));

/** The claims table: every ratio with its target where there is one. */
export function renderTable(r: Report): string {
  const targetOf = new Map(r.targets.map((t) => [t.figure, t]));
  const rows = Object.entries(r.ratios).map(([k, v]) => {
    const t = targetOf.get(k);
    const dir = r.ratioDefinitions[k].direction === "higher-is-better" ? "↑" : "↓";
    return [k, fmt(v, 2), dir, t ? t.target : "–", t ? (t.met ? "met" : "NOT met") : "–"];
  });
  return table(["ratio (same run)", "value", "better", "target", ""], rows);
}

function transferTable(r: Report): string {
  const t = r.context.transfer as {
    targets: Record<
      string,
      {
        label: string;
        upload_median_s: number;
        download_median_s: number;
        upload_mib_per_s: number;
        download_mib_per_s: number;
        upload_s: number[];
        download_s: number[];
        upload_server_cpu_s: number;
        download_server_cpu_s: number;
        upload_client_cpu_s: number;
        download_client_cpu_s: number;
      }
    >;
  };
  return table(
    ["path", "upload median", "download median", "upload runs (s)", "download runs (s)", "CPU s up: server / client", "CPU s down: server / client"],
    Object.values(t.targets).map((x) => [
      x.label,
      x.upload_s.length === 0 ? "– (same upload path as our proxy)" : `${fmt(x.upload_median_s)} s (${x.upload_mib_per_s} MiB/s)`,
      `${fmt(x.download_median_s)} s (${x.download_mib_per_s} MiB/s)`,
      x.upload_s.map((v) => fmt(v)).join(", "),
      x.download_s.map((v) => fmt(v)).join(", "),
      x.upload_s.length === 0 ? "–" : `${fmt(x.upload_server_cpu_s)} / ${fmt(x.upload_client_cpu_s)}`,
      `${fmt(x.download_server_cpu_s)} / ${fmt(x.download_client_cpu_s)}`,
    ]),
  );
}

interface BackgroundInfo {
  background_cores_per_repetition: number[];
  medians_over_repetitions: number[];
  disturbed: boolean;
  cut?: boolean;
  wanted?: number;
}

function backgroundNote(b: BackgroundInfo, what: string): string {
  const list = b.background_cores_per_repetition.map((v) => fmt(v)).join(", ");
  const used = b.medians_over_repetitions.join(", ");
  const wanted = b.wanted ?? 3;
  const cut = b.cut
    ? ` **CUT by the time limit: ${b.background_cores_per_repetition.length} ${what}s ran, ${wanted} undisturbed ones were wanted.**`
    : "";
  return (
    `CPU used by other processes on the machine during each ${what}: ${list} cores. ` +
    (b.disturbed
      ? `**Fewer than ${wanted} ${what}s ran undisturbed (< ${QUIET_THRESHOLD_CORES} cores); the medians use all of them — treat the figures with care.**`
      : `The medians use ${what}s ${used} (undisturbed: < ${QUIET_THRESHOLD_CORES} cores).`) +
    cut
  );
}

/** Every repetition loop the time limit cut short or that ran disturbed, for the top of the report. */
function runQuality(parts: { name: string; reps: RepeatResult }[]): { cuts: string[]; disturbed: string[] } {
  return {
    cuts: parts.filter((p) => p.reps.cut).map((p) => `${p.name}: the time budget stopped it after ${p.reps.background.length} repetitions, ${p.reps.wanted} undisturbed ones wanted`),
    disturbed: parts.filter((p) => p.reps.disturbed).map((p) => `${p.name}: fewer than ${p.reps.wanted} repetitions undisturbed (< ${QUIET_THRESHOLD_CORES} cores of other load)`),
  };
}

function authTables(r: Report): string {
  const a = r.context.auth as {
    labels: Record<string, string>;
    load: Record<string, Record<string, { rps: number; p50_ms: number; p99_ms: number; requests: number }>>;
    pull_median_s: Record<string, number>;
    pull_s: Record<string, number[]>;
    cached_cold_pull_s: number;
  };
  const keys = Object.keys(a.labels);
  const load = table(
    ["server side", ...Object.keys(a.load).flatMap((n) => [`${n} req/s`, `${n} p50 / p99 ms`])],
    keys.map((k) => [
      a.labels[k],
      ...Object.keys(a.load).flatMap((n) => {
        const x = a.load[n][k];
        return [`${fmt(x.rps, 0)} (${x.requests} req)`, `${fmt(x.p50_ms, 1)} / ${fmt(x.p99_ms, 1)}`];
      }),
    ]),
  );
  const pulls = table(
    ["pull of the 20-layer image (skopeo)", "median", "runs (s)"],
    Object.keys(a.pull_s).map((k) => [a.labels[k], `${fmt(a.pull_median_s[k])} s`, a.pull_s[k].map((v) => fmt(v)).join(", ")]),
  );
  const bg = r.context.auth as {
    pull_background_cores_per_repetition: number[];
    pull_medians_over_repetitions: number[];
    pull_disturbed: boolean;
    pull_cut?: boolean;
    pull_wanted?: number;
    load_background_cores: Record<string, Record<string, number>>;
  };
  const loadBg = Math.max(...Object.values(bg.load_background_cores).flatMap((x) => Object.values(x)));
  return [
    load,
    "",
    `CPU used by other processes during the load runs: at most ${fmt(loadBg)} cores (a disturbed run is repeated once and the quieter one kept).`,
    "",
    pulls,
    "",
    backgroundNote(
      { background_cores_per_repetition: bg.pull_background_cores_per_repetition, medians_over_repetitions: bg.pull_medians_over_repetitions, disturbed: bg.pull_disturbed, cut: bg.pull_cut, wanted: bg.pull_wanted },
      "pull round",
    ),
    "",
    `First pull through a fresh auth cache (every credential check misses): ${fmt(a.cached_cold_pull_s)} s.`,
    "",
    ...concurrentPullLines(r),
  ].join("\n");
}

function concurrentPullLines(r: Report): string[] {
  const c = (r.context.auth as { concurrent_pulls?: BackgroundInfo & { clients: number; proxy_median_s: number; direct_median_s: number; proxy_s: number[]; direct_s: number[] } }).concurrent_pulls;
  if (!c) return [];
  return [
    table(
      [`${c.clients} simultaneous pulls of the 20-layer image (skopeo), wall time of the batch`, "median", "runs (s)"],
      [
        ["through the proxy as deployed (logged in, auth cache, blobs from storage, TLS)", `${fmt(c.proxy_median_s)} s`, c.proxy_s.map((v) => fmt(v)).join(", ")],
        ["straight from the registry (anonymous, plain HTTP)", `${fmt(c.direct_median_s)} s`, c.direct_s.map((v) => fmt(v)).join(", ")],
      ],
    ),
    "",
    backgroundNote(c, "batch"),
  ];
}

/** Rows only for the figures the report has (reports from older runs lack some, e.g. the type-checked synth). */
function synthTable(r: Report): string {
  const s = r.context.synth as {
    typechecked_app?: string;
    cold_median_s?: number;
    resynth_median_s?: Record<string, number>;
    typechecked_median_s?: number;
    seed_100_users_s?: number;
    cold_s?: number[];
    resynth_s?: Record<string, number[]>;
    typechecked_s?: number[];
  };
  const runs = (v: number[] | undefined) => (v ?? []).map((x) => fmt(x)).join(", ") || "–";
  const rows: string[][] = [];
  if (s.cold_median_s !== undefined) rows.push(["`npx cdktf synth`, cold (fresh material directory, 1 user)", `${fmt(s.cold_median_s)} s`, runs(s.cold_s)]);
  for (const [k, v] of Object.entries(s.resynth_median_s ?? {})) {
    rows.push([`\`npx cdktf synth\`, re-synth, ${k === "1_users" ? "1 user" : k.replace("_", " ")} unchanged`, `${fmt(v)} s`, runs(s.resynth_s?.[k])]);
  }
  if (s.typechecked_median_s !== undefined) {
    rows.push([`\`npx cdktf synth --app "${s.typechecked_app ?? "?"}"\` (type-checked at run time), re-synth, 1 user`, `${fmt(s.typechecked_median_s)} s`, runs(s.typechecked_s)]);
  }
  if (s.seed_100_users_s !== undefined) rows.push(["first synth after adding 99 users (hashes them at cost 10; one run)", `${fmt(s.seed_100_users_s)} s`, "–"]);
  return table(["command", "median", "runs (s)"], rows);
}

export function renderMarkdown(r: Report): string {
  const ratio = (k: string, d = 2) => fmt(r.ratios[k], d);
  const met = (k: string) => r.targets.find((t) => t.figure === k)?.met;
  const verdict = (k: string) => (met(k) ? "**met**" : "**not met**");
  const targetsTable = table(
    ["target", "figure", "value", "result"],
    r.targets.map((t) => [t.target, `\`${t.figure}\``, ratio(t.figure), t.met ? "met" : "NOT met"]),
  );
  return [
    "# Benchmarks",
    "",
    `Generated by \`${r.command}\` (bench/run.ts) on ${r.generated}; the whole run took ${r.totalRunSeconds} s.`,
    "Every claim below is a ratio of two figures measured in the same run on the same machine; absolute",
    "times are context and will differ on other machines. `docs/benchmarks.json` holds the same figures",
    "(`ratios`, their `ratioDefinitions`, `targets`, and the absolute values under `context`).",
    "The storage lifecycle's write window and mirror cold pulls are measured by `npm run bench -- --storage`",
    "(a mode of its own, to keep this run near 8 minutes): [benchmarks-storage.md](benchmarks-storage.md).",
    "",
    ...qualitySection(r),
    "## Targets",
    "",
    targetsTable,
    "",
    "## All ratios",
    "",
    "↑ = higher is better (throughput, requests/s), ↓ = lower is better (time).",
    "",
    renderTable(r),
    "",
    "## Details (absolute values, context only)",
    "",
    ...detailSections(r),
    methodSection(r),
    "",
    exploreSection(r),
    "",
    r.context.transfer && r.context.auth && r.context.synth
      ? reasoningSection(r, { ratio, verdict })
      : "## Defaults and why\n\nNot written for an incomplete run: the reasoning compares figures of all three parts.",
    "",
    "## Checks made during the run",
    "",
    ...r.checks.map((c) => `- ${c}`),
    "",
  ].join("\n");
}

/** One section per measured part; a part the run has no figures for says so instead. */
function detailSections(r: Report): string[] {
  const missing = (title: string) => [`### ${title}`, "", "Not measured in this run (see Run quality above).", ""];
  const out: string[] = [];
  const transfer = r.context.transfer as (BackgroundInfo & { repetitions: number }) | undefined;
  if (transfer) {
    out.push(`### Blob transfers (${BLOB_BYTES / MiB} MiB random blob, ${transfer.repetitions} repetitions, median)`, "", transferTable(r), "", backgroundNote(transfer, "repetition"), "");
    out.push(...negotiatedTable(r.context.negotiated_tls as Record<string, NegotiatedTls> | undefined, transferLabels(r)));
  } else out.push(...missing("Blob transfers"));
  const auth = r.context.auth as { pull_s: Record<string, number[]> } | undefined;
  if (auth) out.push(`### Authentication (concurrency ${CONCURRENCY}; pulls: median of ${auth.pull_s.anonymous?.length ?? 0})`, "", authTables(r), "");
  else out.push(...missing("Authentication"));
  const synth = r.context.synth as
    | { repetitions: number; background_cores_per_repetition?: Record<string, { background: number[]; used: number[]; disturbed: boolean; cut?: boolean; wanted?: number }> }
    | undefined;
  if (synth) {
    out.push(`### Synth (${synth.repetitions} runs each, median)`, "", synthTable(r), "");
    out.push(
      ...Object.entries(synth.background_cores_per_repetition ?? {}).map(
        ([k, b]) => `- ${k}: ${backgroundNote({ background_cores_per_repetition: b.background, medians_over_repetitions: b.used, disturbed: b.disturbed, cut: b.cut, wanted: b.wanted }, "run")}`,
      ),
      "",
    );
  } else out.push(...missing("Synth"));
  return out;
}

function transferLabels(r: Report): Record<string, string> {
  const t = r.context.transfer as { targets?: Record<string, { label: string }> } | undefined;
  return Object.fromEntries(Object.entries(t?.targets ?? {}).map(([k, v]) => [k, v.label]));
}

function qualitySection(r: Report): string[] {
  const cuts = r.cuts ?? [];
  const disturbed = r.disturbed ?? [];
  if (cuts.length === 0 && disturbed.length === 0) return ["Run quality: every repetition loop got its undisturbed repetitions within the time limit.", ""];
  return [
    "**Run quality — read the figures below with this in mind:**",
    "",
    ...(r.complete === false ? ["- **INCOMPLETE RUN (`complete: false`): the figures below cover only what was measured before it stopped.**"] : []),
    ...cuts.map((c) => `- CUT: ${c}`),
    ...disturbed.map((d) => `- DISTURBED: ${d}`),
    "",
  ];
}

function methodSection(r: Report): string {
  const m = r.machine;
  return [
    "## Method",
    "",
    `**Machine.** ${m.cpus} vCPU (${m.cpuModel}), ${m.memoryGiB} GiB RAM, ${m.kernel}, Node ${m.node}; ${m.dockerd};`,
    `${m.curl.split(" ").slice(0, 2).join(" ")}; ${m.skopeo}. Kernel TLS: ${m.kernelTls ?? "not recorded"}.`,
    `OpenSSL AEAD speed on this CPU (16 KiB blocks): ${Object.entries(m.aeadMBps ?? {}).map(([k, v]) => `${k} ${v} MB/s`).join(", ")}.`,
    `Client, proxy, registry and docker-proxy share the same ${m.cpus} vCPUs,`,
    "so every path pays for all of its hops in CPU time — the ratios say how much more the proxied",
    "path costs, not how fast a larger server would be.",
    "",
    "**Environment.** The e2e suite's machinery: a private `dockerd` (e2e/engine.ts) with its own",
    `address pool (${String(r.context.address_pool ?? ADDRESS_POOL).replace(/^base=/, "").replace(/,size=\d+$/, "")}; the e2e suite's default is 10.213.0.0/16) and \`--iptables=false\` (a dockerd that`,
    "manages iptables flushes other engines' DOCKER chains when it starts; the bench adds one",
    "`FORWARD -i <bridge> -o <bridge> -j ACCEPT` rule per bridge it creates and deletes it at the end), and the",
    `e2e images (e2e/images.ts: distribution ${String(r.context.registry_image ?? "registry-stack-e2e/registry:2.8.2").split(":").pop()} — ${r.context.registry_image ? `built with \`go install\` as for the e2e suite, the version the stack deploys` : "Debian's package"}; nginx 1.22.1 from Debian). Containers`,
    "are created through the Engine API the way the constructs declare them (constructs/registry.ts,",
    "constructs/nginx-proxy.ts: same commands, file paths, `cap_drop ALL` (+ CHOWN/SETGID/SETUID for nginx),",
    "`no-new-privileges`, a named data volume, a backend network marked internal plus an edge network)",
    "with the files the renderers produce (renderRegistryConfig, renderNginxConf with the tuning under test,",
    "renderHtpasswd via material/registry-users.ts, the stack's self-signed TLS material). They are not",
    "realized from a synthesized stack because the realizer waits for health checks with a 15 s",
    "interval per container and the bench needs a dozen variants. All client traffic goes to ports",
    "published on 127.0.0.1; proxy → registry traffic stays on the bench's own bridge networks.",
    "",
    `**Proxy throughput.** One ${BLOB_BYTES / MiB} MiB random blob. Upload = what \`docker push\` does per layer:`,
    "`POST /v2/<name>/blobs/uploads/`, one `PATCH` streaming the file with chunked transfer encoding",
    "(`curl -T`, no `Expect: 100-continue`), `PUT ?digest=`; the time is the sum of curl's `time_total`",
    "of the three requests. Download = `GET /v2/<name>/blobs/<digest>` to /dev/null. Paths: directly to",
    "the registry (no auth, plain HTTP, published port) — the reference; our proxy with",
    "DEFAULT_PROXY_TUNING, TLS and blobs served from storage (the data volume mounted read-only) as deployed;",
    "the same proxy with every blob through the registry (`serveBlobsFromStorage: false`; downloads only, its upload",
    "path is the same); the registry terminating TLS itself (the `proxy: false` topology); the proxy over plain",
    "HTTP as context; distribution's nginx recipe",
    "(bench/recipe.ts: the published nginx.conf without auth_basic — HTTP/1.0 upstream, request",
    "buffering on, nginx's default response buffers and 1024m temp files). All paths end at the same",
    "data volume and run without auth: the direct paths and the recipe at the registry on TCP, our proxies at a second",
    "registry container on the same volume listening on a unix socket in a volume shared with the proxy, as the stack",
    "deploys it (reports before 2026-11-29: TCP for all). One warm-up download per path, then",
    "repetitions interleaved (the order rotates every repetition); the median is reported.",
    "",
    `**Authentication cost.** Node's https client with ${CONCURRENCY} keep-alive connections, ${CONCURRENCY} requests in flight,`,
    "each loop bounded to 5 s (and 20 000 requests) after a warm-up of 16 requests (and one unmeasured 3 s loop first;",
    "the HEAD round runs the targets in reverse order), against `GET /v2/` and",
    "`HEAD` of a 64 KiB blob, through our TLS proxy in front of: the registry without auth (anonymous),",
    "the registry with htpasswd at bcrypt cost 5, 10 and 12 (hashes made by material/registry-users.ts),",
    `and the auth-cache design (\`authCache\` in renderNginxConf, TTL ${AUTH_CACHE_SECONDS} s: nginx \`auth_request\` → a verifier`,
    "registry with the htpasswd file and in-memory storage; the data registry without auth; the cache directory on",
    "a tmpfs), as stacks/registry-stack.ts and constructs/nginx-proxy.ts deploy it by default with the proxy; \"htpasswd in",
    "the registry\" is the stack with `authCacheSeconds: 0`. Pulls: `skopeo copy` of a",
    `${IMAGE_LAYERS}-layer image (${IMAGE_LAYERS} gzip layers of ${LAYER_BYTES / 1024} KiB random data) from the proxy to a fresh \`dir:\`,`,
    "with `--src-creds` or anonymously; one warm-up pull per path, then repetitions interleaved; the",
    "first pull through a freshly started cache proxy is reported separately. Before measuring, each",
    "authenticated path is checked to answer 401 without and with a wrong password. Concurrent pulls:",
    `${CONCURRENT_PULLS} \`skopeo copy\` processes started together, through the proxy as deployed (logged in, auth cache, blobs`,
    "from storage, TLS) and straight from the registry (anonymous, plain HTTP on its published port, `--src-tls-verify=false`);",
    "the wall time until the last one finished; batches alternate, one warm-up pull first.",
    "",
    "**Synth time.** `npx cdktf synth --output <dir>` (what users run, with CHECKPOINT_DISABLE=1) in a",
    "scratch copy of the project (node_modules linked) with a config file of N users and their passwords in",
    "REGISTRY_PASSWORD_<USER>. Cold = fresh material directory each time (CA and server keys, http",
    "secret, bcrypt). Re-synth = material from the previous synth with the same users (the 10- and",
    "100-user material is seeded by one uncounted synth); 1/10/100 interleaved with the type-checked synth:",
    `the same 1-user re-synth with \`--app "${TYPECHECKED_APP}"\` (how the app ran before cdktf.json skipped the type check;`,
    "`npm test` and CI type-check the project), which must write the same cdk.tf.json.",
    "",
    "**Bounds and clean-up.** Every child process runs in its own process group with a timeout and is",
    "killed by its pid; every loop is bounded in count and time; a watchdog ends the run at 9.5 min.",
    "Containers, networks, the volume, the iptables rules, the engine and all scratch files are removed",
    "at the end, also after a failure.",
  ].join("\n");
}

export const EXPLORE_STAGES = ["tls", "buffers"] as const;
export type ExploreStageName = (typeof EXPLORE_STAGES)[number];

const STAGE_TITLES: Record<ExploreStageName, { title: string; about: string }> = {
  tls: {
    title: "TLS downloads from storage (`--explore=tls`)",
    about:
      "What a TLS blob download served by nginx from the data volume depends on: the TLS 1.3 suite the server picks, the pieces nginx reads the file in (`blobOutputBuffers`), kernel TLS, the way to the registry; next to the registry terminating TLS itself. Downloads only, except for variants that change the upload path too (the cipher, the upstream).",
  },
  buffers: {
    title: "Proxy buffering and upload pieces (`--explore=buffers`)",
    about: "Proxy buffering, buffer sizes and upload piece sizes; every variant changes one thing against DEFAULT_PROXY_TUNING of that run.",
  },
};

interface ExploreRow {
  key: string;
  label: string;
  /** null: downloads only (the variant's upload path is the default's). */
  upload_median_s: number | null;
  download_median_s: number;
  upload_vs_direct: number | null;
  download_vs_direct: number;
  upload_s: number[];
  download_s: number[];
  /** Download throughput ÷ the registry terminating TLS itself (when the stage has that path). */
  download_vs_registry_tls?: number;
  /** Per repetition: the default proxy's download time ÷ this variant's (a throughput ratio, paired so drift between repetitions cancels). */
  paired_download_vs_default?: { median: number; faster: number; of: number };
}

interface ExploreStage {
  stage: ExploreStageName;
  generated: string;
  totalRunSeconds: number;
  repetitions: number;
  background?: BackgroundInfo;
  /** Uploads only, more repetitions, for the knob whose effect is near the spread. */
  focus?: {
    repetitions: number;
    background?: BackgroundInfo;
    /** Per repetition: 16k upload time ÷ default upload time (paired, so drift between repetitions cancels). */
    paired?: { median_16k_over_default: number; default_faster: number; of: number };
    rows: { key: string; label: string; upload_median_s: number; upload_vs_direct: number; upload_s: number[] }[];
  };
  /** Per TLS path: the protocol and suite negotiated with the bench's curl and with a client offering Go's order. */
  negotiated?: Record<string, NegotiatedTls>;
  /** DEFAULT_PROXY_TUNING of that run: what "the default" in its rows was. */
  defaultTuning?: unknown;
  rows: ExploreRow[];
  machine: Machine;
}

/** docs/benchmarks-explore.json: one section per stage, each from its own run. */
export interface ExploreFile {
  stages: Partial<Record<ExploreStageName, ExploreStage>>;
}

function pairedFocus(p: ProxyBenchResult): { median_16k_over_default: number; default_faster: number; of: number } | undefined {
  const small = p.results.find((x) => x.key === "body_16k");
  const ours = p.results.find((x) => x.key === "proxy");
  if (!small || !ours) return undefined;
  const ratios = p.reps.used.map((i) => small.uploads[i] / ours.uploads[i]);
  return { median_16k_over_default: round(median(ratios), 3), default_faster: ratios.filter((v) => v > 1).length, of: ratios.length };
}

function pairedDownload(p: ProxyBenchResult, x: TransferResult): { median: number; faster: number; of: number } | undefined {
  const ours = p.results.find((r) => r.key === "proxy");
  // Proxy variants only: the registry's own paths are references, not candidates.
  if (!ours || ours === x || x.key === "direct" || x.key === "direct_tls") return undefined;
  const ratios = p.reps.used.map((i) => ours.downloads[i] / x.downloads[i]).filter((v) => Number.isFinite(v));
  return { median: round(median(ratios), 3), faster: ratios.filter((v) => v > 1).length, of: ratios.length };
}

function backgroundInfo(p: ProxyBenchResult): BackgroundInfo {
  return {
    background_cores_per_repetition: p.reps.background.map((v) => round(v, 2)),
    medians_over_repetitions: p.reps.used.map((i) => i + 1),
    disturbed: p.reps.disturbed,
    cut: p.reps.cut,
    wanted: p.reps.wanted,
  };
}

const nullIfNaN = (v: number) => (Number.isFinite(v) ? v : null);

export function buildExploreStage(
  stage: ExploreStageName,
  machine: Machine,
  proxy: ProxyBenchResult,
  totalRunSeconds: number,
  extra: { focus?: ProxyBenchResult; negotiated?: Record<string, NegotiatedTls> } = {},
): ExploreStage {
  const direct = byKey(proxy, "direct");
  const registryTls = proxy.results.find((x) => x.key === "direct_tls");
  const focus = extra.focus;
  const focusDirect = focus ? byKey(focus, "direct") : undefined;
  return {
    stage,
    generated: new Date().toISOString(),
    totalRunSeconds: round(totalRunSeconds, 0),
    repetitions: proxy.repetitions,
    background: backgroundInfo(proxy),
    focus:
      focus && focusDirect
        ? {
            repetitions: focus.repetitions,
            background: backgroundInfo(focus),
            paired: pairedFocus(focus),
            rows: focus.results.map((x) => ({
              key: x.key,
              label: x.label,
              upload_median_s: round(x.uploadMedianS, 3),
              upload_vs_direct: round(focusDirect.uploadMedianS / x.uploadMedianS, 3),
              upload_s: x.uploads.map((v) => round(v, 3)),
            })),
          }
        : undefined,
    negotiated: extra.negotiated,
    defaultTuning: DEFAULT_PROXY_TUNING,
    machine,
    rows: proxy.results.map((x) => ({
      key: x.key,
      label: x.label,
      upload_median_s: nullIfNaN(round(x.uploadMedianS, 3)),
      download_median_s: round(x.downloadMedianS, 3),
      upload_vs_direct: nullIfNaN(round(direct.uploadMedianS / x.uploadMedianS, 3)),
      download_vs_direct: round(direct.downloadMedianS / x.downloadMedianS, 3),
      upload_s: x.uploads.filter((v) => Number.isFinite(v)).map((v) => round(v, 3)),
      download_s: x.downloads.map((v) => round(v, 3)),
      download_vs_registry_tls: registryTls ? round(registryTls.downloadMedianS / x.downloadMedianS, 3) : undefined,
      paired_download_vs_default: pairedDownload(proxy, x),
    })),
  };
}

/** Reads the file as it is (also the one-run format before stages, which was the buffers stage) and sets one stage. */
export function mergeExploreFile(existing: unknown, stage: ExploreStage | undefined): ExploreFile {
  return { stages: { ...exploreStages(existing), ...(stage ? { [stage.stage]: stage } : {}) } };
}

function exploreStages(e: unknown): Partial<Record<ExploreStageName, ExploreStage>> {
  if (!e || typeof e !== "object") return {};
  if ("stages" in e) return (e as ExploreFile).stages;
  if ("rows" in e && Array.isArray((e as ExploreStage).rows)) return { buffers: { ...(e as ExploreStage), stage: "buffers" } };
  return {};
}

function exploreTable(e: ExploreStage): string {
  const withTls = e.rows.some((x) => x.download_vs_registry_tls !== undefined);
  const withPaired = e.rows.some((x) => x.paired_download_vs_default !== undefined);
  const header = ["variant", "upload ÷ direct", "download ÷ direct"];
  if (withTls) header.push("download ÷ registry TLS");
  if (withPaired) header.push("download ÷ default, paired: median (faster in)");
  header.push("upload runs (s)", "download runs (s)");
  return table(
    header,
    e.rows.map((x) => {
      const p = x.paired_download_vs_default;
      return [
        x.label,
        x.upload_vs_direct === null || x.upload_s.length === 0 ? "–" : fmt(x.upload_vs_direct),
        fmt(x.download_vs_direct),
        ...(withTls ? [x.download_vs_registry_tls === undefined ? "–" : fmt(x.download_vs_registry_tls)] : []),
        ...(withPaired ? [p ? `${fmt(p.median)} (${p.faster} of ${p.of})` : "–"] : []),
        x.upload_s.length === 0 ? "–" : x.upload_s.map((v) => fmt(v)).join(", "),
        x.download_s.map((v) => fmt(v)).join(", "),
      ];
    }),
  );
}

function negotiatedTable(n: Record<string, NegotiatedTls> | undefined, labels: Record<string, string>): string[] {
  if (!n || Object.keys(n).length === 0) return [];
  return [
    "Negotiated per TLS path (read from the handshake): with the bench's client (curl, OpenSSL's default offer: AES-256-GCM first) and with",
    "a client offering TLS 1.3 suites in Go's order (AES-128-GCM first: docker, containerd, skopeo on AES hardware; `openssl s_client -ciphersuites`):",
    "",
    table(
      ["path", "curl (the transfers)", "Go's client order"],
      Object.entries(n).map(([k, v]) => [labels[k] ?? k, v.benchClient, v.goOrderClient]),
    ),
    "",
  ];
}

function focusTable(e: ExploreStage): string {
  if (!e.focus) return "";
  return [
    `Second stage, uploads only, ${e.focus.repetitions} interleaved repetitions (same run):`,
    "",
    table(
      ["upload path", "upload ÷ direct", "median", "runs (s)"],
      e.focus.rows.map((x) => [x.label, fmt(x.upload_vs_direct), `${fmt(x.upload_median_s)} s`, x.upload_s.map((v) => fmt(v)).join(", ")]),
    ),
    ...(e.focus.paired
      ? [
          "",
          `Paired per repetition: 16k upload time ÷ default (128k) upload time, median ${fmt(e.focus.paired.median_16k_over_default)}; the default was faster in ${e.focus.paired.default_faster} of ${e.focus.paired.of} repetitions.`,
        ]
      : []),
    ...(e.focus.background ? ["", backgroundNote(e.focus.background, "repetition")] : []),
  ].join("\n");
}

function stageSection(e: ExploreStage, level: string): string {
  const t = STAGE_TITLES[e.stage];
  const labels = Object.fromEntries(e.rows.map((x) => [x.key, x.label]));
  return [
    `${level} ${t.title}`,
    "",
    `${t.about} Run ${e.generated} (${e.totalRunSeconds} s, ${e.repetitions} interleaved repetitions, ${BLOB_BYTES / MiB} MiB blob, TLS unless noted,`,
    "median). Ratios are throughput ÷ the reference's throughput in the same run (higher is better).",
    ...(e.stage === "tls" && e.defaultTuning
      ? [`The default in this run read blobs from storage with \`output_buffers ${(e.defaultTuning as { blobOutputBuffers?: string }).blobOutputBuffers ?? "2 32k"}\`${(e.defaultTuning as { blobOutputBuffers?: string }).blobOutputBuffers ? "" : " (nginx's own)"}.`]
      : []),
    "",
    exploreTable(e),
    "",
    ...(e.background ? [backgroundNote(e.background, "repetition"), ""] : []),
    ...negotiatedTable(e.negotiated, labels),
    ...(e.rows.some((x) => x.key === "ktls")
      ? [
          `Kernel TLS on this machine: ${e.machine.kernelTls ?? "not recorded"}${e.machine.kernelTls?.startsWith("available") ? "" : " — so the kTLS variant could not be active in this run; its row measures the same path as the default"}.`,
          `OpenSSL's AEAD speed here (16 KiB blocks): ${Object.entries(e.machine.aeadMBps ?? {}).map(([k, v]) => `${k} ${v} MB/s`).join(", ")}.`,
          "",
        ]
      : []),
    focusTable(e),
  ].join("\n");
}

export function renderExploreMarkdown(file: ExploreFile): string {
  const stages = EXPLORE_STAGES.map((k) => file.stages[k]).filter((x): x is ExploreStage => x !== undefined);
  return [
    "# Proxy tuning exploration",
    "",
    "Generated by `npm run bench -- --explore=<stage>` (bench/run.ts); each stage is its own run, and every figure is a",
    "ratio of two paths measured side by side in that run (method as in benchmarks.md). Differences under ~5–10 % are",
    "within the run-to-run spread here; the paired column compares each variant with the default repetition by repetition.",
    "",
    ...stages.map((e) => stageSection(e, "##") + "\n"),
  ].join("\n");
}

function exploreSection(r: Report): string {
  const stages = exploreStages(r.explore);
  const present = EXPLORE_STAGES.map((k) => stages[k]).filter((x): x is ExploreStage => x !== undefined);
  if (present.length === 0) return "## Tuning exploration\n\nNo exploration results found (run `npm run bench -- --explore=tls` and `--explore=buffers`).";
  return [
    "## Tuning exploration (`npm run bench -- --explore=<stage>`)",
    "",
    "From docs/benchmarks-explore.md (separate runs, one per stage).",
    "",
    ...present.map((e) => stageSection(e, "###") + "\n"),
  ].join("\n");
}

function exploreRatio(r: Report, key: string, dir: "upload" | "download", stage: ExploreStageName = "buffers"): string | undefined {
  const row = exploreStages(r.explore)[stage]?.rows.find((x) => x.key === key);
  if (!row) return undefined;
  const v = dir === "upload" ? row.upload_vs_direct : row.download_vs_direct;
  return v === null ? undefined : fmt(v);
}

function focusSentence(r: Report): string {
  const f = exploreStages(r.explore).buffers?.focus;
  const p = f?.paired;
  if (!f || !p) return "";
  const gain = p.median_16k_over_default - 1;
  const verdict =
    gain >= 0.03
      ? `16k uploads took ${Math.round(gain * 100)} % longer (median of the paired ratios), and 128k was faster in ${p.default_faster} of ${p.of} repetitions.`
      : gain > -0.03
        ? `The paired ratio (16k ÷ 128k upload time) has a median of ${fmt(p.median_16k_over_default)} — no difference beyond the spread in that run (128k faster in ${p.default_faster} of ${p.of}); 128k is kept for fewer, larger writes at a negligible memory cost.`
        : `16k was faster there (paired median ${fmt(p.median_16k_over_default)}): reconsider the default.`;
  return `A second stage compares 16k with the default head to head (uploads only, ${f.repetitions} interleaved repetitions): ${verdict}`;
}

function concurrentPullReasoning(r: Report, h: { ratio: (k: string, d?: number) => string; verdict: (k: string) => string }): string[] {
  if (r.ratios.concurrent_pull_proxy_vs_direct === undefined) return [];
  const c = (r.context.auth as { concurrent_pulls: { clients: number; proxy_median_s: number; direct_median_s: number } }).concurrent_pulls;
  return [
    `- **Many clients at once.** ${c.clients} simultaneous pulls of the ${IMAGE_LAYERS}-layer image through the proxy as deployed (logged in, auth cache,`,
    `  blobs from storage, TLS) took ${fmt(c.proxy_median_s)} s against ${fmt(c.direct_median_s)} s straight from the registry (anonymous, plain HTTP):`,
    `  ${h.ratio("concurrent_pull_proxy_vs_direct")}× the throughput (target ≥ 0.9: ${h.verdict("concurrent_pull_proxy_vs_direct")}).`,
  ];
}

/** What the `--explore=tls` stage says about the TLS suite, the read size and kernel TLS, for the reasoning. */
function tlsStageLines(r: Report): string[] {
  const kernel = r.machine.kernelTls ?? "not recorded";
  const ktlsAvailable = kernel.startsWith("available");
  const aead = Object.entries(r.machine.aeadMBps ?? {}).map(([k, v]) => `${k} ${v} MB/s`).join(", ");
  const negotiated = r.context.negotiated_tls as Record<string, NegotiatedTls> | undefined;
  const lines = [
    `  Kernel TLS, which would let nginx \`sendfile\` the file through TLS: ${kernel}.`,
    `  OpenSSL's AEAD speed here: ${aead}.`,
  ];
  if (negotiated?.proxy && negotiated.direct_tls) {
    lines.push(
      `  Negotiated in this run: the bench's curl got ${negotiated.proxy.benchClient} from our proxy and ${negotiated.direct_tls.benchClient} from the registry;`,
      `  a client offering Go's order (docker, containerd, skopeo) got ${negotiated.proxy.goOrderClient} from our proxy.`,
    );
  }
  const tuning = r.context.default_proxy_tuning as { blobOutputBuffers?: string } | undefined;
  if (r.ratios.proxy_download_vs_output_32k !== undefined) {
    lines.push(
      `  Reading the file in \`output_buffers ${tuning?.blobOutputBuffers ?? "?"}\` (\`blobOutputBuffers\`) instead of nginx's 2 × 32k: ${fmt(r.ratios.proxy_download_vs_output_32k)}× the throughput in this run (\`proxy_download_vs_output_32k\`).`,
    );
  }
  const e = exploreStages(r.explore).tls;
  if (!e) return [...lines, "  TLS suite and read size: no `npm run bench -- --explore=tls` results."];
  const paired = (key: string) => {
    const p = e.rows.find((x) => x.key === key)?.paired_download_vs_default;
    return p ? `${fmt(p.median)}× (faster in ${p.faster} of ${p.of})` : "not measured";
  };
  const defaultBuffers = (e.defaultTuning as { blobOutputBuffers?: string } | undefined)?.blobOutputBuffers;
  const readSizes = e.rows
    .filter((x) => x.key.startsWith("output_") && x.paired_download_vs_default)
    .map((x) => `${x.key === "output_nginx_default" ? "2 32k (nginx's)" : x.key.slice("output_".length).replace("x", " ")} ${paired(x.key)}`);
  return [
    ...lines,
    `  \`--explore=tls\` (docs/benchmarks-explore.md, ${e.generated}, ${e.repetitions} repetitions${e.background?.disturbed ? ", partly disturbed" : ""}) compared download throughput with the default of that run`,
    `  (output_buffers ${defaultBuffers ?? "2 32k"}), paired per repetition: the server choosing AES-128-GCM like Go ${paired("tls13_aes128")}; output_buffers`,
    `  ${readSizes.join(", ")}; \`ssl_conf_command Options KTLS\` ${paired("ktls")}${ktlsAvailable ? "" : " — without kernel TLS that is the default's own configuration, so it shows the spread"}.`,
  ];
}

function reasoningSection(r: Report, h: { ratio: (k: string, d?: number) => string; verdict: (k: string) => string }): string {
  const ex = (key: string, dir: "upload" | "download") => exploreRatio(r, key, dir) ?? "(no exploration data)";
  const t = r.context.transfer as { longest_upload_commit_s: number; targets: Record<string, { download_client_cpu_s: number; download_server_cpu_s: number }> };
  const a = r.context.auth as {
    load: Record<string, Record<string, { p50_ms: number; rps: number }>>;
    credentials_in_auth_cache_files: boolean;
    auth_cache_ttl_s: number;
  };
  const s = r.context.synth as { seed_100_users_s: number; typechecked_median_s: number; shipped_app: string; resynth_median_s: Record<string, number> };
  return [
    "## Defaults and why",
    "",
    "### Proxy buffering and buffer sizes (DEFAULT_PROXY_TUNING)",
    "",
    `- **Uploads stream** (\`proxy_request_buffering off\`, HTTP/1.1 to the registry): upload through our proxy ${h.ratio("proxy_upload_vs_direct")}× the`,
    `  direct throughput (target ≥ 0.9: ${h.verdict("proxy_upload_vs_direct")}). The recipe's request buffering writes the whole layer to the proxy's`,
    `  disk before the registry sees a byte: ${h.ratio("recipe_upload_vs_direct")}× direct here, and in the exploration turning request`,
    `  buffering on in our configuration gave ${ex("reqbuf_on", "upload")}× direct. It also needs free disk the size of the largest layer.`,
    `- **\`client_body_buffer_size 128k\`** (new; before, nginx's 16k): with request buffering off it is the piece size nginx reads`,
    `  from the client and writes (as one chunk) to the registry. Exploration: 16k ${ex("body_16k", "upload")}×, 64k ${ex("body_64k", "upload")}×, 128k`,
    `  ${ex("body_128k", "upload")}× and ${ex("proxy", "upload")}× (the same configuration twice), 1m ${ex("body_1m", "upload")}× direct. ${focusSentence(r)}`,
    "  Memory: one such buffer per upload in flight.",
    "- **Downloads are buffered in memory only** (`proxy_buffering on`, `proxy_buffer_size 64k`, `proxy_buffers 16 256k`,",
    "  `proxy_max_temp_file_size 0`), unchanged: in the exploration no variant was faster beyond the run-to-run spread —",
    `  unbuffered ${ex("respbuf_off", "download")}× (1m buffer: ${ex("respbuf_off_1m", "download")}×), 8 × 1m buffers ${ex("buffers_8x1m", "download")}×,`,
    `  temp files allowed (1024m) ${ex("tempfile_1024m", "download")}×, against ${ex("proxy", "download")}× for the default — and nginx's own 4k`,
    `  buffers were slower (${ex("buffers_small", "download")}×). Temp files stay off so that a slow client throttles the read from the registry`,
    "  instead of spooling up to 1 GiB per response into the container's writable layer; the price is at most",
    "  64k + 16 × 256k ≈ 4 MiB of memory per download whose client is slower than the registry. `sendfile` does not",
    `  matter for proxied responses (off: ${ex("sendfile_off", "download")}×).`,
    `- **Blobs served from storage** (\`serveBlobsFromStorage\`, on by default with the auth cache): nginx reads the layer from the`,
    `  data volume instead of passing it through the registry. Our proxy as deployed downloads at ${h.ratio("proxy_download_vs_registry_tls")}× the throughput of the`,
    `  registry terminating TLS itself (target ≥ 1.0: ${h.verdict("proxy_download_vs_registry_tls")}) and ${h.ratio("proxy_download_vs_direct")}× the registry over plain HTTP`,
    `  (stretch target ≥ 0.8: ${h.verdict("proxy_download_vs_direct")}). The same proxy with every blob through the registry (\`serveBlobsFromStorage: false\`, the`,
    `  proxy before this setting): ${h.ratio("proxy_via_registry_download_vs_registry_tls")}× and ${h.ratio("proxy_via_registry_download_vs_direct")}×. Server-side CPU per download: ${h.ratio("proxy_download_server_cpu_vs_direct")}× a direct`,
    `  download from storage, ${h.ratio("proxy_via_registry_download_server_cpu_vs_direct")}× through the registry. What remains is TLS: client (curl decrypting),`,
    "  nginx (encrypting), registry and docker-proxy share the two vCPUs, so the client's decryption is part of the measured",
    `  time (curl used ${fmt(t.targets.proxy.download_client_cpu_s)} CPU-s per download through the TLS proxy against ${fmt(t.targets.direct.download_client_cpu_s)} directly); the same proxy over`,
    `  plain HTTP reaches ${h.ratio("plain_proxy_download_vs_direct")}×.`,
    ...tlsStageLines(r),
    `  Against the recipe our proxy is ahead in both directions (upload ${h.ratio("proxy_upload_vs_recipe")}×, download ${h.ratio("proxy_download_vs_recipe")}×`,
    "  the recipe's throughput).",
    ...concurrentPullReasoning(r, h),
    "",
    "### Timeouts",
    "",
    "`proxy_read_timeout` and `proxy_send_timeout` stay at 900 s (the recipe's value). They do not change throughput; they bound",
    "how long nginx waits for a silent registry. The longest silence on a healthy path is the registry's commit of an upload",
    `(\`PUT ?digest=\`): at most ${fmt(t.longest_upload_commit_s)} s for 512 MiB on local disk here, but on object storage the commit copies the blob and`,
    "takes much longer for multi-GiB layers. A lower value would cut such pushes off; the bench does not measure anything",
    "that argues for changing it.",
    "",
    "### bcrypt cost",
    "",
    `Stays at 10. Every request with Basic credentials runs a full bcrypt compare in the registry: at cost 10 \`GET /v2/\` serves`,
    `${h.ratio("auth_rps_get_v2_cost10_vs_anonymous")}× the anonymous request rate (p50 ${fmt(a.load["GET /v2/"].cost10.p50_ms, 0)} ms at concurrency 8, against`,
    `${fmt(a.load["GET /v2/"].anonymous.p50_ms, 0)} ms anonymous), cost 12 ${h.ratio("auth_rps_get_v2_cost12_vs_anonymous")}× (p50 ${fmt(a.load["GET /v2/"].cost12.p50_ms, 0)} ms). Cost 5 would`,
    `nearly remove the penalty (pull ${h.ratio("auth_pull_cost5_vs_anonymous")}× anonymous, ${h.ratio("auth_rps_get_v2_cost5_vs_anonymous")}× the request rate) but makes`,
    "guessing passwords from a leaked htpasswd 32 times cheaper than at cost 10: rejected, stored hashes keep cost ≥ 10.",
    MIN_BCRYPT_COST < 10
      ? `The schema still accepts ${MIN_BCRYPT_COST}–9 (\`MIN_BCRYPT_COST\` in config/rules.ts); raising that minimum to 10 would enforce it.`
      : `The schema enforces it (\`MIN_BCRYPT_COST\` = ${MIN_BCRYPT_COST}).`,
    "",
    "### Auth cache: default and TTL",
    "",
    `Without the cache an authenticated pull of the ${IMAGE_LAYERS}-layer image takes ${h.ratio("auth_pull_vs_anonymous")}× the anonymous time`,
    `(target ≤ 1.25: ${h.verdict("auth_pull_vs_anonymous")}): a pull is more than ${IMAGE_LAYERS} requests and each pays a bcrypt compare. Through the auth`,
    `cache (cost 10, TTL ${a.auth_cache_ttl_s} s) it takes ${h.ratio("auth_cached_pull_vs_anonymous")}× (${h.verdict("auth_cached_pull_vs_anonymous")}); the first pull through an empty cache`,
    `${h.ratio("auth_cached_cold_pull_vs_anonymous")}×, and \`GET /v2/\` runs at ${h.ratio("auth_rps_get_v2_cached10_vs_anonymous")}× the anonymous rate. The hashes stay at cost 10 in the`,
    "verifier; what changes is what else is trusted and stored:",
    "",
    "- **Removed users and changed passwords.** A cached success is trusted for the TTL. The stack replaces the verifier",
    "  whenever the users change (its htpasswd upload changes) and the proxy with it (its `registry-stack.auth-container`",
    "  label carries the verifier's container id), so every deploy that removes a user or changes a password starts with",
    "  an empty cache; the window is the deploy itself. Only an out-of-band edit inside the verifier would be masked",
    "  for up to the TTL.",
    "- **Guessing.** Only 200s are cached; every wrong password still costs a full bcrypt in the verifier.",
    `- **Credentials in the cache — the real cost.** nginx writes each entry's key, the client's \`Authorization\` header (base64`,
    "  of `user:password`), into its cache file under /tmp/nginx-auth-cache in the proxy container",
    `  (${a.credentials_in_auth_cache_files ? "found in this run's cache files, read from the host through /proc/<pid>/root" : "NOT found in this run's cache files — check bench/auth-bench.ts"}). Without the cache the Docker host holds`,
    "  only bcrypt hashes; with it, the reversible passwords of every user active within the TTL (an entry stays while",
    "  it is used and is deleted after a TTL without use). constructs/nginx-proxy.ts mounts a tmpfs there (16 MiB,",
    "  mode 0700, and the bench does the same), so they never reach the container's writable layer, a disk or a backup",
    "  of /var/lib/docker; root on the host can still read them (docker exec, /proc), as it can read nginx's memory",
    "  and the TLS key, and on a host with swap, tmpfs pages can be swapped out.",
    "",
    `**Recommendation, and what the stack now does** (config/schema.ts: \`DEFAULT_AUTH_CACHE_SECONDS\` = ${DEFAULT_AUTH_CACHE_SECONDS}${DEFAULT_AUTH_CACHE_SECONDS === a.auth_cache_ttl_s ? ", the TTL measured here" : `, while this run measured ${a.auth_cache_ttl_s} s`}):`,
    "the cache on by default whenever the proxy is used, with the cache directory on a tmpfs. 60 s is enough: a pull",
    "or a push is a burst of requests within seconds, a request after expiry pays one bcrypt and refreshes the entry,",
    "and a longer TTL only keeps idle credentials around longer. Turn it off (`authCacheSeconds: 0`) where nobody",
    "with root on the Docker host may see passwords. With the cache on, a higher bcrypt cost (12) becomes",
    "affordable, since one compare per user and TTL pays it — not measured here beyond the per-request figures above.",
    "",
    "### Synth",
    "",
    `Re-synth with 100 unchanged users takes ${h.ratio("resynth_100_vs_1_users")}× the 1-user time (target ≤ 1.5: ${h.verdict("resynth_100_vs_1_users")}): unchanged`,
    "passwords are recognised by their HMAC fingerprint and not re-hashed (every re-synth produced a byte-identical",
    `cdk.tf.json). Hashing is paid once, when users are added: the first synth after adding 99 users took ${fmt(s.seed_100_users_s)} s against`,
    `${fmt(s.resynth_median_s["1_users"])} s for a re-synth.`,
    "",
    `\`cdktf synth\` as shipped (app \`${s.shipped_app}\`) takes ${h.ratio("synth_vs_typechecked_synth")}× the time of the same synth with the app`,
    `type-checked at run time (${fmt(s.resynth_median_s["1_users"])} s against ${fmt(s.typechecked_median_s)} s; target ≤ 0.6: ${h.verdict("synth_vs_typechecked_synth")}). Type checking stays`,
    "enforced by `npm test` (tsc --noEmit) and CI; synth only transpiles. What remains is tool start-up: npx, the cdktf CLI",
    "(which runs `terraform version` checks of its own) and loading cdktf and the provider bindings in the app.",
  ].join("\n");
}
