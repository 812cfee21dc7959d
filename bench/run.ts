import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { AuthBenchResult, runAuthBench } from "./auth-bench";
import { Lab } from "./lab";
import { killAllChildren, run } from "./proc";
import {
  BUFFER_VARIANTS,
  DEFAULT_VARIANT,
  measureTransfers,
  negotiatedTls,
  NegotiatedTls,
  PLAIN_VARIANT,
  OUTPUT_32K_VARIANT,
  ProxyBenchResult,
  startTransferTargets,
  TLS_VARIANTS,
  VIA_REGISTRY_VARIANT,
} from "./proxy-bench";
import {
  buildReport,
  buildExploreStage,
  ExploreStageName,
  EXPLORE_STAGES,
  Machine,
  mergeExploreFile,
  renderExploreMarkdown,
  renderMarkdown,
  renderTable,
  Report,
} from "./report";
import { Budget } from "./stats";
import { runSynthBench, SynthBenchResult } from "./synth-bench";
import { runStorageMode, STORAGE_PARTS, StoragePart } from "./storage-mode";

/**
 * `npm run bench`               proxy throughput, authentication cost, synth time → docs/benchmarks.{md,json}
 * `npm run bench -- --explore=tls`      TLS 1.3 suite order, blobOutputBuffers, kTLS (downloads from storage)
 * `npm run bench -- --explore=buffers`  proxy buffering and upload piece sizes
 *                               each stage → its section of docs/benchmarks-explore.{md,json} (the other stage's is kept)
 * `npm run bench -- --only=proxy,auth,synth`  a subset, printed only (docs are written by full runs)
 * `npm run bench -- --render-only`  rewrites docs/benchmarks.md and docs/benchmarks-explore.md from their JSON (no measuring)
 * `npm run bench -- --quick`   one repetition of everything, printed only (checks the bench itself)
 * `npm run bench -- --storage` storage lifecycle write window and mirror cold pulls → docs/benchmarks-storage.{md,json}
 * `npm run bench -- --storage --only=mirror`  (or gc) one part; the other part's figures are kept in the docs
 *                               (a mode of its own: with it the whole bench would outgrow its ~8 minutes; add --quick to check it)
 *
 * BENCH_ADDRESS_POOL gives the bench engine its own networks (default 10.214.0.0/16).
 * Needs root (a private dockerd, like the e2e suite). The whole run is bounded: a watchdog
 * stops it at HARD_LIMIT_MS, cleans up, writes what was measured with the rest marked as cut
 * (`complete: false`), and exits non-zero.
 */

const PROJECT_DIR = path.resolve(__dirname, "..");
const DOCS_DIR = path.join(PROJECT_DIR, "docs");
/** The watchdog's limit; BENCH_HARD_LIMIT_S may only lower it (used to test the abort path). */
const HARD_LIMIT_MS = Math.min(9.5 * 60_000, 1000 * Number(process.env.BENCH_HARD_LIMIT_S ?? Infinity));
const CLEANUP_RESERVE_MS = 30_000;
/** Time the later phases need (estimates from runs on the 2-vCPU machine, with margin). */
const SYNTH_PHASE_MS = 230_000;
const AUTH_PHASE_MS = 140_000;
const FOCUS_PHASE_MS = 140_000;
const FOCUS_KEYS = ["direct", "body_16k", "proxy"];

const log = (line: string) => console.log(`  . ${line}`);

