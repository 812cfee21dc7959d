import { Engine, startEngine } from "./engine";
import { Check, say, Timings, Workspace } from "./harness";
import { prepareImages } from "./images";
import { LifecycleChecks, lifecycleScenario } from "./lifecycle";
import { blobReadsScenario } from "./blob-reads";
import { authCacheScenario, directTlsScenario, plainHttpScenario, SuiteChecks, SuiteContext, tlsProxyScenario } from "./scenarios";
import { MirrorChecks, mirrorsScenario } from "./mirrors";
import { MirrorOutageChecks, mirrorsOutageScenario } from "./mirrors-outage";
import { killRunningCommands } from "./proc";
import { rolesScenario, RolesChecks } from "./roles";
import { ScriptsInImageChecks, scriptsInImageScenario } from "./scripts-in-image";
import { SharedStateChecks, sharedStateScenario } from "./shared-state";
import { ensureTerraformTools } from "./terraform-tools";
import { CHANGE_KINDS, ChangeKind, ZeroDowntimeChecks, zeroDowntimeScenario } from "./zero-downtime";
import { uiScenario } from "./ui";

/**
 * `npm run test:e2e`: deploys the stack with `cdktf deploy` (real Terraform, kreuzwerker/docker
 * and hashicorp/local from a local mirror) on a private Docker Engine and drives it with real
 * clients (docker CLI, skopeo, curl, openssl, ctr, podman). Prints every check with PASS/FAIL and
 * its evidence, the timings, and last a line "N passed, M failed"; exits non-zero on failure.
 */

/** Hard bound on the whole run (E2E_BUDGET_SECONDS overrides it, e.g. to exercise the abort path). */
const SUITE_BUDGET_MS = Number(process.env.E2E_BUDGET_SECONDS ?? 3000) * 1000;
/**
 * E2E_ONLY=tls-proxy,auth-cache runs only those deployments (and their checks); the others are
 * reported as not run, and the run fails, so a partial run can never pass for the whole suite.
 */
const ONLY = process.env.E2E_ONLY ? process.env.E2E_ONLY.split(",").map((s) => s.trim()) : undefined;
/** E2E_PARALLEL: how many deployments run at the same time (default 4). */
const PARALLEL = Math.max(1, Number(process.env.E2E_PARALLEL ?? 4));
/** E2E_ADDRESS_POOL gives this run's engine its own networks when another engine runs beside it. */
const ADDRESS_POOL_OVERRIDE = process.env.E2E_ADDRESS_POOL;

