import * as fs from "fs";
import * as path from "path";
import { NginxProxy } from "../constructs/nginx-proxy";
import { Registry } from "../constructs/registry";
import { mirrorTtlSeconds } from "../config/rules";
import { DEFAULT_MIRROR_BLOB_CACHE_MB, DEFAULT_MIRROR_TTL } from "../config/schema";
import { DEFAULT_PROXY_TUNING, renderNginxConf } from "../renderers/nginx/nginx-conf";
import { buildImage, pullImage, SkopeoTarget } from "./image";
import { Lab, SERVER_NAME } from "./lab";
import { run } from "./proc";
import { medianOf, repeat, RepeatResult } from "./reps";
import { Budget } from "./stats";
import { createVolume, removeVolume, startV3Registry } from "./storage-lab";

/**
 * Issue #10's figure: CLIENTS clients pull the same LAYERS-layer image at once through a cold
 * mirror, then again through the now warm mirror, against pulling it from the upstream directly.
 * The mirror is a distribution v3.1.1 registry in proxy mode behind the stack's nginx with the
 * mirror's blob cache, both configured as the stack renders them (anonymous pulls, the default
 * ttl and blobCacheMb); "directly" is the upstream behind the same nginx (its main server, TLS
 * and buffering alike), so both paths have the same hop. Clients are skopeo with the lab's CA.
 * The upstream's access log counts the blob downloads the mirror caused; a fresh mirror, cache
 * volume and nginx per repetition keep every cold round cold.
 */

export const CLIENTS = 8;
export const LAYERS = 20;
export const LAYER_BYTES = 1024 * 1024;
const REPOSITORY = "library/bench-base";
const UPSTREAM_ALIAS = "rsbench-upstream";

export interface MirrorBenchResult {
  readonly blobs: string[];
  readonly imageBytes: number;
  /** Wall time until all clients finished, per repetition, seconds. */
  readonly directS: number[];
  readonly coldS: number[];
  readonly warmS: number[];
  readonly directMedianS: number;
  readonly coldMedianS: number;
  readonly warmMedianS: number;
  /** Upstream blob downloads per blob during each cold round (digest → count). */
  readonly coldFetches: Record<string, number>[];
  /** Upstream blob downloads during each warm round, all blobs together. */
  readonly warmFetches: number[];
  /** The proxy's cache status (access log) of the blob GETs of each cold round: HIT, MISS, … → count. */
  readonly coldCacheStatuses: Record<string, number>[];
  readonly warmCacheStatuses: Record<string, number>[];
  readonly reps: RepeatResult;
  readonly checks: string[];
}

/** Successful blob downloads (GET … 200) per digest in the upstream's access log so far. */
async function blobGets(lab: Lab, upstream: string): Promise<Record<string, number>> {
  const log = await lab.api.logs(upstream, 1_000_000);
  const pattern = new RegExp(`"GET /v2/${REPOSITORY.replace(/\//g, "\\/")}/blobs/(sha256:[0-9a-f]{64}) HTTP/[0-9.]+" 200 `);
  const counts: Record<string, number> = {};
  for (const line of log.split("\n")) {
    const m = pattern.exec(line);
    if (m) counts[m[1]] = (counts[m[1]] ?? 0) + 1;
  }
  return counts;
}

function delta(after: Record<string, number>, before: Record<string, number>, blobs: string[]): Record<string, number> {
  return Object.fromEntries(blobs.map((b) => [b, (after[b] ?? 0) - (before[b] ?? 0)]));
}

async function concurrentPulls(from: SkopeoTarget, scratch: string): Promise<number> {
  const started = Date.now();
  await Promise.all(Array.from({ length: CLIENTS }, () => pullImage(from, `${REPOSITORY}:1`, scratch)));
  return (Date.now() - started) / 1000;
}

const MIRROR_TTL = DEFAULT_MIRROR_TTL;
const BLOB_CACHE_MB = DEFAULT_MIRROR_BLOB_CACHE_MB;
const MIRROR_NAME = "hub";
const MIRROR_LISTEN_PORT = NginxProxy.MIRROR_LISTEN_PORT_BASE;

