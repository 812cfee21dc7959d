import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { RegistryStackConfig, resolveSettings } from "../config/schema";
import { NginxProxy } from "../constructs/nginx-proxy";
import { Engine, startEngine } from "../e2e/engine";
import { Workspace } from "../e2e/harness";
import { prepareImages } from "../e2e/images";
import { killRunningCommands, run } from "../e2e/proc";
import { RegistryStorage } from "../e2e/registry-storage";
import { runningInstances } from "../e2e/stack-containers";
import { ensureTerraformTools } from "../e2e/terraform-tools";
import { deployLatency } from "./deploy-latency";
import { floodRound, FLOOD_ADDRESSES, FLOOD_PER_SECOND, prepareFlood } from "./flood";
import { concurrentPulls, handToRegistry, pull, storeImage } from "./pulls";
import { buildReport, Machine, Measured, renderMarkdown, renderTable } from "./report";
import { idleConnectionMemory, listCatalog, listTags, SCALE_REPOSITORIES, SCALE_TAGS, writeRepositories } from "./scale";
import { DeployedStack, deployProxied, deployRegistryTls, ProxiedStack, PUSHER, READER } from "./stack";
import { median } from "./targets";
import { BlobFile, childrenCpuSeconds, containerCpuSeconds, downloadBlob, Endpoint, uploadBlob, writeRandomBlob } from "./transfers";

/**
 * `npm run bench`: deploys the stack with `cdktf deploy` on a private engine (the e2e harness),
 * measures it against bench/targets.ts and writes docs/benchmarks.{json,md} after every phase,
 * so a run cut by its time limit leaves what it measured (`complete: false`, the cuts named).
 * `--quick`: one repetition of each loop, written to the temp folder instead of docs/;
 * `--only=<phase>,…` runs only the phases whose names start with those words.
 * BENCH_ADDRESS_POOL gives the bench engine its own networks (another engine may run beside it).
 * Needs root, like the e2e suite.
 */

const DOCS_DIR = path.resolve(__dirname, "..", "docs");
/** The whole run, cleanup included, stays within 10 minutes; BENCH_HARD_LIMIT_S may only lower it. */
const HARD_LIMIT_MS = Math.min(9.5 * 60_000, 1000 * Number(process.env.BENCH_HARD_LIMIT_S ?? Infinity));
const CLEANUP_RESERVE_MS = 25_000;
const ADDRESS_POOL = process.env.BENCH_ADDRESS_POOL ?? "base=10.214.0.0/16,size=24";
const QUICK = process.argv.includes("--quick");
/** `--only=flood,listings`: the phases whose names start with these words (for working on the bench; the report says the rest were left out). */
const ONLY = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length).split(",");
const REPS = QUICK ? 1 : 5;
const BLOB_BYTES = 128 * 2 ** 20;
const MiB = 2 ** 20;
/** Long enough for a few hundred valid users' requests on a quiet machine, so that their p99 is not just the maximum. */
const FLOOD_WINDOW_MS = 5_000;

const started = Date.now();
const left = () => HARD_LIMIT_MS - CLEANUP_RESERVE_MS - (Date.now() - started);
const log = (line: string) => console.log(`${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s ${line}`);

const measured: Measured = { samples: {}, figures: {} };
const cuts: string[] = [];
let machine: Machine;

function uptime(): string {
  const [a, b, c] = os.loadavg().map((x) => x.toFixed(2));
  return `up ${(os.uptime() / 3600).toFixed(1)} h, load average: ${a}, ${b}, ${c}`;
}

function tcpUlps(): string | undefined {
  try {
    return fs.readFileSync("/proc/sys/net/ipv4/tcp_available_ulp", "utf8").trim();
  } catch {
    return undefined;
  }
}

