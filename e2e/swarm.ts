import * as crypto from "crypto";
import type { JsonObject } from "./terraform-plan";
import * as fs from "fs";
import * as path from "path";
import { Deployment, SynthResult, TestUser } from "./deployment";
import { Check, say, Timings, Workspace } from "./harness";
import { NGINX_IMAGE, prepareImages, REGISTRY_V3_IMAGE } from "./images";
import { CommandError, run, sleep } from "./proc";
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, PushedImage, RegistryApi, sha256Digest } from "./registry-api";
import type { MaintenanceReport } from "../renderers/maintenance-settings";
import { ensureVersitygw, SwarmCluster, SwarmNode } from "./swarm-cluster";
import { ensureTerraformTools } from "./terraform-tools";

/**
 * `npm run test:e2e:swarm`: cluster mode deployed for real with `cdktf deploy` on a swarm of two
 * Docker Engines on this machine (e2e/swarm-cluster.ts), with versitygw as S3 and Redis from
 * Debian. Not part of `npm run test:e2e`: it needs its own namespaces and takes longer.
 */

const TAG = "swarm";
const PUBLIC_PORT = 5443;
const SERVICE = { registry: "registry-registry", proxy: "registry-proxy", auth: "registry-auth", collector: "registry-collector" };
/** Retention in the swarm suite: only the S8 repository's tags outside v<N> are deleted. */
const GC_REPOSITORY = "gc/app";
const GC_RULES = [{ repositories: "^gc/", keepTags: ["^v[0-9]+$"] }];
const BIG_BLOB_MIB = 256;
/** Slow enough that a replica can be killed while the body is still flowing. */
const KILL_PULL_RATE = "20M";
const MAX_PULL_ATTEMPTS = 6;
const THROUGHPUT_PULLS = 4;

const checks = {
  deploy: new Check("S1", "cdktf deploy of cluster mode, then an empty cdktf diff and plan", TAG),
  crossNode: new Check("S2", "a push through node A's proxy, a pull of the same digest through node B's", TAG),
  clients: new Check("S3", "the client files list every node's address", TAG),
  killedReplica: new Check("S4", `a registry replica killed during a ${BIG_BLOB_MIB} MiB pull: the pull completes (client retry allowed), digest intact`, TAG),
  drain: new Check("S5", "node B drained: pulls keep working through node A", TAG),
  scale: new Check("S6", "registry replicas 2 → 3 by a config change and cdktf deploy (then an empty diff)", TAG),
  throughput: new Check("S7", "pull throughput with 1, 2 and 3 replicas; client recovery time after a killed replica", TAG),
  gc: new Check(
    "S8",
    "retention + garbage collection by the one collector (npm run gc): writes held on both nodes while reads work; deleted tags 404 on both; every kept image intact on both; unreferenced blobs gone from S3; Redis cache flushed; writes refused while a killed collector restarts; then an empty diff",
    TAG,
  ),
};

interface Ctx {
  cluster: SwarmCluster;
  dep: Deployment;
  user: Required<TestUser>;
  dir: string;
  extraEnv: Record<string, string>;
  /** Daily time of the collector, 12 hours from the start: it does not fire during the suite. */
  gcSchedule: string;
  ca?: string;
  /** What the last deploy synthesized (npm run gc reads its configuration). */
  deployed?: SynthResult;
}

function nodeUrl(node: SwarmNode): string {
  return `https://${node.address}:${PUBLIC_PORT}`;
}

function clusterConfig(ctx: Ctx, registryReplicas: number): JsonObject {
  const { s3, redis } = ctx.cluster;
  return {
    registryImage: REGISTRY_V3_IMAGE,
    proxyImage: NGINX_IMAGE,
    publicPort: PUBLIC_PORT,
    users: [{ name: ctx.user.name }],
    stopGraceSeconds: 10,
    materialDirectory: path.join(ctx.dir, "material"),
    clientConfigDirectory: path.join(ctx.dir, "client-config"),
    cluster: {
      nodes: ctx.cluster.nodes.map((n) => n.address),
      registryReplicas,
      verifierReplicas: 2,
      // Measured here: an encrypted overlay (IPsec) passes no traffic between the namespaced
      // engines (connections time out), a plain one does; the product default stays encrypted.
      encryptedNetwork: false,
      storage: { endpoint: s3!.endpoint, bucket: s3!.bucket },
      redis: { addresses: [redis!.address] },
    },
    retention: { schedule: ctx.gcSchedule, writeSettleSeconds: 2, rules: GC_RULES },
  };
}

async function deployReplicas(ctx: Ctx, replicas: number): Promise<SynthResult> {
  const s = await ctx.dep.synth(`replicas-${replicas}`, clusterConfig(ctx, replicas), [ctx.user], `replicas-${replicas}`, ctx.extraEnv);
  await ctx.dep.deploy(s);
  ctx.deployed = s;
  return s;
}