/** nginx.conf as the stack renders it for one anonymous mirror; its main server proxies to the upstream. */
function benchNginxConf(mirrorAlias: string): string {
  return renderNginxConf({
    serverNames: [SERVER_NAME],
    listenPort: NginxProxy.LISTEN_PORT,
    healthListenPort: NginxProxy.HEALTH_LISTEN_PORT,
    upstream: { host: UPSTREAM_ALIAS, port: Registry.PORT },
    tls: { certificatePath: NginxProxy.CERTIFICATE_PATH, keyPath: NginxProxy.KEY_PATH },
    tuning: DEFAULT_PROXY_TUNING,
    mirrors: [
      {
        name: MIRROR_NAME,
        listenPort: MIRROR_LISTEN_PORT,
        upstream: { host: mirrorAlias, port: Registry.PORT },
        mirrorOf: "docker.io",
        pushTo: `${SERVER_NAME}:5000`,
        anonymousPull: true,
        blobCache: { directory: `${NginxProxy.MIRROR_CACHE_DIRECTORY}/mirror-${MIRROR_NAME}`, maxSizeMb: BLOB_CACHE_MB, validSeconds: mirrorTtlSeconds(MIRROR_TTL) },
      },
    ],
  });
}

/** Counts added since `earlier` (zeros left out). */
function countsSince(now: Record<string, number>, earlier: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - (earlier[k] ?? 0)]).filter(([, v]) => v !== 0));
}

/** The proxy's access-log cache status (HIT, MISS, …) of each blob GET of the bench image. */
async function cacheStatuses(lab: Lab, proxy: string): Promise<Record<string, number>> {
  const log = await lab.api.logs(proxy, 1_000_000);
  const counts: Record<string, number> = {};
  for (const line of log.split("\n")) {
    if (!line.includes(`"GET /v2/${REPOSITORY}/blobs/sha256:`)) continue;
    const status = / cache=(\S+) /.exec(line)?.[1] ?? "?";
    counts[status] = (counts[status] ?? 0) + 1;
  }
  return counts;
}