async function aeadSpeed(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const cipher of ["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"]) {
    const { stdout } = await run("openssl", ["speed", "-seconds", "1", "-bytes", "16384", "-evp", cipher], { timeoutMs: 20_000 });
    const k = Number(/([\d.]+)k\s*$/.exec(stdout.trim().split("\n").pop() ?? "")?.[1]);
    if (Number.isFinite(k)) out[cipher] = Math.round(k / 1000);
  }
  return out;
}

/** Phases not run yet: an intermediate report names them, so a run killed outright is not taken for complete. */
let pending: string[] = [];

function write(end = false): void {
  if (end) machine = { ...machine, uptimeAtEnd: uptime() };
  const notYet = end || pending.length === 0 ? [] : [`run in progress, not yet run: ${pending.join(", ")}`];
  const report = buildReport(machine, measured, { seconds: (Date.now() - started) / 1000, cuts: [...cuts, ...notYet] });
  const dir = QUICK ? os.tmpdir() : DOCS_DIR;
  fs.writeFileSync(path.join(dir, "benchmarks.json"), JSON.stringify(report, null, 2) + "\n");
  fs.writeFileSync(path.join(dir, "benchmarks.md"), renderMarkdown(report));
  if (end) console.log(`${renderTable(report)}\nwrote ${dir}/benchmarks.{json,md}`);
}