async function runningTasks(ctx: Ctx, service: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const node of ctx.cluster.nodes) counts[node.name] = (await ctx.cluster.taskContainers(node, service)).length;
  return counts;
}

/** Waits until the service has `expected` running (and healthy) task containers in all. */
async function waitForTasks(ctx: Ctx, service: string, expected: number, timeoutMs = 120_000): Promise<Record<string, number>> {
  const deadline = Date.now() + timeoutMs;
  let counts: Record<string, number> = {};
  while (Date.now() < deadline) {
    counts = await runningTasks(ctx, service);
    if (Object.values(counts).reduce((a, b) => a + b, 0) === expected) return counts;
    await sleep(1_000);
  }
  throw new Error(`${service}: expected ${expected} running tasks, have ${JSON.stringify(counts)}`);
}

function curlArgs(ctx: Ctx): string[] {
  return ["-sS", "--fail", "--cacert", ctx.ca!, "-u", `${ctx.user.name}:${ctx.user.password}`];
}

/** A blob upload with curl (streamed from a file): POST, then PUT with the digest. */
async function uploadBlob(ctx: Ctx, node: SwarmNode, repository: string, file: string, digest: string): Promise<void> {
  const { stdout } = await run("curl", [...curlArgs(ctx), "-X", "POST", "-D", "-", "-o", "/dev/null", `${nodeUrl(node)}/v2/${repository}/blobs/uploads/`], { timeoutMs: 60_000 });
  const location = /^location:\s*(\S+)/im.exec(stdout)?.[1];
  if (!location) throw new Error(`no Location in the upload answer: ${stdout.slice(0, 500)}`);
  const url = new URL(location, nodeUrl(node));
  url.searchParams.set("digest", digest);
  await run("curl", [...curlArgs(ctx), "-X", "PUT", "-H", "Content-Type: application/octet-stream", "-T", file, "-o", "/dev/null", url.toString()], { timeoutMs: 15 * 60_000 });
}

interface PullResult {
  attempts: number;
  seconds: number;
  bytes: number;
  digest: string;
}

/** GET of a blob into `file`, resuming (Range) after a broken transfer, up to MAX_PULL_ATTEMPTS. */
async function pullBlob(ctx: Ctx, node: SwarmNode, repository: string, digest: string, file: string, rate?: string): Promise<PullResult> {
  fs.rmSync(file, { force: true });
  const started = Date.now();
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      await run("curl", [...curlArgs(ctx), "-L", "-C", "-", ...(rate ? ["--limit-rate", rate] : []), "-o", file, `${nodeUrl(node)}/v2/${repository}/blobs/${digest}`], { timeoutMs: 10 * 60_000 });
      break;
    } catch (err) {
      if (attempts >= MAX_PULL_ATTEMPTS) throw err;
      say(TAG, `  pull attempt ${attempts} broke (${err instanceof CommandError ? err.stderr.trim().slice(0, 200) : (err as Error).message}); resuming`);
      await sleep(1_000);
    }
  }
  const seconds = (Date.now() - started) / 1000;
  const hash = crypto.createHash("sha256");
  await new Promise<void>((resolve, reject) => fs.createReadStream(file).on("data", (c) => hash.update(c)).on("end", resolve).on("error", reject));
  return { attempts, seconds, bytes: fs.statSync(file).size, digest: `sha256:${hash.digest("hex")}` };
}

/** The registry task containers with their host pids, read once (docker calls are slow under load). */
async function registryTasks(ctx: Ctx): Promise<Array<{ node: SwarmNode; id: string; pid: string }>> {
  const tasks: Array<{ node: SwarmNode; id: string; pid: string }> = [];
  for (const node of ctx.cluster.nodes) {
    for (const id of await ctx.cluster.taskContainers(node, SERVICE.registry)) {
      tasks.push({ node, id, pid: (await node.engine.docker(["inspect", "-f", "{{.State.Pid}}", id])).stdout.trim() });
    }
  }
  return tasks;
}

/**
 * The task with an established connection on the registry port, i.e. serving right now. The
 * registry listens on ":5000", a dual-stack socket: IPv4 connections show in net/tcp6 too.
 */
function servingReplica(tasks: Array<{ node: SwarmNode; id: string; pid: string }>): { node: SwarmNode; id: string } | undefined {
  return tasks.find((task) =>
    ["tcp", "tcp6"].some((table) => {
      const text = fs.existsSync(`/proc/${task.pid}/net/${table}`) ? fs.readFileSync(`/proc/${task.pid}/net/${table}`, "utf8") : "";
      // Local port 5000 (0x1388), state 01 (ESTABLISHED).
      return text.split("\n").some((line) => /:1388 [0-9A-F]+:[0-9A-F]{4} 01 /.test(line));
    }),
  );
}

