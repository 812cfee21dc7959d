import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import { curl, DockerClient, freePort, HttpResult, Skopeo, writeLayeredContext } from "./clients";
import { Deployment, PROJECT_ROOT, SynthResult, TestUser } from "./deployment";
import { Engine } from "./engine";
import { assert, assertEqual, assertMatch, Check, clip, say } from "./harness";
import { registryUserChecks } from "./hardening";
import { REGISTRY_GID, REGISTRY_UID, REGISTRY_USER } from "../constructs/container-defaults";
import { NGINX_IMAGE, REGISTRY_V3_IMAGE } from "./images";
import { CommandError, run, sleep } from "./proc";
import { MaintenanceReport } from "../renderers/maintenance-settings";
import { SuiteContext } from "./scenarios";
import { instanceOf } from "./stack-containers";
import { JsonObject } from "./terraform-plan";
import { singleFileTar } from "./tar";

/**
 * Storage lifecycle (issue #9): retention rules, `npm run gc [-- --dry-run]`, the write hold at
 * the proxy, the collector, the scheduled run. The data set is pushed with curl (blobs, image
 * manifests, a two-platform OCI index), so every byte the registry should keep or delete is known.
 */

export interface LifecycleChecks {
  retention: Check;
  dryRun: Check;
  writeHold: Check;
  deletedLayerPush: Check;
  schedule: Check;
  metrics: Check;
}

interface Blob {
  digest: string;
  bytes: Buffer;
}

interface Pushed {
  repo: string;
  digest: string;
  mediaType: string;
  bytes: Buffer;
  /** Blobs and child manifests this manifest names. */
  refs: string[];
}

const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const ACCEPT = [`Accept: ${DOCKER_MANIFEST}, ${OCI_MANIFEST}, ${OCI_INDEX}`];
const SETTLE_SECONDS = 3;

const sha256 = (b: Buffer) => `sha256:${crypto.createHash("sha256").update(b).digest("hex")}`;

/** A gzipped one-file layer docker can extract, with its diff id. */
function makeLayer(name: string, size: number): { blob: Blob; diffId: string } {
  const tar = singleFileTar(`data/${name}.bin`, crypto.randomBytes(size), 0o644);
  const gz = zlib.gzipSync(tar);
  return { blob: { digest: sha256(gz), bytes: gz }, diffId: sha256(tar) };
}

/** The registry protocol with curl through the proxy (TLS verified with the generated CA). */
class Pusher {
  readonly pushed: Pushed[] = [];
  /** Size of every blob pushed, by digest. */
  readonly blobSizes = new Map<string, number>();
  constructor(
    readonly baseUrl: string,
    readonly cacert: string,
    readonly credentials: string,
    readonly scratch: string,
  ) {}

  request(method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE", url: string, extra: { bodyFile?: string; headers?: string[]; saveBodyTo?: string } = {}): Promise<HttpResult> {
    return curl({ url: url.startsWith("http") ? url : `${this.baseUrl}${url}`, method, cacert: this.cacert, credentials: this.credentials, scratchDir: this.scratch, ...extra });
  }

  async blob(repo: string, blob: Blob): Promise<void> {
    const start = await this.request("POST", `/v2/${repo}/blobs/uploads/`);
    assertEqual(start.status, 202, `POST /v2/${repo}/blobs/uploads/`);
    const location = start.headers["location"];
    const file = path.join(this.scratch, `blob-${blob.digest.slice(7, 19)}`);
    fs.writeFileSync(file, blob.bytes);
    const put = await this.request("PUT", `${location}${location.includes("?") ? "&" : "?"}digest=${blob.digest}`, {
      bodyFile: file,
      headers: ["Content-Type: application/octet-stream"],
    });
    fs.rmSync(file);
    assertEqual(put.status, 201, `PUT blob ${blob.digest} to ${repo}`);
    this.blobSizes.set(blob.digest, blob.bytes.length);
  }

  /** PUT of a manifest by tag, or by its own digest when `reference` is undefined. */
  async manifest(repo: string, reference: string | undefined, mediaType: string, body: object, refs: string[]): Promise<Pushed> {
    const bytes = Buffer.from(JSON.stringify(body));
    reference ??= sha256(bytes);
    const file = path.join(this.scratch, `manifest-${crypto.randomBytes(6).toString("hex")}`);
    fs.writeFileSync(file, bytes);
    const put = await this.request("PUT", `/v2/${repo}/manifests/${reference}`, { bodyFile: file, headers: [`Content-Type: ${mediaType}`] });
    fs.rmSync(file);
    assertEqual(put.status, 201, `PUT manifest ${repo}:${reference} (${clip(put.body, 200)})`);
    const pushed = { repo, digest: sha256(bytes), mediaType, bytes, refs };
    assertEqual(put.headers["docker-content-digest"], pushed.digest, `Docker-Content-Digest of ${repo}:${reference}`);
    this.pushed.push(pushed);
    return pushed;
  }

