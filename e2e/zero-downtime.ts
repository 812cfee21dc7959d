import * as fs from "fs";
import * as path from "path";
import { DockerClient, freePort } from "./clients";
import { Deployment, synthAndDeploy, TestUser } from "./deployment";
import { assert, assertEqual, Check, say } from "./harness";
import { REGISTRY_V3_IMAGE } from "./images";
import { RegistryApi } from "./registry-api";
import { LoopTarget, RequestLoop, WindowStats } from "./request-loop";
import { baseConfig, SuiteContext } from "./scenarios";
import { instanceOf } from "./stack-containers";
import { describePlan, JsonObject } from "./terraform-plan";

/**
 * Issue 19: every kind of configuration change deployed with `cdktf deploy` while a loop of
 * clients (pulls, pushes, listings, logins, a wrong password; each on a fresh connection) runs
 * against the stack: no request may fail. Each change is its own check, with requests, failures
 * and p50/p99 latency during the deploy against the ten seconds before it. Then crashes, which
 * are measured but not asserted (a single registry instance cannot hide its own restart).
 */

export interface ZeroDowntimeChecks {
  readonly changes: Record<ChangeKind, Check>;
  readonly crashes: Check;
  readonly teardown: Check;
}

export const CHANGE_KINDS = [
  "user added",
  "password changed",
  "role changed",
  "user removed",
  "registry setting changed",
  "nginx setting changed",
  "TLS certificate replaced",
  "image patch bump",
  "retention schedule changed",
] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

const TAG = "zero-downtime";
const PREFIX = "e2e-zd";
const BEFORE_MS = 10_000;
const PATCHED_IMAGE = `${REGISTRY_V3_IMAGE}-p1`;

function hhmm(hoursAhead: number): string {
  return `${String((new Date().getUTCHours() + hoursAhead) % 24).padStart(2, "0")}:00`;
}

function describeStats(label: string, s: WindowStats): string {
  return `${label}: ${s.requests} requests, ${s.failures} failed, p50 ${s.p50} ms, p99 ${s.p99} ms`;
}

