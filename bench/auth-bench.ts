import * as crypto from "crypto";
import * as https from "https";
import * as path from "path";
import { DEFAULT_AUTH_CACHE_SECONDS } from "../config/schema";
import { NginxProxy } from "../constructs/nginx-proxy";
import { Registry } from "../constructs/registry";
import { systemEntropy } from "../material/entropy";
import { MaterialStore } from "../material/material-store";
import { resolveRegistryUsers } from "../material/registry-users";
import { renderAccessModule } from "../renderers/access-module";
import { renderHtpasswd } from "../renderers/htpasswd";
import { AUTH_CACHE_DIR, AuthCache, DEFAULT_PROXY_TUNING, renderNginxConf } from "../renderers/nginx/nginx-conf";
import { buildImage, pullImage, pushImage, SkopeoTarget } from "./image";
import { Lab, Log, REGISTRY_SOCKET, SERVER_NAME } from "./lab";
import { runLoad, LoadResult } from "./load";
import { ProxySetup } from "./proxy-bench";
import { CpuMeter, QUIET_THRESHOLD_CORES, waitQuiet } from "./cpu";
import { medianOf, repeat, RepeatResult } from "./reps";
import { Budget } from "./stats";

export const AUTH_COSTS = [5, 10, 12] as const;
/** The auth-cache design is measured at the stack's default cost. */
export const CACHED_COST = 10;
/** TTL of the auth-cache measurements: what the stack deploys by default. */
export const AUTH_CACHE_SECONDS = DEFAULT_AUTH_CACHE_SECONDS;
/** The tmpfs constructs/nginx-proxy.ts mounts over the auth cache directory. */
/**
 * The stack's auth cache with its access decision (roles, issue #11: the bench user is a pull user
 * scoped to the image's repository), and a login limit high enough that the bench's cold logins are never limited.
 */
function benchAuthCache(verifierAlias: string): AuthCache {
  return {
    verifier: { host: verifierAlias, port: Registry.PORT },
    cacheSeconds: AUTH_CACHE_SECONDS,
    realm: Registry.REALM,
    verificationsPerMinute: 6000,
    limiterListenPort: NginxProxy.LOGIN_LIMITER_LISTEN_PORT,
    // No anonymous pull here, so the token realm (built from the port) is never sent.
    access: { modulePath: NginxProxy.ACCESS_MODULE_PATH, anonymousPull: false, refusalListenPort: NginxProxy.REFUSAL_LISTEN_PORT, publicPort: NginxProxy.LISTEN_PORT },
  };
}


const AUTH_CACHE_TMPFS = { [AUTH_CACHE_DIR]: "rw,noexec,nosuid,size=16m,mode=0700" };
export const IMAGE_LAYERS = 20;
export const LAYER_BYTES = 64 * 1024;
export const CONCURRENCY = 8;
/** Clients pulling the image at the same time in the concurrent-pull round. */
export const CONCURRENT_PULLS = 8;
/** What the concurrent-pull round needs at least (a few batches of 8 pulls, with quiet waits). */
const CONCURRENT_ROUND_MS = 30_000;
const USER = "bench";
const IMAGE_REF = "bench/pull:1";

/** The access module the proxies with the auth cache load. */
const ACCESS_MODULE_FILES: [string, string, number][] = [
  [
    NginxProxy.ACCESS_MODULE_PATH,
    renderAccessModule({ users: [{ name: USER, role: "pull", repositories: [IMAGE_REF.split(":")[0]] }], deleteEnabled: false, anonymousPull: false, tokenSeconds: AUTH_CACHE_SECONDS }),
    0o644,
  ],
];

export type AuthTargetKey = "anonymous" | "cost5" | "cost10" | "cost12" | "cached10";

interface AuthTarget {
  readonly key: AuthTargetKey;
  readonly label: string;
  readonly port: number;
  readonly authorization?: string;
  readonly creds?: string;
  /** Container name of the proxy (for the cache inspection). */
  readonly proxyName: string;
}

