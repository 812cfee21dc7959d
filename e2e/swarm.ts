import * as crypto from "crypto";
import type { JsonObject } from "./terraform-plan";
import * as fs from "fs";
import * as path from "path";
import { Deployment, SynthResult, TestUser } from "./deployment";
import { Check, say, Timings, Workspace } from "./harness";
import { NGINX_IMAGE, prepareImages, REGISTRY_V3_IMAGE } from "./images";
import { CommandError, run, sleep } from "./proc";
import { OCI_MANIFEST, RegistryApi, sha256Digest } from "./registry-api";
import { ensureVersitygw, SwarmCluster, SwarmNode } from "./swarm-cluster";
import { ensureTerraformTools } from "./terraform-tools";

/**
 * `npm run test:e2e:swarm`: cluster mode deployed for real with `cdktf deploy` on a swarm of two
 * Docker Engines on this machine (e2e/swarm-cluster.ts), with versitygw as S3 and Redis from
 * Debian. Not part of `npm run test:e2e`: it needs its own namespaces and takes longer.
 */

const TAG = "swarm";
const PUBLIC_PORT = 5443;
const SERVICE = { registry: "registry-registry", proxy: "registry-proxy", auth: "registry-auth" };
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
};

interface Ctx {
  cluster: SwarmCluster;
  dep: Deployment;
  user: Required<TestUser>;
  dir: string;
  extraEnv: Record<string, string>;
  ca?: string;
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
  };
}

async function deployReplicas(ctx: Ctx, replicas: number): Promise<SynthResult> {
  const s = await ctx.dep.synth(`replicas-${replicas}`, clusterConfig(ctx, replicas), [ctx.user], `replicas-${replicas}`, ctx.extraEnv);
  await ctx.dep.deploy(s);
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
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