/** Promise.allSettled over tasks started at most `limit` at a time, in order. */
async function allSettledAtMost<T>(limit: number, tasks: Array<() => Promise<T>>): Promise<PromiseSettledResult<T>[]> {
  const results: PromiseSettledResult<T>[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]().then(
        (value) => ({ status: "fulfilled", value }) as const,
        (reason: unknown) => ({ status: "rejected", reason }) as const,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

async function main(): Promise<number> {
  const t0 = Date.now();
  const timings = new Timings();
  const toolchain = new Check("0", "Terraform and the providers served from the suite's mirror (labels and the snapshots behind them), engine, images", "toolchain");
  const checks: SuiteChecks & MirrorChecks = {
    pushPull: new Check("1", "docker login/push/rmi/pull of a multi-layer image through the proxy: same digest", "tls-proxy"),
    largeLayer: new Check("2", "a 256 MiB random layer pushed and pulled through the proxy", "tls-proxy"),
    skopeoTls: new Check("3", "skopeo with strict TLS and the generated certs.d dir; another CA is refused", "tls-proxy"),
    authRegistry: new Check("4a", "authentication, registry-side htpasswd (authCacheSeconds: 0)", "tls-proxy"),
    authCache: new Check("4b", "authentication, nginx auth cache + verifier registry (authCacheSeconds: 60, the default)", "auth-cache"),
    tls: new Check("5", "TLS: 1.0/1.1 refused, 1.2 accepted, chain verifies for every configured name", "tls-proxy"),
    persistence: new Check("6", "data survives a config change that replaces the containers (volume kept)", "tls-proxy"),
    directTls: new Check("7a", "direct-TLS topology (proxy: false): login/push/pull round trip", "direct-tls"),
    plainHttp: new Check("7b", "plain-HTTP lab topology (tls.mode: none): daemon.json applied, login/push/pull", "plain-http"),
    idempotence: new Check("8", "same inputs → byte-identical cdk.tf.json and unchanged upload source_hashes", "tls-proxy"),
    reachability: new Check("9", "registry and verifier reachable only through the proxy (host as root/nobody, containers on each network)", "auth-cache"),
    readOnlyRoot: new Check("13", "read-only root filesystems and config volumes on every container; only /tmp (tmpfs) writable; registry and verifier run as REGISTRY_USER (declared, /proc, docker top), data volume all theirs and not world-writable; a root registry's volume from an earlier deploy migrated (its image pulls, new pushes work)", "auth-cache"),
    restarts: new Check("10", "docker restart of registry and verifier, and a crash recovered by the restart policy: the time until each answers again (502 meanwhile), then at once a pull", "auth-cache"),
    loginLimit: new Check("11", "requests without credentials answered by nginx; failed logins limited per address (429 + Retry-After)", "auth-cache"),
    manyAddresses: new Check("11b", "wrong passwords from 8 addresses, each within its budget: the budget of all addresses verifies at most its rate plus its queue and answers the rest 429 at once; a login verified before keeps working after its cached answer expired while that budget is spent", "auth-cache"),
    redirect: new Check("12", "HTTP→HTTPS redirect only to configured names (Host: evil.example)", "tls-proxy"),
    uiHeaders: new Check("20", "web UI files: / → /ui/, CSP without inline code, X-Frame-Options, Referrer-Policy; no Basic challenge for the UI's requests, unchanged for docker clients", "ui"),
    uiBrowser: new Check("21", "web UI in Chromium: sign in, filter, index with sizes/platforms, copy + run the pull command, delete a tag, sign out, a pull-only scoped user, wrong password, login limit", "ui"),
    uiScale: new Check("22", "web UI with 1,000+ repositories: time to the first page rendered (printed, not asserted)", "ui"),
    pullThrough: new Check("30", "pull-through cache: first pull fetches each blob once from the upstream, later clients do not; concurrent cold pulls by 6 clients fetch each blob exactly once (proxy blob cache); a cached blob still needs the login, HEAD/range/conditional requests answered as by the mirror; cached images pull with the upstream stopped", "mirrors"),
    pushRefused: new Check("31", "pushes to a mirror refused with a registry error (405 UNSUPPORTED); mirror without anonymousPull needs a login; private registry push works", "mirrors"),
    dockerdMirror: new Check("32", "a second dockerd started with the generated daemon.json pulls docker.io/… through registry-mirrors, and pulls through the mirror by a real host name with TLS verified against the generated certs.d (x509 failure without it)", "mirrors"),
    containerd: new Check("33", "containerd ctr pulls docker.io/…, ghcr.io/… and the private registry with --hosts-dir = generated containerd/certs.d", "mirrors"),
    k3sMerge: new Check("35", "k3s registries.yaml: the stack's mirrors and configs merged into an existing file (the admin's entries and comments kept), taken back exactly on destroy", "mirrors"),
    ttl: new Check("36", "mirror TTL: cached blobs deleted from the mirror's volume after the ttl (1m), the next pull fetches them from the upstream again", "mirrors"),
    podmanDropIn: new Check("34", "skopeo and podman pull docker.io/… and ghcr.io/… through the generated registries.conf.d drop-in and certs.d; without the CA they fail", "mirrors"),
    sizeBound: new Check("46", "mirror size bound (maxSizeMb): a mirror filled over its bound shrinks under it, least recently used blobs first, while pulls through it keep working; the evicted image pulls again", "mirrors"),
    blobReads: new Check("25", "blobs served from storage (serveBlobsFromStorage): same status, headers and bytes as the registry; unknown, other-repository, deleted, range, conditional cases to the registry; login first", "blob-reads"),
  };
  const lifecycle: LifecycleChecks = {
    retention: new Check("40", "retention + garbage collection: exactly the expected tags remain, every remaining tag (both platforms of the index) pulls bit-identically, reclaimed bytes = blobs only deleted manifests referenced", "lifecycle"),
    dryRun: new Check("41", "npm run gc -- --dry-run deletes nothing (every file of the volume hashed) and reports exactly what the real run then deletes", "lifecycle"),
    writeHold: new Check("42", "during npm run gc: pull loop without failures; writes get 503 UNAVAILABLE + Retry-After; a docker push in the window retries and succeeds", "lifecycle"),
    deletedLayerPush: new Check("43", "push of a layer the collector deleted: the registry reports it missing, docker push uploads it, the image pulls back", "lifecycle"),
    schedule: new Check("44", "the scheduled job runs by itself (schedule a minute ahead)", "lifecycle"),
    metrics: new Check("45", "GET /metrics through the proxy with credentials only: the registry's Prometheus metrics, storage usage (= du of the volume), the last run (= its report)", "lifecycle"),
  };
  const roles: RolesChecks = {
    matrix: new Check("14", "roles matrix: every role × {pull, push, delete, mount-from} × {own, other repository} × {docker or skopeo, curl}", "roles"),
    anonymousPull: new Check("15", "anonymous pull off, then on (redeploy), with the docker CLI logged out; login + push on the same CLI", "roles"),
    roleChange: new Check("16", "a role change takes effect at the deploy that changes it (login cache flushed, never widened)", "roles"),
    endpoints: new Check("17", "/registry-stack/me contract, catalog filtered to a scoped user's repositories, one failed-login limit", "roles"),
  };
  const outage: MirrorOutageChecks = {
    deployDown: new Check("37", "mirror with its upstream down: cdktf deploy (the mirror replaced) succeeds and plans nothing after, the mirror healthy and serving offline (status endpoint), also after docker restart; the switch to offline timed", "mirrors-outage"),
    cachedDown: new Check("38", "upstream down: docker and ctr (generated hosts.toml) pull the cached image by tag and by digest; an uncached image fails within 10 s with a registry error saying so", "mirrors-outage"),
    recovery: new Check("39", "upstream back: the mirror returns to proxy mode by itself (timed; same container, no deploy or restart) and pulls a new image and the formerly uncached one", "mirrors-outage"),
  };
  const scripts: ScriptsInImageChecks = {
    ownershipBusybox: new Check("50", "volume-ownership script in the registry image, busybox sh and applets (as in the official image), root with CAP_CHOWN + CAP_DAC_READ_SEARCH only: a root-owned store migrated (links not followed, top folder last), an owned one left alone, a failed chown retried in full, always-folders in full, an empty store kept filled", "scripts-in-image"),
    ownershipShell: new Check("51", "volume-ownership script in the registry image, /bin/sh (dash) and Debian's coreutils: the same cases as 50", "scripts-in-image"),
    maintenanceBusybox: new Check("52", "maintenance job in the registry image as REGISTRY_USER without capabilities, busybox sh and applets: dry run plans exactly and changes nothing, real run deletes exactly the plan with writes held around the collector, metrics file, a held lock refused", "scripts-in-image"),
    maintenanceShell: new Check("53", "maintenance job in the registry image, /bin/sh (dash) and Debian's tools: the same cases as 52", "scripts-in-image"),
  };
  const zeroDowntime: ZeroDowntimeChecks = {
    changes: Object.fromEntries(
      CHANGE_KINDS.map((kind, i) => [kind, new Check(String(80 + i), `deploy with a ${kind}: a loop of pulls, pushes, listings and logins on fresh connections sees no failure (requests, p50/p99 before and during printed)`, "zero-downtime")]),
    ) as Record<ChangeKind, Check>,
    crashes: new Check("89", "crashes with two instances of each (docker kill of a registry instance, of a verifier instance, SIGKILL of an nginx worker without a client connection): no failed request in flight from each kill to 8 s after (requests, p50/p99 printed)", "zero-downtime"),
    plans: new Check("90", "change plans: the saved plan of a user added, a user removed, a password changed, a log level changed and an image patch bump touches exactly the roles each should (never the data volume, never the proxy container; whole generations replaced, new before old)", "zero-downtime"),
    transfers: new Check("91", "a 256 MiB pull and a 256 MiB push (3 MiB/s) in flight across the proxy's switch in a users change and an image patch bump complete and verify (sha256 of the pulled bytes, the registry's digest check on the push)", "zero-downtime"),
    teardown: new Check("62", "a fresh synth folder plans nothing; npm run teardown keeps only the data volume; a new deploy serves the pushed image with its digest", "zero-downtime"),
  };
  const shared: SharedStateChecks = {
    sharedState: new Check("70", "shared state in PostgreSQL: local state moved with cdktf deploy --migrate-state; a second copy of the project in another folder plans nothing (cdktf diff, saved plan); its change deploys and the first copy's plan sees it", "shared-state"),
    locking: new Check("71", "two deploys at once: one refused by the state lock, the state and the engine's containers consistent; a deploy killed half-way (SIGINT, SIGKILL) repaired by the next", "shared-state"),
    portable: new Check("72", "portable plans: the same config in two folders gives byte-identical cdk.tf.json (no project path in it)", "shared-state"),
    review: new Check("73", "review in CI: npm run plan-summary (the example workflows' command) summarizes the pending change as the saved plan has it", "shared-state"),
  };
  const all = [toolchain, ...Object.values(checks), ...Object.values(outage), ...Object.values(lifecycle), ...Object.values(roles), ...Object.values(scripts), ...Object.values(shared), ...Object.values(zeroDowntime.changes), zeroDowntime.crashes, zeroDowntime.teardown, zeroDowntime.plans, zeroDowntime.transfers];

  const ws = new Workspace();
  let engine: Engine | undefined;
  // A hard bound on the whole run: if something hangs despite the per-command timeouts,
  // fail the run (the finally below still tears down).
  let budgetTimer: NodeJS.Timeout | undefined;
  const budget = new Promise<never>((_, reject) => {
    budgetTimer = setTimeout(() => reject(new Error(`suite exceeded its budget of ${SUITE_BUDGET_MS / 1000} s`)), SUITE_BUDGET_MS);
  });
  try {
    await Promise.race([
      budget,
      (async () => {
        // A failure here aborts the suite (every check fails with the reason).
        const tools = await timings.time("terraform + providers (cached builds)", () => ensureTerraformTools((l) => say("terraform", l)));
        for (const line of tools.summary) toolchain.note(line);
        engine = await timings.time("engine start", () => startEngine({ log: (l) => say("engine", l), addressPool: ADDRESS_POOL_OVERRIDE }));
        const e = engine;
        say("engine", `private dockerd pid ${e.pid}, socket ${e.socketPath}`);
        toolchain.note(`private dockerd pid ${e.pid}`);
        await timings.time("images (cached rootfs + import)", () => prepareImages(e, (l) => say("images", l)));
        toolchain.finish();

        const ctx: SuiteContext = { engine: e, tools, ws, timings };
        // Independent deployments side by side (most of a deployment's time is waiting for health
        // checks), at most PARALLEL at once: all of them together overload 2 cores until timing-
        // sensitive checks (a pull right after a restart) fail. Longest first.
        const deployments = {
          "zero-downtime": (context: SuiteContext) => zeroDowntimeScenario(context, zeroDowntime),
          "shared-state": (context: SuiteContext) => sharedStateScenario(context, shared),
          lifecycle: (context: SuiteContext) => lifecycleScenario(context, lifecycle),
          "tls-proxy": tlsProxyScenario,
          "auth-cache": authCacheScenario,
          roles: (context: SuiteContext) => rolesScenario(context, roles),
          mirrors: mirrorsScenario,
          "mirrors-outage": (context: SuiteContext) => mirrorsOutageScenario(context, outage),
          ui: uiScenario,
          "direct-tls": directTlsScenario,
          "plain-http": plainHttpScenario,
          "blob-reads": blobReadsScenario,
          "scripts-in-image": (context: SuiteContext) => scriptsInImageScenario(context, scripts),
        };
        const unknown = (ONLY ?? []).filter((name) => !(name in deployments));
        if (unknown.length > 0) throw new Error(`E2E_ONLY names unknown deployments: ${unknown.join(", ")} (known: ${Object.keys(deployments).join(", ")})`);
        const selected = Object.entries(deployments).filter(([name]) => !ONLY || ONLY.includes(name));
        for (const c of all.filter((check) => check !== toolchain)) if (ONLY && !ONLY.includes(c.deployment)) c.abort(`not run: E2E_ONLY=${ONLY.join(",")}`);
        const scenarios = await timings.time(`scenarios (${PARALLEL} at a time)`, () => allSettledAtMost(PARALLEL, selected.map(([, scenario]) => () => scenario(ctx, checks))));
        for (const s of scenarios) if (s.status === "rejected") say("suite", `scenario crashed: ${String(s.reason)}`);
      })(),
    ]);
  } catch (err) {
    say("suite", `aborted: ${(err as Error).message}`);
    for (const c of all) c.abort(`suite aborted: ${(err as Error).message}`);
    const killed = killRunningCommands();
    if (killed > 0) say("suite", `killed ${killed} command(s) still running`);
  } finally {
    clearTimeout(budgetTimer);
    if (engine) {
      const e = engine;
      await timings.time("engine stop", () => e.stop()).catch((err: Error) => say("engine", `stop failed: ${err.message}`));
    }
    ws.remove();
  }

  console.log("\n==================== results ====================");
  for (const c of all) console.log(c.report());
  console.log("\ntimings:");
  for (const line of timings.lines()) console.log(`  ${line}`);
  console.log(`  total: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const failed = all.filter((c) => !c.ok).length;
  console.log(`${all.length - failed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    console.log("0 passed, 1 failed");
    process.exit(1);
  },
);