const add = (id: string, value: number) => (measured.samples[id] ??= []).push(value);
const figure = (name: string, text: string) => (measured.figures[name] = text);
const ms = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`;

/** Up to `n` repetitions, none started after `deadline`; says when the deadline cut them. */
async function repeat(what: string, n: number, deadline: number, body: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < n; i++) {
    if (i > 0 && Date.now() > deadline) {
      cuts.push(`${what}: ${i} of ${n} repetitions (time budget)`);
      return;
    }
    await body(i);
  }
}

interface Stacks {
  engine: Engine;
  proxied: ProxiedStack;
  registryTls: DeployedStack;
  ws: Workspace;
}

interface UploadCpu {
  registry: number;
  nginx: number;
  curl: number;
}

/** CPU seconds used so far by the data registry's instances, the proxy and this process's curl children. */
async function uploadCpu(s: Stacks, registryInstances: string[]): Promise<UploadCpu> {
  const registry = (await Promise.all(registryInstances.map((name) => containerCpuSeconds(s.engine, name)))).reduce((a, b) => a + b, 0);
  return { registry, nginx: await containerCpuSeconds(s.engine, s.proxied.proxyContainer), curl: childrenCpuSeconds() };
}

async function transfers(s: Stacks, deadline: number): Promise<void> {
  const blob: BlobFile = writeRandomBlob(path.join(s.ws.dir("blob"), "blob"), BLOB_BYTES);
  const credentials = `${PUSHER.name}:${PUSHER.password}`;
  const proxy: Endpoint = { label: "proxy", base: s.proxied.baseUrl, caFile: s.proxied.caFile, credentials };
  const direct: Endpoint = { label: "direct", base: "http://localhost", unixSocket: s.proxied.registrySocket, credentials };
  const tls: Endpoint = { label: "registry TLS", base: s.registryTls.baseUrl, caFile: s.registryTls.caFile, credentials };
  const repo = "bench/upload";
  const timeoutMs = 120_000;
  for (const ep of [proxy, tls]) await uploadBlob(ep, repo, blob, timeoutMs);
  const times: Record<string, number[]> = {};
  const time = (k: string, v: number) => (times[k] ??= []).push(v);
  const proxyCpu: number[] = [];
  const curlCpu: number[] = [];
  const upCpu: Record<string, number[]> = {};
  const registryInstances = (await runningInstances(s.engine, `${s.proxied.prefix}-registry`)).map((i) => i.name);
  await repeat("transfers", REPS, deadline, async (i) => {
    // Alternate who goes first, so that neither side always meets a warmer cache.
    const ups = i % 2 === 0 ? [proxy, direct] : [direct, proxy];
    for (const ep of ups) {
      const before = await uploadCpu(s, registryInstances);
      const took = await uploadBlob(ep, repo, blob, timeoutMs);
      time(`up ${ep.label}`, took.post + took.patch + took.put);
      for (const [request, seconds] of Object.entries(took)) time(`up ${ep.label} ${request}`, seconds);
      const after = await uploadCpu(s, registryInstances);
      for (const k of Object.keys(after) as Array<keyof UploadCpu>) (upCpu[`${ep.label} ${k}`] ??= []).push(after[k] - before[k]);
    }
    for (const ep of i % 2 === 0 ? [proxy, tls, direct] : [direct, tls, proxy]) {
      const cpu = ep === proxy ? await containerCpuSeconds(s.engine, s.proxied.proxyContainer) : 0;
      const client = childrenCpuSeconds();
      time(`down ${ep.label}`, await downloadBlob(ep, repo, blob, timeoutMs));
      if (ep === proxy) {
        curlCpu.push(childrenCpuSeconds() - client);
        proxyCpu.push((await containerCpuSeconds(s.engine, s.proxied.proxyContainer)) - cpu);
      }
    }
    const last = (k: string) => times[k][times[k].length - 1];
    add("upload_vs_direct", last("up direct") / last("up proxy"));
    add("download_vs_registry_tls", last("down registry TLS") / last("down proxy"));
    add("download_vs_direct", last("down direct") / last("down proxy"));
  });
  const rate = (k: string) => `${(BLOB_BYTES / MiB / median(times[k])).toFixed(0)} MiB/s`;
  figure("upload (128 MiB blob, curl, POST + PATCH + PUT)", `proxy ${rate("up proxy")}, straight to the registry's socket ${rate("up direct")}`);
  figure("download (128 MiB blob, curl)", `proxy ${rate("down proxy")}, registry's own TLS ${rate("down registry TLS")}, registry's socket ${rate("down direct")}`);
  const cpu = (k: string) => median(upCpu[k]).toFixed(2);
  figure(
    "CPU and time per upload (CPU-s and s, medians)",
    ["proxy", "direct"]
      .map((via) => {
        const requests = ["post", "patch", "put"].map((r) => `${r.toUpperCase()} ${median(times[`up ${via} ${r}`]).toFixed(3)}`).join(" + ");
        const total = ["registry", "nginx", "curl"].reduce((sum, k) => sum + median(upCpu[`${via} ${k}`]), 0);
        const seconds = median(times[`up ${via}`]);
        return (
          `${via === "proxy" ? "through the proxy" : "straight to the socket"}: registry instances ${cpu(`${via} registry`)}, nginx ${cpu(`${via} nginx`)}, curl ${cpu(`${via} curl`)} in ${seconds.toFixed(2)} s (${requests} s); ` +
          `${total.toFixed(2)} CPU-s in all, ${(total / seconds).toFixed(2)} of the 2 cores busy on average (the whole of both would take ${(total / 2).toFixed(2)} s)`
        );
      })
      .join("; "),
  );
  figure(
    "proxy CPU per download",
    `nginx ${median(proxyCpu).toFixed(2)} CPU-s and curl ${median(curlCpu).toFixed(2)} CPU-s for ${median(times["down proxy"]).toFixed(2)} s of transfer (medians; both on the same 2 cores as the machine's other work); ` +
      `curl's receiving through TLS alone, on a core of its own, could not go faster than ${(BLOB_BYTES / MiB / median(curlCpu)).toFixed(0)} MiB/s, ${(median(times["down direct"]) / median(curlCpu)).toFixed(2)}× the socket's median`,
  );
}

