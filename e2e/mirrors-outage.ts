import * as fs from "fs";
import * as path from "path";
import { curl, DockerClient, freePort } from "./clients";
import { Deployment, synthAndDeploy, TestUser } from "./deployment";
import { pollUntil } from "./docker-api";
import { assert, assertEqual, assertMatch, Check, clip, say } from "./harness";
import { startUpstream, Upstream, UPSTREAM_USER } from "./mirrors";
import { CommandError, run } from "./proc";
import { instanceOf } from "./stack-containers";
import { baseConfig, buildUniqueImage, SuiteContext } from "./scenarios";

/**
 * A mirror whose upstream goes away (issue 25): deployed while the upstream is down, restarted
 * while it is down, serving what it cached to docker and ctr, refusing what it did not cache
 * within UNCACHED_BOUND_MS, and back to proxy mode by itself when the upstream returns. The
 * upstream is the `mirrors` deployment's (mirrors.ts) under names of its own.
 */

export interface MirrorOutageChecks {
  deployDown: Check;
  cachedDown: Check;
  recovery: Check;
}

const TAG = "mirrors-outage";
const PREFIX = "e2e-outage";
const UPSTREAM = { network: "e2e-outage-upstream", container: "e2e-outage-upstream" };
const CONTAINERD_NAMESPACE = "rse2e-outage";
/** An image the mirror never cached must fail within this, with the upstream unreachable. */
const UNCACHED_BOUND_MS = 10_000;
/** The supervisor's probes (renderers/mirror-supervisor.ts MIRROR_PROBE): 2 × (5 s + 6 s) plus a start, with room for this loaded machine. */
const SWITCH_BOUND_MS = 60_000;

interface MirrorStatus {
  mode: string;
  since: string;
  upstream: string;
}

function short(digest: string): string {
  return `${digest.slice(0, 19)}…`;
}

