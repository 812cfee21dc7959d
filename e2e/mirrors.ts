import * as bcrypt from "bcryptjs";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { renderRegistryConfig } from "../renderers/registry-config";
import { accessLogField, Answer, assertSameAnswer, Request as BlobRequest, send } from "./blob-reads";
import { curl, DockerClient, freePort, makeOtherCa, writeLayeredContext } from "./clients";
import { Deployment, synthAndDeploy, TestUser } from "./deployment";
import { pollUntil } from "./docker-api";
import { Engine, startEngine } from "./engine";
import { BOUNDED_MIRROR_MAX_SIZE_MB, seedBoundedImages, sizeBoundCheck } from "./mirror-size-bound";
import { forwardPorts } from "./port-forward";
import { assert, assertEqual, assertMatch, Check, clip, say } from "./harness";
import { registryUserChecks } from "./hardening";
import { REGISTRY_V3_IMAGE } from "./images";
import { CommandError, run } from "./proc";
import { instanceOf, socketOf } from "./stack-containers";
import { baseConfig, buildUniqueImage, Manifest, MANIFEST_V2, SuiteContext } from "./scenarios";

/**
 * Pull-through caches (issue #10) against an upstream the suite starts: a distribution v3
 * registry with TLS (its own CA) and a login, on a Docker network the suite creates, standing
 * in for Docker Hub and ghcr.io. Its access log counts what the mirrors fetch. Real clients go
 * through the generated files: a second dockerd started with the generated daemon.json,
 * containerd's ctr with --hosts-dir, skopeo with the registries.conf.d drop-in.
 */

export interface MirrorChecks {
  pullThrough: Check;
  dockerdMirror: Check;
  containerd: Check;
  podmanDropIn: Check;
  pushRefused: Check;
  k3sMerge: Check;
  ttl: Check;
  sizeBound: Check;
}

const TAG = "mirrors";
const UPSTREAM_NETWORK = "e2e-mirrors-upstream";
const UPSTREAM_CONTAINER = "e2e-mirrors-upstream";
export const UPSTREAM_HOST = "hub.e2e.test";
export const UPSTREAM_USER = { name: "hubuser", password: "hub-upstream-password-1" };
/** The second engine's networks; it creates none (--bridge=none), but keep it apart from every other pool. */
const SECOND_ENGINE_POOL = process.env.E2E_SECOND_ADDRESS_POOL ?? "base=10.233.0.0/16,size=24";
const CONTAINERD_NAMESPACE = "rse2e-mirrors";
/**
 * A real name for the stack (not localhost: dockerd treats 127.0.0.0/8, and names resolving there,
 * as insecure and skips TLS verification). The engine of check 32 resolves it, in its own mount
 * namespace, to the gateway address of the stack's edge network, where the suite forwards to the
 * published ports.
 */
const REAL_HOST = "registry.e2e.test";
/** Clients pulling the same cold image at once through a mirror (check 30). */
const BURST_CLIENTS = 6;

export interface Upstream {
  /** 127.0.0.1:<port>, for seeding it from the host. */
  readonly hostEndpoint: string;
  readonly caFile: string;
}

/** openssl: a CA and a server certificate for hub.e2e.test and 127.0.0.1. */
async function upstreamTls(dir: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const p = (name: string) => path.join(dir, name);
  const openssl = (args: string[]) => run("openssl", args, { timeoutMs: 30_000 });
  await openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2", "-subj", "/CN=e2e upstream CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", p("ca.key"), "-out", p("ca.crt")]);
  await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${UPSTREAM_HOST}`, "-keyout", p("server.key"), "-out", p("server.csr")]);
  fs.writeFileSync(p("ext.cnf"), `subjectAltName=DNS:${UPSTREAM_HOST},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n`);
  await openssl(["x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2", "-sha256",
    "-extfile", p("ext.cnf"), "-out", p("server.crt")]);
  return { caFile: p("ca.crt"), certFile: p("server.crt"), keyFile: p("server.key") };
}

/** The upstream registry: TLS + htpasswd, on its own network (alias hub.e2e.test) and 127.0.0.1:<port>. */
export async function startUpstream(engine: Engine, dir: string, names = { network: UPSTREAM_NETWORK, container: UPSTREAM_CONTAINER }): Promise<Upstream> {
  const files = path.join(dir, "upstream");
  fs.mkdirSync(files, { recursive: true });
  const tls = await upstreamTls(files);
  fs.writeFileSync(path.join(files, "htpasswd"), `${UPSTREAM_USER.name}:${bcrypt.hashSync(UPSTREAM_USER.password, 10)}\n`);
  fs.writeFileSync(
    path.join(files, "config.yml"),
    renderRegistryConfig({
      httpSecret: "e2e-upstream-secret",
      listen: { port: 5000 },
      drainTimeoutSeconds: 1,
      htpasswdPath: "/etc/upstream/htpasswd",
      realm: "Upstream",
      deleteEnabled: false,
      logLevel: "info",
      storageRootDirectory: "/var/lib/registry",
      tls: { certificatePath: "/etc/upstream/server.crt", keyPath: "/etc/upstream/server.key" },
      debugPort: 5001,
    }),
  );
  const port = await freePort();
  await engine.docker(["network", "create", names.network], { timeoutMs: 30_000 });
  await engine.docker(
    ["run", "-d", "--name", names.container, "--network", names.network, "--network-alias", UPSTREAM_HOST, "-p", `127.0.0.1:${port}:5000`,
      "-e", "OTEL_TRACES_EXPORTER=none", "-v", `${files}:/etc/upstream:ro`, REGISTRY_V3_IMAGE, "/etc/upstream/config.yml"],
    { timeoutMs: 60_000 },
  );
  const hostEndpoint = `127.0.0.1:${port}`;
  await pollUntil(
    "the upstream registry to answer /v2/ with 401",
    async () => {
      const res = await curl({ url: `https://${hostEndpoint}/v2/`, cacert: tls.caFile, scratchDir: files }).catch(() => undefined);
      return res?.status === 401 ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  return { hostEndpoint, caFile: tls.caFile };
}