export interface AuthBenchResult {
  readonly concurrency: number;
  readonly load: Record<string, Record<AuthTargetKey, LoadResult>>;
  /** Background cores during each load run. */
  readonly loadBackground: Record<string, Record<AuthTargetKey, number>>;
  readonly pulls: Partial<Record<AuthTargetKey, number[]>>;
  readonly pullReps: RepeatResult;
  readonly pullMedianS: Partial<Record<AuthTargetKey, number>>;
  /** First pull through the auth cache, before any credential was cached. */
  readonly cachedColdPullS: number;
  readonly imageBytes: number;
  readonly labels: Record<AuthTargetKey, string>;
  /** Whether the base64 credentials were found in the proxy's cache files (checked with docker cp). */
  readonly credentialsInCacheFiles: boolean;
  readonly cacheFiles: number;
  readonly checks: string[];
  /** Wall time of CONCURRENT_PULLS simultaneous pulls: through the proxy as deployed, and straight from the registry. */
  readonly concurrentPulls: { readonly proxy: number[]; readonly direct: number[]; readonly reps: RepeatResult; readonly proxyMedianS: number; readonly directMedianS: number };
}

export async function runAuthBench(
  lab: Lab,
  setup: ProxySetup,
  opts: { budget: Budget; minPullReps: number; maxPullReps: number; minConcurrentReps: number; maxConcurrentReps: number; loadMs: number; reserveMs: number; log: Log },
): Promise<AuthBenchResult> {
  const log = opts.log;
  const password = crypto.randomBytes(24).toString("base64url");
  const authorization = `Basic ${Buffer.from(`${USER}:${password}`).toString("base64")}`;
  const creds = `${USER}:${password}`;
  const tuning = DEFAULT_PROXY_TUNING;
  const tls = { certificatePath: NginxProxy.CERTIFICATE_PATH, keyPath: NginxProxy.KEY_PATH };
  const base = { serverNames: [SERVER_NAME], listenPort: NginxProxy.LISTEN_PORT, healthListenPort: NginxProxy.HEALTH_LISTEN_PORT, tls, tuning };

  // htpasswd through the stack's own code path (material/registry-users.ts, renderers/htpasswd.ts).
  const htpasswdAt = (cost: number) => {
    const store = new MaterialStore(path.join(lab.workDir, `users-cost${cost}`));
    const users = resolveRegistryUsers(store, [{ name: USER, password }], { bcryptCost: cost, entropy: systemEntropy });
    return renderHtpasswd(users.entries);
  };

  const targets: AuthTarget[] = [
    { key: "anonymous", label: "anonymous (registry without auth)", port: setup.defaultProxyPort, proxyName: "" },
  ];
  for (const cost of AUTH_COSTS) {
    const alias = `registry-cost${cost}`;
    await lab.startRegistry({ name: `rsbench-${lab.id}-${alias}`, alias, htpasswd: htpasswdAt(cost) });
    const proxyName = `rsbench-${lab.id}-nginx-cost${cost}`;
    const px = await lab.startNginx({ name: proxyName, conf: renderNginxConf({ ...base, upstream: { host: alias, port: Registry.PORT } }), tls: true });
    targets.push({ key: `cost${cost}` as AuthTargetKey, label: `htpasswd in the registry, bcrypt cost ${cost}`, port: px.port!, authorization, creds, proxyName });
  }
  // The auth-cache design as the stack deploys it: verifier (htpasswd, in-memory storage),
  // data registry without auth on its unix socket (the same one the anonymous target uses), nginx auth_request.
  const verifierAlias = "registry-auth";
  await lab.startRegistry({ name: `rsbench-${lab.id}-auth`, alias: verifierAlias, htpasswd: htpasswdAt(CACHED_COST), inMemory: true });
  const cacheProxyName = `rsbench-${lab.id}-nginx-cached`;
  // As deployed by default: auth cache and blobs served from storage (the data volume read-only).
  const deployedConf = renderNginxConf({
    ...base,
    upstream: { socketPath: REGISTRY_SOCKET },
    authCache: benchAuthCache(verifierAlias),
    blobReads: { storageRoot: Registry.DATA_PATH },
  });
  const cachePx = await lab.startNginx({ name: cacheProxyName, conf: deployedConf, tls: true, tmpfs: AUTH_CACHE_TMPFS, storage: true, socket: true, files: ACCESS_MODULE_FILES });
  targets.push({
    key: "cached10",
    label: `auth cache (nginx auth_request → verifier, cost ${CACHED_COST}, TTL ${AUTH_CACHE_SECONDS} s; blobs from storage)`,
    port: cachePx.port!,
    authorization,
    creds,
    proxyName: cacheProxyName,
  });

  // The image: 20 small layers, pushed once through the anonymous proxy into the shared volume.
  const image = buildImage(path.join(lab.workDir, "image"), IMAGE_LAYERS, LAYER_BYTES);
  await pushImage(image, { hostPort: `${SERVER_NAME}:${setup.defaultProxyPort}`, certDir: lab.caDir }, IMAGE_REF);
  const headPath = `/v2/bench/pull/blobs/${image.layerDigests[0]}`;

  // Sanity: authenticated paths refuse missing and wrong credentials and accept the right ones.
  const checks: string[] = [];
  const wrong = `Basic ${Buffer.from(`${USER}:wrong-${password}`).toString("base64")}`;
  for (const x of targets.filter((x) => x.authorization)) {
    for (const [what, header, expected] of [
      ["no credentials", undefined, 401],
      ["wrong password", wrong, 401],
      ["right password", x.authorization, 200],
    ] as const) {
      const status = await statusOf(`https://${SERVER_NAME}:${x.port}/v2/`, lab.tls.caCertificatePem, header);
      if (status !== expected) throw new Error(`${x.key}: GET /v2/ with ${what} answered ${status}, expected ${expected}`);
    }
    checks.push(`${x.key}: /v2/ → 401 without and with a wrong password, 200 with the right one`);
  }

  // Requests per second and latency, concurrency 8, bounded in count and time. A run that
  // other processes disturbed is repeated once; the less disturbed one is kept.
  const load: Record<string, Record<AuthTargetKey, LoadResult>> = {};
  const loadBackground: Record<string, Record<AuthTargetKey, number>> = {};
  // Not measured: warms up this process's https client (JIT) so that the first target measured
  // does not pay for it; the second round runs the targets in reverse order for the same reason.
  await runLoad({
    url: `https://${SERVER_NAME}:${setup.defaultProxyPort}/v2/`,
    method: "GET",
    ca: lab.tls.caCertificatePem,
    concurrency: CONCURRENCY,
    maxRequests: 20_000,
    maxMs: 3_000,
    warmup: 0,
    expectStatus: 200,
  });
  for (const [name, method, urlPath, order] of [
    ["GET /v2/", "GET", "/v2/", targets],
    ["HEAD blob", "HEAD", headPath, [...targets].reverse()],
  ] as const) {
    load[name] = {} as Record<AuthTargetKey, LoadResult>;
    loadBackground[name] = {} as Record<AuthTargetKey, number>;
    for (const x of order) {
      for (let attempt = 0; attempt < 2; attempt++) {
        await waitQuiet(lab.meter, 10_000);
        const a = lab.meter.sample();
        const r = await runLoad({
          url: `https://${SERVER_NAME}:${x.port}${urlPath}`,
          method,
          headers: x.authorization ? { Authorization: x.authorization } : undefined,
          ca: lab.tls.caCertificatePem,
          concurrency: CONCURRENCY,
          maxRequests: 20_000,
          maxMs: opts.loadMs,
          warmup: 2 * CONCURRENCY,
          expectStatus: 200,
        });
        const bg = CpuMeter.backgroundCores(a, lab.meter.sample());
        const previous = loadBackground[name][x.key];
        if (previous === undefined || bg < previous) {
          load[name][x.key] = r;
          loadBackground[name][x.key] = bg;
        }
        log(`${name.padEnd(9)} ${x.key.padEnd(9)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50Ms.toFixed(1)} ms  p99 ${r.p99Ms.toFixed(1)} ms  (${r.requests} requests, background ${bg.toFixed(2)} cores)`);
        if (bg < QUIET_THRESHOLD_CORES) break;
      }
    }
  }

  // Pulls of the 20-layer image with skopeo, interleaved. A fresh proxy container for the
  // cold-cache pull: the load test above already filled the cache of the measured one.
  const skopeo = (x: AuthTarget): SkopeoTarget => ({ hostPort: `${SERVER_NAME}:${x.port}`, certDir: lab.caDir, creds: x.creds });
  const coldName = `rsbench-${lab.id}-nginx-cached-cold`;
  const cold = await lab.startNginx({ name: coldName, conf: deployedConf, tls: true, tmpfs: AUTH_CACHE_TMPFS, storage: true, socket: true, files: ACCESS_MODULE_FILES });
  await waitQuiet(lab.meter, 10_000);
  const cachedColdPullS = await pullImage({ hostPort: `${SERVER_NAME}:${cold.port}`, certDir: lab.caDir, creds }, IMAGE_REF, lab.workDir);
  await lab.remove(coldName);
  // Cost 12 is left out of the pulls: at ~10 s per pull it would take a fifth of the run, and
  // its request rate above already shows the cost.
  const pullTargets = targets.filter((x) => x.key !== "cost12");
  for (const x of pullTargets) await pullImage(skopeo(x), IMAGE_REF, lab.workDir); // warm-up, not counted

  const pulls = Object.fromEntries(pullTargets.map((x) => [x.key, [] as number[]])) as Partial<Record<AuthTargetKey, number[]>>;
  const pullReps = await repeat(
    // Leaves the concurrent-pull round its time.
    { what: "pulls", minClean: opts.minPullReps, maxReps: opts.maxPullReps, budget: opts.budget, reserveMs: opts.reserveMs + CONCURRENT_ROUND_MS, meter: lab.meter, quietWaitMs: 10_000, log },
    async (rep) => {
      for (let i = 0; i < pullTargets.length; i++) {
        const x = pullTargets[(i + rep) % pullTargets.length];
        pulls[x.key]!.push(await pullImage(skopeo(x), IMAGE_REF, lab.workDir));
      }
      log(`pull rep ${rep + 1}: ${pullTargets.map((x) => `${x.key} ${pulls[x.key]![rep].toFixed(2)} s`).join(", ")}`);
    },
  );

  // Many clients at once (a deploy rolling out to a fleet): CONCURRENT_PULLS simultaneous pulls
  // through the proxy as deployed (logged in, auth cache, blobs from storage, TLS) against the
  // same pulls straight from the registry (anonymous, plain HTTP, its published port).
  const cachedTarget = targets.find((x) => x.key === "cached10")!;
  const direct: SkopeoTarget = { hostPort: `${SERVER_NAME}:${setup.directPort}`, plainHttp: true };
  await pullImage(direct, IMAGE_REF, lab.workDir); // warm-up, not counted
  const batch = async (from: SkopeoTarget): Promise<number> => {
    const started = process.hrtime.bigint();
    await Promise.all(Array.from({ length: CONCURRENT_PULLS }, () => pullImage(from, IMAGE_REF, lab.workDir)));
    return Number(process.hrtime.bigint() - started) / 1e9;
  };
  const concurrent = { proxy: [] as number[], direct: [] as number[] };
  const concurrentReps = await repeat(
    { what: "concurrent pulls", minClean: opts.minConcurrentReps, maxReps: opts.maxConcurrentReps, budget: opts.budget, reserveMs: opts.reserveMs, meter: lab.meter, quietWaitMs: 10_000, log },
    async (rep) => {
      for (const which of rep % 2 === 0 ? (["proxy", "direct"] as const) : (["direct", "proxy"] as const)) {
        concurrent[which].push(await batch(which === "proxy" ? skopeo(cachedTarget) : direct));
      }
      log(`concurrent pulls rep ${rep + 1}: ${CONCURRENT_PULLS} through the proxy ${concurrent.proxy[rep].toFixed(2)} s, straight from the registry ${concurrent.direct[rep].toFixed(2)} s`);
    },
  );

  // What the auth cache keeps: nginx writes each entry's key (the Authorization header) into
  // the cache file, here on the tmpfs the construct mounts. Read from the host side.
  const cacheFiles = await lab.readTree(cacheProxyName, AUTH_CACHE_DIR);
  const credentialsInCacheFiles = cacheFiles.some((b) => b.includes(authorization.slice("Basic ".length)));
  const cacheEntries = cacheFiles.filter((b) => b.includes("\nKEY: ")).length;

  const pullMedianS = Object.fromEntries(pullTargets.map((x) => [x.key, medianOf(pulls[x.key]!, pullReps.used)])) as Partial<Record<AuthTargetKey, number>>;
  const labels = Object.fromEntries(targets.map((x) => [x.key, x.label])) as Record<AuthTargetKey, string>;
  return {
    concurrency: CONCURRENCY,
    load,
    loadBackground,
    pulls,
    pullReps,
    pullMedianS,
    cachedColdPullS,
    imageBytes: image.totalBytes,
    labels,
    credentialsInCacheFiles,
    cacheFiles: cacheEntries,
    checks,
    concurrentPulls: {
      ...concurrent,
      reps: concurrentReps,
      proxyMedianS: medianOf(concurrent.proxy, concurrentReps.used),
      directMedianS: medianOf(concurrent.direct, concurrentReps.used),
    },
  };
}

function statusOf(url: string, ca: string, authorization?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: "GET", ca, agent: false, timeout: 10_000, headers: authorization ? { Authorization: authorization } : {} }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on("error", reject);
    req.end();
  });
}