async function makeBigBlob(dir: string): Promise<{ file: string; digest: string }> {
  const file = path.join(dir, "big.bin");
  const hash = crypto.createHash("sha256");
  const fd = fs.openSync(file, "w");
  for (let i = 0; i < BIG_BLOB_MIB; i++) {
    const chunk = crypto.randomBytes(1024 * 1024);
    hash.update(chunk);
    fs.writeSync(fd, chunk);
  }
  fs.closeSync(fd);
  return { file, digest: `sha256:${hash.digest("hex")}` };
}

async function throughput(ctx: Ctx, repository: string, digest: string): Promise<number> {
  const started = Date.now();
  const results = await Promise.all(
    Array.from({ length: THROUGHPUT_PULLS }, (_, i) => pullBlob(ctx, ctx.cluster.nodes[i % ctx.cluster.nodes.length], repository, digest, path.join(ctx.dir, `tp-${i}.bin`))),
  );
  const seconds = (Date.now() - started) / 1000;
  for (const r of results) if (r.digest !== digest) throw new Error(`a throughput pull got ${r.digest}, not ${digest}`);
  for (let i = 0; i < THROUGHPUT_PULLS; i++) fs.rmSync(path.join(ctx.dir, `tp-${i}.bin`), { force: true });
  return (results.reduce((a, r) => a + r.bytes, 0) / (1024 * 1024)) / seconds;
}

interface WriteProbe {
  status: number;
  retryAfter?: string;
  body: string;
}

/** A write through a node's proxy: an upload started (202, then cancelled) or held (503). */
async function probeWrite(api: RegistryApi): Promise<WriteProbe> {
  const res = await api.request("POST", `/v2/${GC_REPOSITORY}-probe/blobs/uploads/`);
  if (res.status === 202 && res.headers["location"]) await api.request("DELETE", String(res.headers["location"])).catch(() => undefined);
  const retryAfter = res.headers["retry-after"];
  return { status: res.status, retryAfter: retryAfter === undefined ? undefined : String(retryAfter), body: res.body.toString("utf8") };
}

/** Waits until writes pass through every node (the proxies hold them until the collector first answers). */
async function waitForWritesOpen(apis: RegistryApi[], timeoutMs = 120_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const statuses = await Promise.all(apis.map((api) => probeWrite(api).then((p) => p.status, () => 0)));
    if (statuses.every((status) => status === 202)) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`writes still refused after ${timeoutMs / 1000} s: ${statuses.join(", ")}`);
    await sleep(250);
  }
}

/** Keys in the registry's Redis database (0): the blob-descriptor cache. */
async function redisKeys(ctx: Ctx): Promise<number> {
  const [host, port] = ctx.cluster.redis!.address.split(":");
  // The password in the environment, not in the argument list.
  const { stdout } = await run("redis-cli", ["-h", host, "-p", port, "-n", "0", "dbsize"], { env: { ...process.env, REDISCLI_AUTH: ctx.cluster.redis!.password }, timeoutMs: 15_000 });
  return Number(stdout.trim());
}

/** The blob digests stored in the S3 bucket (versitygw's posix backend: one folder per object key). */
function s3Blobs(ctx: Ctx): Set<string> {
  const root = path.join(ctx.cluster.dir, "s3", ctx.cluster.s3!.bucket, "docker", "registry", "v2", "blobs", "sha256");
  const found = new Set<string>();
  if (!fs.existsSync(root)) return found;
  for (const prefix of fs.readdirSync(root)) for (const hex of fs.readdirSync(path.join(root, prefix))) if (fs.existsSync(path.join(root, prefix, hex, "data"))) found.add(`sha256:${hex}`);
  return found;
}

/** GET of a manifest by digest and of each of its blobs, each checked against its sha256. */
async function verifyImage(api: RegistryApi, repository: string, image: PushedImage): Promise<void> {
  const manifest = await api.request("GET", `/v2/${repository}/manifests/${image.digest}`, undefined, { Accept: OCI_MANIFEST });
  if (manifest.status !== 200 || sha256Digest(manifest.body) !== image.digest) throw new Error(`${repository}@${image.digest}: ${manifest.status}, sha256 ${sha256Digest(manifest.body)}`);
  for (const blob of [image.config, ...image.layers]) {
    const res = await api.request("GET", `/v2/${repository}/blobs/${blob.digest}`);
    if (res.status !== 200 || sha256Digest(res.body) !== blob.digest) throw new Error(`${repository} blob ${blob.digest}: ${res.status}, sha256 ${sha256Digest(res.body)}`);
  }
}