interface Args {
  renderOnly: boolean;
  explore?: ExploreStageName;
  storage: boolean;
  quick: boolean;
  only: Set<string>;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { renderOnly: false, storage: false, quick: false, only: new Set(["proxy", "auth", "synth"]) };
  let onlyGiven = false;
  for (const a of argv) {
    if (a === "--render-only") args.renderOnly = true;
    else if (a === "--quick") args.quick = true;
    else if (a === "--explore" || a.startsWith("--explore=")) {
      const stage = a.slice("--explore=".length);
      if (!(EXPLORE_STAGES as readonly string[]).includes(stage)) throw new Error(`${a}: name a stage: ${EXPLORE_STAGES.map((x) => `--explore=${x}`).join(" or ")} (together they would outgrow the time limit)`);
      args.explore = stage as ExploreStageName;
    }
    else if (a === "--storage") args.storage = true;
    else if (a.startsWith("--only=")) {
      args.only = new Set(a.slice("--only=".length).split(",").filter(Boolean));
      onlyGiven = true;
    }
    else throw new Error(`unknown argument ${a}; use --explore=tls|buffers, --storage, --quick or --only=proxy,auth,synth`);
  }
  if (args.storage) {
    if (!onlyGiven) args.only = new Set(STORAGE_PARTS);
    for (const part of args.only) if (!(STORAGE_PARTS as readonly string[]).includes(part)) throw new Error(`--storage --only: unknown part ${part}; use ${STORAGE_PARTS.join(", ")}`);
    return args;
  }
  for (const part of args.only) if (!["proxy", "auth", "synth"].includes(part)) throw new Error(`--only: unknown part ${part}`);
  if (args.only.has("auth") && !args.only.has("proxy")) throw new Error("--only=auth needs proxy too (the auth part reuses its registry and proxy)");
  return args;
}

async function machine(): Promise<Machine> {
  const version = async (cmd: string, a: string[]) => {
    try {
      const { stdout, stderr } = await run(cmd, a, { timeoutMs: 10_000 });
      return (stdout || stderr).trim().split("\n")[0];
    } catch {
      return "unknown";
    }
  };
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    dockerd: await version("/usr/sbin/dockerd", ["--version"]),
    curl: await version("curl", ["--version"]),
    skopeo: await version("skopeo", ["--version"]),
    kernelTls: kernelTls(),
    aeadMBps: await aeadSpeed(),
  };
}

/** kTLS needs the kernel's `tls` module; /proc/net/tls_stat exists once it is there. */
function kernelTls(): string {
  if (fs.existsSync("/proc/net/tls_stat")) return "available (/proc/net/tls_stat present)";
  let config = "";
  try {
    const gz = fs.readFileSync("/proc/config.gz");
    config = zlib.gunzipSync(gz).toString().split("\n").find((l) => /CONFIG_TLS[ =]/.test(l)) ?? "";
  } catch {
    // no kernel config exposed
  }
  return `not available (no /proc/net/tls_stat${config ? `; ${config.trim()}` : ""})`;
}