async function authPulls(s: Stacks, deadline: number): Promise<void> {
  const storage = new RegistryStorage(s.proxied.dataDir);
  const image = storeImage(storage, "bench/pull", "1", 10, 256 * 1024);
  await handToRegistry(storage);
  await pull(s.proxied, image, READER);
  await pull(s.proxied, image);
  const auth: number[] = [];
  const anon: number[] = [];
  await repeat("authenticated vs anonymous pulls", REPS, deadline, async () => {
    let a = 0;
    let b = 0;
    for (let k = 0; k < 6; k++) {
      a += await pull(s.proxied, image, READER);
      b += await pull(s.proxied, image);
    }
    auth.push(a / 6);
    anon.push(b / 6);
    add("auth_pull_vs_anonymous", a / b);
  });
  figure("pull of a 10-layer image (2.5 MiB), fresh connections", `authenticated (cached login) ${ms(auth)}, anonymous ${ms(anon)}`);
}

async function flood(s: Stacks, deadline: number): Promise<void> {
  const storage = new RegistryStorage(s.proxied.dataDir);
  const image = storeImage(storage, "bench/flood", "1", 1, 1024);
  await handToRegistry(storage);
  const setup = await prepareFlood(s.engine, s.proxied.proxyContainer, NginxProxy.LISTEN_PORT, s.proxied);
  const verifiers = (await runningInstances(s.engine, `${s.proxied.prefix}-auth`)).map((i) => i.name);
  const verifierCpu = async () => (await Promise.all(verifiers.map((name) => containerCpuSeconds(s.engine, name)))).reduce((a, b) => a + b, 0);
  const cpuBefore = await verifierCpu();
  const phaseStarted = Date.now();
  const quiet: number[] = [];
  const during: number[] = [];
  const requests = { quiet: [] as number[], flood: [] as number[] };
  const statuses: Record<string, number> = {};
  let unanswered = 0;
  let firstError = "";
  try {
    await repeat("wrong-password flood", REPS, deadline, async () => {
      const r = await floodRound(setup, s.proxied, image, READER, FLOOD_WINDOW_MS);
      quiet.push(r.quietP99);
      during.push(r.floodP99);
      requests.quiet.push(r.quietRequests);
      requests.flood.push(r.floodRequests);
      for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
      unanswered += r.errors;
      firstError ||= r.firstError;
      add("flood_p99_vs_quiet", r.floodP99 / r.quietP99);
    });
  } finally {
    await setup.remove();
  }
  const bcryptCpu = (await verifierCpu()) - cpuBefore;
  const phaseSeconds = (Date.now() - phaseStarted) / 1000;
  figure(
    "the verifier's bcrypt work during the flood phase (all windows, quiet ones included)",
    `${bcryptCpu.toFixed(1)} CPU-s in ${phaseSeconds.toFixed(0)} s (${(bcryptCpu / phaseSeconds).toFixed(2)} cores on average) for ${statuses["401"] ?? 0} wrong passwords verified; the budget of all addresses admits ${resolveSettings(s.proxied.config as RegistryStackConfig, s.proxied.prefix).loginVerificationsPerMinute} a minute`,
  );
  figure(
    `valid users' p99 (GET manifest, fresh TLS connections, 2 at a time) against a wrong-password flood from ${FLOOD_ADDRESSES} addresses (${FLOOD_PER_SECOND}/s asked of the client)`,
    `without the flood ${ms(quiet)}, with it ${ms(during)} (p99 of a median ${median(requests.quiet)} and ${median(requests.flood)} requests a window); the flood sent ${Object.values(statuses).reduce((a, b) => a + b, 0) + unanswered} in ${quiet.length} windows of ${(FLOOD_WINDOW_MS + 600) / 1000} s, answers: ${Object.entries(statuses).map(([k, v]) => `${v} × ${k}`).join(", ") || "none"}, ${unanswered} unanswered within 5 s${firstError ? ` (${firstError})` : ""}`,
  );
}