export async function mirrorsOutageScenario(ctx: SuiteContext, c: MirrorOutageChecks): Promise<void> {
  const mine = Object.values(c);
  const dir = ctx.ws.dir(TAG);
  const scratch = ctx.ws.dir(`${TAG}-scratch`);
  const port = await freePort();
  const hubPort = await freePort();
  const users: TestUser[] = [{ name: "alice", password: "alice-outage-password-1" }];
  const hubEndpoint = `localhost:${hubPort}`;
  const dep = new Deployment(ctx, TAG, dir);
  const docker = new DockerClient(ctx.engine, path.join(scratch, "docker-config"));
  const mirrorService = `${PREFIX}-mirror-hub`;
  let upstreamStarted = false;
  try {
    const upstream: Upstream = await ctx.timings.time(`${TAG}: upstream registry`, () => startUpstream(ctx.engine, dir, UPSTREAM));
    upstreamStarted = true;
    await docker.login(upstream.hostEndpoint, UPSTREAM_USER.name, UPSTREAM_USER.password);
    /** Builds a unique image, pushes it to the upstream as library/<name>:1 and forgets it locally. */
    const seed = async (name: string): Promise<string> => {
      const local = `rse2e-local/outage-${name}:1`;
      await buildUniqueImage(docker, fs.mkdtempSync(path.join(scratch, `${name}-`)), local);
      await docker.tag(local, `${upstream.hostEndpoint}/library/${name}:1`);
      const { digest } = await docker.push(`${upstream.hostEndpoint}/library/${name}:1`);
      await docker.rmi(`${upstream.hostEndpoint}/library/${name}:1`, local);
      return digest;
    };
    const cachedDigest = await seed("e2e-cached");
    const uncachedDigest = await seed("e2e-uncached");
    say(TAG, `upstream seeded: library/e2e-cached:1 ${short(cachedDigest)}, library/e2e-uncached:1 ${short(uncachedDigest)}`);

    const configWithTtl = (ttl: string) => ({
      ...baseConfig(dir, PREFIX, port, users),
      hostnames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
      mirrors: [
        {
          name: "hub", upstream: "docker.io", port: hubPort, anonymousPull: true, ttl,
          upstreamUrl: `https://hub.e2e.test:5000`, upstreamCaFile: upstream.caFile, username: UPSTREAM_USER.name, network: UPSTREAM.network,
        },
      ],
    });
    const secrets = { REGISTRY_UPSTREAM_PASSWORD_HUB: UPSTREAM_USER.password };
    const s1 = await synthAndDeploy(ctx.timings, dep, mine, () => dep.synth("out-1", configWithTtl("24h"), users, "out-1", secrets));
    if (s1 === undefined) return;
    const clientDir = (configWithTtl("24h") as { clientConfigDirectory: string }).clientConfigDirectory;
    const mirrorCa = path.join(clientDir, "certs.d", hubEndpoint, "ca.crt");

    const status = async (): Promise<MirrorStatus | undefined> => {
      const res = await curl({ url: `https://${hubEndpoint}/registry-stack/mirror-status`, cacert: mirrorCa, scratchDir: scratch }).catch(() => undefined);
      return res?.status === 200 ? (JSON.parse(res.body) as MirrorStatus) : undefined;
    };
    /** Polls the status endpoint every 250 ms until the mode is `mode`; the time it took from `since`. */
    const waitForMode = async (mode: string, since: number): Promise<{ ms: number; status: MirrorStatus }> => {
      const got = await pollUntil(`mirror mode ${mode}`, async () => {
        const s = await status();
        return s?.mode === mode ? s : undefined;
      }, { timeoutMs: SWITCH_BOUND_MS, intervalMs: 250 });
      return { ms: Date.now() - since, status: got };
    };
    const supervisorLog = async (): Promise<string[]> => {
      const { stdout, stderr } = await ctx.engine.docker(["logs", await instanceOf(ctx.engine, mirrorService)], { timeoutMs: 30_000 });
      return `${stdout}\n${stderr}`.split("\n").filter((l) => l.startsWith("registry-stack mirror:"));
    };
    const upstreamDown = async () => {
      await ctx.engine.docker(["stop", UPSTREAM.container], { timeoutMs: 60_000 });
      const gone = await curl({ url: `https://${upstream.hostEndpoint}/v2/`, cacert: upstream.caFile, scratchDir: scratch }).then(
        (r) => `HTTP ${r.status}`,
        (err: CommandError) => clip(err.stderr.trim(), 100),
      );
      assert(!/^HTTP/.test(gone), `the upstream still answers after docker stop: ${gone}`);
      return gone;
    };

    // 37. deploys with the upstream down
    let proxyToOfflineMs = 0;
    await c.deployDown.phase("upstream up: proxy mode; a pull caches library/e2e-cached:1; upstream stopped: offline mode", async () => {
      const first = await status();
      assertEqual(first?.mode, "proxy", `GET https://${hubEndpoint}/registry-stack/mirror-status with the upstream up (${JSON.stringify(first)})`);
      const pulled = await docker.pull(`${hubEndpoint}/library/e2e-cached:1`);
      assertEqual(pulled.digest, cachedDigest, "digest pulled through the mirror");
      await docker.rmi(`${hubEndpoint}/library/e2e-cached:1`);
      c.deployDown.note(`deploy 1 (upstream up): status ${JSON.stringify(first)}; docker pull ${hubEndpoint}/library/e2e-cached:1 → ${short(pulled.digest)} (now cached)`);
      const stoppedAt = Date.now();
      const gone = await upstreamDown();
      const switched = await waitForMode("offline", stoppedAt);
      proxyToOfflineMs = switched.ms;
      c.deployDown.note(`docker stop of the upstream (${gone}) → status mode offline after ${(switched.ms / 1000).toFixed(1)} s (polled every 250 ms): ${JSON.stringify(switched.status)}`);
    });
    let s2Deployed = false;
    await c.deployDown.phase("cdktf deploy with the upstream down (the mirror replaced: ttl 24h → 48h)", async () => {
      const before = await instanceOf(ctx.engine, mirrorService);
      const t0 = Date.now();
      const s2 = await ctx.timings.time(`${TAG}: synth 2`, () => dep.synth("out-2", configWithTtl("48h"), users, "out-2", secrets));
      const synthMs = Date.now() - t0;
      const t1 = Date.now();
      await ctx.timings.time(`${TAG}: cdktf deploy 2 (upstream down)`, () => dep.deploy(s2));
      const deployMs = Date.now() - t1;
      s2Deployed = true;
      const after = await instanceOf(ctx.engine, mirrorService);
      assert(after !== before, `the mirror instance was not replaced (${before})`);
      const health = (await ctx.engine.docker(["inspect", "-f", "{{.State.Health.Status}}", after])).stdout.trim();
      assertEqual(health, "healthy", `health of ${after}`);
      const now = await status();
      assertEqual(now?.mode, "offline", `mirror status after the deploy (${JSON.stringify(now)})`);
      const log = await supervisorLog();
      assertMatch(log.join("\n"), /does not answer \/v2\/: serving what is cached, read-only/, "the new instance's supervisor log");
      c.deployDown.note(`synth ${(synthMs / 1000).toFixed(1)} s; cdktf deploy (upstream down) succeeded in ${(deployMs / 1000).toFixed(1)} s, then cdktf diff and a saved plan empty (${dep.planSummaries.at(-1)}); mirror ${before} → ${after}, ${health}, status ${JSON.stringify(now)}`);
      c.deployDown.note(`supervisor log: ${log.join(" | ")}`);
    });
    if (!s2Deployed) throw new Error("the deploy with the upstream down failed");
    await c.deployDown.phase("docker restart of the mirror with the upstream down: serving again, offline", async () => {
      const name = await instanceOf(ctx.engine, mirrorService);
      const t0 = Date.now();
      await ctx.engine.docker(["restart", name], { timeoutMs: 120_000 });
      const restartedMs = Date.now() - t0;
      const serving = await pollUntil("the restarted mirror to serve the cached manifest", async () => {
        const res = await curl({
          url: `https://${hubEndpoint}/v2/library/e2e-cached/manifests/1`, cacert: mirrorCa, scratchDir: scratch,
          headers: ["Accept: application/vnd.docker.distribution.manifest.v2+json"],
        }).catch(() => undefined);
        return res?.status === 200 ? res : undefined;
      }, { timeoutMs: SWITCH_BOUND_MS, intervalMs: 250 });
      const servingMs = Date.now() - t0;
      assertEqual(serving.headers["docker-content-digest"], cachedDigest, "Docker-Content-Digest of library/e2e-cached:1 after the restart");
      const now = await status();
      assertEqual(now?.mode, "offline", "mirror status after the restart");
      assertEqual((await ctx.engine.docker(["inspect", "-f", "{{.RestartCount}} {{.State.Running}}", name])).stdout.trim().split(" ")[1], "true", `${name} running`);
      c.deployDown.note(`docker restart ${name}: returned after ${(restartedMs / 1000).toFixed(1)} s, GET …/e2e-cached/manifests/1 → 200 ${short(cachedDigest)} ${(servingMs / 1000).toFixed(1)} s after the restart began; status ${JSON.stringify(now)}`);
    });
    c.deployDown.finish();

    // 38. cached content with the upstream down
    await c.cachedDown.phase("docker and ctr pull the cached image by tag and by digest; an uncached one fails fast", async () => {
      const byTag = await docker.pull(`${hubEndpoint}/library/e2e-cached:1`);
      assertEqual(byTag.digest, cachedDigest, "docker pull by tag (upstream down)");
      assertMatch(byTag.output, /Pull complete/, "docker pull downloaded layers");
      await docker.rmi(`${hubEndpoint}/library/e2e-cached:1`);
      const byDigest = await docker.pull(`${hubEndpoint}/library/e2e-cached@${cachedDigest}`);
      assertEqual(byDigest.digest, cachedDigest, "docker pull by digest (upstream down)");
      assertMatch(byDigest.output, /Pull complete/, "docker pull by digest downloaded layers");
      await docker.rmi(`${hubEndpoint}/library/e2e-cached@${cachedDigest}`);
      c.cachedDown.note(`docker pull ${hubEndpoint}/library/e2e-cached:1 and @${short(cachedDigest)}: both → ${short(cachedDigest)}, layers downloaded from the mirror`);

      const hostsDir = path.join(clientDir, "containerd", "certs.d");
      const address = path.join(ctx.engine.baseDir, "exec", "containerd", "containerd.sock");
      // One namespace per pull, so the second one cannot reuse the first one's content.
      const ctr = (namespace: string, args: string[]) => run("ctr", ["--address", address, "--namespace", namespace, ...args], { timeoutMs: 120_000 });
      await ctr(`${CONTAINERD_NAMESPACE}-tag`, ["images", "pull", "--hosts-dir", hostsDir, "docker.io/library/e2e-cached:1"]);
      await ctr(`${CONTAINERD_NAMESPACE}-digest`, ["images", "pull", "--hosts-dir", hostsDir, `docker.io/library/e2e-cached@${cachedDigest}`]);
      const byTagList = (await ctr(`${CONTAINERD_NAMESPACE}-tag`, ["images", "list"])).stdout;
      assertMatch(byTagList, new RegExp(`^docker\\.io/library/e2e-cached:1\\s+\\S+\\s+${cachedDigest}\\s`, "m"), "ctr images list after the pull by tag");
      const byDigestList = (await ctr(`${CONTAINERD_NAMESPACE}-digest`, ["images", "list"])).stdout;
      assertMatch(byDigestList, new RegExp(`${cachedDigest}`), "ctr images list after the pull by digest");
      c.cachedDown.note(`ctr images pull --hosts-dir <generated containerd/certs.d> docker.io/library/e2e-cached:1 and …@${short(cachedDigest)} (TLS verified, two namespaces): both listed with ${short(cachedDigest)}`);

      const t0 = Date.now();
      const failed = await docker.pull(`${hubEndpoint}/library/e2e-uncached:1`, 120_000).then(
        () => undefined,
        (err: unknown) => err,
      );
      const failMs = Date.now() - t0;
      assert(failed instanceof CommandError, `docker pull of the uncached image: ${failed === undefined ? "succeeded with the upstream down" : String(failed)}`);
      const message = failed.stderr.trim();
      assertMatch(message, /not cached by this mirror, and its upstream docker\.io is unreachable/, "docker pull error of an uncached image");
      assert(failMs <= UNCACHED_BOUND_MS, `the uncached pull failed after ${failMs} ms, more than ${UNCACHED_BOUND_MS} ms`);
      c.cachedDown.note(`docker pull ${hubEndpoint}/library/e2e-uncached:1 failed after ${(failMs / 1000).toFixed(2)} s (bound ${UNCACHED_BOUND_MS / 1000} s): ${clip(message, 240)}`);
      const res = await curl({ url: `https://${hubEndpoint}/v2/library/e2e-uncached/manifests/1`, cacert: mirrorCa, scratchDir: scratch });
      assertEqual(res.status, 404, "GET of the uncached manifest");
      c.cachedDown.note(`curl GET …/library/e2e-uncached/manifests/1 → ${res.status} ${clip(res.body.trim(), 200)}`);
    });
    c.cachedDown.finish();

    // 39. recovery without a deploy or restart
    await c.recovery.phase("upstream started again: proxy mode by itself, a new image pulls through the mirror", async () => {
      const name = await instanceOf(ctx.engine, mirrorService);
      const startedBefore = (await ctx.engine.docker(["inspect", "-f", "{{.State.StartedAt}}", name])).stdout.trim();
      const t0 = Date.now();
      await ctx.engine.docker(["start", UPSTREAM.container], { timeoutMs: 60_000 });
      const switched = await waitForMode("proxy", t0);
      c.recovery.note(`docker start of the upstream → status mode proxy after ${(switched.ms / 1000).toFixed(1)} s: ${JSON.stringify(switched.status)}`);
      const newDigest = await pollUntil("the upstream to take a push", async () => seedNew().catch(() => undefined), { timeoutMs: 60_000, intervalMs: 1000 });
      const pulled = await docker.pull(`${hubEndpoint}/library/e2e-new:1`);
      assertEqual(pulled.digest, newDigest, "digest of the new image pulled through the mirror");
      const uncached = await docker.pull(`${hubEndpoint}/library/e2e-uncached:1`);
      assertEqual(uncached.digest, uncachedDigest, "digest of the formerly uncached image");
      const after = await instanceOf(ctx.engine, mirrorService);
      const startedAfter = (await ctx.engine.docker(["inspect", "-f", "{{.State.StartedAt}}", after])).stdout.trim();
      assertEqual(`${after} ${startedAfter}`, `${name} ${startedBefore}`, "the mirror container and its start time (no restart, no deploy)");
      c.recovery.note(`library/e2e-new:1 pushed to the upstream after it returned: docker pull ${hubEndpoint}/library/e2e-new:1 → ${short(pulled.digest)}; library/e2e-uncached:1 → ${short(uncached.digest)}; same container ${name}, started ${startedBefore}`);
      c.recovery.note(`supervisor log: ${(await supervisorLog()).join(" | ")}`);
      c.recovery.note(`switch times: proxy → offline ${(proxyToOfflineMs / 1000).toFixed(1)} s after the upstream stopped; offline → proxy ${(switched.ms / 1000).toFixed(1)} s after it started (probes every 5 s; offline after 2 failed in a row)`);
    });
    c.recovery.finish();

    async function seedNew(): Promise<string> {
      const local = "rse2e-local/outage-e2e-new:1";
      if (!(await docker.imageExists(local))) await buildUniqueImage(docker, fs.mkdtempSync(path.join(scratch, "new-")), local);
      await docker.tag(local, `${upstream.hostEndpoint}/library/e2e-new:1`);
      const { digest } = await docker.push(`${upstream.hostEndpoint}/library/e2e-new:1`, 60_000);
      await docker.rmi(`${upstream.hostEndpoint}/library/e2e-new:1`, local);
      return digest;
    }
  } catch (err) {
    for (const ch of mine) ch.abort(`scenario ${TAG} failed: ${(err as Error).message}`);
  } finally {
    await ctx.timings.time(`${TAG}: destroy`, () => dep.destroy()).catch((err: Error) => say(TAG, `destroy failed: ${err.message}`));
    if (upstreamStarted) await ctx.engine.docker(["rm", "-f", UPSTREAM.container], { timeoutMs: 60_000 }).catch((err: Error) => say(TAG, err.message));
    await ctx.engine.docker(["network", "rm", UPSTREAM.network], { timeoutMs: 30_000 }).catch(() => undefined);
  }
}
