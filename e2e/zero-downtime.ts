import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { describeTransfer, pullBlob, pushBlob, TransferResult, TransferTarget } from "./big-transfers";
import { DockerClient, freePort } from "./clients";
import { Deployment, synthAndDeploy, TestUser } from "./deployment";
import { assert, assertEqual, Check, say } from "./harness";
import { REGISTRY_V3_IMAGE } from "./images";
import { RegistryApi } from "./registry-api";
import { LoopTarget, RequestLoop, WindowStats } from "./request-loop";
import { baseConfig, SuiteContext } from "./scenarios";
import { run, sleep } from "./proc";
import { instanceOf, runningInstances } from "./stack-containers";
import { describePlan, JsonObject, PlanSummary } from "./terraform-plan";

/**
 * Issue 19: every kind of configuration change deployed with `cdktf deploy` while a loop of
 * clients (pulls, pushes, listings, logins, a wrong password; each on a fresh connection) runs
 * against the stack: no request may fail. Each change is its own check, with requests, failures
 * and p50/p99 latency during the deploy against the ten seconds before it. Two changes also carry
 * a 256 MiB pull and a 256 MiB push across the moment the proxy switches (issue 18 item 6), and
 * five have their saved plan checked against what they should touch (issue 18 item 5). Then
 * crashes of one registry instance, one verifier instance and one nginx worker: no request may
 * fail either (issue 19 item 2; two instances of each behind the proxy).
 */