export async function runMirrorBench(lab: Lab, opts: { budget: Budget; reserveMs: number; log: (line: string) => void; quick: boolean }): Promise<MirrorBenchResult> {
  const scratch = path.join(lab.workDir, "mirror");
  fs.mkdirSync(scratch, { recursive: true });
  const upstreamVolume = `rsbench-mirror-${lab.id}-upstream`;
  const upstreamName = `rsbench-mirror-${lab.id}-upstream`;
  const checks: string[] = [];
  try {
    await createVolume(lab, upstreamVolume);
    // logLevel info: distribution's access log is how the upstream's downloads are counted.
    const upstream = await startV3Registry(lab, { name: upstreamName, alias: UPSTREAM_ALIAS, volume: upstreamVolume, logLevel: "info", deleteEnabled: false });
    const image = buildImage(path.join(scratch, "image"), LAYERS, LAYER_BYTES);
    await run(
      "skopeo",
      ["copy", "--insecure-policy", "--dest-tls-verify=false", `dir:${image.dir}`, `docker://${SERVER_NAME}:${upstream.port}/${REPOSITORY}:1`],
      { timeoutMs: 120_000 },
    );
    const manifest = JSON.parse(fs.readFileSync(path.join(image.dir, "manifest.json"), "utf8")) as { config: { digest: string } };
    const blobs = [manifest.config.digest, ...image.layerDigests];
    const directS: number[] = [];
    const coldS: number[] = [];
    const warmS: number[] = [];
    const coldFetches: Record<string, number>[] = [];
    const warmFetches: number[] = [];
    const coldCacheStatuses: Record<string, number>[] = [];
    const warmCacheStatuses: Record<string, number>[] = [];
    const reps = await repeat(
      {
        what: "mirror pulls",
        minClean: opts.quick ? 1 : 3,
        maxReps: opts.quick ? 1 : 4,
        budget: opts.budget,
        reserveMs: opts.reserveMs,
        meter: lab.meter,
        quietWaitMs: 10_000,
        log: opts.log,
      },
      async (rep) => {
        const mirrorVolume = `rsbench-mirror-${lab.id}-cache-${rep}`;
        const mirrorName = `rsbench-mirror-${lab.id}-cache-${rep}`;
        const blobCacheVolume = `rsbench-mirror-${lab.id}-blob-cache-${rep}`;
        const proxyName = `rsbench-mirror-${lab.id}-proxy-${rep}`;
        try {
          await createVolume(lab, mirrorVolume);
          await createVolume(lab, blobCacheVolume);
          await startV3Registry(lab, {
            name: mirrorName,
            alias: mirrorName,
            volume: mirrorVolume,
            logLevel: "warn",
            // As renderers/registry-config.ts renders a mirror: proxy mode needs deletes (TTL expiry).
            deleteEnabled: true,
            pullThrough: { remoteUrl: `http://${UPSTREAM_ALIAS}:5000`, ttl: MIRROR_TTL },
          });
          // nginx resolves upstream names at start: a proxy per mirror, with the cache volume as the construct mounts it.
          const proxy = await lab.startNginx({
            name: proxyName,
            conf: benchNginxConf(mirrorName),
            tls: true,
            binds: [`${blobCacheVolume}:${NginxProxy.MIRROR_CACHE_DIRECTORY}/mirror-${MIRROR_NAME}`],
            morePorts: [MIRROR_LISTEN_PORT],
          });
          const viaProxy = (port: number): SkopeoTarget => ({ hostPort: `${SERVER_NAME}:${port}`, certDir: lab.caDir });
          directS.push(await concurrentPulls(viaProxy(proxy.ports[NginxProxy.LISTEN_PORT]), scratch));
          // One log for both servers: the mirror's lines are those after the direct pulls.
          const afterDirectCache = await cacheStatuses(lab, proxyName);
          const before = await blobGets(lab, upstreamName);
          const mirrorTarget = viaProxy(proxy.ports[MIRROR_LISTEN_PORT]);
          coldS.push(await concurrentPulls(mirrorTarget, scratch));
          const afterCold = await blobGets(lab, upstreamName);
          coldFetches.push(delta(afterCold, before, blobs));
          const afterColdCache = await cacheStatuses(lab, proxyName);
          warmS.push(await concurrentPulls(mirrorTarget, scratch));
          const afterWarm = await blobGets(lab, upstreamName);
          warmFetches.push(Object.values(delta(afterWarm, afterCold, blobs)).reduce((a, b) => a + b, 0));
          const coldCache = countsSince(afterColdCache, afterDirectCache);
          coldCacheStatuses.push(coldCache);
          warmCacheStatuses.push(countsSince(await cacheStatuses(lab, proxyName), afterColdCache));
          const cold = coldFetches[coldFetches.length - 1];
          opts.log(
            `mirror #${rep + 1}: direct ${directS[rep].toFixed(2)} s, cold ${coldS[rep].toFixed(2)} s (upstream fetches per blob: min ${Math.min(...Object.values(cold))}, max ${Math.max(...Object.values(cold))}; proxy cache ${JSON.stringify(coldCache)}), warm ${warmS[rep].toFixed(2)} s (${warmFetches[rep]} fetches; ${JSON.stringify(warmCacheStatuses[rep])})`,
          );
        } finally {
          await lab.remove(proxyName);
          await lab.remove(mirrorName);
          await removeVolume(lab, mirrorVolume);
          await removeVolume(lab, blobCacheVolume);
        }
      },
    );
    const everyBlobFetched = coldFetches.every((c) => blobs.every((b) => c[b] >= 1));
    if (!everyBlobFetched) throw new Error("a cold pull through the mirror did not fetch every blob from the upstream (is the access log counted right?)");
    checks.push(
      `mirror: ${CLIENTS} concurrent skopeo pulls of a ${LAYERS}-layer image (${blobs.length} blobs) through a fresh v3.1.1 mirror behind the stack's nginx (blob cache) all succeeded in each of ${coldS.length} rounds; the upstream's access log shows every blob fetched at least once per cold round`,
    );
    return {
      blobs,
      imageBytes: image.totalBytes,
      directS,
      coldS,
      warmS,
      directMedianS: medianOf(directS, reps.used),
      coldMedianS: medianOf(coldS, reps.used),
      warmMedianS: medianOf(warmS, reps.used),
      coldFetches,
      warmFetches,
      coldCacheStatuses,
      warmCacheStatuses,
      reps,
      checks,
    };
  } finally {
    await lab.remove(upstreamName);
    await removeVolume(lab, upstreamVolume);
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