export async function zeroDowntimeScenario(ctx: SuiteContext, c: ZeroDowntimeChecks): Promise<void> {
  const all = [...Object.values(c.changes), c.crashes, c.teardown];
  const dir = ctx.ws.dir(TAG);
  const scratch = ctx.ws.dir(`${TAG}-scratch`);
  const port = await freePort();
  const users: TestUser[] = [
    { name: "alice", password: "alice-zero-downtime-1" },
    { name: "bob", password: "bob-zero-downtime-22" },
    { name: "carol", password: "carol-zero-downtime-3" },
  ];
  const dave: TestUser = { name: "dave", password: "dave-zero-downtime-44" };
  const base = baseConfig(dir, PREFIX, port, users);
  let config: JsonObject = {
    ...base,
    hostnames: ["localhost", "store.example.test"],
    ipAddresses: ["127.0.0.1"],
    users: [{ name: "alice", role: "push" }, { name: "bob", role: "pull" }, { name: "carol" }],
    // The loop's wrong password (about 35 a minute) must never meet the limit. Every users or
    // roles change makes each login go to the (new) verifier again.
    failedLoginsPerMinute: 120,
    retention: { schedule: hhmm(12), rules: [{ repositories: "^zd/never$", keepNewest: 1 }] },
  };
  const dep = new Deployment(ctx, TAG, dir);
  let loop: RequestLoop | undefined;
  try {
    const s1 = await synthAndDeploy(ctx.timings, dep, all, () => dep.synth("out-0", config, users));
    if (!s1) return;
    const ca = fs.readFileSync(path.join(base.clientConfigDirectory, "certs.d", `localhost:${port}`, "ca.crt"), "utf8");
    const [alice, bob] = users as Required<TestUser>[];
    const api = new RegistryApi(`https://127.0.0.1:${port}`, ca, alice);
    const image = await api.pushImage("zd/app", { os: "linux", architecture: "amd64", created: new Date().toISOString(), layerBytes: 64 * 1024 });
    await api.tagManifest("zd/app", image.digest, "1", "application/vnd.oci.image.manifest.v1+json");
    api.close();
    const target: LoopTarget = { baseUrl: `https://127.0.0.1:${port}`, host: `localhost:${port}`, ca, pusher: alice, reader: bob, repository: "zd/app", tag: "1", blob: image.layers[0] };
    const docker = new DockerClient(ctx.engine, path.join(scratch, "docker-config"));
    fs.mkdirSync(path.join(scratch, "patch"), { recursive: true });
    fs.writeFileSync(path.join(scratch, "patch", "Dockerfile"), `FROM ${REGISTRY_V3_IMAGE}\nLABEL registry-stack.e2e.patch="1"\n`);
    await docker.build(path.join(scratch, "patch"), PATCHED_IMAGE);

    // Four requests a second: enough to cross every step of a deploy, light enough for 2 cores
    // that also run the other scenarios.
    loop = new RequestLoop(target, { intervalMs: 250, maxRequests: 12_000, maxMs: 40 * 60_000 });
    loop.start();
    let current = [...users];
    const changes: Record<ChangeKind, () => [JsonObject, TestUser[]]> = {
      "user added": () => [{ ...config, users: [...(config.users as JsonObject[]), { name: "dave" }] }, [...current, dave]],
      "password changed": () => [config, current.map((u) => (u.name === "carol" ? { ...u, password: "carol-changed-password-9" } : u))],
      "role changed": () => [{ ...config, users: (config.users as JsonObject[]).map((u) => (u.name === "dave" ? { name: "dave", role: "pull" } : u)) }, current],
      "user removed": () => [{ ...config, users: (config.users as JsonObject[]).filter((u) => u.name !== "dave") }, current.filter((u) => u.name !== "dave")],
      "registry setting changed": () => [{ ...config, logLevel: "debug" }, current],
      "nginx setting changed": () => [{ ...config, failedLoginsPerMinute: 150 }, current],
      // A new address in the certificate, appended: a name inserted before the addresses would
      // shift the index-keyed client files (see the README's Troubleshooting).
      "TLS certificate replaced": () => [{ ...config, ipAddresses: ["127.0.0.1", "127.0.0.2"] }, current],
      "image patch bump": () => [{ ...config, registryImage: PATCHED_IMAGE }, current],
      "retention schedule changed": () => [{ ...config, retention: { ...(config.retention as JsonObject), schedule: hhmm(6) } }, current],
    };
    let n = 0;
    for (const kind of CHANGE_KINDS) {
      const check = c.changes[kind];
      const [nextConfig, nextUsers] = changes[kind]();
      const ok = await check.phase(`deploy (${kind}) with the request loop running`, async () => {
        const s = await dep.synth(`out-${++n}`, nextConfig, nextUsers);
        const proxyBefore = await dep.containerId(`${PREFIX}-proxy`);
        const started = Date.now();
        await ctx.timings.time(`${TAG}: cdktf deploy (${kind})`, () => dep.deploy(s));
        const ended = Date.now();
        // Requests started just before the end may still be running.
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const before = loop!.stats(started - BEFORE_MS, started);
        const during = loop!.stats(started, ended);
        check.note(`${describeStats("before (10 s)", before)}; ${describeStats(`during the deploy (${((ended - started) / 1000).toFixed(0)} s)`, during)}; p99 during/before ${(during.p99 / Math.max(1, before.p99)).toFixed(2)}`);
        const proxyAfter = await dep.containerId(`${PREFIX}-proxy`);
        check.note(`proxy container ${proxyAfter === proxyBefore ? "kept (reloaded)" : "replaced"}; registry instance now ${await instanceOf(ctx.engine, `${PREFIX}-registry`)}`);
        assert(during.requests > 10, `only ${during.requests} requests during the deploy`);
        assertEqual(during.failed, [], "failed requests during the deploy");
        assertEqual(before.failures, 0, "failed requests before the deploy");
      });
      if (ok) {
        config = nextConfig;
        current = nextUsers;
      }
      check.finish();
    }

    // Issue 18 item 7: a new synth folder plans nothing; the data-keeping teardown and a new
    // deploy give back what was pushed. Before the crashes: a killed container that its restart
    // policy has not brought back yet is a change in the plan (kreuzwerker/docker 4.x). The loop
    // goes on, unmeasured, through the teardown.
    await c.teardown.phase("rm -rf the synth folder, synth again: nothing to do; teardown keeping the data, deploy, same digest", async () => {
      const last = dep.synthesized;
      fs.rmSync(last.outDir, { recursive: true, force: true });
      const again = await dep.synth(`out-${++n}`, config, current);
      const plan = await dep.plan(again);
      assertEqual(plan.changes.map((ch) => ch.address), [], "resources a fresh synth folder would change");
      c.teardown.note(`${last.outDir} removed; a new synth folder plans: ${describePlan(plan).split("\n")[0]}`);
      await dep.deploy(again);
      await dep.teardown({ all: false });
      const left = (await ctx.engine.docker(["ps", "-a", "--format", "{{.Names}}", "--filter", `name=${PREFIX}-`])).stdout.trim();
      assertEqual(left, "", "containers left by the data-keeping teardown");
      const volumes = (await ctx.engine.docker(["volume", "ls", "--format", "{{.Name}}", "--filter", `name=${PREFIX}-`])).stdout.trim().split("\n").filter(Boolean);
      assert(volumes.includes(`${PREFIX}-data`), `the data volume ${PREFIX}-data is gone after the data-keeping teardown (volumes: ${volumes.join(", ")})`);
      c.teardown.note(`npm run teardown: no container left, the data volume ${PREFIX}-data kept`);
      const redeployed = await dep.synth(`out-${++n}`, config, current);
      await dep.deploy(redeployed);
      const api = new RegistryApi(`https://127.0.0.1:${port}`, ca, alice);
      try {
        const res = await api.request("GET", "/v2/zd/app/manifests/1", undefined, { Accept: "application/vnd.oci.image.manifest.v1+json" });
        assertEqual(res.status, 200, "GET zd/app:1 after the teardown and the new deploy");
        assertEqual(res.headers["docker-content-digest"], image.digest, "digest of zd/app:1 after the teardown and the new deploy");
      } finally {
        api.close();
      }
      c.teardown.note(`deployed again: zd/app:1 → ${image.digest.slice(0, 19)}… (the digest it was pushed with)`);
    });
    c.teardown.finish();

    // Crashes: measured, not asserted (issue 19 item 2 is not met by this design).
    await c.crashes.phase("docker kill of the registry and the verifier, SIGKILL of one nginx worker", async () => {
      for (const service of [`${PREFIX}-registry`, `${PREFIX}-auth`]) {
        const name = await instanceOf(ctx.engine, service);
        const at = Date.now();
        await ctx.engine.docker(["kill", name]);
        await new Promise((resolve) => setTimeout(resolve, 8_000));
        const after = loop!.stats(at, at + 8_000);
        c.crashes.note(`docker kill ${name} (restart policy brings it back): ${describeStats("next 8 s", after)}${after.failed.length > 0 ? ` — ${after.failed.slice(0, 2).join("; ")}` : ""}`);
        // Back to steady state before the next crash, so that each is measured on its own.
        await new Promise((resolve) => setTimeout(resolve, 20_000));
      }
      const { stdout } = await ctx.engine.docker(["top", `${PREFIX}-proxy`, "-eo", "pid,args"]);
      const worker = stdout.split("\n").find((l) => l.includes("nginx: worker process"));
      assert(worker !== undefined, `no nginx worker in docker top: ${stdout}`);
      const pid = Number(worker.trim().split(/\s+/)[0]);
      const at = Date.now();
      process.kill(pid, "SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      c.crashes.note(`SIGKILL of nginx worker ${pid} (the master starts another): ${describeStats("next 5 s", loop!.stats(at, at + 5_000))}`);
    });
    c.crashes.finish();
  } catch (err) {
    for (const ch of all) ch.abort(`scenario ${TAG} failed: ${(err as Error).message}`);
  } finally {
    await loop?.stop();
    if (loop) say(TAG, `request loop: ${loop.samples.length} requests in all, ${loop.samples.filter((s) => !s.ok).length} failed`);
    await ctx.timings.time(`${TAG}: destroy`, () => dep.destroy()).catch((err: Error) => say(TAG, `destroy failed: ${err.message}`));
  }
}