export interface ZeroDowntimeChecks {
  readonly changes: Record<ChangeKind, Check>;
  readonly crashes: Check;
  readonly teardown: Check;
  /** The saved plan of five change kinds touches exactly the resources they should. */
  readonly plans: Check;
  /** 256 MiB pull and push in flight across two deploys. */
  readonly transfers: Check;
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
/**
 * E2E_ZD_KINDS=<kind>[,…] or "none" deploys only those changes (to measure the crashes alone);
 * the checks of the others, and the plan and transfer checks missing one of theirs, are "not run".
 */
const SELECTED_KINDS: readonly ChangeKind[] = (() => {
  const only = process.env.E2E_ZD_KINDS;
  if (only === undefined) return CHANGE_KINDS;
  const kinds = only === "none" ? [] : only.split(",").map((k) => k.trim());
  const unknown = kinds.filter((k) => !(CHANGE_KINDS as readonly string[]).includes(k));
  if (unknown.length > 0) throw new Error(`E2E_ZD_KINDS names unknown change kinds: ${unknown.join(", ")} (known: ${CHANGE_KINDS.join(", ")})`);
  return kinds as ChangeKind[];
})();
const PREFIX = "e2e-zd";
const BEFORE_MS = 10_000;
const PATCHED_IMAGE = `${REGISTRY_V3_IMAGE}-p1`;
const BIG_MIB = 256;
/** Slow enough that a transfer started with the new instances is still running when the proxy switches to them. */
const BIG_BYTES_PER_SECOND = 3 * 1024 * 1024;
/** Changes that carry the large transfers: a users change (verifier replaced, proxy reloaded) and the registry replaced. */
const TRANSFER_KINDS: ReadonlyArray<[ChangeKind, string]> = [
  ["user added", `${PREFIX}-auth`],
  ["image patch bump", `${PREFIX}-registry`],
];

/**
 * What a saved plan may touch, by the role a resource plays. Every resource of a role is
 * addressed by its construct path (cdktf's `<path>_<hash>` ids).
 */
const PLAN_ROLES: ReadonlyArray<[string, RegExp]> = [
  ["data volume", /^docker_volume\.registry_data_/],
  ["proxy container", /^docker_container\.proxy_container_/],
  ["proxy configuration (uploads, reload check)", /^docker_(container|volume)\.proxy_(config|reload-check)_/],
  ["registry instances and their config/owner", /^docker_(container|volume)\.registry_(container|instance-\d+|config|volume-owner)_/],
  ["verifier instances and their config/owner", /^docker_(container|volume)\.auth-verifier_(container|instance-\d+|config|volume-owner)_/],
  ["maintenance job", /^docker_(container|volume)\.maintenance_/],
  ["registry image", /^docker_image\.registry-image$/],
];

function roleOf(address: string): string {
  return PLAN_ROLES.find(([, pattern]) => pattern.test(address))?.[0] ?? `other (${address})`;
}

/**
 * The roles each change must touch, reasoned from what the change is, not copied from a plan:
 * - users live in the verifier's htpasswd (the data registry has none behind the login check):
 *   a user added, removed or a password changed is a new verifier generation; the proxy's
 *   configuration names the new verifier sockets and the new login-cache keys (and the roles
 *   module), so it is uploaded again and reloaded. The registry, its data and the proxy
 *   container stay.
 * - the log level is in both registries' config.yml: new registry and verifier generations, the
 *   proxy configuration for their sockets, and the maintenance job, which joins the first
 *   registry instance's network namespace.
 * - an image patch bump: the image itself, then everything the log level touches (the verifier
 *   and the maintenance job run the same image).
 * Never: the data volume; the proxy container (its own image, ports and limits do not change).
 */
const EXPECTED_ROLES: Partial<Record<ChangeKind, string[]>> = (() => {
  const [, proxyContainer, proxyConfig, registry, verifier, maintenance, image] = PLAN_ROLES.map(([role]) => role);
  void proxyContainer;
  const users = [proxyConfig, verifier];
  const registryConfig = [proxyConfig, registry, verifier, maintenance];
  return {
    "user added": users,
    "user removed": users,
    "password changed": users,
    "registry setting changed": registryConfig,
    "image patch bump": [...registryConfig, image],
  };
})();

/** Instance containers of one service in a plan: all must be replaced when the service is. */
const INSTANCE_ADDRESS = (service: "registry" | "auth-verifier") => new RegExp(`^docker_container\\.${service}_(container|instance-\\d+)_`);

function hhmm(hoursAhead: number): string {
  return `${String((new Date().getUTCHours() + hoursAhead) % 24).padStart(2, "0")}:00`;
}

function describeStats(label: string, s: WindowStats): string {
  return `${label}: ${s.requests} requests, ${s.failures} failed, p50 ${s.p50} ms, p99 ${s.p99} ms`;
}

export async function zeroDowntimeScenario(ctx: SuiteContext, c: ZeroDowntimeChecks): Promise<void> {
  const all = [...Object.values(c.changes), c.crashes, c.teardown, c.plans, c.transfers];
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
    const transfer: TransferTarget = { baseUrl: target.baseUrl, host: target.host, ca, user: alice, repository: "zd/big" };
    const transfersRun = TRANSFER_KINDS.every(([k]) => SELECTED_KINDS.includes(k));
    const big = transfersRun ? await pushBlob(transfer, BIG_MIB) : undefined;
    if (big && !big.ok) throw new Error(`pushing the ${BIG_MIB} MiB blob for the in-flight pulls: ${big.detail}`);
    const docker = new DockerClient(ctx.engine, path.join(scratch, "docker-config"));
    fs.mkdirSync(path.join(scratch, "patch"), { recursive: true });
    fs.writeFileSync(path.join(scratch, "patch", "Dockerfile"), `FROM ${REGISTRY_V3_IMAGE}\nLABEL registry-stack.e2e.patch="1"\n`);
    await docker.build(path.join(scratch, "patch"), PATCHED_IMAGE);

    // Four requests a second: enough to cross every step of a deploy, light enough for 2 cores
    // that also run the other scenarios.
    loop = new RequestLoop(target, { intervalMs: 250, maxRequests: 16_000, maxMs: 65 * 60_000 });
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
    const planProblems: string[] = [];
    const transferProblems: string[] = [];
    for (const kind of CHANGE_KINDS) {
      const check = c.changes[kind];
      if (!SELECTED_KINDS.includes(kind)) {
        check.abort(`not run: E2E_ZD_KINDS=${process.env.E2E_ZD_KINDS}`);
        continue;
      }
      const [nextConfig, nextUsers] = changes[kind]();
      const ok = await check.phase(`deploy (${kind}) with the request loop running`, async () => {
        const s = await dep.synth(`out-${++n}`, nextConfig, nextUsers);
        const expected = EXPECTED_ROLES[kind];
        if (expected) planProblems.push(...checkPlan(c.plans, kind, await dep.plan(s), expected));
        const proxyBefore = await dep.containerId(`${PREFIX}-proxy`);
        const carrier = big ? TRANSFER_KINDS.find(([k]) => k === kind)?.[1] : undefined;
        const started = Date.now();
        const deploying = { done: false };
        const transfers = carrier
          ? startWithNewInstances(ctx, carrier, transfer, big!, deploying).catch((err: Error): TransferResult[] => [{ kind: "pull", ok: false, bytes: 0, digest: "", startedAt: started, endedAt: Date.now(), detail: err.message }])
          : undefined;
        let ended = 0;
        try {
          await ctx.timings.time(`${TAG}: cdktf deploy (${kind})`, () => dep.deploy(s));
        } finally {
          ended = Date.now();
          deploying.done = true;
          await transfers;
        }
        if (transfers) transferProblems.push(...(await judgeTransfers(ctx, c.transfers, kind, await transfers, started, ended)));
        // Requests started just before the end may still be running.
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const before = loop!.stats(started - BEFORE_MS, started);
        const during = loop!.stats(started, ended);
        check.note(`${describeStats("before (10 s)", before)}; ${describeStats(`during the deploy (${((ended - started) / 1000).toFixed(0)} s)`, during)}; p99 during/before ${(during.p99 / Math.max(1, before.p99)).toFixed(2)}`);
        const proxyAfter = await dep.containerId(`${PREFIX}-proxy`);
        const proxyFate = proxyAfter === proxyBefore ? `kept (reloaded: ${await lastReload(ctx, `${PREFIX}-proxy`)})` : "replaced";
        check.note(`proxy container ${proxyFate}; registry instance now ${await instanceOf(ctx.engine, `${PREFIX}-registry`)}`);
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

    if (!Object.keys(EXPECTED_ROLES).every((k) => SELECTED_KINDS.includes(k as ChangeKind))) c.plans.abort(`not run: E2E_ZD_KINDS=${process.env.E2E_ZD_KINDS}`);
    if (!transfersRun) c.transfers.abort(`not run: E2E_ZD_KINDS=${process.env.E2E_ZD_KINDS}`);
    await c.plans.phase("the saved plans of five change kinds against the roles each should touch", async () => {
      assertEqual(planProblems, [], "plans that touch other roles than expected");
    });
    c.plans.finish();
    await c.transfers.phase(`${BIG_MIB} MiB pull and push in flight across the proxy's switch`, async () => {
      assertEqual(transferProblems, [], "in-flight transfers");
    });
    c.transfers.finish();

    // Crashes: each instance has a sibling, so a request that finds its instance gone is sent
    // to the other (GET, HEAD, a PUT nginx holds whole); each crash is measured on its own,
    // over every request in flight from the kill to 8 s after it.
    await c.crashes.phase("docker kill of one registry instance and one verifier instance, SIGKILL of one nginx worker", async () => {
      const failures: string[] = [];
      const measure = (what: string, at: number, ms: number) => {
        const after = loop!.inFlight(at, at + ms);
        c.crashes.note(`${what}: ${describeStats(`in flight from the kill to ${ms / 1000} s after`, after)}${after.failed.length > 0 ? ` — ${after.failed.slice(0, 3).join("; ")}` : ""}`);
        if (after.failures > 0) failures.push(`${what}: ${after.failures} of ${after.requests} failed (${after.failed.join("; ")})`);
        assert(after.requests >= 10, `${what}: only ${after.requests} requests in ${ms / 1000} s`);
      };
      c.crashes.note(await uploadAcrossInstances(ctx));
      for (const service of [`${PREFIX}-registry`, `${PREFIX}-auth`]) {
        const before = await runningInstances(ctx.engine, service);
        assertEqual(before.length, 2, `running instances of ${service} before the crash`);
        const name = before[0].name;
        const at = Date.now();
        await ctx.engine.docker(["kill", name]);
        await sleep(8_000);
        measure(`docker kill ${name} (instance 1 of ${before.length})`, at, 8_000);
        // dockerd counts `docker kill` as a stop by hand: the restart policy leaves the instance
        // down (a process that dies by itself is restarted). Started again for the next crash.
        await ctx.engine.docker(["start", name]);
        await untilRunning(ctx, service, before.length);
        // Back to steady state (nginx tries a failed server again after fail_timeout, 10 s).
        await sleep(15_000);
      }
      const at = Date.now();
      const killed = await killIdleWorker(ctx, `${PREFIX}-proxy`);
      await sleep(8_000);
      measure(`SIGKILL of nginx worker ${killed.pid} (of ${killed.workers}; no client connection at the kill, found on try ${killed.tries}; the master starts another)`, at, 8_000);
      assertEqual(failures, [], "failed requests around the crashes");
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

/** Notes the plan's changes by role and returns what differs from the expected roles. */
function checkPlan(check: Check, kind: ChangeKind, plan: PlanSummary, expected: string[]): string[] {
  const byRole = new Map<string, string[]>();
  for (const ch of plan.changes) {
    const role = roleOf(ch.address);
    byRole.set(role, [...(byRole.get(role) ?? []), `${ch.actions.join("/")} ${ch.address.replace(/^docker_/, "")}`]);
  }
  const touched = [...byRole.keys()].sort();
  check.note(
    `${kind}: ${describePlan(plan).split("\n")[0]}; roles touched: ${touched.join(", ") || "none"}` +
      ` — ${[...byRole.entries()].map(([role, list]) => `[${role}] ${list.sort().join(", ")}`).join(" ")}`,
  );
  const problems: string[] = [];
  const want = [...expected].sort();
  if (JSON.stringify(touched) !== JSON.stringify(want)) problems.push(`${kind}: touches ${JSON.stringify(touched)}, expected ${JSON.stringify(want)}`);
  // A service whose generation changes is replaced as a whole: every instance, not some.
  for (const [service, role] of [["registry", PLAN_ROLES[3][0]], ["auth-verifier", PLAN_ROLES[4][0]]] as const) {
    if (!want.includes(role)) continue;
    const replaced = plan.changes.filter((ch) => INSTANCE_ADDRESS(service).test(ch.address) && ch.actions.includes("create") && ch.actions.includes("delete"));
    if (replaced.length !== 2) problems.push(`${kind}: ${replaced.length} ${service} instances replaced, expected 2 (${replaced.map((r) => r.address).join(", ")})`);
    const order = replaced.find((r) => r.actions[0] !== "create");
    if (order) problems.push(`${kind}: ${order.address} is destroyed before its successor is created (${order.actions.join("/")})`);
  }
  return problems;
}

/** How long nginx took to answer the proxy's latest configuration, from its supervisor's log line. */
async function lastReload(ctx: SuiteContext, proxy: string): Promise<string> {
  const { stderr } = await ctx.engine.docker(["logs", proxy]);
  const answers = [...stderr.matchAll(/registry-stack: serving configuration (\S+) \(nginx answered it after ([\d.]+) s\)/g)];
  const last = answers[answers.length - 1];
  return last ? `configuration ${last[1]} answered ${last[2]} s after the reload signal` : "no reload line in its log";
}

/**
 * Starts a throttled pull of `big` and a throttled push of a new blob as soon as `service` has a
 * new instance (the apply has begun; the proxy still points at the old ones), so both are in
 * flight when the proxy reloads onto the new instances and Terraform stops the old ones.
 */
async function startWithNewInstances(ctx: SuiteContext, service: string, t: TransferTarget, big: TransferResult, deploying: { done: boolean }): Promise<TransferResult[]> {
  const old = new Set((await runningInstances(ctx.engine, service)).map((i) => i.name));
  for (;;) {
    const now = await runningInstances(ctx.engine, service);
    if (now.some((i) => !old.has(i.name))) break;
    if (deploying.done) throw new Error(`the deploy ended before a new instance of ${service} ran: no transfer started`);
    await sleep(250);
  }
  return Promise.all([pullBlob(t, { digest: big.digest, size: big.bytes }, BIG_BYTES_PER_SECOND), pushBlob(t, BIG_MIB, BIG_BYTES_PER_SECOND)]);
}

/** The transfers completed and verified, and were in flight when the proxy served the new generation. */
async function judgeTransfers(ctx: SuiteContext, check: Check, kind: ChangeKind, results: TransferResult[], deployStarted: number, deployEnded: number): Promise<string[]> {
  const { stdout } = await ctx.engine.docker(["inspect", "-f", "{{.State.FinishedAt}}", `${PREFIX}-proxy-reload-check`]);
  const reloadedAt = Date.parse(stdout.trim());
  const at = (ms: number) => `+${((ms - deployStarted) / 1000).toFixed(1)} s`;
  const problems: string[] = [];
  for (const r of results) {
    check.note(`${kind}: ${describeTransfer(r)}; from ${at(r.startedAt)} to ${at(r.endedAt)} of the deploy (${((deployEnded - deployStarted) / 1000).toFixed(0)} s; proxy on the new generation at ${at(reloadedAt)})`);
    if (!r.ok) problems.push(`${kind}: ${describeTransfer(r)}`);
    else if (!(r.startedAt < reloadedAt && reloadedAt < r.endedAt)) problems.push(`${kind}: the ${r.kind} (${at(r.startedAt)}–${at(r.endedAt)}) was not in flight when the proxy switched (${at(reloadedAt)})`);
  }
  return problems;
}

/** Waits (bounded) until `service` runs `count` instances again. */
async function untilRunning(ctx: SuiteContext, service: string, count: number): Promise<void> {
  const t0 = Date.now();
  while ((await runningInstances(ctx.engine, service)).length < count) {
    if (Date.now() - t0 > 60_000) throw new Error(`${service}: not back to ${count} running instances within 60 s`);
    await sleep(500);
  }
}

/**
 * SIGKILL of an nginx worker that holds no client connection (public port, or the login
 * limiter's) at that instant: a process that dies takes its own connections with it, which no
 * server-side design can save; what must hold is that nothing else fails. `ss` in the proxy's
 * network namespace names each connection's process; the check and the kill are one shell run.
 */
async function killIdleWorker(ctx: SuiteContext, proxy: string): Promise<{ pid: number; workers: number; tries: number }> {
  const { stdout } = await ctx.engine.docker(["top", proxy, "-eo", "pid,ppid,args"]);
  const rows = stdout.split("\n").slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 3);
  const master = rows.find((f) => f.slice(2).join(" ").startsWith("nginx: master process"));
  assert(master !== undefined, `no nginx master in docker top: ${stdout}`);
  const workers = rows.filter((f) => f[1] === master[0] && f.slice(2).join(" ") === "nginx: worker process").map((f) => f[0]);
  assert(workers.length >= 2, `expected at least two nginx workers: ${stdout}`);
  const script = [
    'm="$1"; shift',
    "for try in $(seq 200); do",
    "  busy=$(nsenter -t \"$m\" -n ss -Htnp state established '( sport = :8443 or sport = :8082 )' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)",
    '  for w in "$@"; do',
    '    if ! printf \'%s\\n\' $busy | grep -qx "$w"; then kill -9 "$w" && echo "$w $try" && exit 0; fi',
    "  done",
    "  sleep 0.01",
    "done",
    "exit 3",
  ].join("\n");
  const res = await run("/bin/sh", ["-c", script, "sh", master[0], ...workers], { timeoutMs: 30_000 });
  const [pid, tries] = res.stdout.trim().split(" ").map(Number);
  assert(Number.isInteger(pid) && workers.includes(String(pid)), `no idle nginx worker found: ${res.stdout} ${res.stderr}`);
  return { pid, workers: workers.length, tries };
}

/**
 * What lets nginx send an upload's requests to either instance: one upload started on instance
 * 1's socket, its data sent (PATCH) on instance 2's and finished (PUT) on instance 1's again.
 * Straight to the sockets from the host (the registries behind the login check have no auth).
 */
async function uploadAcrossInstances(ctx: SuiteContext): Promise<string> {
  const instances = await runningInstances(ctx.engine, `${PREFIX}-registry`);
  assertEqual(instances.length, 2, "running registry instances");
  const socketDir = (await ctx.engine.docker(["volume", "inspect", "-f", "{{.Mountpoint}}", `${PREFIX}-sockets`])).stdout.trim();
  const on = (instance: number, method: string, target: string, body?: Buffer) =>
    new Promise<{ status: number; location?: string; text: string }>((resolve, reject) => {
      const req = http.request(
        { socketPath: path.join(socketDir, instances[instance].socket), method, path: target, timeout: 30_000, headers: { Host: "localhost", ...(body ? { "Content-Length": String(body.length), "Content-Type": "application/octet-stream" } : {}) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (ch: Buffer) => chunks.push(ch));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, text: Buffer.concat(chunks).toString("utf8").slice(0, 200) }));
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${target}: no answer in 30 s`)));
      req.on("error", reject);
      req.end(body);
    });
  const data = crypto.randomBytes(3 * 1024 * 1024);
  const digest = `sha256:${crypto.createHash("sha256").update(data).digest("hex")}`;
  const relative = (location: string | undefined) => {
    const url = new URL(String(location), "http://localhost");
    return `${url.pathname}${url.search}`;
  };
  const started = await on(0, "POST", "/v2/zd/sessions/blobs/uploads/");
  assertEqual(started.status, 202, `POST on ${instances[0].name}: ${started.text}`);
  const patched = await on(1, "PATCH", relative(started.location), data);
  assertEqual(patched.status, 202, `PATCH of the same upload on ${instances[1].name}: ${patched.text}`);
  const finish = new URL(String(patched.location), "http://localhost");
  finish.searchParams.set("digest", digest);
  const put = await on(0, "PUT", `${finish.pathname}${finish.search}`, Buffer.alloc(0));
  assertEqual(put.status, 201, `PUT of the same upload on ${instances[0].name}: ${put.text}`);
  const head = await on(1, "HEAD", `/v2/zd/sessions/blobs/${digest}`);
  assertEqual(head.status, 200, `HEAD of the blob on ${instances[1].name}`);
  return `one upload over both instances' sockets: POST on ${instances[0].name} → 202, PATCH 3 MiB on ${instances[1].name} → 202, PUT ?digest on ${instances[0].name} → 201, HEAD on ${instances[1].name} → 200 (shared storage and http.secret)`;
}