  /** An image of the given layers (pushed first) and a config for `arch`. */
  async image(repo: string, reference: string | undefined, layers: Array<{ blob: Blob; diffId: string }>, arch = "amd64", oci = false): Promise<Pushed> {
    const config: Blob = (() => {
      const bytes = Buffer.from(
        JSON.stringify({ architecture: arch, os: "linux", config: { Cmd: ["/data"] }, rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) }, history: layers.map(() => ({ created_by: "e2e" })) }),
      );
      return { digest: sha256(bytes), bytes };
    })();
    for (const b of [config, ...layers.map((l) => l.blob)]) await this.blob(repo, b);
    const mediaType = oci ? OCI_MANIFEST : DOCKER_MANIFEST;
    return this.manifest(
      repo,
      reference,
      mediaType,
      {
        schemaVersion: 2,
        mediaType,
        config: { mediaType: oci ? "application/vnd.oci.image.config.v1+json" : "application/vnd.docker.container.image.v1+json", digest: config.digest, size: config.bytes.length },
        layers: layers.map((l) => ({ mediaType: oci ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.docker.image.rootfs.diff.tar.gzip", digest: l.blob.digest, size: l.blob.bytes.length })),
      },
      [config.digest, ...layers.map((l) => l.blob.digest)],
    );
  }

  async index(repo: string, reference: string, children: Array<{ pushed: Pushed; arch: string }>): Promise<Pushed> {
    return this.manifest(
      repo,
      reference,
      OCI_INDEX,
      {
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: children.map((c) => ({ mediaType: c.pushed.mediaType, digest: c.pushed.digest, size: c.pushed.bytes.length, platform: { architecture: c.arch, os: "linux" } })),
      },
      children.map((c) => c.pushed.digest),
    );
  }

  /** Size of every blob the test pushed (manifests included), by digest. */
  sizes(): Map<string, number> {
    const all = new Map(this.blobSizes);
    for (const p of this.pushed) all.set(p.digest, p.bytes.length);
    return all;
  }

  async tags(repo: string): Promise<string[]> {
    const res = await this.request("GET", `/v2/${repo}/tags/list`);
    assertEqual(res.status, 200, `GET /v2/${repo}/tags/list`);
    return ((JSON.parse(res.body) as { tags: string[] | null }).tags ?? []).sort();
  }
}

/** `npm run gc [-- --dry-run]` from the project folder, with the scenario's config. */
async function npmRunGc(configFile: string, secretsFile: string, dryRun: boolean): Promise<{ report: MaintenanceReport; log: string; seconds: number }> {
  const t0 = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env, REGISTRY_STACK_CONFIG: configFile, REGISTRY_STACK_SECRETS: secretsFile };
  const { stdout, stderr } = await run("npm", ["run", "--silent", "gc", ...(dryRun ? ["--", "--dry-run"] : [])], { cwd: PROJECT_ROOT, env, timeoutMs: 180_000 });
  return { report: JSON.parse(stdout) as MaintenanceReport, log: stderr, seconds: (Date.now() - t0) / 1000 };
}

/** Every file of a volume (list and sha256), read by a throwaway container. */
async function volumeHashes(engine: Engine, volume: string): Promise<string> {
  const { stdout } = await engine.docker(
    ["run", "--rm", "--network", "none", "-v", `${volume}:/d:ro`, "--entrypoint", "/bin/sh", REGISTRY_V3_IMAGE, "-c", "cd /d && find . | sort && find . -type f | sort | xargs -r sha256sum"],
    { timeoutMs: 60_000 },
  );
  return stdout;
}

const tagLine = (t: { repository: string; tag: string }) => `${t.repository}:${t.tag}`;
const manifestLine = (m: { repository: string; digest: string }) => `${m.repository}@${m.digest}`;