async function main(): Promise<number> {
  if (process.getuid && process.getuid() !== 0) throw new Error("the swarm suite needs root (network namespaces, dockerd)");
  const startedAt = Date.now();
  const timings = new Timings();
  const workspace = new Workspace("rse2e-swarm-");
  const log = (line: string) => say(TAG, line);
  const tools = await timings.time("terraform + providers (cached builds)", () => ensureTerraformTools(log));
  const versitygw = await timings.time("versitygw (cached build)", () => ensureVersitygw(log));
  const cluster = new SwarmCluster(workspace.dir("cluster"), log);
  try {
    await timings.time("swarm of 2 engines in namespaces", () => cluster.start(2));
    for (const node of cluster.nodes) await timings.time(`images on node ${node.name}`, () => prepareImages(node.engine, log));
    const redisPassword = crypto.randomBytes(18).toString("base64url");
    const s3Keys = { access: `swarm${crypto.randomBytes(6).toString("hex")}`, secret: crypto.randomBytes(24).toString("base64url") };
    await timings.time("redis + versitygw", async () => {
      await cluster.startRedis(redisPassword);
      await cluster.startS3(versitygw, s3Keys.access, s3Keys.secret, "registry");
    });
    const dir = workspace.dir("stack");
    const ctx: Ctx = {
      cluster,
      dep: new Deployment({ engine: cluster.manager.engine, tools }, TAG, dir),
      user: { name: "admin", password: crypto.randomBytes(15).toString("base64url") },
      dir,
      extraEnv: { REGISTRY_S3_ACCESS_KEY: s3Keys.access, REGISTRY_S3_SECRET_KEY: s3Keys.secret, REGISTRY_REDIS_PASSWORD: redisPassword },
      gcSchedule: `${String((new Date().getUTCHours() + 12) % 24).padStart(2, "0")}:00`,
    };
    await runChecks(ctx, timings, [redisPassword, s3Keys.access, s3Keys.secret, ctx.user.password]);
  } finally {
    await timings.time("teardown (engines, namespaces)", () => cluster.stop());
    workspace.remove();
  }
  const all = Object.values(checks);
  console.log("\n== swarm suite ==");
  for (const check of all) console.log(check.report());
  for (const line of timings.lines()) console.log(`  ${line}`);
  console.log(`  total: ${((Date.now() - startedAt) / 1000).toFixed(0)} s; load: ${fs.readFileSync("/proc/loadavg", "utf8").trim()}`);
  return all.every((c) => c.ok) ? 0 : 1;
}