/** Requests the upstream answered, from its access log (combined format on stdout). */
async function upstreamRequests(engine: Engine): Promise<string[]> {
  const { stdout, stderr } = await engine.docker(["logs", UPSTREAM_CONTAINER], { timeoutMs: 30_000 });
  return `${stdout}\n${stderr}`.split("\n").filter((line) => /"(GET|HEAD) \/v2\//.test(line));
}

/** Successful blob downloads (GET … 200) per digest of one repository. */
function blobFetches(requests: string[], repository: string): Record<string, number> {
  const counts: Record<string, number> = {};
  const pattern = new RegExp(`"GET /v2/${repository.replace(/\//g, "\\/")}/blobs/(sha256:[0-9a-f]{64}) HTTP/[0-9.]+" 200 `);
  for (const line of requests) {
    const m = pattern.exec(line);
    if (m) counts[m[1]] = (counts[m[1]] ?? 0) + 1;
  }
  return counts;
}

/** The first pull fetched each blob exactly once; later clients must leave it so. */
async function assertFetchedOnce(engine: Engine, blobs: string[], after: string): Promise<void> {
  const fetches = blobFetches(await upstreamRequests(engine), "library/e2e-base");
  assertEqual(Object.keys(fetches).sort(), [...blobs].sort(), `blobs the upstream has served (${after})`);
  for (const blob of blobs) assertEqual(fetches[blob], 1, `upstream downloads of ${short(blob)} (${after})`);
}

function short(digest: string): string {
  return `${digest.slice(0, 19)}…`;
}

/** Blobs (config + layers) of a manifest on the upstream. */
async function upstreamBlobs(upstream: Upstream, repository: string, tag: string, scratch: string): Promise<string[]> {
  const res = await curl({
    url: `https://${upstream.hostEndpoint}/v2/${repository}/manifests/${tag}`,
    cacert: upstream.caFile,
    credentials: `${UPSTREAM_USER.name}:${UPSTREAM_USER.password}`,
    headers: [`Accept: ${MANIFEST_V2}`],
    scratchDir: scratch,
  });
  assertEqual(res.status, 200, `GET ${repository}:${tag} manifest from the upstream`);
  const manifest = JSON.parse(res.body) as Manifest;
  return [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
}

async function expectFailure(what: string, fn: () => Promise<unknown>): Promise<CommandError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof CommandError) return err;
    throw err;
  }
  throw new Error(`${what} succeeded but must fail`);
}