async function listings(s: Stacks, deadline: number): Promise<void> {
  const storage = new RegistryStorage(s.proxied.dataDir);
  const rounds = async (label: string) => {
    const catalog: number[] = [];
    const tags: number[] = [];
    let counts = "";
    await repeat(`listings (${label})`, REPS, deadline, async () => {
      const c = await listCatalog(s.proxied, PUSHER);
      const t = await listTags(s.proxied, PUSHER);
      catalog.push(c.ms);
      tags.push(t.ms);
      counts = `${c.repositories} repositories, ${t.tags} tags`;
    });
    figure(`listings, ${counts}`, `catalog ${ms(catalog)}, tags ${ms(tags)}`);
    return { catalog, tags };
  };
  const t0 = Date.now();
  writeRepositories(storage, SCALE_REPOSITORIES / 10, SCALE_TAGS / 10);
  await handToRegistry(storage);
  const small = await rounds("small");
  const t1 = Date.now();
  writeRepositories(storage, SCALE_REPOSITORIES, SCALE_TAGS);
  await handToRegistry(storage);
  figure("writing the store", `${SCALE_REPOSITORIES} repositories × ${SCALE_TAGS} tags straight into the filesystem store in ${((Date.now() - t1) / 1000).toFixed(0)} s (the small case ${((t1 - t0) / 1000).toFixed(0)} s)`);
  const big = await rounds("large");
  big.catalog.forEach((x, i) => i < small.catalog.length && add("catalog_growth", x / small.catalog[i]));
  big.tags.forEach((x, i) => i < small.tags.length && add("tags_growth", x / small.tags[i]));
}

async function manyClients(s: Stacks, deadline: number): Promise<void> {
  const storage = new RegistryStorage(s.proxied.dataDir);
  const large = storeImage(storage, "scale/pull50", "1", 50, 32 * 1024);
  const small = storeImage(storage, "scale/pull5", "1", 5, 32 * 1024);
  await handToRegistry(storage);
  await pull(s.proxied, large, READER);
  const big: number[] = [];
  const little: number[] = [];
  await repeat("32 clients pulling", REPS, deadline, async () => {
    little.push(await concurrentPulls(s.proxied, small, 32, READER));
    big.push(await concurrentPulls(s.proxied, large, 32, READER));
    add("pull_growth", big[big.length - 1] / little[little.length - 1]);
  });
  figure("32 clients pulling at once (32 KiB layers, fresh connections)", `50-layer image ${ms(big)}, 5-layer image ${ms(little)}`);
}

async function idleMemory(s: Stacks, deadline: number): Promise<void> {
  const m50: number[] = [];
  const m500: number[] = [];
  await repeat("idle connections", REPS, deadline, async () => {
    m50.push(await idleConnectionMemory(s.engine, s.proxied.proxyContainer, s.proxied, READER, 50));
    m500.push(await idleConnectionMemory(s.engine, s.proxied.proxyContainer, s.proxied, READER, 500));
    add("memory_per_connection", (m500[m500.length - 1] - m50[m50.length - 1]) / 450 / 1024);
  });
  const mib = (xs: number[]) => `${(median(xs) / MiB).toFixed(1)} MiB (min ${(Math.min(...xs) / MiB).toFixed(1)}, max ${(Math.max(...xs) / MiB).toFixed(1)})`;
  figure("proxy memory above idle (private memory of the nginx processes, /proc/<pid>/smaps_rollup)", `500 idle keep-alive TLS connections ${mib(m500)}, 50 connections ${mib(m50)}`);
}

async function deployRound(s: Stacks): Promise<void> {
  const r = await deployLatency(s.proxied);
  add("deploy_failures", r.during.failures);
  add("deploy_p99_vs_before", r.during.p99 / Math.max(1, r.before.p99));
  figure(
    "client loop through a deploy that adds a user (e2e request loop, 2 requests/s on fresh connections)",
    `before (10 s): ${r.before.requests} requests, p50 ${r.before.p50} ms, p99 ${r.before.p99} ms; during the deploy (${r.deploySeconds.toFixed(0)} s): ${r.during.requests} requests, ${r.during.failures} failed, p50 ${r.during.p50} ms, p99 ${r.during.p99} ms${r.during.failed.length ? `; ${r.during.failed.join("; ")}` : ""}`,
  );
}