async function runChecks(ctx: Ctx, timings: Timings, secrets: string[]): Promise<void> {
  const [a, b] = ctx.cluster.nodes;
  let deployed: SynthResult | undefined;
  await checks.deploy.phase("synth, cdktf deploy, cdktf diff", async () => {
    deployed = await timings.time("deploy (2 replicas)", () => deployReplicas(ctx, 2));
    const json = fs.readFileSync(deployed.stackFile, "utf8");
    for (const secret of secrets) if (json.includes(secret)) throw new Error("a secret is in cdk.tf.json");
    checks.deploy.note(`plan after deploy: ${ctx.dep.planSummaries.at(-1)}; no S3 key, Redis or user password in cdk.tf.json`);
    checks.deploy.note(`registry tasks per node: ${JSON.stringify(await waitForTasks(ctx, SERVICE.registry, 2))}, proxies: ${JSON.stringify(await waitForTasks(ctx, SERVICE.proxy, 2))}`);
    checks.deploy.note(`collector tasks per node: ${JSON.stringify(await waitForTasks(ctx, SERVICE.collector, 1))}`);
  });
  checks.deploy.finish();
  if (!deployed) {
    for (const check of Object.values(checks)) check.abort("the cluster deployment failed");
    return;
  }

  await checks.clients.phase("client files", async () => {
    const certs = path.join(ctx.dir, "client-config", "certs.d");
    const listed = fs.readdirSync(certs).sort();
    const expected = ctx.cluster.nodes.map((n) => `${n.address}:${PUBLIC_PORT}`).sort();
    if (JSON.stringify(listed) !== JSON.stringify(expected)) throw new Error(`certs.d lists ${listed.join(", ")}, expected ${expected.join(", ")}`);
    ctx.ca = path.join(certs, listed[0], "ca.crt");
    checks.clients.note(`certs.d/: ${listed.join(", ")}`);
  });
  checks.clients.finish();
  if (!ctx.ca) {
    for (const check of Object.values(checks)) check.abort("no CA certificate in the client files");
    return;
  }
  const ca = fs.readFileSync(ctx.ca, "utf8");
  const api = (node: SwarmNode) => new RegistryApi(nodeUrl(node), ca, ctx.user);

  await checks.crossNode.phase("push via A, pull via B", async () => {
    const viaA = api(a);
    const viaB = api(b);
    try {
      // Every proxy holds writes until it first reached the collector (fail closed).
      checks.crossNode.note(`writes open on both nodes ${(await waitForWritesOpen([viaA, viaB])) / 1000} s after the checks began`);
      const pushed = await viaA.pushImage("cluster/small", { os: "linux", architecture: "amd64", created: new Date(0).toISOString(), layerBytes: 1024 * 1024 });
      await viaA.tagManifest("cluster/small", pushed.digest, "v1", OCI_MANIFEST);
      const manifest = await viaB.request("GET", "/v2/cluster/small/manifests/v1", undefined, { Accept: OCI_MANIFEST });
      if (manifest.status !== 200) throw new Error(`GET manifest via B: ${manifest.status}`);
      const digest = String(manifest.headers["docker-content-digest"]);
      if (digest !== pushed.digest || sha256Digest(manifest.body) !== pushed.digest) throw new Error(`via B the tag is ${digest}, pushed ${pushed.digest}`);
      const layer = await viaB.request("GET", `/v2/cluster/small/blobs/${pushed.layers[0].digest}`);
      if (layer.status !== 200 || sha256Digest(layer.body) !== pushed.layers[0].digest) throw new Error(`layer via B: ${layer.status}, ${sha256Digest(layer.body)}`);
      checks.crossNode.note(`pushed ${pushed.digest} via ${a.address}, pulled the same manifest and layer via ${b.address}`);
    } finally {
      viaA.close();
      viaB.close();
    }
  });
  checks.crossNode.finish();

  const big = await timings.time(`make a ${BIG_BLOB_MIB} MiB blob`, () => makeBigBlob(ctx.dir));
  const bigRepo = "cluster/big";
  await checks.killedReplica.phase(`upload the ${BIG_BLOB_MIB} MiB blob via A`, async () => {
    const t0 = Date.now();
    await uploadBlob(ctx, a, bigRepo, big.file, big.digest);
    checks.killedReplica.note(`uploaded ${BIG_BLOB_MIB} MiB via ${a.address} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
  await checks.killedReplica.phase("kill the serving replica during a pull via B", async () => {
    const tasks = await registryTasks(ctx);
    const pull = pullBlob(ctx, b, bigRepo, big.digest, path.join(ctx.dir, "pulled.bin"), KILL_PULL_RATE);
    let victim: { node: SwarmNode; id: string } | undefined;
    for (let i = 0; i < 100 && !victim; i++) {
      await sleep(50);
      victim = servingReplica(tasks);
    }
    if (!victim) throw new Error("no registry replica had a connection during the pull");
    const killedAt = Date.now();
    await victim.node.engine.docker(["kill", victim.id]);
    checks.killedReplica.note(`killed registry task ${victim.id.slice(0, 12)} on node ${victim.node.name} ${((killedAt - Date.now()) / -1000).toFixed(1)} s ago`);
    // Client recovery: the first small request through B that succeeds after the kill.
    const viaB = api(b);
    try {
      for (;;) {
        const res = await viaB.request("GET", "/v2/cluster/small/manifests/v1", undefined, { Accept: OCI_MANIFEST }).catch(() => undefined);
        if (res?.status === 200) break;
        if (Date.now() - killedAt > 120_000) throw new Error("no request succeeded through B for 120 s after the kill");
        await sleep(100);
      }
      checks.throughput.note(`client recovery after a killed replica: first successful request through B ${((Date.now() - killedAt) / 1000).toFixed(2)} s after the kill`);
    } finally {
      viaB.close();
    }
    const result = await pull;
    if (result.digest !== big.digest) throw new Error(`the pulled blob is ${result.digest}, expected ${big.digest}`);
    checks.killedReplica.note(`pull via ${b.address} completed in ${result.seconds.toFixed(1)} s with ${result.attempts} attempt(s); sha256 matches`);
    fs.rmSync(path.join(ctx.dir, "pulled.bin"), { force: true });
    checks.killedReplica.note(`registry tasks after Swarm replaced the killed one: ${JSON.stringify(await waitForTasks(ctx, SERVICE.registry, 2))}`);
  });
  checks.killedReplica.finish();

  await checks.throughput.phase("2 replicas", async () => {
    checks.throughput.note(`2 replicas: ${(await throughput(ctx, bigRepo, big.digest)).toFixed(0)} MiB/s (${THROUGHPUT_PULLS} parallel ${BIG_BLOB_MIB} MiB pulls via both nodes)`);
  });

  await checks.drain.phase("drain B, pull via A", async () => {
    await ctx.cluster.manager.engine.docker(["node", "update", "--availability", "drain", b.nodeId]);
    const deadline = Date.now() + 120_000;
    while ((await runningTasks(ctx, SERVICE.registry))[b.name] > 0 || (await runningTasks(ctx, SERVICE.proxy))[b.name] > 0) {
      if (Date.now() > deadline) throw new Error("node B still runs tasks 120 s after the drain");
      await sleep(1_000);
    }
    checks.drain.note(`after the drain: registry ${JSON.stringify(await waitForTasks(ctx, SERVICE.registry, 2))}, proxies ${JSON.stringify(await runningTasks(ctx, SERVICE.proxy))}`);
    const result = await pullBlob(ctx, a, bigRepo, big.digest, path.join(ctx.dir, "drained.bin"));
    if (result.digest !== big.digest) throw new Error(`pulled ${result.digest} via A after the drain`);
    checks.drain.note(`pull via ${a.address} with B drained: ${result.seconds.toFixed(1)} s, ${result.attempts} attempt(s), sha256 matches`);
    fs.rmSync(path.join(ctx.dir, "drained.bin"), { force: true });
    await ctx.cluster.manager.engine.docker(["node", "update", "--availability", "active", b.nodeId]);
    await waitForTasks(ctx, SERVICE.proxy, 2);
  });
  checks.drain.finish();

  await checks.scale.phase("2 → 3 replicas", async () => {
    await timings.time("deploy (3 replicas)", () => deployReplicas(ctx, 3));
    checks.scale.note(`plan after deploy: ${ctx.dep.planSummaries.at(-1)}; registry tasks: ${JSON.stringify(await waitForTasks(ctx, SERVICE.registry, 3))}`);
  });
  checks.scale.finish();
  await checks.throughput.phase("3 replicas", async () => {
    checks.throughput.note(`3 replicas: ${(await throughput(ctx, bigRepo, big.digest)).toFixed(0)} MiB/s`);
  });
  await checks.throughput.phase("1 replica", async () => {
    await timings.time("deploy (1 replica)", () => deployReplicas(ctx, 1));
    await waitForTasks(ctx, SERVICE.registry, 1);
    checks.throughput.note(`1 replica: ${(await throughput(ctx, bigRepo, big.digest)).toFixed(0)} MiB/s`);
  });
  checks.throughput.finish();
  await gcCheck(ctx, api);
}

async function gcCheck(ctx: Ctx, api: (node: SwarmNode) => RegistryApi): Promise<void> {
  const [a, b] = ctx.cluster.nodes;
  const viaA = api(a);
  const viaB = api(b);
  const both = [viaA, viaB];
  const kept: Array<{ repository: string; image: PushedImage }> = [];
  const deletedTags = ["old-1", "old-2", "old-shared"];
  const expectedSwept = new Set<string>();
  const image = (via: RegistryApi) => via.pushImage(GC_REPOSITORY, { os: "linux", architecture: "amd64", created: new Date(0).toISOString(), layerBytes: 256 * 1024 });
  try {
    await checks.gc.phase("push through A and B, read everything through both (the Redis cache fills)", async () => {
      await waitForWritesOpen(both);
      const v1 = await image(viaA);
      await viaA.tagManifest(GC_REPOSITORY, v1.digest, "v1", OCI_MANIFEST);
      const v2 = await image(viaB);
      await viaB.tagManifest(GC_REPOSITORY, v2.digest, "v2", OCI_MANIFEST);
      kept.push({ repository: GC_REPOSITORY, image: v1 }, { repository: GC_REPOSITORY, image: v2 });
      const other = await viaA.pushImage("keep/other", { os: "linux", architecture: "arm64", created: new Date(0).toISOString(), layerBytes: 64 * 1024 });
      await viaA.tagManifest("keep/other", other.digest, "t1", OCI_MANIFEST);
      kept.push({ repository: "keep/other", image: other });
      const old1 = await image(viaA);
      await viaA.tagManifest(GC_REPOSITORY, old1.digest, "old-1", OCI_MANIFEST);
      const old2 = await image(viaB);
      await viaB.tagManifest(GC_REPOSITORY, old2.digest, "old-2", OCI_MANIFEST);
      // A deleted image sharing v1's layer: the layer must survive.
      const config = await viaB.pushBlob(GC_REPOSITORY, Buffer.from(JSON.stringify({ created: new Date(1).toISOString(), os: "linux", architecture: "amd64", config: {}, rootfs: { type: "layers", diff_ids: [] } })));
      const shared = await viaB.putManifest(GC_REPOSITORY, "old-shared", OCI_MANIFEST, { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, ...config }, layers: [{ mediaType: OCI_LAYER, ...v1.layers[0] }] });
      for (const d of [old1.digest, old1.config.digest, old1.layers[0].digest, old2.digest, old2.config.digest, old2.layers[0].digest, shared.digest, config.digest]) expectedSwept.add(d);
      for (const via of both) {
        for (const k of kept) await verifyImage(via, k.repository, k.image);
        for (const old of [old1, old2]) await verifyImage(via, GC_REPOSITORY, old);
      }
      const stored = s3Blobs(ctx);
      for (const d of expectedSwept) if (!stored.has(d)) throw new Error(`${d} is not in the S3 bucket after the push (cannot prove its deletion)`);
      checks.gc.note(`pushed ${GC_REPOSITORY}:v1, old-1, old-shared and keep/other:t1 via ${a.address}, ${GC_REPOSITORY}:v2, old-2 via ${b.address}; ${expectedSwept.size} blobs only deleted tags reach, ${stored.size} blobs in S3`);
    });

    await checks.gc.phase("npm run gc -- --dry-run: writes stay open, nothing deleted, the report lists what the real run deletes", async () => {
      const storedBefore = s3Blobs(ctx);
      const dry = run("npm", ["run", "--silent", "gc", "--", "--dry-run"], { cwd: ctx.deployed!.projectRoot, env: { ...ctx.deployed!.env, ...ctx.extraEnv }, timeoutMs: 300_000 });
      let finished = false;
      void dry.finally(() => (finished = true)).catch(() => undefined);
      const statuses = new Set<number>();
      while (!finished) {
        for (const via of both) statuses.add(await probeWrite(via).then((p) => p.status, () => 0));
        await sleep(200);
      }
      const dryReport = JSON.parse((await dry).stdout) as MaintenanceReport;
      if ([...statuses].some((status) => status !== 202)) throw new Error(`writes answered ${[...statuses].join(", ")} during the dry run`);
      const listed = dryReport.deleted.tags.map((t) => `${t.repository}:${t.tag}`).sort();
      const expected = deletedTags.map((t) => `${GC_REPOSITORY}:${t}`).sort();
      if (!dryReport.dryRun || JSON.stringify(listed) !== JSON.stringify(expected)) throw new Error(`the dry run lists ${listed.join(", ")}, expected ${expected.join(", ")}`);
      for (const via of both) {
        const tags = await via.request("GET", `/v2/${GC_REPOSITORY}/tags/list`);
        const left = (JSON.parse(tags.body.toString("utf8")) as { tags: string[] }).tags.sort();
        if (left.length !== 5) throw new Error(`after the dry run the tags are ${left.join(", ")}`);
      }
      const storedAfter = s3Blobs(ctx);
      if ([...storedBefore].some((d) => !storedAfter.has(d))) throw new Error("the dry run deleted blobs");
      checks.gc.note(`dry run: lists ${listed.length} tags and ${dryReport.deleted.manifests.length} manifests; writes 202 throughout; every tag and all ${storedAfter.size} blobs still there`);
    });

    let report: MaintenanceReport | undefined;
    let keysBefore = 0;
    let keysAfter = 0;
    await checks.gc.phase("npm run gc: writes held through A and B (503 + Retry-After), reads work", async () => {
      keysBefore = await redisKeys(ctx);
      if (keysBefore === 0) throw new Error("the Redis cache is empty before the run: its flush would prove nothing");
      const t0 = Date.now();
      let finished = false;
      const job = run("npm", ["run", "--silent", "gc"], { cwd: ctx.deployed!.projectRoot, env: { ...ctx.deployed!.env, ...ctx.extraEnv }, timeoutMs: 300_000 }).finally(() => (finished = true));
      const held: Record<string, number> = {};
      const reads: string[] = [];
      while (!finished && Object.keys(held).length < 2) {
        for (const [i, via] of both.entries()) {
          const name = [a, b][i].name;
          if (held[name] !== undefined) continue;
          const probe = await probeWrite(via).catch(() => undefined);
          if (probe?.status !== 503) continue;
          if (probe.retryAfter !== "10" || !probe.body.includes('"UNAVAILABLE"')) throw new Error(`node ${name}: 503 without Retry-After 10 or UNAVAILABLE: ${probe.retryAfter} ${probe.body.slice(0, 200)}`);
          held[name] = (Date.now() - t0) / 1000;
          // A read through the same node while writes are held.
          const read = await via.request("GET", `/v2/${GC_REPOSITORY}/manifests/v1`, undefined, { Accept: OCI_MANIFEST });
          if (read.status !== 200 || sha256Digest(read.body) !== kept[0].image.digest) throw new Error(`node ${name}: read during the hold: ${read.status}`);
          reads.push(name);
        }
        await sleep(100);
      }
      const result = await job.catch(async (err: Error) => {
        const logs = await ctx.cluster.manager.engine.docker(["service", "logs", "--tail", "40", SERVICE.collector]).then((l) => l.stdout + l.stderr, (e: Error) => e.message);
        throw new Error(`${err.message}\nwrites held seen at ${JSON.stringify(held)} s; the collector's log:\n${logs}`);
      });
      const { stdout, stderr } = result;
      keysAfter = await redisKeys(ctx);
      if (Object.keys(held).length < 2) throw new Error(`writes were not held on every node during the run: ${JSON.stringify(held)}`);
      report = JSON.parse(stdout) as MaintenanceReport;
      checks.gc.note(`npm run gc: ${((Date.now() - t0) / 1000).toFixed(1)} s; writes held (503 UNAVAILABLE, Retry-After 10) seen at ${JSON.stringify(held)} s after the start; reads during the hold: 200 via ${reads.join(", ")}`);
      checks.gc.note(`report: write window ${report.durationsMs.writeWindow} ms, retention ${report.durationsMs.retention} ms, collector ${report.durationsMs.collector} ms; job log: ${stderr.trim().split("\n").slice(-1)[0]}`);
      checks.gc.note(`Redis keys (database 0): ${keysBefore} before the run, ${keysAfter} right after it`);
      if (keysAfter !== 0) throw new Error(`the Redis cache holds ${keysAfter} keys after the run`);
      if (report.collectorExitCode !== 0) throw new Error(`the collector exited ${report.collectorExitCode}`);
    });

    await checks.gc.phase("after the run: deleted tags 404 and kept images intact on both nodes, swept blobs gone from S3", async () => {
      const reportTags = report!.deleted.tags.map((t) => `${t.repository}:${t.tag}`).sort();
      const expectedTags = deletedTags.map((t) => `${GC_REPOSITORY}:${t}`).sort();
      if (JSON.stringify(reportTags) !== JSON.stringify(expectedTags)) throw new Error(`the report deleted ${reportTags.join(", ")}, expected ${expectedTags.join(", ")}`);
      const reportBlobs = new Set(report!.deleted.blobs.map((blob) => blob.digest));
      for (const via of both) {
        for (const tag of deletedTags) {
          const res = await via.request("GET", `/v2/${GC_REPOSITORY}/manifests/${tag}`, undefined, { Accept: OCI_MANIFEST });
          if (res.status !== 404) throw new Error(`${GC_REPOSITORY}:${tag} answers ${res.status} after the run`);
        }
        const tags = await via.request("GET", `/v2/${GC_REPOSITORY}/tags/list`);
        const listed = (JSON.parse(tags.body.toString("utf8")) as { tags: string[] }).tags.sort();
        if (JSON.stringify(listed) !== JSON.stringify(["v1", "v2"])) throw new Error(`tags left: ${listed.join(", ")}`);
        for (const k of kept) await verifyImage(via, k.repository, k.image);
      }
      const stored = s3Blobs(ctx);
      const keptBlobs = kept.flatMap((k) => [k.image.digest, k.image.config.digest, ...k.image.layers.map((l) => l.digest)]);
      for (const d of keptBlobs) if (!stored.has(d) || reportBlobs.has(d)) throw new Error(`kept blob ${d} is gone from S3 or in the report`);
      for (const d of expectedSwept) {
        if (stored.has(d)) throw new Error(`${d}, which only deleted tags reached, is still in S3`);
        if (!reportBlobs.has(d)) throw new Error(`${d} is gone but not in the report`);
      }
      checks.gc.note(`deleted ${deletedTags.join(", ")}: 404 via both nodes; tags left v1, v2; ${kept.length} kept images (manifest, config, layer; v1's layer shared with a deleted image) pulled by digest via both nodes, sha256 intact; ${expectedSwept.size} blobs only deleted tags reached are gone from the bucket (${stored.size} blobs left, report lists ${reportBlobs.size})`);
      checks.gc.note(`writes open again on both nodes ${(await waitForWritesOpen(both, 30_000)) / 1000} s after the run`);
    });

    await checks.gc.phase("collector task killed: writes refused (fail closed) until Swarm restarted it, reads work", async () => {
      const [container] = await ctx.cluster.taskContainers(ctx.cluster.manager, SERVICE.collector);
      if (!container) throw new Error("no collector container on the manager");
      const killedAt = Date.now();
      await ctx.cluster.manager.engine.docker(["kill", container]);
      let firstHeld: number | undefined;
      let reopened: number | undefined;
      let newTask: number | undefined;
      let readFailures = 0;
      while (reopened === undefined && Date.now() - killedAt < 180_000) {
        const probes = await Promise.all(both.map((via) => probeWrite(via).then((p) => p.status, () => 0)));
        const now = (Date.now() - killedAt) / 1000;
        if (newTask === undefined && (await ctx.cluster.taskContainers(ctx.cluster.manager, SERVICE.collector)).some((id) => id !== container)) newTask = now;
        if (firstHeld === undefined && probes.every((p) => p === 503)) firstHeld = now;
        if (firstHeld !== undefined && probes.every((p) => p === 202)) reopened = now;
        const read = await viaA.request("GET", `/v2/${GC_REPOSITORY}/manifests/v1`, undefined, { Accept: OCI_MANIFEST }).catch(() => undefined);
        if (read?.status !== 200) readFailures++;
        await sleep(200);
      }
      if (firstHeld === undefined || reopened === undefined) throw new Error(`after the kill: writes held from ${firstHeld} s, reopened ${reopened} s`);
      if (readFailures > 0) throw new Error(`${readFailures} reads failed while the collector restarted`);
      const [restarted] = await ctx.cluster.taskContainers(ctx.cluster.manager, SERVICE.collector);
      const log = restarted ? (await ctx.cluster.manager.engine.docker(["logs", restarted]).then((l) => l.stdout + l.stderr, () => "")).split("\n").filter((l) => l.includes("maintenance:")) : [];
      checks.gc.note(`collector killed: writes refused on both nodes from ${firstHeld.toFixed(1)} s until ${reopened.toFixed(1)} s after the kill; the new task's container running at ${newTask?.toFixed(1)} s; its job log: ${log.join(" | ").slice(0, 400)}; reads all 200`);
    });

    await checks.gc.phase("cdktf diff after the run", async () => {
      await ctx.dep.assertNoChanges(ctx.deployed!);
      checks.gc.note(`plan: ${ctx.dep.planSummaries.at(-1)}`);
    });
  } finally {
    viaA.close();
    viaB.close();
  }
  checks.gc.finish();
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