export async function mirrorsScenario(ctx: SuiteContext, c: MirrorChecks): Promise<void> {
  const mine = Object.values(c);
  const dir = ctx.ws.dir(TAG);
  const scratch = ctx.ws.dir(`${TAG}-scratch`);
  const port = await freePort();
  const hubPort = await freePort();
  const ghcrPort = await freePort();
  const quayPort = await freePort();
  const boundedPort = await freePort();
  const users: TestUser[] = [{ name: "alice", password: "alice-mirrors-password-1" }];
  const alice = { name: "alice", password: "alice-mirrors-password-1" };
  const endpoint = `localhost:${port}`;
  const hubEndpoint = `localhost:${hubPort}`;
  const ghcrEndpoint = `localhost:${ghcrPort}`;
  const quayEndpoint = `localhost:${quayPort}`;
  const dep = new Deployment(ctx, TAG, dir);
  const docker = new DockerClient(ctx.engine, path.join(scratch, "docker-config"));
  let upstreamStarted = false;
  let k3sFileWritten: { file: string; content: string } | undefined;
  try {
    const upstream = await ctx.timings.time(`${TAG}: upstream registry`, () => startUpstream(ctx.engine, dir));
    upstreamStarted = true;
    // Seed the upstream: one image as docker.io would hold it (library/…), one as ghcr.io (owner/…).
    await docker.login(upstream.hostEndpoint, UPSTREAM_USER.name, UPSTREAM_USER.password);
    const baseCtx = fs.mkdtempSync(path.join(scratch, "base-"));
    writeLayeredContext(baseCtx, "scratch", [
      { files: 2, bytesEach: 256 * 1024 },
      { files: 1, bytesEach: 512 * 1024 },
      { files: 3, bytesEach: 64 * 1024 },
    ]);
    await docker.build(baseCtx, "rse2e-local/mirror-base:1");
    await docker.tag("rse2e-local/mirror-base:1", `${upstream.hostEndpoint}/library/e2e-base:1`);
    const baseDigest = (await docker.push(`${upstream.hostEndpoint}/library/e2e-base:1`)).digest;
    await buildUniqueImage(docker, fs.mkdtempSync(path.join(scratch, "tool-")), "rse2e-local/mirror-tool:1");
    await docker.tag("rse2e-local/mirror-tool:1", `${upstream.hostEndpoint}/e2e/tool:1`);
    const toolDigest = (await docker.push(`${upstream.hostEndpoint}/e2e/tool:1`)).digest;
    await buildUniqueImage(docker, fs.mkdtempSync(path.join(scratch, "ttl-")), "rse2e-local/mirror-ttl:1");
    await docker.tag("rse2e-local/mirror-ttl:1", `${upstream.hostEndpoint}/e2e/ttl:1`);
    await docker.push(`${upstream.hostEndpoint}/e2e/ttl:1`);
    await docker.rmi(`${upstream.hostEndpoint}/e2e/ttl:1`, "rse2e-local/mirror-ttl:1");
    const burstCtx = fs.mkdtempSync(path.join(scratch, "burst-"));
    writeLayeredContext(burstCtx, "scratch", [
      { files: 1, bytesEach: 8 * 1024 * 1024 },
      { files: 1, bytesEach: 8 * 1024 * 1024 },
      { files: 1, bytesEach: 4 * 1024 * 1024 },
    ]);
    await docker.build(burstCtx, "rse2e-local/mirror-burst:1");
    await docker.tag("rse2e-local/mirror-burst:1", `${upstream.hostEndpoint}/library/e2e-burst:1`);
    const burstDigest = (await docker.push(`${upstream.hostEndpoint}/library/e2e-burst:1`)).digest;
    // Nothing of these images may stay in the engine, or the pulls below would skip blobs it has.
    await docker.rmi(
      `${upstream.hostEndpoint}/library/e2e-base:1`,
      `${upstream.hostEndpoint}/e2e/tool:1`,
      `${upstream.hostEndpoint}/library/e2e-burst:1`,
      "rse2e-local/mirror-base:1",
      "rse2e-local/mirror-tool:1",
      "rse2e-local/mirror-burst:1",
    );
    await seedBoundedImages(docker, upstream.hostEndpoint, scratch);
    const baseBlobs = await upstreamBlobs(upstream, "library/e2e-base", "1", scratch);
    say(TAG, `upstream ${UPSTREAM_HOST} seeded: library/e2e-base:1 ${short(baseDigest)} (${baseBlobs.length} blobs), e2e/tool:1 ${short(toolDigest)}`);

    const mirrorDefaults = { upstreamUrl: `https://${UPSTREAM_HOST}:5000`, upstreamCaFile: upstream.caFile, username: UPSTREAM_USER.name, network: UPSTREAM_NETWORK };
    const config = {
      ...baseConfig(dir, "e2e-mirrors", port, users),
      hostnames: ["localhost", REAL_HOST],
      ipAddresses: ["127.0.0.1"],
      mirrors: [
        // Anonymous: dockerd's registry-mirrors sends only Docker Hub credentials to a mirror.
        { name: "hub", upstream: "docker.io", port: hubPort, anonymousPull: true, ttl: "24h", ...mirrorDefaults },
        { name: "ghcr", upstream: "ghcr.io", port: ghcrPort, ...mirrorDefaults },
        // The shortest TTL the schema allows, to watch the cache expire within the run.
        { name: "quay", upstream: "quay.io", port: quayPort, anonymousPull: true, ttl: "1m", ...mirrorDefaults },
        // Bounded to the schema's minimum, to watch the size bound delete within the run (check 46).
        { name: "bounded", upstream: "gcr.io", port: boundedPort, anonymousPull: true, maxSizeMb: BOUNDED_MIRROR_MAX_SIZE_MB, ...mirrorDefaults },
      ],
    };
    const clientDir = config.clientConfigDirectory;
    // A node's own registries.yaml (another mirror, credentials): the stack must merge into it.
    const k3sFile = path.join(clientDir, "k3s", "registries.yaml");
    const adminRegistries = [
      "# the node admin's registries.yaml",
      "mirrors:",
      "  quay.io:",
      "    endpoint:",
      "      - https://quay-cache.corp.example.test # not the stack's",
      "configs:",
      "  quay-cache.corp.example.test:",
      "    auth:",
      "      username: robot",
      "",
    ].join("\n");
    fs.mkdirSync(path.dirname(k3sFile), { recursive: true });
    fs.writeFileSync(k3sFile, adminRegistries);
    k3sFileWritten = { file: k3sFile, content: adminRegistries };
    const upstreamPasswords = {
      REGISTRY_UPSTREAM_PASSWORD_QUAY: UPSTREAM_USER.password, REGISTRY_UPSTREAM_PASSWORD_HUB: UPSTREAM_USER.password, REGISTRY_UPSTREAM_PASSWORD_GHCR: UPSTREAM_USER.password,
      REGISTRY_UPSTREAM_PASSWORD_BOUNDED: UPSTREAM_USER.password };
    const s1 = await synthAndDeploy(ctx.timings, dep, mine, () => dep.synth("out-1", config, users, "out-1", upstreamPasswords));
    if (s1 === undefined) return;
    const stackJson = fs.readFileSync(s1.stackFile, "utf8");

    // 36, first half: fill the 1m-TTL cache now; the other checks run while it ages.
    const ttlBlobs = await upstreamBlobs(upstream, "e2e/ttl", "1", scratch);
    const ttlPolicy = path.join(scratch, "ttl-policy.json");
    fs.writeFileSync(ttlPolicy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
    const ttlCopy = (n: number) =>
      run("skopeo", ["--policy", ttlPolicy, "copy", "--src-cert-dir", path.join(clientDir, "certs.d", quayEndpoint), `docker://${quayEndpoint}/e2e/ttl:1`, `dir:${path.join(scratch, `ttl-${n}`)}`], {
        timeoutMs: 120_000,
      });
    /** "<bytes> <path>" of every blob data file in the quay mirror's volume. */
    const blobDataFiles = async (): Promise<string[]> => {
      // No blobs folder at all (everything expired) lists nothing.
      const { stdout } = await ctx.engine.docker(
        ["run", "--rm", "--network", "none", "--entrypoint", "sh", "-v", "e2e-mirrors-mirror-quay-data:/data:ro", REGISTRY_V3_IMAGE,
          "-c", "test ! -d /data/docker/registry/v2/blobs || find /data/docker/registry/v2/blobs -name data -exec stat -c '%s %n' {} +"],
        { timeoutMs: 60_000 },
      );
      return stdout.split("\n").filter((line) => line.trim() !== "");
    };
    const cachedBlobs = async (): Promise<string[]> => {
      const files = (await blobDataFiles()).join("\n");
      return ttlBlobs.filter((b) => files.includes(`/${b.replace(":", "/").replace(/^sha256\/(..)/, "sha256/$1/$1")}/data`));
    };
    let ttlFilledAt = 0;
    await c.ttl.phase("pull through the 1m-TTL mirror: blobs cached", async () => {
      await ttlCopy(1);
      ttlFilledAt = Date.now();
      const fetched = blobFetches(await upstreamRequests(ctx.engine), "e2e/ttl");
      for (const b of ttlBlobs) assertEqual(fetched[b], 1, `upstream downloads of ${short(b)} after the first pull`);
      assertEqual((await cachedBlobs()).sort(), [...ttlBlobs].sort(), "blob data files in the mirror's volume");
      c.ttl.note(`skopeo copy docker://${quayEndpoint}/e2e/ttl:1 (ttl 1m): ${ttlBlobs.length} blobs fetched once each, all ${ttlBlobs.length} in volume e2e-mirrors-mirror-quay-data`);
    });

    // 30. pull-through
    await c.pullThrough.phase("mirror topology; first pull fetches each blob once from the upstream", async () => {
      assert(!stackJson.includes(UPSTREAM_USER.password), "the upstream password is in cdk.tf.json");
      for (const name of ["hub", "ghcr"]) {
        const inspect = JSON.parse((await ctx.engine.docker(["inspect", await instanceOf(ctx.engine, `e2e-mirrors-mirror-${name}`)])).stdout) as Array<{
          NetworkSettings: { Networks: Record<string, unknown>; Ports: Record<string, unknown> };
          HostConfig: { CapDrop: string[] | null };
        }>;
        assertEqual(Object.keys(inspect[0].NetworkSettings.Networks), [UPSTREAM_NETWORK], `networks of mirror ${name}`);
        const published = Object.entries(inspect[0].NetworkSettings.Ports ?? {}).filter(([, bindings]) => bindings !== null);
        assertEqual(published, [], `published ports of mirror ${name}`);
        assertEqual(inspect[0].HostConfig.CapDrop, ["ALL"], `dropped capabilities of mirror ${name}`);
      }
      c.pullThrough.note(`mirrors e2e-mirrors-mirror-hub/-ghcr: only network ${UPSTREAM_NETWORK}, no published port, cap_drop ALL; upstream password not in cdk.tf.json`);
      for (const name of ["hub", "ghcr", "quay"]) await registryUserChecks(c.pullThrough, ctx.engine, await instanceOf(ctx.engine, `e2e-mirrors-mirror-${name}`));
      const before = blobFetches(await upstreamRequests(ctx.engine), "library/e2e-base");
      assertEqual(before, {}, "upstream blob downloads of library/e2e-base before any pull through the mirror");
      const pulled = await docker.pull(`${hubEndpoint}/library/e2e-base:1`);
      assertEqual(pulled.digest, baseDigest, "digest pulled through the mirror vs pushed to the upstream");
      assertMatch(pulled.output, /Pull complete/, "docker pull downloaded layers");
      await assertFetchedOnce(ctx.engine, baseBlobs, "after the first pull");
      c.pullThrough.note(`client 1 (docker CLI, anonymous): docker pull ${hubEndpoint}/library/e2e-base:1 → ${short(pulled.digest)}; upstream access log: ${baseBlobs.length} blob GETs, each blob exactly once`);
    });
    await c.pullThrough.phase(`${BURST_CLIENTS} clients pulling one cold image at once: exactly one upstream download per blob`, async () => {
      const certDir = path.join(clientDir, "certs.d", hubEndpoint);
      const policy = path.join(scratch, "burst-policy.json");
      fs.writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
      const copies = await Promise.all(
        Array.from({ length: BURST_CLIENTS }, (_, i) =>
          run("skopeo", ["--policy", policy, "copy", "--src-cert-dir", certDir, `docker://${hubEndpoint}/library/e2e-burst:1`, `dir:${path.join(scratch, `burst-${i}`)}`], {
            timeoutMs: 180_000,
          }),
        ),
      );
      assertEqual(copies.length, BURST_CLIENTS, "concurrent skopeo copies that finished");
      const burstBlobs = await upstreamBlobs(upstream, "library/e2e-burst", "1", scratch);
      for (let i = 0; i < BURST_CLIENTS; i++) {
        for (const blob of burstBlobs) assert(fs.existsSync(path.join(scratch, `burst-${i}`, blob.replace("sha256:", ""))), `client ${i} lacks blob ${short(blob)}`);
      }
      const fetches = blobFetches(await upstreamRequests(ctx.engine), "library/e2e-burst");
      const counts = burstBlobs.map((b) => `${short(b)} ×${fetches[b] ?? 0}`).join(", ");
      // distribution v3.1.1 alone sends a request for a blob in flight to the upstream again; the
      // proxy's cache lock makes the other clients wait for the first one's download.
      for (const blob of burstBlobs) assertEqual(fetches[blob], 1, `upstream downloads of ${short(blob)} after ${BURST_CLIENTS} concurrent cold pulls (${counts})`);
      const { stdout } = await ctx.engine.docker(["logs", "--tail", "2000", "e2e-mirrors-proxy"]);
      const statuses: Record<string, number> = {};
      for (const line of stdout.split("\n").filter((l) => /"GET \/v2\/library\/e2e-burst\/blobs\/sha256:[0-9a-f]{64} HTTP/.test(l))) {
        const status = / cache=(\S+) /.exec(line)?.[1] ?? "?";
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
      const cacheFiles = (await ctx.engine.docker(["run", "--rm", "--network", "none", "--entrypoint", "sh", "-v", "e2e-mirrors-mirror-hub-blob-cache:/cache:ro", REGISTRY_V3_IMAGE, "-c", "find /cache -type f | wc -l"], { timeoutMs: 60_000 })).stdout.trim();
      assert(Number(cacheFiles) >= burstBlobs.length, `${cacheFiles} files in the hub mirror's blob cache volume, expected at least ${burstBlobs.length}`);
      c.pullThrough.note(
        `${BURST_CLIENTS} concurrent skopeo copies of cold ${hubEndpoint}/library/e2e-burst:1 (${short(burstDigest)}, ${burstBlobs.length} blobs, 20 MiB of layers): all got every blob; upstream blob downloads: ${counts} (exactly one each); proxy access log of their blob GETs: ${JSON.stringify(statuses)}; ${cacheFiles} files in volume e2e-mirrors-mirror-hub-blob-cache`,
      );
    });
    await c.pullThrough.phase("blob cache of a mirror with users: login checked first, HEAD/Range/conditional/unknown pass to the mirror unchanged", async () => {
      const mountpoint = async (volume: string) => (await ctx.engine.docker(["volume", "inspect", "-f", "{{.Mountpoint}}", volume])).stdout.trim();
      const socketPath = path.join(await mountpoint("e2e-mirrors-sockets"), await socketOf(ctx.engine, "e2e-mirrors-mirror-ghcr"));
      const mirrorData = await mountpoint("e2e-mirrors-mirror-ghcr-data");
      const ca = fs.readFileSync(path.join(clientDir, "certs.d", ghcrEndpoint, "ca.crt"), "utf8");
      const aliceAuth = `Basic ${Buffer.from(`${alice.name}:${alice.password}`).toString("base64")}`;
      let n = 0;
      /** `authorization` "" sends none. */
      const viaProxy = async (r: BlobRequest, authorization = aliceAuth): Promise<{ answer: Answer; cache: string }> => {
        const agent = `rse2e-mirror-cache/${++n}`;
        const headers = { ...(r.headers ?? {}), "User-Agent": agent, ...(authorization ? { Authorization: authorization } : {}) };
        const answer = await send({ host: "127.0.0.1", port: ghcrPort, servername: "localhost", ca, method: r.method, path: r.path, headers }, true);
        return { answer, cache: await accessLogField(ctx, "e2e-mirrors-proxy", agent, "cache") };
      };
      // The mirror registry itself, on its socket (it runs without auth behind the auth cache).
      const direct = (r: BlobRequest) => send({ socketPath, method: r.method, path: r.path, headers: { Host: "mirror", ...(r.headers ?? {}) } }, false);
      const toolBlobs = await upstreamBlobs(upstream, "e2e/tool", "1", scratch);
      const layer = toolBlobs[toolBlobs.length - 1];
      const blobPath = `/v2/e2e/tool/blobs/${layer}`;
      const hex = layer.slice("sha256:".length);
      const essentials = (a: Answer) => ({
        status: a.status,
        digest: a.headers["docker-content-digest"],
        length: a.headers["content-length"],
        type: a.headers["content-type"],
        sha256: crypto.createHash("sha256").update(a.body).digest("hex"),
      });

      const first = await viaProxy({ method: "GET", path: blobPath });
      assertEqual(first.cache, "MISS", "cache status of the first GET of the layer");
      // The mirror stores the blob after answering: wait for it before asking the mirror directly,
      // which would otherwise fetch it from the upstream a second time.
      await pollUntil("the mirror to store the layer", async () => (fs.existsSync(path.join(mirrorData, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data")) ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 250,
      });
      const fromMirror = await direct({ method: "GET", path: blobPath });
      assertEqual(essentials(fromMirror).sha256, hex, "sha256 of the mirror's own answer");
      assertEqual(essentials(first.answer), essentials(fromMirror), "first GET through the proxy (MISS) vs the mirror: status, Docker-Content-Digest, Content-Length, Content-Type, bytes");
      const second = await viaProxy({ method: "GET", path: blobPath });
      assertEqual(second.cache, "HIT", "cache status of the second GET of the layer");
      assertEqual(essentials(second.answer), essentials(fromMirror), "second GET through the proxy (HIT) vs the mirror");
      c.pullThrough.note(`ghcr.io mirror (users), ${short(layer)} as alice: 1st GET cache=MISS, 2nd cache=HIT; both: same status, Docker-Content-Digest, Content-Length, Content-Type and bytes as the mirror registry's own answer`);

      const anonymous = await viaProxy({ method: "GET", path: blobPath }, "");
      const wrong = await viaProxy({ method: "GET", path: blobPath }, `Basic ${Buffer.from(`${alice.name}:wrong-password`).toString("base64")}`);
      for (const [what, r] of [["without credentials", anonymous], ["with a wrong password", wrong]] as const) {
        assertEqual(r.answer.status, 401, `GET of the cached layer ${what}`);
        assert(r.answer.body.length < 1000, `GET of the cached layer ${what}: a body of ${r.answer.body.length} bytes`);
        assertEqual(r.cache, "-", `cache status of the GET ${what} (the login check answers before the cache is looked at)`);
      }
      c.pullThrough.note("the cached layer without credentials and with a wrong password: 401, no bytes, cache never consulted (cache=-)");

      const cases: [string, BlobRequest][] = [
        ["HEAD of the cached layer", { method: "HEAD", path: blobPath }],
        ["GET with a range", { method: "GET", path: blobPath, headers: { Range: "bytes=10-2000" } }],
        ["GET with a suffix range", { method: "GET", path: blobPath, headers: { Range: "bytes=-17" } }],
        ["GET with an unsatisfiable range", { method: "GET", path: blobPath, headers: { Range: "bytes=99999999-" } }],
        ["HEAD with a range", { method: "HEAD", path: blobPath, headers: { Range: "bytes=0-9" } }],
        ["GET with If-None-Match of its ETag", { method: "GET", path: blobPath, headers: { "If-None-Match": `"${layer}"` } }],
      ];
      for (const [what, r] of cases) {
        const proxied = await viaProxy(r);
        assertSameAnswer(proxied.answer, await direct(r), what);
        assertEqual(proxied.cache, "-", `${what}: cache status (passed to the mirror, not cached)`);
        c.pullThrough.note(`${what}: ${proxied.answer.status}, same status, headers and bytes as the mirror registry; cache=-`);
      }
      const unknown: BlobRequest = { method: "GET", path: `/v2/e2e/tool/blobs/sha256:${"0".repeat(64)}` };
      for (const attempt of [1, 2]) {
        const proxied = await viaProxy(unknown);
        assertSameAnswer(proxied.answer, await direct(unknown), `GET of an unknown digest (${attempt})`);
        assertEqual(proxied.answer.status, 404, `GET of an unknown digest (${attempt}): status`);
        assertEqual(proxied.cache, "MISS", `GET of an unknown digest (${attempt}): cache status (a 404 is never cached)`);
      }
      c.pullThrough.note("GET of an unknown digest twice: 404 BLOB_UNKNOWN as from the mirror, cache=MISS both times (not cached)");
      const fetches = blobFetches(await upstreamRequests(ctx.engine), "e2e/tool");
      assertEqual(fetches[layer], 1, `upstream downloads of ${short(layer)} after all these requests`);
      const mounts = JSON.parse((await ctx.engine.docker(["inspect", "-f", "{{json .Mounts}}", "e2e-mirrors-proxy"])).stdout) as { Name?: string; Destination: string; RW: boolean }[];
      const caches = mounts.filter((m) => m.Name?.endsWith("-blob-cache")).map((m) => `${m.Name} at ${m.Destination} RW=${m.RW}`);
      assertEqual(caches.sort(), [
        "e2e-mirrors-mirror-bounded-blob-cache at /var/cache/registry-stack/mirror-bounded RW=true",
        "e2e-mirrors-mirror-ghcr-blob-cache at /var/cache/registry-stack/mirror-ghcr RW=true",
        "e2e-mirrors-mirror-hub-blob-cache at /var/cache/registry-stack/mirror-hub RW=true",
        "e2e-mirrors-mirror-quay-blob-cache at /var/cache/registry-stack/mirror-quay RW=true",
      ], "blob cache volumes mounted in the proxy");
      const rootReadOnly = (await ctx.engine.docker(["inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", "e2e-mirrors-proxy"])).stdout.trim();
      assertEqual(rootReadOnly, "true", "read-only root filesystem of the proxy");
      c.pullThrough.note(`upstream downloads of the layer after all of it: 1; proxy (root filesystem read-only) mounts ${caches.join(", ")}`);
    });

    // 31. pushes: refused by the mirrors, accepted by the private registry
    await c.pushRefused.phase("push to a mirror refused; private registry push works; mirror auth", async () => {
      await buildUniqueImage(docker, fs.mkdtempSync(path.join(scratch, "pushed-")), "rse2e-local/pushed:1");
      await docker.tag("rse2e-local/pushed:1", `${hubEndpoint}/library/pushed:1`);
      const refused = await expectFailure("docker push to the docker.io mirror", () => docker.push(`${hubEndpoint}/library/pushed:1`));
      assertMatch(refused.stderr + refused.stdout, /read-only pull-through cache of docker\.io; push to the private registry localhost:\d+ instead/, "docker push error");
      c.pushRefused.note(`docker push ${hubEndpoint}/library/pushed:1 refused: ${clip((refused.stderr || refused.stdout).trim().split("\n").slice(-1)[0], 200)}`);
      const post = await run(
        "curl",
        ["-sS", "-X", "POST", "--cacert", path.join(clientDir, "certs.d", ghcrEndpoint, "ca.crt"), "-u", `${alice.name}:${alice.password}`,
          "-w", "\n%{http_code}", `https://${ghcrEndpoint}/v2/e2e/tool/blobs/uploads/`],
        { timeoutMs: 30_000 },
      );
      const lines = post.stdout.trimEnd().split("\n");
      const status = lines.pop();
      const body = lines.join("\n").trim();
      assertEqual(status, "405", "POST blob upload to the ghcr.io mirror as alice");
      assertEqual((JSON.parse(body) as { errors: Array<{ code: string }> }).errors[0].code, "UNSUPPORTED", "registry error code");
      c.pushRefused.note(`curl -X POST https://${ghcrEndpoint}/v2/e2e/tool/blobs/uploads/ as alice → 405 ${clip(body, 160)}`);
      const anonymous = await curl({ url: `https://${ghcrEndpoint}/v2/e2e/tool/manifests/1`, cacert: path.join(clientDir, "certs.d", ghcrEndpoint, "ca.crt"), scratchDir: scratch });
      assertEqual(anonymous.status, 401, "anonymous manifest GET on the ghcr.io mirror (users required)");
      c.pushRefused.note("ghcr.io mirror without anonymousPull: anonymous manifest GET → 401");
      await docker.login(endpoint, alice.name, alice.password);
      await buildUniqueImage(docker, fs.mkdtempSync(path.join(scratch, "private-")), "rse2e-local/private:1");
      await docker.tag("rse2e-local/private:1", `${endpoint}/e2e/private:1`);
      const pushed = await docker.push(`${endpoint}/e2e/private:1`);
      c.pushRefused.note(`docker push ${endpoint}/e2e/private:1 (private registry) → ${short(pushed.digest)}`);
    });
    c.pushRefused.finish();

    // 32. a second dockerd with the generated daemon.json
    await c.dockerdMirror.phase("second dockerd started with the generated daemon.json pulls docker.io/library/e2e-base:1", async () => {
      const daemonJson = JSON.parse(fs.readFileSync(path.join(clientDir, "daemon.json"), "utf8")) as Record<string, unknown>;
      assertEqual(daemonJson["registry-mirrors"], [`https://${hubEndpoint}`], "registry-mirrors in the generated daemon.json");
      c.dockerdMirror.note(`generated daemon.json: ${JSON.stringify(daemonJson)}`);
      // The engine's own /etc/hosts (REAL_HOST → the edge network's gateway) and /etc/docker/certs.d
      // (empty at first, for the control), bind-mounted in its mount namespace only.
      const gateway = (await ctx.engine.docker(["network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", "e2e-mirrors-edge"])).stdout.trim();
      assertMatch(gateway, /^\d+\.\d+\.\d+\.\d+$/, "gateway of the stack's edge network");
      const hostsFile = path.join(scratch, "second-engine-hosts");
      fs.writeFileSync(hostsFile, `127.0.0.1 localhost\n${gateway} ${REAL_HOST}\n`);
      // /etc/docker as a whole (the host has no certs.d to mount over); dockerd reads only certs.d there.
      const dockerEtc = fs.mkdtempSync(path.join(scratch, "second-engine-etc-docker-"));
      const certsView = path.join(dockerEtc, "certs.d");
      fs.mkdirSync(certsView);
      const forwarder = await forwardPorts(gateway, [hubPort]);
      const second = await startEngine({
        addressPool: SECOND_ENGINE_POOL,
        daemonConfig: daemonJson,
        privateFiles: { "/etc/hosts": hostsFile, "/etc/docker": dockerEtc },
        log: (l) => say(TAG, `  second engine: ${l}`),
      });
      try {
        const info = (await second.docker(["info", "--format", "{{json .RegistryConfig.Mirrors}}"], { timeoutMs: 30_000 })).stdout.trim();
        assertEqual(JSON.parse(info), [`https://${hubEndpoint}/`], "docker info Registry Mirrors of the second engine");
        const out = (await second.docker(["pull", "docker.io/library/e2e-base:1"], { timeoutMs: 120_000 })).stdout;
        const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(out)?.[1];
        assertEqual(digest, baseDigest, "digest of docker.io/library/e2e-base:1 pulled by the second engine");
        c.dockerdMirror.note(`second dockerd (pid ${second.pid}, pool ${SECOND_ENGINE_POOL}): docker info mirrors ${info}; docker pull docker.io/library/e2e-base:1 → ${short(digest ?? "")} (no internet here: Docker Hub itself is unreachable)`);

        // The mirror by a real name, TLS verified by dockerd: without the CA the pull fails with x509.
        const realRef = `${REAL_HOST}:${hubPort}/library/e2e-base:1`;
        const untrusted = await expectFailure(`docker pull ${realRef} without the CA`, () => second.docker(["pull", realRef], { timeoutMs: 120_000 }));
        assertMatch(untrusted.stderr, /x509: certificate signed by unknown authority/, `docker pull ${realRef} with an empty /etc/docker/certs.d`);
        c.dockerdMirror.note(`${REAL_HOST} → ${gateway} (the edge network's gateway; forwarded to the published port) in the engine's own /etc/hosts: control with an empty /etc/docker/certs.d: ${clip(untrusted.stderr.trim().split("\n").slice(-1)[0], 180)}`);
        fs.cpSync(path.join(clientDir, "certs.d"), certsView, { recursive: true });
        assert(fs.existsSync(path.join(certsView, `${REAL_HOST}:${hubPort}`, "ca.crt")), `no generated certs.d/${REAL_HOST}:${hubPort}/ca.crt`);
        const real = (await second.docker(["pull", realRef], { timeoutMs: 120_000 })).stdout;
        assertEqual(/Digest: (sha256:[0-9a-f]{64})/.exec(real)?.[1], baseDigest, `digest of ${realRef}`);
        const insecure = (await second.docker(["info", "--format", "{{json .RegistryConfig.InsecureRegistryCIDRs}} {{json .RegistryConfig.IndexConfigs}}"])).stdout.trim();
        assert(!insecure.includes(REAL_HOST), `${REAL_HOST} is listed as an insecure registry: ${insecure}`);
        c.dockerdMirror.note(`with the generated certs.d copied in (certs.d/${REAL_HOST}:${hubPort}/ca.crt): docker pull ${realRef} → ${short(baseDigest)}; insecure registries of that engine: ${clip(insecure, 160)}; ${forwarder.connections()} connection(s) went through ${gateway}:${hubPort}`);
      } finally {
        await second.stop();
        await forwarder.close();
      }
      await assertFetchedOnce(ctx.engine, baseBlobs, "after the second dockerd's pull");
      c.dockerdMirror.note(`upstream access log after this second client's pull: still exactly one download of each of the ${baseBlobs.length} blobs`);
    });
    c.dockerdMirror.finish();

    // 33. containerd
    await c.containerd.phase("ctr images pull --hosts-dir <generated containerd/certs.d>", async () => {
      const hostsDir = path.join(clientDir, "containerd", "certs.d");
      const address = path.join(ctx.engine.baseDir, "exec", "containerd", "containerd.sock");
      assert(fs.existsSync(address), `no containerd socket at ${address}`);
      const ctr = (args: string[]) => run("ctr", ["--address", address, "--namespace", CONTAINERD_NAMESPACE, ...args], { timeoutMs: 120_000 });
      await ctr(["images", "pull", "--hosts-dir", hostsDir, "docker.io/library/e2e-base:1"]);
      await ctr(["images", "pull", "--hosts-dir", hostsDir, "--user", `${alice.name}:${alice.password}`, "ghcr.io/e2e/tool:1"]);
      await ctr(["images", "pull", "--hosts-dir", hostsDir, "--user", `${alice.name}:${alice.password}`, `${endpoint}/e2e/private:1`]);
      const listed = (await ctr(["images", "list"])).stdout;
      for (const [ref, digest] of [["docker.io/library/e2e-base:1", baseDigest], ["ghcr.io/e2e/tool:1", toolDigest]]) {
        assertMatch(listed, new RegExp(`^${ref.replace(/[.]/g, "\\.")}\\s+\\S+\\s+${digest}\\s`, "m"), `ctr images list entry of ${ref}`);
      }
      await assertFetchedOnce(ctx.engine, baseBlobs, "after ctr's pull of docker.io/library/e2e-base:1");
      c.containerd.note(`ctr pull docker.io/library/e2e-base:1 (anonymous), ghcr.io/e2e/tool:1 and ${endpoint}/e2e/private:1 (as alice) with --hosts-dir ${path.relative(clientDir, hostsDir)}: digests match; TLS verified against the hosts.toml's ca.crt`);
      c.containerd.note(`upstream access log after ctr: still exactly one download of each library/e2e-base blob`);
      // Control: the same hosts dir with an unrelated CA in place of the generated ca.crt.
      const otherHosts = path.join(scratch, "containerd-other-ca");
      fs.cpSync(path.join(hostsDir, "ghcr.io"), path.join(otherHosts, "ghcr.io"), { recursive: true });
      fs.copyFileSync(await makeOtherCa(path.join(scratch, "other-ca")), path.join(otherHosts, "ghcr.io", "ca.crt"));
      await ctr(["images", "rm", "ghcr.io/e2e/tool:1"]);
      const wrongCa = await expectFailure("ctr pull with an unrelated CA", () =>
        ctr(["images", "pull", "--hosts-dir", otherHosts, "--user", `${alice.name}:${alice.password}`, "ghcr.io/e2e/tool:1"]),
      );
      assertMatch(wrongCa.stderr, /x509|certificate/, "ctr pull with an unrelated CA in hosts.toml's folder");
      c.containerd.note(`control: the same ghcr.io pull with an unrelated ca.crt fails: ${clip(wrongCa.stderr.trim().split("\n").slice(-1)[0], 160)}`);
    });
    c.containerd.finish();

    // 34. skopeo with the registries.conf.d drop-in (as Podman/CRI-O read it)
    const home = path.join(scratch, "containers-home");
    const authFile = path.join(home, "auth.json");
    const skopeo = (args: string[]) =>
      run("skopeo", ["--policy", path.join(home, "policy.json"), ...args], { timeoutMs: 120_000, env: { ...process.env, HOME: home } });
    await c.podmanDropIn.phase("skopeo copy docker.io/… and ghcr.io/… with the generated drop-in and certs", async () => {
      const dropIn = path.join(clientDir, "containers", "registries.conf.d", "50-registry-stack.conf");
      const userConf = path.join(home, ".config", "containers");
      fs.mkdirSync(path.join(userConf, "registries.conf.d"), { recursive: true });
      fs.copyFileSync(dropIn, path.join(userConf, "registries.conf.d", "50-registry-stack.conf"));
      for (const e of [hubEndpoint, ghcrEndpoint]) {
        fs.mkdirSync(path.join(userConf, "certs.d", e), { recursive: true });
        fs.copyFileSync(path.join(clientDir, "certs.d", e, "ca.crt"), path.join(userConf, "certs.d", e, "ca.crt"));
      }
      fs.writeFileSync(path.join(home, "policy.json"), JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
      await skopeo(["copy", "docker://docker.io/library/e2e-base:1", `dir:${path.join(scratch, "skopeo-base")}`]);
      const base = JSON.parse((await skopeo(["inspect", "--no-tags", "docker://docker.io/library/e2e-base:1"])).stdout) as { Digest: string };
      assertEqual(base.Digest, baseDigest, "skopeo inspect docker.io/library/e2e-base:1 digest");
      // containers/image never sends --creds to a mirror: credentials come from the auth file, per mirror host.
      await run("skopeo", ["login", "--authfile", authFile, "--username", alice.name, "--password-stdin", ghcrEndpoint], {
        timeoutMs: 60_000,
        input: alice.password,
        env: { ...process.env, HOME: home },
      });
      const tool = JSON.parse((await skopeo(["inspect", "--no-tags", "--authfile", authFile, "docker://ghcr.io/e2e/tool:1"])).stdout) as { Digest: string };
      assertEqual(tool.Digest, toolDigest, "skopeo inspect ghcr.io/e2e/tool:1 digest");
      await assertFetchedOnce(ctx.engine, baseBlobs, "after skopeo's copy");
      c.podmanDropIn.note(`HOME=${path.basename(home)}: ~/.config/containers/registries.conf.d/50-registry-stack.conf + certs.d/<mirror>/ca.crt (TLS verified): skopeo copy/inspect docker://docker.io/library/e2e-base:1 → ${short(base.Digest)}; skopeo login ${ghcrEndpoint} (alice) + inspect docker://ghcr.io/e2e/tool:1 → ${short(tool.Digest)}; upstream blob downloads unchanged`);
      // Podman (Debian bookworm's 4.3) as root, the same HOME: drop-in and certs.d from ~/.config/containers.
      const podmanDir = path.join(scratch, "podman");
      // Podman refuses a runroot longer than 50 characters: a short folder of its own, removed below.
      const podmanRun = fs.mkdtempSync("/tmp/rse2e-podman-");
      const podman = (args: string[]) =>
        run("podman", ["--root", path.join(podmanDir, "root"), "--runroot", podmanRun, "--storage-driver", "vfs", "--events-backend", "file", "--cgroup-manager", "cgroupfs", "--tmpdir", path.join(podmanDir, "tmp"), ...args], {
          timeoutMs: 180_000,
          env: { ...process.env, HOME: home },
        });
      const podmanVersion = (await podman(["--version"])).stdout.trim();
      await podman(["pull", "--signature-policy", path.join(home, "policy.json"), "docker.io/library/e2e-base:1"]);
      await podman(["pull", "--signature-policy", path.join(home, "policy.json"), "--authfile", authFile, "ghcr.io/e2e/tool:1"]);
      const podmanDigests = (await podman(["images", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"])).stdout.trim().split("\n").sort();
      assertEqual(podmanDigests, [`docker.io/library/e2e-base:1 ${baseDigest}`, `ghcr.io/e2e/tool:1 ${toolDigest}`], "podman images");
      await assertFetchedOnce(ctx.engine, baseBlobs, "after podman's pull");
      c.podmanDropIn.note(`${podmanVersion} (root, vfs storage in the scratch folder, same HOME): podman pull docker.io/library/e2e-base:1 and ghcr.io/e2e/tool:1 (--authfile) through the drop-in → ${podmanDigests.join(", ")}; upstream blob downloads unchanged`);
      fs.rmSync(path.join(userConf, "certs.d", ghcrEndpoint), { recursive: true });
      await podman(["rmi", "ghcr.io/e2e/tool:1"]);
      const podmanUntrusted = await expectFailure("podman pull without the mirror's CA", () =>
        podman(["pull", "--signature-policy", path.join(home, "policy.json"), "--authfile", authFile, "ghcr.io/e2e/tool:1"]),
      );
      assertMatch(podmanUntrusted.stderr, /x509|certificate/, "podman error without the CA");
      c.podmanDropIn.note(`control: without certs.d/${ghcrEndpoint}/ca.crt podman pull ghcr.io/e2e/tool:1 fails: ${clip(podmanUntrusted.stderr.trim().split("\n").slice(-1)[0], 160)}`);
      fs.rmSync(podmanRun, { recursive: true, force: true });
      const untrusted = await expectFailure("skopeo without the mirror's CA", () => skopeo(["inspect", "--no-tags", "--authfile", authFile, "docker://ghcr.io/e2e/tool:1"]));
      assertMatch(untrusted.stderr, /x509|certificate/, "skopeo error without the CA");
      c.podmanDropIn.note(`control: without certs.d/${ghcrEndpoint}/ca.crt the same inspect fails: ${clip(untrusted.stderr.trim().split("\n").slice(-1)[0], 160)}`);
      fs.mkdirSync(path.join(userConf, "certs.d", ghcrEndpoint), { recursive: true });
      fs.copyFileSync(path.join(clientDir, "certs.d", ghcrEndpoint, "ca.crt"), path.join(userConf, "certs.d", ghcrEndpoint, "ca.crt"));
    });
    c.podmanDropIn.finish();

    // 35. k3s registries.yaml (k3s itself does not run here: the merge is checked on the file)
    await c.k3sMerge.phase("stack entries merged into the admin's registries.yaml", async () => {
      const merged = parse(fs.readFileSync(k3sFile, "utf8")) as { mirrors: Record<string, unknown>; configs: Record<string, unknown> };
      assertEqual(merged.mirrors, {
        "quay.io": { endpoint: ["https://quay-cache.corp.example.test"] },
        "docker.io": { endpoint: [`https://${hubEndpoint}`] },
        "gcr.io": { endpoint: [`https://localhost:${boundedPort}`] },
        "ghcr.io": { endpoint: [`https://${ghcrEndpoint}`] },
      }, "mirrors in registries.yaml");
      for (const e of [endpoint, `127.0.0.1:${port}`, hubEndpoint, ghcrEndpoint]) {
        const caFile = (merged.configs[e] as { tls: { ca_file: string } } | undefined)?.tls.ca_file;
        assertEqual(caFile, path.join(clientDir, "certs.d", e, "ca.crt"), `configs["${e}"].tls.ca_file`);
        assert(caFile !== undefined && fs.existsSync(caFile), `${caFile} (named by registries.yaml) does not exist`);
      }
      assertEqual(merged.configs["quay-cache.corp.example.test"], { auth: { username: "robot" } }, "the admin's configs entry");
      assertMatch(fs.readFileSync(k3sFile, "utf8"), /# the node admin's registries\.yaml[\s\S]*# not the stack's/, "the admin's comments");
      c.k3sMerge.note(`registries.yaml after deploy: mirrors ${Object.keys(merged.mirrors).join(", ")}; configs ${Object.keys(merged.configs).join(", ")}; the admin's entries and comments kept (also mirrors.quay.io, although the stack mirrors quay.io too: a foreign entry is never changed); every ca_file exists`);
    });

    // 37. the size bound (e2e/mirror-size-bound.ts)
    await sizeBoundCheck(c.sizeBound, {
      engine: ctx.engine,
      endpoint: `localhost:${boundedPort}`,
      volumeName: "e2e-mirrors-mirror-bounded-data",
      sizeBoundContainer: "e2e-mirrors-mirror-bounded-size-bound",
      certDir: path.join(clientDir, "certs.d", `localhost:${boundedPort}`),
      scratch,
      upstreamFetches: async (repository) => blobFetches(await upstreamRequests(ctx.engine), repository),
    });
    c.sizeBound.finish();

    // 36, second half
    await c.ttl.phase("the cache expires after the TTL and is fetched again", async () => {
      const left = await pollUntil(
        "the mirror's TTL to expire its blobs",
        async () => ((await cachedBlobs()).length === 0 ? true : undefined),
        { timeoutMs: Math.max(10_000, 150_000 - (Date.now() - ttlFilledAt)), intervalMs: 5_000 },
      );
      assert(left, "blobs still cached");
      const expiredAfter = (Date.now() - ttlFilledAt) / 1000;
      assert(expiredAfter >= 55, `blobs gone after ${expiredAfter.toFixed(0)} s, before the 1m TTL`);
      // What the expiry leaves: the manifest payload (distribution deletes the manifest's links, not its
      // blob), i.e. what a garbage collection of the mirror's volume could still reclaim.
      const leftFiles = await blobDataFiles();
      const leftBytes = leftFiles.reduce((sum, line) => sum + Number(line.split(" ")[0]), 0);
      await ttlCopy(2);
      const fetched = blobFetches(await upstreamRequests(ctx.engine), "e2e/ttl");
      for (const b of ttlBlobs) assertEqual(fetched[b], 2, `upstream downloads of ${short(b)} after the pull following expiry`);
      c.ttl.note(`blob data gone from the volume ${expiredAfter.toFixed(0)} s after the pull (polled every 5 s); left in the volume's blob store: ${leftFiles.length} data file(s), ${leftBytes} bytes; the next pull fetched each blob from the upstream again (2 downloads each)`);
    });
    c.ttl.finish();

    // 30, second half: the upstream goes away
    await c.pullThrough.phase("upstream stopped: cached images still pull", async () => {
      await ctx.engine.docker(["stop", UPSTREAM_CONTAINER], { timeoutMs: 60_000 });
      const gone = await curl({ url: `https://${upstream.hostEndpoint}/v2/`, cacert: upstream.caFile, scratchDir: scratch }).then(
        (r) => `HTTP ${r.status}`,
        (err: CommandError) => clip(err.stderr.trim(), 100),
      );
      assert(!/^HTTP/.test(gone), `the upstream still answers after docker stop: ${gone}`);
      await docker.rmi(`${hubEndpoint}/library/e2e-base:1`);
      const pulled = await docker.pull(`${hubEndpoint}/library/e2e-base:1`);
      assertEqual(pulled.digest, baseDigest, "digest pulled with the upstream stopped");
      assertMatch(pulled.output, /Pull complete|Downloaded newer image/, "docker pull downloaded layers");
      const tool = JSON.parse((await skopeo(["inspect", "--no-tags", "--authfile", authFile, "docker://ghcr.io/e2e/tool:1"])).stdout) as { Digest: string };
      assertEqual(tool.Digest, toolDigest, "skopeo inspect ghcr.io/e2e/tool:1 with the upstream stopped");
      c.pullThrough.note(`upstream stopped (${gone}); docker rmi + docker pull ${hubEndpoint}/library/e2e-base:1 → ${short(pulled.digest)} from the cache; skopeo inspect docker://ghcr.io/e2e/tool:1 via the drop-in → ${short(tool.Digest)}`);
    });
    c.pullThrough.finish();
  } catch (err) {
    for (const ch of mine) ch.abort(`scenario ${TAG} failed: ${(err as Error).message}`);
  } finally {
    await ctx.timings.time(`${TAG}: destroy`, () => dep.destroy()).catch((err: Error) => say(TAG, `destroy failed: ${err.message}`));
    const written = k3sFileWritten;
    if (written) {
      await c.k3sMerge.phase("destroy takes back exactly the stack's entries", async () => {
        assertEqual(fs.readFileSync(written.file, "utf8"), written.content, "registries.yaml after destroy");
        assert(!fs.existsSync(`${written.file}.registry-stack`), "the ledger is still there after destroy");
        c.k3sMerge.note("after destroy: registries.yaml byte-identical to the admin's file, ledger gone");
      });
      c.k3sMerge.finish();
    }
    if (upstreamStarted) await ctx.engine.docker(["rm", "-f", UPSTREAM_CONTAINER], { timeoutMs: 60_000 }).catch((err: Error) => say(TAG, err.message));
    await ctx.engine.docker(["network", "rm", UPSTREAM_NETWORK], { timeoutMs: 30_000 }).catch(() => undefined);
  }
}