/** Phases in order, each with the time it needs at least (loaded 2-core machine) to be started. */
const PHASES: Array<[string, number, (s: Stacks, deadline: number) => Promise<void>]> = [
  ["transfers (upload, download)", 60_000, transfers],
  ["authenticated vs anonymous pulls", 30_000, authPulls],
  ["wrong-password flood", 60_000, flood],
  ["listings at scale", 45_000, listings],
  ["32 clients pulling", 30_000, manyClients],
  ["idle keep-alive connections", 25_000, idleMemory],
  // Last: the deploy replaces the verifier (every login is verified again) and the loop's wrong
  // passwords spend the host address's login budget, which the phases above must not meet.
  ["deploy with the client loop (issue 19)", 100_000, deployRound],
];

async function main(): Promise<number> {
  machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? "unknown", memoryGiB: Math.round(os.totalmem() / 2 ** 30), kernel: `${os.type()} ${os.release()}`, node: process.version, uptimeAtStart: uptime(), aeadMBps: {}, tcpUlps: tcpUlps() };
  const ws = new Workspace("rsbench-");
  let engine: Engine | undefined;
  let current = "setting up";
  pending = ["setting up", ...PHASES.map(([name]) => name)];
  const watchdog = setTimeout(() => {
    cuts.push(`the time limit (${HARD_LIMIT_MS / 1000} s) stopped the run during: ${current}; later phases not run`);
    killRunningCommands();
    write(true);
    void (engine?.stop() ?? Promise.resolve()).finally(() => {
      ws.remove();
      process.exit(3);
    });
  }, HARD_LIMIT_MS - CLEANUP_RESERVE_MS);
  try {
    machine = { ...machine, aeadMBps: await aeadSpeed() };
    log("engine, tools, images");
    engine = await startEngine({ addressPool: ADDRESS_POOL, log });
    const [tools] = await Promise.all([ensureTerraformTools(log), prepareImages(engine, log, { debianRegistry: false })]);
    const target = { engine, tools };
    log("cdktf deploy: the default topology and the proxy-less one (proxy: false), at once");
    const [proxied, registryTls] = await Promise.all([deployProxied(target, ws.dir("proxied")), deployRegistryTls(target, ws.dir("registry-tls"))]);
    const stacks: Stacks = { engine, proxied, registryTls, ws };
    log(`deployed: proxy ${proxied.baseUrl}, registry's own TLS ${registryTls.baseUrl}`);
    pending = PHASES.map(([name]) => name);
    write();
    for (const [name, needsMs, phase] of PHASES) {
      current = name;
      pending = pending.filter((p) => p !== name);
      if (ONLY && !ONLY.some((word) => name.startsWith(word))) {
        cuts.push(`${name}: left out (--only)`);
        continue;
      }
      if (left() < needsMs) {
        cuts.push(`${name}: not run (${(left() / 1000).toFixed(0)} s left, it needs about ${needsMs / 1000} s)`);
        continue;
      }
      log(name);
      // A phase may use what the later phases do not need at least; no repetition starts after that.
      const laterNeedMs = PHASES.slice(PHASES.findIndex(([n]) => n === name) + 1).reduce((sum, [n, ms]) => sum + (ONLY && !ONLY.some((w) => n.startsWith(w)) ? 0 : ms), 0);
      await phase(stacks, Date.now() + Math.max(needsMs / 2, left() - laterNeedMs)).catch((err: Error) => cuts.push(`${name}: failed: ${err.message.slice(0, 500)}`));
      write();
    }
  } catch (err) {
    cuts.push(`${current}: failed: ${(err as Error).message.slice(0, 1000)}`);
  }
  clearTimeout(watchdog);
  write(true);
  await engine?.stop();
  ws.remove();
  log("done");
  return cuts.length === 0 ? 0 : 3;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