export async function lifecycleScenario(ctx: SuiteContext, c: LifecycleChecks): Promise<void> {
  const tag = "lifecycle";
  const mine = Object.values(c);
  const dir = ctx.ws.dir(tag);
  const scratch = ctx.ws.dir(`${tag}-scratch`);
  const port = await freePort();
  // alice is an admin (/metrics is for admins only, issue 20); bob, a push user, must get 403 there.
  const users: TestUser[] = [
    { name: "alice", password: "alice-lifecycle-password-1" },
    { name: "bob", password: "bob-lifecycle-password-1" },
  ];
  const prefix = "e2e-lc";
  const rules: JsonObject[] = [
    { repositories: "^lc/app$", keepNewest: 2, keepTags: ["^v[0-9]+\\.[0-9]+\\.[0-9]+$"] },
    { repositories: "^lc/multi$", keepTags: ["^release$"], untaggedDays: 0 },
  ];
  const config: JsonObject = {
    namePrefix: prefix,
    registryImage: REGISTRY_V3_IMAGE,
    proxyImage: NGINX_IMAGE,
    publishAddress: "127.0.0.1",
    publicPort: port,
    hostnames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    materialDirectory: path.join(dir, "material"),
    clientConfigDirectory: path.join(dir, "client-config"),
    users: users.map((u) => ({ name: u.name, role: u.name === "alice" ? "admin" : "push" })),
    // Twelve hours away: no scheduled run interferes with the manual ones (the last check moves it).
    retention: { schedule: `${String((new Date().getUTCHours() + 12) % 24).padStart(2, "0")}:00`, writeSettleSeconds: SETTLE_SECONDS, rules },
  };
  const endpoint = `localhost:${port}`;
  const baseUrl = `https://127.0.0.1:${port}`;
  const cacert = path.join(config.clientConfigDirectory as string, "certs.d", endpoint, "ca.crt");
  const creds = `alice:${users[0].password}`;
  const dep = new Deployment(ctx, tag, dir);
  const docker = new DockerClient(ctx.engine, path.join(scratch, "docker-config"));
  let s1: SynthResult;
  const firstDeployStarted = Date.now();
  let firstDeployMs = 0;
  try {
    s1 = await ctx.timings.time(`${tag}: synth`, () => dep.synth("out-1", config, users));
    await ctx.timings.time(`${tag}: cdktf deploy`, () => dep.deploy(s1));
    firstDeployMs = Date.now() - firstDeployStarted;
  } catch (err) {
    for (const ch of mine) ch.abort(`deployment failed: ${(err as Error).message}`);
    await dep.destroy().catch(() => undefined);
    return;
  }
  const secretsFile = path.join(dir, "no-secrets.yml");
  const p = new Pusher(baseUrl, cacert, creds, scratch);
  const expected = { deletedTags: [] as string[], deletedManifests: [] as string[], reclaimed: new Map<string, number>(), remainingTags: {} as Record<string, string[]> };
  const byTag: Record<string, Pushed> = {};
  let dryReport: MaintenanceReport | undefined;
  let realReport: MaintenanceReport | undefined;
  let deletedLayer = "";
  const releaseChildren: Array<{ pushed: Pushed; arch: string }> = [];

  try {
    await c.retention.phase("push the data set with curl (shared layers, a two-platform OCI index, an untagged manifest)", async () => {
      const base = makeLayer("base", 256 * 1024);
      const unique: Record<string, ReturnType<typeof makeLayer>> = {};
      // lc/app: one tag per second, so push times are distinct (the job reads them to the second).
      for (const [i, t] of ["v1.0.0", "build-1", "build-2", "build-3", "dev"].entries()) {
        unique[t] = makeLayer(`app-${t}`, 64 * 1024 + i);
        byTag[`lc/app:${t}`] = await p.image("lc/app", t, [base, unique[t]]);
        await sleep(1100);
      }
      // lc/keep matches no rule and holds build-1's image too: its blobs must survive.
      byTag["lc/keep:b1"] = await p.image("lc/keep", "b1", [base, unique["build-1"]]);
      // lc/multi: release and old are two-platform indexes; the amd64 children share a layer.
      const shared = makeLayer("multi-shared", 32 * 1024);
      const l = (n: string) => makeLayer(n, 48 * 1024);
      const [relAmd, relArm, oldAmd, oldArm, dangling] = [l("rel-amd64"), l("rel-arm64"), l("old-amd64"), l("old-arm64"), l("dangling")];
      // Children are pushed by digest (untagged, as buildx does): only their index keeps them.
      const child = async (layers: Array<ReturnType<typeof makeLayer>>, arch: string) => ({ pushed: await p.image("lc/multi", undefined, layers, arch, true), arch });
      const rel = [await child([shared, relAmd], "amd64"), await child([relArm], "arm64")];
      const old = [await child([shared, oldAmd], "amd64"), await child([oldArm], "arm64")];
      releaseChildren.push(...rel);
      // "scratch" first tags a single image, then moves to the release index: the image is left
      // untagged (deleted: untaggedDays 0) and the tag itself matches no keepTags pattern (deleted).
      const danglingImage = await p.image("lc/multi", "scratch", [dangling], "amd64", true);
      byTag["lc/multi:release"] = await p.index("lc/multi", "release", rel);
      byTag["lc/multi:old"] = await p.index("lc/multi", "old", old);
      byTag["lc/multi:scratch"] = await p.index("lc/multi", "scratch", rel);
      const sizes = p.sizes();

      expected.deletedTags = ["lc/app:build-1", "lc/app:build-2", "lc/multi:old", "lc/multi:scratch"].sort();
      const deletedManifests = [byTag["lc/app:build-1"], byTag["lc/app:build-2"], byTag["lc/multi:old"], ...old.map((o) => o.pushed), danglingImage];
      expected.deletedManifests = deletedManifests.map((m) => `${m.repo}@${m.digest}`).sort();
      const survivors = p.pushed.filter((m) => !deletedManifests.includes(m) && !expected.deletedManifests.includes(`${m.repo}@${m.digest}`));
      const live = new Set(survivors.flatMap((m) => [m.digest, ...m.refs]));
      for (const m of deletedManifests) for (const d of [m.digest, ...m.refs]) if (!live.has(d)) expected.reclaimed.set(d, sizes.get(d) as number);
      expected.remainingTags = { "lc/app": ["build-3", "dev", "v1.0.0"], "lc/keep": ["b1"], "lc/multi": ["release"] };
      deletedLayer = unique["build-2"].blob.digest;
      assert(expected.reclaimed.has(deletedLayer), "build-2's own layer is expected to be reclaimed");
      assert(!expected.reclaimed.has(unique["build-1"].blob.digest), "build-1's layer is shared with lc/keep and must stay");
      assert(!expected.reclaimed.has(shared.blob.digest), "the layer shared by the release and old amd64 children must stay");
      c.retention.note(
        `${p.pushed.length} manifest PUTs (${p.pushed.filter((m) => m.mediaType === OCI_INDEX).length} of them OCI indexes of amd64+arm64), ${p.blobSizes.size} distinct blobs, to lc/app, lc/keep, lc/multi; ` +
          `expected to delete tags ${expected.deletedTags.join(", ")}; ${expected.deletedManifests.length} manifests; ${expected.reclaimed.size} blobs, ${[...expected.reclaimed.values()].reduce((a, b) => a + b, 0)} bytes`,
      );
    });

    // The engine pulls build-2 before the collector deletes its layer (check 43 pushes it back).
    const build2 = `${endpoint}/lc/app:build-2`;
    await c.deletedLayerPush.phase("docker pull lc/app:build-2 before the collector runs", async () => {
      assert(byTag["lc/app:build-2"] !== undefined, "the data set was not pushed");
      await docker.login(endpoint, "alice", users[0].password as string);
      const pulled = await docker.pull(build2);
      assertEqual(pulled.digest, byTag["lc/app:build-2"].digest, "digest of the pulled build-2");
      const head = await p.request("HEAD", `/v2/lc/app/blobs/${deletedLayer}`);
      assertEqual(head.status, 200, "HEAD of build-2's layer before the collector");
      c.deletedLayerPush.note(`docker pull ${build2} → ${pulled.digest.slice(0, 19)}…; its layer ${deletedLayer.slice(0, 19)}… HEAD → 200`);
    });

    await c.dryRun.phase("npm run gc -- --dry-run: nothing changes, the report lists what the real run will delete", async () => {
      const before = await volumeHashes(ctx.engine, `${prefix}-data`);
      const { report, log, seconds } = await npmRunGc(s1.configFile, secretsFile, true);
      const after = await volumeHashes(ctx.engine, `${prefix}-data`);
      assertEqual(report.dryRun, true, "report.dryRun");
      assertEqual(report.trigger, "manual", "report.trigger");
      const files = before.split("\n").filter((line) => /^[0-9a-f]{64} /.test(line)).length;
      assert(after === before, "the data volume changed during the dry run");
      c.dryRun.note(`npm run gc -- --dry-run (${seconds.toFixed(1)} s): data volume identical before and after (${files} files, every path and sha256); log: ${clip(log.trim().split("\n").slice(-1)[0], 200)}`);
      assertEqual(report.deleted.tags.map(tagLine).sort(), expected.deletedTags, "dry run: tags it would delete");
      assertEqual(report.deleted.manifests.map(manifestLine).sort(), expected.deletedManifests, "dry run: manifests it would delete");
      dryReport = report;
    });

    // 42: during the real run, a pull loop and a write probe run against the proxy.
    const pullTargets = ["lc/app:dev", "lc/app:v1.0.0", "lc/keep:b1", "lc/multi:release"].map((t) => byTag[t]);
    const localPush = "rse2e-local/lc-hold:1";
    await c.writeHold.phase("build an image to push during the write window", async () => {
      const ctxDir = fs.mkdtempSync(path.join(scratch, "hold-img-"));
      writeLayeredContext(ctxDir, "scratch", [{ files: 1, bytesEach: 96 * 1024 }]);
      await docker.build(ctxDir, localPush);
      await docker.tag(localPush, `${endpoint}/lc/pushed-during-hold:1`);
    });

    await c.writeHold.phase("npm run gc (real run) with a pull loop and write probes running", async () => {
      assert(expected.deletedManifests.length > 0, "the data set was not pushed");
      let running = true;
      const pulls = { ok: 0, failed: [] as string[] };
      const probes: Array<{ at: number; status: number }> = [];
      let held: HttpResult | undefined;
      const otherMethods: string[] = [];
      let pushDuringHold: Promise<{ ok: boolean; output: string }> | undefined;
      const uploadBeforeHold = await p.request("POST", "/v2/lc/probe/blobs/uploads/");
      assertEqual(uploadBeforeHold.status, 202, "POST upload before the run");
      const pullLoop = (async () => {
        for (let i = 0; running && i < 4000; i++) {
          const m = pullTargets[i % pullTargets.length];
          const man = await p.request("GET", `/v2/${m.repo}/manifests/${m.digest}`, { headers: ACCEPT });
          const blob = m.mediaType === OCI_INDEX ? undefined : await p.request("HEAD", `/v2/${m.repo}/blobs/${m.refs[m.refs.length - 1]}`);
          if (man.status === 200 && (!blob || blob.status === 200)) pulls.ok++;
          else pulls.failed.push(`${m.repo}@${m.digest.slice(7, 19)}: manifest ${man.status}${blob ? ` blob ${blob.status}` : ""}`);
        }
      })();
      const probeLoop = (async () => {
        const t0 = Date.now();
        for (let i = 0; running && i < 3000; i++) {
          const res = await p.request("POST", "/v2/lc/probe/blobs/uploads/");
          probes.push({ at: Date.now() - t0, status: res.status });
          if (res.status === 503 && !held) {
            held = res;
            pushDuringHold = docker.push(`${endpoint}/lc/pushed-during-hold:1`, 120_000).then(
              (r) => ({ ok: true, output: r.output }),
              (err: Error) => ({ ok: false, output: err instanceof CommandError ? `${err.stdout}\n${err.stderr}` : err.message }),
            );
            const put = await p.request("PUT", "/v2/lc/probe/manifests/held", { headers: [`Content-Type: ${DOCKER_MANIFEST}`] });
            const patch = await p.request("PATCH", uploadBeforeHold.headers["location"]);
            const del = await p.request("DELETE", `/v2/lc/app/manifests/${byTag["lc/app:dev"].digest}`);
            otherMethods.push(`PUT ${put.status}`, `PATCH ${patch.status}`, `DELETE ${del.status}`);
          }
          await sleep(100);
        }
      })();
      let gc: Awaited<ReturnType<typeof npmRunGc>>;
      try {
        gc = await npmRunGc(s1.configFile, secretsFile, false);
        // A little longer, so the loops also see the registry after the window.
        await sleep(1500);
      } finally {
        running = false;
        await Promise.all([pullLoop, probeLoop]);
      }
      realReport = gc.report;
      c.writeHold.note(`probes (POST /v2/lc/probe/blobs/uploads/ every ~100 ms): ${summarize(probes)}`);
      assert(held !== undefined, "no write probe got 503 during the run");
      const h = held as HttpResult;
      assertEqual(h.headers["retry-after"], "10", "Retry-After of the held write");
      assertEqual(h.headers["docker-distribution-api-version"], "registry/2.0", "Docker-Distribution-Api-Version of the held write");
      assertEqual((JSON.parse(h.body) as { errors: Array<{ code: string }> }).errors[0].code, "UNAVAILABLE", "error code of the held write");
      assertEqual(otherMethods, ["PUT 503", "PATCH 503", "DELETE 503"], "other write methods during the hold");
      const first503 = probes.findIndex((x) => x.status === 503);
      const last503 = probes.map((x) => x.status).lastIndexOf(503);
      assert(probes.slice(0, first503).every((x) => x.status === 202) && first503 > 0, "probes before the hold were not all 202");
      assert(last503 < probes.length - 1 && probes.slice(last503 + 1).every((x) => x.status === 202), "writes were not accepted again after the hold");
      c.writeHold.note(`held write: 503, Retry-After: ${h.headers["retry-after"]}, body ${clip(h.body, 160)}; during the hold also ${otherMethods.join(", ")}`);
      assertEqual(pulls.failed, [], "pull loop failures");
      assert(pulls.ok > 20, `pull loop made only ${pulls.ok} pulls`);
      c.writeHold.note(`pull loop (manifest GET + layer HEAD of 4 kept images, sequential) through the whole run: ${pulls.ok} ok, 0 failed`);
      const pushResult = await (pushDuringHold as Promise<{ ok: boolean; output: string }>);
      assert(pushResult.ok, `docker push started during the hold failed:\n${clip(pushResult.output, 1500)}`);
      assertMatch(pushResult.output, /Retrying in \d+ seconds?/, "docker push output shows it retried after the 503");
      c.writeHold.note(`docker push started at the first 503: retried (${/Retrying in \d+ seconds?/.exec(pushResult.output)?.[0]}) and succeeded: ${clip(/digest: \S+/.exec(pushResult.output)?.[0] ?? "", 80)}`);
      c.writeHold.note(`npm run gc: ${gc.seconds.toFixed(1)} s; job log: ${clip(gc.log.trim().split("\n").slice(-1)[0], 220)}`);
    });
    c.writeHold.finish();

    await c.retention.phase("report and registry state after the run", async () => {
      // The job ran as REGISTRY_USER on the registry's data: the collector deleted, nothing it left is another user's.
      for (const name of [await instanceOf(ctx.engine, `${prefix}-registry`), `${prefix}-maintenance`]) await registryUserChecks(c.retention, ctx.engine, name);
      const foreign = (await ctx.engine.docker(["exec", `${prefix}-maintenance`, "sh", "-c", `find /var/lib/registry /var/lib/registry-stack-maintenance \\( ! -user ${REGISTRY_UID} -o ! -group ${REGISTRY_GID} \\) | head -5`], { timeoutMs: 20_000 })).stdout.trim();
      assertEqual(foreign, "", `paths in the data and state volumes not owned by ${REGISTRY_USER}`);
      assert(realReport !== undefined, "the real run (npm run gc) did not complete");
      const r = realReport;
      assertEqual(r.dryRun, false, "report.dryRun");
      assertEqual(r.collectorExitCode, 0, "collector exit code");
      assertEqual(r.deleted.tags.map(tagLine).sort(), expected.deletedTags, "tags deleted");
      assertEqual(r.deleted.manifests.map(manifestLine).sort(), expected.deletedManifests, "manifests deleted");
      const reclaimed = new Map(r.deleted.blobs.map((b) => [b.digest, b.bytes]));
      assertEqual([...reclaimed.keys()].sort(), [...expected.reclaimed.keys()].sort(), "blobs the collector deleted = blobs only deleted manifests referenced");
      for (const [d, size] of expected.reclaimed) assertEqual(reclaimed.get(d), size, `size of reclaimed blob ${d}`);
      const expectedBytes = [...expected.reclaimed.values()].reduce((a, b) => a + b, 0);
      assertEqual(r.bytesReclaimed, expectedBytes, "bytesReclaimed");
      assert(r.durationsMs.writeWindow >= SETTLE_SECONDS * 1000 + r.durationsMs.collector, `write window ${r.durationsMs.writeWindow} ms shorter than settle + collector`);
      assert(r.durationsMs.collector > 0, "collector duration");
      c.retention.note(
        `report: ${r.deleted.tags.length} tags, ${r.deleted.manifests.length} manifests, ${r.deleted.blobs.length} blobs, bytesReclaimed ${r.bytesReclaimed} = the pushed sizes of the blobs only deleted manifests named; ` +
          `durations: retention ${r.durationsMs.retention} ms, write window ${r.durationsMs.writeWindow} ms (settle ${SETTLE_SECONDS} s), collector ${r.durationsMs.collector} ms`,
      );
      for (const [repo, tags] of Object.entries(expected.remainingTags)) assertEqual(await p.tags(repo), tags, `tags of ${repo}`);
      c.retention.note(`tags left: ${Object.entries(expected.remainingTags).map(([repo, t]) => `${repo} [${t.join(", ")}]`).join("; ")}`);
      // Every remaining tag pulls bit-identically: manifests by tag and every blob/child they name.
      let checked = 0;
      const verify = async (m: Pushed, ref: string): Promise<void> => {
        const file = path.join(scratch, `pulled-${checked++}`);
        const res = await p.request("GET", `/v2/${m.repo}/manifests/${ref}`, { headers: ACCEPT, saveBodyTo: file });
        assertEqual(res.status, 200, `GET ${m.repo}:${ref}`);
        assert(fs.readFileSync(file).equals(m.bytes), `manifest ${m.repo}:${ref} differs from what was pushed`);
        for (const d of m.refs) {
          const child = p.pushed.find((x) => x.repo === m.repo && x.digest === d);
          if (child) {
            await verify(child, d);
            continue;
          }
          const blobFile = path.join(scratch, `pulled-${checked++}`);
          const b = await p.request("GET", `/v2/${m.repo}/blobs/${d}`, { saveBodyTo: blobFile });
          assertEqual(b.status, 200, `GET blob ${d} of ${m.repo}`);
          assertEqual(sha256(fs.readFileSync(blobFile)), d, `sha256 of blob ${d}`);
          fs.rmSync(blobFile);
        }
      };
      for (const [repo, tags] of Object.entries(expected.remainingTags)) for (const t of tags) await verify(byTag[`${repo}:${t}`], t);
      c.retention.note(`every remaining tag and everything it names (${checked} manifests and blobs) GETs bit-identical to what was pushed`);
      const skopeo = new Skopeo(path.join(scratch, "skopeo"));
      assertEqual(releaseChildren.map((r) => r.arch), ["amd64", "arm64"], "platforms of the release index");
      for (const { pushed: wanted, arch } of releaseChildren) {
        const out = path.join(scratch, `skopeo-${arch}`);
        await skopeo.run(["copy", "--override-arch", arch, "--src-cert-dir", path.dirname(cacert), "--src-creds", creds, `docker://${endpoint}/lc/multi:release`, `dir:${out}`]);
        const manifest = fs.readFileSync(path.join(out, "manifest.json"));
        assert(manifest.equals(wanted.bytes), `skopeo --override-arch ${arch}: manifest is not the pushed ${arch} child`);
        for (const d of wanted.refs) assertEqual(sha256(fs.readFileSync(path.join(out, d.slice(7)))), d, `skopeo ${arch} blob ${d}`);
      }
      c.retention.note("skopeo copy --override-arch amd64 and arm64 of lc/multi:release (strict TLS): each gets its pushed child manifest and blobs, bit-identical");
      const dev = await docker.pull(`${endpoint}/lc/multi:release`);
      assertEqual(dev.digest, byTag["lc/multi:release"].digest, "docker pull lc/multi:release digest");
      c.retention.note(`docker pull ${endpoint}/lc/multi:release → ${dev.digest.slice(0, 19)}… (the index)`);
    });
    c.retention.finish();

    await c.dryRun.phase("the dry run reported exactly what the real run deleted", async () => {
      const dry = dryReport as MaintenanceReport;
      const real = realReport as MaintenanceReport;
      assertEqual(dry.deleted.tags.map(tagLine).sort(), real.deleted.tags.map(tagLine).sort(), "tags: dry run vs real run");
      assertEqual(dry.deleted.manifests.map(manifestLine).sort(), real.deleted.manifests.map(manifestLine).sort(), "manifests: dry run vs real run");
      assertEqual(dry.deleted.blobs.map((b) => `${b.digest} ${b.bytes}`).sort(), real.deleted.blobs.map((b) => `${b.digest} ${b.bytes}`).sort(), "blobs: dry run vs real run");
      assertEqual(dry.bytesReclaimed, real.bytesReclaimed, "bytesReclaimed: dry run vs real run");
      c.dryRun.note(`dry run listed the same ${real.deleted.tags.length} tags, ${real.deleted.manifests.length} manifests and ${real.deleted.blobs.length} blobs (${real.bytesReclaimed} bytes) the real run deleted`);
    });
    c.dryRun.finish();

    await c.deletedLayerPush.phase("after the collector: the deleted layer is missing, docker push uploads it again, the image pulls", async () => {
      const head = await p.request("HEAD", `/v2/lc/app/blobs/${deletedLayer}`);
      assertEqual(head.status, 404, "HEAD of the collected layer (a stale blob-descriptor cache would answer 200)");
      const again = `${endpoint}/lc/app:again`;
      await docker.tag(build2, again);
      const pushed = await docker.push(again);
      const pushedLines = pushed.output.split("\n").filter((l) => /: (Pushed|Layer already exists)/.test(l)).map((l) => l.trim());
      assert(pushedLines.some((l) => /Pushed/.test(l)), `no layer was uploaded: ${pushedLines.join("; ")}`);
      c.deletedLayerPush.note(`HEAD of the collected layer → 404; docker push ${again}: ${pushedLines.join("; ")}`);
      const id = (await docker.inspect(again)).Id;
      await docker.rmi(again, build2);
      const pulled = await docker.pull(again);
      assertEqual(pulled.digest, pushed.digest, "digest pulled back");
      assertEqual((await docker.inspect(again)).Id, id, "image ID pulled back");
      c.deletedLayerPush.note(`docker rmi + pull ${again} → ${pulled.digest.slice(0, 19)}…, same image ID ${id.slice(0, 19)}…`);
    });
    c.deletedLayerPush.finish();

    await c.metrics.phase("GET /metrics through the proxy: registry metrics, storage usage, the last run; only with credentials", async () => {
      assert(realReport !== undefined, "the real run (npm run gc) did not complete");
      const url = `${baseUrl}/metrics`;
      const anonymous = await curl({ url, cacert, scratchDir: scratch });
      const wrong = await curl({ url, cacert, credentials: "alice:wrong-password", scratchDir: scratch });
      assertEqual([anonymous.status, wrong.status], [401, 401], "GET /metrics without and with wrong credentials");
      const pusher = await curl({ url, cacert, credentials: `bob:${users[1].password}`, scratchDir: scratch });
      assertEqual(pusher.status, 403, "GET /metrics as bob (role push)");
      assertMatch(anonymous.headers["www-authenticate"] ?? "", /^Basic realm=/, "challenge of an anonymous GET /metrics");
      const res = await curl({ url, cacert, credentials: creds, scratchDir: scratch });
      assertEqual(res.status, 200, "GET /metrics as alice");
      assertMatch(res.headers["content-type"] ?? "", /^text\/plain; version=0\.0\.4/, "Content-Type of /metrics");
      const sample = (name: string) => {
        const m = new RegExp(`^${name} (\\S+)$`, "m").exec(res.body);
        assert(m, `no ${name} in /metrics`);
        return Number(m[1]);
      };
      assertEqual(sample("registry_stack_registry_metrics_up"), 1, "registry_stack_registry_metrics_up");
      const registryLines = res.body.split("\n").filter((l) => /^registry_(http|storage)_/.test(l));
      assert(registryLines.length > 0, "none of the registry's own registry_http_*/registry_storage_* metrics in /metrics");
      assert(/^go_goroutines \d+/m.test(res.body), "no go_goroutines (the registry's Go runtime metrics) in /metrics");
      const r = realReport;
      assertEqual(sample("registry_stack_gc_last_reclaimed_bytes"), r.bytesReclaimed, "registry_stack_gc_last_reclaimed_bytes vs the report");
      assertEqual(sample("registry_stack_gc_last_deleted_tags"), r.deleted.tags.length, "registry_stack_gc_last_deleted_tags vs the report");
      assertEqual(sample("registry_stack_gc_last_run_success"), 1, "registry_stack_gc_last_run_success");
      assertEqual(sample("registry_stack_gc_last_write_window_seconds"), r.durationsMs.writeWindow / 1000, "registry_stack_gc_last_write_window_seconds vs the report");
      const size = sample("registry_stack_storage_filesystem_size_bytes");
      const available = sample("registry_stack_storage_filesystem_available_bytes");
      assert(size > 0 && available > 0 && available <= size, `filesystem size ${size}, available ${available}`);
      // The file is refreshed every 30 s and the checks before pushed more: wait for a refresh
      // that saw the volume as it is now (nothing writes to it here).
      const duOfVolume = async () => {
        const { stdout } = await ctx.engine.docker(
          ["run", "--rm", "--network", "none", "-v", `${prefix}-data:/d:ro`, "--entrypoint", "/bin/sh", REGISTRY_V3_IMAGE, "-c", "du -sk /d"],
          { timeoutMs: 60_000 },
        );
        return Number(stdout.trim().split(/\s+/)[0]) * 1024;
      };
      const du = await duOfVolume();
      let used = sample("registry_stack_storage_used_bytes");
      for (let i = 0; i < 12 && used !== du; i++) {
        await sleep(4000);
        const again = await curl({ url, cacert, credentials: creds, scratchDir: scratch });
        used = Number(/^registry_stack_storage_used_bytes (\S+)$/m.exec(again.body)?.[1]);
      }
      assertEqual(used, du, "registry_stack_storage_used_bytes vs du -sk of the volume in a throwaway container (within 48 s)");
      c.metrics.note(
        `anonymous and wrong password → 401; bob (push) → ${pusher.status}; alice (admin) → 200 (${res.body.split("\n").length} lines): registry_stack_registry_metrics_up 1, ${registryLines.length} registry_http_*/registry_storage_* samples, go_goroutines; ` +
          `last run: reclaimed ${sample("registry_stack_gc_last_reclaimed_bytes")} bytes, ${sample("registry_stack_gc_last_deleted_tags")} tags, write window ${sample("registry_stack_gc_last_write_window_seconds")} s (= the report); ` +
          `storage: used ${used} bytes (du in a throwaway container: ${du}), filesystem ${size} bytes, ${available} available`,
      );
    });
    await c.metrics.phase("after docker restart of the registry, the registry's metrics come back by themselves", async () => {
      const t0 = Date.now();
      await ctx.engine.docker(["restart", await instanceOf(ctx.engine, `${prefix}-registry`)], { timeoutMs: 120_000 });
      const up = async () => {
        const res = await curl({ url: `${baseUrl}/metrics`, cacert, credentials: creds, scratchDir: scratch });
        return res.status === 200 ? /^registry_stack_registry_metrics_up (\d)$/m.exec(res.body)?.[1] : undefined;
      };
      const seen: string[] = [];
      let back = false;
      // 3 failed scrapes 30 s apart, the container's restart, one more scrape: about 2 minutes.
      for (let i = 0; i < 60 && Date.now() - t0 < 240_000; i++) {
        const value = await up();
        if (seen[seen.length - 1] !== value) seen.push(value ?? "no answer");
        if (value === "1" && seen.includes("0")) {
          back = true;
          break;
        }
        if (value === "1" && Date.now() - t0 > 100_000) {
          back = true;
          break;
        }
        await sleep(5000);
      }
      const restarts = (await ctx.engine.docker(["inspect", "-f", "{{.RestartCount}}", `${prefix}-maintenance`], { timeoutMs: 20_000 })).stdout.trim();
      assert(back, `registry_stack_registry_metrics_up did not come back to 1 within ${Math.round((Date.now() - t0) / 1000)} s (values seen: ${seen.join(" → ")})`);
      c.metrics.note(`docker restart ${prefix}-registry: registry_stack_registry_metrics_up ${seen.join(" → ")} after ${Math.round((Date.now() - t0) / 1000)} s; maintenance container restart count ${restarts}`);
    });
    c.metrics.finish();

    await c.schedule.phase("redeploy with the schedule a minute ahead; the job runs by itself", async () => {
      byTag["lc/app:build-4"] = await p.image("lc/app", "build-4", [makeLayer("app-build-4", 1000)]);
      // Synth + deploy took firstDeployMs (1-3 min here, with other scenarios on the same 2
      // cores): twice that ahead leaves the redeploy room.
      const at = new Date(Math.ceil((Date.now() + Math.max(120_000, 2 * firstDeployMs)) / 60_000) * 60_000);
      const hhmm = `${String(at.getUTCHours()).padStart(2, "0")}:${String(at.getUTCMinutes()).padStart(2, "0")}`;
      const s2 = await dep.synth("out-2", { ...config, retention: { ...(config.retention as JsonObject), schedule: hhmm } }, users);
      await dep.deploy(s2);
      const deployedAt = new Date();
      assert(deployedAt < at, `redeploy finished at ${deployedAt.toISOString()}, after the scheduled time ${at.toISOString()}`);
      c.schedule.note(`schedule "${hhmm}" (UTC); redeployed at ${deployedAt.toISOString()}, ${Math.round((at.getTime() - deployedAt.getTime()) / 1000)} s ahead`);
      const deadline = at.getTime() + 120_000;
      let report: MaintenanceReport | undefined;
      while (Date.now() < deadline) {
        const latest = await ctx.engine
          .docker(["exec", `${prefix}-maintenance`, "cat", "/var/lib/registry-stack-maintenance/reports/latest.json"], { timeoutMs: 20_000 })
          .then((r) => JSON.parse(r.stdout) as MaintenanceReport, () => undefined);
        if (latest?.trigger === "schedule") {
          report = latest;
          break;
        }
        await sleep(3000);
      }
      assert(report, `no scheduled report by ${new Date(deadline).toISOString()}`);
      const ran = report as MaintenanceReport & { startedAt: string };
      // Newest two by push time are now build-4 and again (check 43); v1.0.0 matches keepTags.
      assertEqual(ran.deleted.tags.map(tagLine), ["lc/app:build-3", "lc/app:dev"], "tags the scheduled run deleted");
      const startedAt = new Date(ran.startedAt);
      assert(Math.abs(startedAt.getTime() - at.getTime()) < 15_000, `the scheduled run started at ${ran.startedAt}, not at ${at.toISOString()}`);
      assertEqual(await p.tags("lc/app"), ["again", "build-4", "v1.0.0"], "lc/app tags after the scheduled run");
      const logs = await ctx.engine.docker(["logs", `${prefix}-maintenance`], { timeoutMs: 20_000 });
      assertMatch(logs.stderr + logs.stdout, /next run at \d\d:\d\d UTC/, "maintenance log announces the next run");
      c.schedule.note(`report trigger "schedule", started ${ran.startedAt}; deleted lc/app:build-3 and lc/app:dev; lc/app now [again, build-4, v1.0.0]; write window ${ran.durationsMs.writeWindow} ms`);
    });
    c.schedule.finish();
  } catch (err) {
    for (const ch of mine) ch.abort(`scenario ${tag} failed: ${(err as Error).message}`);
  } finally {
    await ctx.timings.time(`${tag}: destroy`, () => dep.destroy()).catch((err: Error) => say(tag, `destroy failed: ${err.message}`));
  }
}

function summarize(probes: Array<{ at: number; status: number }>): string {
  const runs: string[] = [];
  let i = 0;
  while (i < probes.length) {
    let j = i;
    while (j + 1 < probes.length && probes[j + 1].status === probes[i].status) j++;
    runs.push(`${probes[i].status}×${j - i + 1} (${(probes[i].at / 1000).toFixed(1)}–${(probes[j].at / 1000).toFixed(1)} s)`);
    i = j + 1;
  }
  return runs.join(", ");
}