async function aeadSpeed(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const cipher of ["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"]) {
    try {
      const { stdout } = await run("openssl", ["speed", "-seconds", "1", "-bytes", "16384", "-evp", cipher], { timeoutMs: 20_000 });
      const last = stdout.trim().split("\n").pop() ?? "";
      const k = Number(/([\d.]+)k\s*$/.exec(last)?.[1]);
      if (Number.isFinite(k)) out[cipher] = Math.round(k / 1000);
    } catch {
      // openssl missing: leave it out
    }
  }
  return out;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.renderOnly) {
    const report = JSON.parse(fs.readFileSync(path.join(DOCS_DIR, "benchmarks.json"), "utf8")) as Report;
    fs.writeFileSync(path.join(DOCS_DIR, "benchmarks.md"), renderMarkdown(report));
    console.log(renderTable(report));
    console.log("rewrote docs/benchmarks.md from docs/benchmarks.json");
    const explore = readExplore();
    if (explore) {
      const file = mergeExploreFile(explore, undefined);
      fs.writeFileSync(path.join(DOCS_DIR, "benchmarks-explore.md"), renderExploreMarkdown(file));
      console.log("rewrote docs/benchmarks-explore.md from docs/benchmarks-explore.json");
    }
    return 0;
  }
  const budget = new Budget(HARD_LIMIT_MS);
  if (args.storage) {
    const parts = new Set([...args.only] as StoragePart[]);
    return runStorageMode({ budget, hardLimitMs: HARD_LIMIT_MS, cleanupReserveMs: CLEANUP_RESERVE_MS, quick: args.quick, parts, docsDir: DOCS_DIR, machine, log });
  }
  // --quick: one repetition of every loop, to check the bench itself; the figures mean little.
  const reps = (minClean: number, minReps: number, maxReps: number) =>
    args.quick ? { minClean: 1, minReps: 1, maxReps: 1 } : { minClean, minReps, maxReps };
  const lab = new Lab(log);
  let aborted = false;
  const watchdog = new Promise<never>((_, reject) => {
    const timer = setTimeout(() => {
      aborted = true;
      reject(new Error(`time limit of ${HARD_LIMIT_MS / 1000} s reached`));
    }, HARD_LIMIT_MS - CLEANUP_RESERVE_MS);
    timer.unref();
  });

  if (args.explore) {
    const stage = args.explore;
    const explore = async () => {
      const info = await machine();
      log("starting the bench engine and importing the e2e images");
      await lab.start();
      if (stage === "tls") {
        // Plain HTTP through the proxy, as context for what TLS costs (downloads only).
        const plain = { ...PLAIN_VARIANT, downloadOnly: true };
        const { targets } = await startTransferTargets(lab, [...TLS_VARIANTS, plain], { registryTls: true, recipe: false });
        const negotiated = await negotiatedTls(targets);
        for (const [key, n] of Object.entries(negotiated)) log(`${key}: curl ${n.benchClient}; Go's client order ${n.goOrderClient}`);
        const proxy = await measureTransfers(lab, targets, { ...reps(10, 12, 14), budget, reserveMs: CLEANUP_RESERVE_MS, log });
        return buildExploreStage("tls", info, proxy, budget.elapsedMs() / 1000, { negotiated });
      }
      const { targets } = await startTransferTargets(lab, [...BUFFER_VARIANTS, PLAIN_VARIANT], { registryTls: false, recipe: true });
      const proxy = await measureTransfers(lab, targets, { ...reps(3, 3, 4), budget, reserveMs: FOCUS_PHASE_MS + CLEANUP_RESERVE_MS, log });
      // Second stage: the one knob whose effect is about the size of the spread above, with
      // more repetitions (uploads only): nginx's 16k upload pieces against the default.
      log("focus: upload piece size (client_body_buffer_size), more repetitions");
      const focusTargets = targets.filter((x) => FOCUS_KEYS.includes(x.key));
      const focus = await measureTransfers(lab, focusTargets, { ...reps(8, 3, 9), budget, reserveMs: CLEANUP_RESERVE_MS, log, uploadsOnly: true });
      return buildExploreStage("buffers", info, proxy, budget.elapsedMs() / 1000, { focus });
    };
    let result: Awaited<ReturnType<typeof explore>> | undefined;
    try {
      result = await Promise.race([explore(), watchdog]);
    } catch (err) {
      console.error(`bench failed: ${(err as Error).message}`);
      if (aborted) killAllChildren();
    }
    await lab.cleanup();
    // A stage is one measuring loop: stopped inside it, nothing complete is left to write.
    if (!result) return aborted ? 3 : 1;
    const file = mergeExploreFile(readExplore(), result);
    console.log(renderExploreMarkdown(file));
    if (args.quick) {
      console.log(`--quick: docs not written (total ${(budget.elapsedMs() / 1000).toFixed(0)} s)`);
      return 0;
    }
    fs.writeFileSync(path.join(DOCS_DIR, "benchmarks-explore.json"), JSON.stringify(file, null, 2) + "\n");
    fs.writeFileSync(path.join(DOCS_DIR, "benchmarks-explore.md"), renderExploreMarkdown(file));
    console.log(`wrote the ${stage} stage of docs/benchmarks-explore.md and docs/benchmarks-explore.json (total ${(budget.elapsedMs() / 1000).toFixed(0)} s)`);
    return 0;
  }

  // What has been measured so far: the watchdog writes these if the run does not finish.
  const measured: { info?: Machine; proxy?: ProxyBenchResult; negotiated?: Record<string, NegotiatedTls>; auth?: AuthBenchResult; synth?: SynthBenchResult } = {};
  let current = "machine information";
  const work = async () => {
    measured.info = await machine();
    if (args.only.has("proxy")) {
      current = "proxy throughput";
      log("starting the bench engine and importing the e2e images");
      await lab.start();
      log("part 1: proxy throughput (512 MiB blob)");
      const { targets, setup } = await startTransferTargets(lab, [DEFAULT_VARIANT, VIA_REGISTRY_VARIANT, OUTPUT_32K_VARIANT, PLAIN_VARIANT], { registryTls: true, recipe: true });
      measured.negotiated = await negotiatedTls(targets);
      const reserve = CLEANUP_RESERVE_MS + (args.only.has("auth") ? AUTH_PHASE_MS : 0) + (args.only.has("synth") ? SYNTH_PHASE_MS : 0);
      measured.proxy = await measureTransfers(lab, targets, { ...reps(5, 3, 6), budget, reserveMs: reserve, log });
      if (args.only.has("auth")) {
        current = "authentication cost";
        log("part 2: authentication cost");
        measured.auth = await runAuthBench(lab, setup, {
          budget,
          minPullReps: reps(5, 5, 8).minClean,
          maxPullReps: reps(5, 5, 8).maxReps,
          minConcurrentReps: reps(3, 3, 5).minClean,
          maxConcurrentReps: reps(3, 3, 5).maxReps,
          loadMs: 5_000,
          reserveMs: CLEANUP_RESERVE_MS + (args.only.has("synth") ? SYNTH_PHASE_MS : 0),
          log,
        });
      }
      // The engine is not needed for synth: stop it first so it does not compete for the CPUs.
      await lab.cleanup();
    }
    if (args.only.has("synth")) {
      current = "synth time";
      log("part 3: synth time");
      measured.synth = await runSynthBench(PROJECT_DIR, { ...reps(3, 3, 4), budget, reserveMs: CLEANUP_RESERVE_MS, log });
    }
  };

  let failed = false;
  try {
    await Promise.race([work(), watchdog]);
  } catch (err) {
    console.error(`bench failed: ${(err as Error).message}`);
    failed = true;
    if (aborted) killAllChildren();
  }
  await lab.cleanup();
  if (failed && (!aborted || !measured.info)) return aborted ? 3 : 1;
  // The watchdog fired: what was measured is written, the rest marked as cut.
  const stoppedIn = failed ? current : undefined;
  const totalS = budget.elapsedMs() / 1000;
  const wanted = (["proxy", "auth", "synth"] as const).filter((part) => args.only.has(part));
  const notMeasured = wanted.filter((part) => measured[part] === undefined);
  const report = buildReport(measured.info!, measured, totalS, readExplore(), {
    stoppedIn: stoppedIn ? `the watchdog stopped the run at ${((HARD_LIMIT_MS - CLEANUP_RESERVE_MS) / 1000).toFixed(0)} s during ${stoppedIn}` : undefined,
    notMeasured,
  });
  console.log(renderTable(report));
  const fullRun = wanted.length === 3 && !args.quick;
  if (fullRun) {
    fs.writeFileSync(path.join(DOCS_DIR, "benchmarks.json"), JSON.stringify(report, null, 2) + "\n");
    fs.writeFileSync(path.join(DOCS_DIR, "benchmarks.md"), renderMarkdown(report));
    console.log(`wrote docs/benchmarks.md and docs/benchmarks.json (total run time ${totalS.toFixed(0)} s${report.complete ? "" : "; INCOMPLETE, see cuts"})`);
  } else {
    console.log(`partial run (--only or --quick): docs not written (total ${totalS.toFixed(0)} s)`);
    if (args.quick) console.log(JSON.stringify({ ratios: report.ratios, complete: report.complete, cuts: report.cuts, disturbed: report.disturbed }, null, 2));
    if (args.quick && wanted.length === 3) {
      // The whole report is rendered as a full run would write it, outside docs/.
      const file = path.join(os.tmpdir(), "rsbench-quick.md");
      fs.writeFileSync(file, renderMarkdown(report));
      console.log(`rendered the report of this quick run to ${file}`);
    }
  }
  return stoppedIn ? 3 : 0;
}

function readExplore(): unknown {
  try {
    return JSON.parse(fs.readFileSync(path.join(DOCS_DIR, "benchmarks-explore.json"), "utf8")) as unknown;
  } catch {
    return undefined;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
