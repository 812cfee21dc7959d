import * as fs from "fs";
import * as https from "https";
import * as path from "path";
import { REGISTRY_GID, REGISTRY_UID, REGISTRY_USER } from "../constructs/container-defaults";
import { NginxProxy } from "../constructs/nginx-proxy";
import { addClientAddresses } from "./client-addresses";
import { curl, DockerClient, freePort, writeLayeredContext } from "./clients";
import { pollUntil } from "./docker-api";
import { Engine } from "./engine";
import { assert, assertEqual, assertMatch, Check, clip } from "./harness";
import { NGINX_IMAGE, REGISTRY_V3_IMAGE } from "./images";
import { CommandError, run, sleep } from "./proc";
import { instanceOf, logLinesOfAll, runningInstances, socketOf } from "./stack-containers";

/**
 * Issue #8 checks on the default topology (proxy + login cache + verifier, both registries on
 * unix sockets): reachability, restarts, anonymous requests and the login limit.
 */

export interface HardeningTarget {
  engine: Engine;
  /** namePrefix of the deployment */
  prefix: string;
  /** https://127.0.0.1:<port> */
  baseUrl: string;
  endpoint: string;
  cacert: string;
  scratch: string;
  user: { name: string; password: string };
  docker: DockerClient;
  /** The volumes held an earlier root registry's data before the deploy (writeLegacyRootData). */
  migrated?: boolean;
}

const REGISTRY_PORTS = [5000, 5001];
const PROXY_LOOPBACK_PORTS = [8081, 8082];

/** The parts of `docker inspect <container>` these checks read. */
interface ContainerInspect {
  Config: { User: string };
  HostConfig: { NetworkMode: string; ReadonlyRootfs: boolean; Tmpfs: Record<string, string> | null };
  Mounts: Array<{ Name?: string; Destination: string; RW: boolean }>;
  NetworkSettings: { Networks: Record<string, { IPAddress: string; Gateway: string }>; Ports: Record<string, unknown> | null };
  State: { Running: boolean; Pid: number; Status: string; ExitCode: number };
}

async function inspect(engine: Engine, name: string): Promise<ContainerInspect> {
  return (JSON.parse((await engine.docker(["inspect", name])).stdout) as ContainerInspect[])[0];
}

/** curl that must not get any HTTP answer; returns curl's error line. */
async function expectUnreachable(args: string[], what: string, asUser?: string): Promise<string> {
  const curlArgs = ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--connect-timeout", "2", "-m", "4", ...args];
  const [command, argv] = asUser ? ["runuser", ["-u", asUser, "--", "curl", ...curlArgs]] : ["curl", curlArgs];
  try {
    const { stdout } = await run(command, argv, { timeoutMs: 10_000 });
    throw new Error(`${what}: reached (HTTP ${stdout.trim()})`);
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    return clip(err.stderr.trim().split("\n").slice(-1)[0], 120);
  }
}

/** `sh -c <script>` in a container; returns how it ended, so both outcomes can be asserted. */
async function execIn(engine: Engine, container: string, script: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await engine.docker(["exec", container, "sh", "-c", script], { timeoutMs: 15_000 });
    return { ok: true, output: (stdout + stderr).trim() };
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    return { ok: false, output: clip(err.stderr.trim(), 160) };
  }
}

/** What an earlier deploy (the registry as root) left in the volumes, for the migration case. */
export interface LegacyRootData {
  repository: string;
  tag: string;
  digest: string;
  imageId: string;
}

/**
 * Plays an earlier deploy before the stack is deployed: the registry image running as root (as
 * every registry did before REGISTRY_USER) on the deployment's data volume, a docker push to it,
 * and a root-owned socket left in the sockets volume. The local images are removed afterwards,
 * so a later pull can only get the data from the volume.
 */
export async function writeLegacyRootData(engine: Engine, docker: DockerClient, prefix: string, scratch: string): Promise<LegacyRootData> {
  const network = `${prefix}-legacy`;
  const name = `${prefix}-legacy-registry`;
  const port = await freePort();
  await engine.docker(["network", "create", network]);
  try {
    await engine.docker([
      "run", "-d", "--name", name, "--network", network, "-p", `127.0.0.1:${port}:5000`, "--user", "0:0", "-e", "OTEL_TRACES_EXPORTER=none",
      "-v", `${prefix}-data:/var/lib/registry`, "-v", `${prefix}-sockets:/run/registry-stack`,
      "--entrypoint", "/bin/sh", REGISTRY_V3_IMAGE, "-c", "touch /run/registry-stack/registry.sock && exec registry serve /etc/docker/registry/config.yml",
    ]);
    await pollUntil(
      `${name} to answer on 127.0.0.1:${port}`,
      async () => ((await curl({ url: `http://127.0.0.1:${port}/v2/`, scratchDir: scratch }).catch(() => undefined))?.status === 200 ? true : undefined),
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    const context = fs.mkdtempSync(path.join(scratch, "legacy-"));
    writeLayeredContext(context, "scratch", [{ files: 2, bytesEach: 64 * 1024 }, { files: 1, bytesEach: 96 * 1024 }]);
    const local = "rse2e-local/legacy:1";
    const imageId = await docker.build(context, local);
    const repository = "legacy/app";
    const ref = `127.0.0.1:${port}/${repository}:1`;
    await docker.tag(local, ref);
    const pushed = await docker.push(ref);
    const owner = (await engine.docker(["exec", name, "stat", "-c", "%u:%g", "/var/lib/registry/docker/registry/v2/repositories/legacy"])).stdout.trim();
    assertEqual(owner, "0:0", "owner of what the root registry wrote");
    await docker.rmi(ref, local);
    assert(!(await docker.imageExists(imageId)), `image ${imageId} still present after docker rmi`);
    return { repository, tag: "1", digest: pushed.digest, imageId };
  } finally {
    await engine.docker(["rm", "-f", name]).catch(() => undefined);
    await engine.docker(["network", "rm", network]).catch(() => undefined);
  }
}

/**
 * The migration case, after the deploy: what the root registry pushed pulls through the proxy
 * (same digest, same image ID), and the registry, now REGISTRY_USER, writes into the
 * repository the root registry created.
 */
export async function migrationChecks(check: Check, t: HardeningTarget, legacy: LegacyRootData): Promise<void> {
  await t.docker.login(t.endpoint, t.user.name, t.user.password);
  const ref = `${t.endpoint}/${legacy.repository}:${legacy.tag}`;
  const pulled = await t.docker.pull(ref);
  assertEqual(pulled.digest, legacy.digest, `digest of ${ref} pulled vs pushed by the root registry`);
  assertEqual((await t.docker.inspect(ref)).Id, legacy.imageId, `image ID of ${ref}`);
  const context = fs.mkdtempSync(path.join(t.scratch, "after-migration-"));
  writeLayeredContext(context, "scratch", [{ files: 1, bytesEach: 80 * 1024 }]);
  const next = `${t.endpoint}/${legacy.repository}:2`;
  await t.docker.build(context, next);
  const pushed = await t.docker.push(next);
  check.note(
    `migration: ${legacy.repository}:${legacy.tag} pushed by the registry as root (files 0:0) pulls through the proxy after the deploy: ${pulled.digest.slice(0, 19)}…, same image ID; ` +
      `${legacy.repository}:2 pushed into the same repository → ${pushed.digest.slice(0, 19)}…`,
  );
}

/** Uid and gid of a process from the host's /proc (the real ids, whatever the image declares). */
function processIds(pid: number): { uid: string[]; gid: string[]; capEff: string } {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (key: string) => (new RegExp(`^${key}:\\s*(.*)$`, "m").exec(status)?.[1] ?? "").trim();
  return { uid: field("Uid").split(/\s+/), gid: field("Gid").split(/\s+/), capEff: field("CapEff") };
}

/**
 * A registry-image container runs as REGISTRY_USER: declared (Config.User) and real (every id
 * of its process in the host's /proc, and of every process `docker top` lists), with no
 * effective capability; its volume-owner container ran once, exited 0, and a second run finds
 * everything owned and changes nothing.
 */
export async function registryUserChecks(check: Check, engine: Engine, name: string, expectMigrated: string[] = []): Promise<void> {
  const info = await inspect(engine, name);
  assert(info.State.Running, `${name} is not running`);
  assertEqual(info.Config.User, REGISTRY_USER, `${name} Config.User`);
  const ids = processIds(info.State.Pid);
  const uid = String(REGISTRY_UID);
  const gid = String(REGISTRY_GID);
  assertEqual(ids.uid, [uid, uid, uid, uid], `${name} pid ${info.State.Pid} Uid (real, effective, saved, fs)`);
  assertEqual(ids.gid, [gid, gid, gid, gid], `${name} pid ${info.State.Pid} Gid`);
  assertEqual(ids.capEff, "0000000000000000", `${name} CapEff`);
  const top = (await engine.docker(["top", name, "-o", "pid,uid,gid,comm"])).stdout.trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/));
  assert(top.length > 0, `${name}: docker top lists no process`);
  for (const [pid, pUid, pGid, comm] of top) assert(pUid === uid && pGid === gid, `${name}: process ${pid} ${comm} runs as ${pUid}:${pGid}`);

  const ownerName = `${name}-volume-owner`;
  const owner = await inspect(engine, ownerName);
  assertEqual([owner.State.Status, owner.State.ExitCode], ["exited", 0], `${ownerName} state and exit code`);
  const firstRun = (await engine.docker(["logs", ownerName])).stdout.trim().split("\n");
  // Data stores are changed only while their top folder is not the user's; config volumes in full, every run.
  const always = firstRun.filter((l) => l.endsWith(`: every file changed to ${REGISTRY_USER}`));
  const stores = firstRun.filter((l) => !always.includes(l));
  assert(stores.length > 0, `${ownerName} log names no volume: ${firstRun.join(" | ")}`);
  for (const line of stores) assertMatch(line, new RegExp(`^/\\S+: (already owned by ${REGISTRY_USER}|owned by \\d+:\\d+, changing everything in it to ${REGISTRY_USER})$`), `${ownerName} log`);
  for (const dir of expectMigrated) {
    assert(firstRun.includes(`${dir}: owned by 0:0, changing everything in it to ${REGISTRY_USER}`), `${ownerName} should have migrated the root-owned ${dir}: ${firstRun.join(" | ")}`);
  }
  const started = Date.now();
  const again = (await engine.docker(["start", "-a", ownerName], { timeoutMs: 60_000 })).stdout.trim().split("\n");
  const againMs = Date.now() - started;
  assertEqual(again, [...stores.map((l) => `${l.split(":")[0]}: already owned by ${REGISTRY_USER}`), ...always], `${ownerName} second run (docker start -a)`);
  assertEqual((await inspect(engine, ownerName)).State.ExitCode, 0, `${ownerName} exit code of the second run`);
  check.note(
    `${name}: Config.User ${info.Config.User}; /proc/${info.State.Pid}/status Uid ${ids.uid.join(" ")} Gid ${ids.gid.join(" ")} CapEff ${ids.capEff}; docker top: ${top.map((p) => `${p[3]} ${p[1]}:${p[2]}`).join(", ")}; ` +
      `${ownerName} exited 0: "${firstRun.join("; ")}"; docker start -a again (${againMs} ms): "${again.join("; ")}"`,
  );
}

/**
 * Every running container of the stack has a read-only root filesystem and a read-only config
 * volume; only /tmp (a tmpfs) takes writes. The seeders that filled the config volumes were
 * created and never started.
 */
export async function readOnlyRootChecks(check: Check, t: HardeningTarget): Promise<void> {
  for (const service of [`${t.prefix}-registry`, `${t.prefix}-auth`, `${t.prefix}-proxy`]) {
    const name = await instanceOf(t.engine, service);
    const info = await inspect(t.engine, name);
    assert(info.State.Running, `${name} is not running`);
    assertEqual(info.HostConfig.ReadonlyRootfs, true, `${name} ReadonlyRootfs`);
    const config = info.Mounts.find((m) => m.Destination === "/etc/registry-stack");
    assert(config !== undefined && !config.RW, `${name}: /etc/registry-stack should be a read-only mount, got ${JSON.stringify(config)}`);
    // Only the read-only mounts stop these writes (the proxy's master runs as root, which owns the paths).
    for (const target of ["/usr/rse2e-probe", "/etc/registry-stack/rse2e-probe"]) {
      const attempt = await execIn(t.engine, name, `touch ${target}`);
      assert(!attempt.ok && /read-only file system/i.test(attempt.output), `${name}: touch ${target} should fail read-only, got ${attempt.ok ? "success" : attempt.output}`);
    }
    const scratch = await execIn(t.engine, name, "touch /tmp/rse2e-probe && rm /tmp/rse2e-probe && echo writable");
    assert(scratch.ok && scratch.output === "writable", `${name}: /tmp should be writable: ${scratch.output}`);
    const seeder = await inspect(t.engine, `${name}-config-seed`);
    assertEqual(seeder.State.Status, "created", `${name}-config-seed state`);
    assertEqual(seeder.Mounts.find((m) => m.Destination === "/etc/registry-stack")?.Name, config.Name, `${name}-config-seed volume`);
    if (service !== `${t.prefix}-proxy`) {
      await registryUserChecks(check, t.engine, name, service === `${t.prefix}-registry` && t.migrated ? ["/var/lib/registry"] : []);
      const socket = await socketOf(t.engine, service);
      const owned = await execIn(t.engine, name, `stat -c %u:%g /run/registry-stack; stat -c %u:%g:%a /run/registry-stack/${socket}`);
      assertEqual(owned.output.split("\n"), [REGISTRY_USER, `${REGISTRY_USER}:666`], `${name}: owner and mode of the socket directory and ${socket}`);
    }
    if (service === `${t.prefix}-registry`) {
      // Only the socket is opened up for nginx's workers; nothing the registry writes is, and
      // every path of the data volume (an earlier root registry's too) is the registry user's.
      const data = await execIn(
        t.engine,
        name,
        `find /var/lib/registry -type f | wc -l; find /var/lib/registry \\( ! -user ${REGISTRY_UID} -o ! -group ${REGISTRY_GID} \\) | head -5; echo --; find /var/lib/registry ! -type l -perm -0002 | head -5`,
      );
      const [files, ...rest] = data.output.split("\n");
      const separator = rest.indexOf("--");
      assert(data.ok && Number(files) > 0 && separator >= 0, `${name}: expected files in the data volume: ${data.output}`);
      assertEqual(rest.slice(0, separator), [], `${name}: paths in the data volume not owned by ${REGISTRY_USER}`);
      assertEqual(rest.slice(separator + 1), [], `${name}: world-writable paths in the data volume`);
      check.note(`${name}: ${files} files in the data volume, all owned by ${REGISTRY_USER}, none world-writable; its socket ${REGISTRY_USER} mode 666`);
    }
    check.note(`${name}: ReadonlyRootfs true, touch /usr and /etc/registry-stack → read-only file system, /tmp writable (tmpfs ${info.HostConfig.Tmpfs?.["/tmp"]}); config volume ${config.Name} (ro) filled by ${name}-config-seed, state "created"`);
  }
}

export async function reachabilityChecks(check: Check, t: HardeningTarget): Promise<void> {
  const services = [`${t.prefix}-registry`, `${t.prefix}-auth`];
  const hidden = (await Promise.all(services.map((s) => runningInstances(t.engine, s)))).flat().map((i) => i.name);
  for (const name of hidden) {
    const info = await inspect(t.engine, name);
    assertEqual(info.HostConfig.NetworkMode, "none", `${name} network mode`);
    const addresses = Object.values(info.NetworkSettings.Networks).map((n) => n.IPAddress).filter(Boolean);
    assertEqual(addresses, [], `${name} IP addresses`);
    assertEqual(Object.keys(info.NetworkSettings.Ports ?? {}).length, 0, `${name} ports`);
  }
  check.note(`${hidden.join(", ")}: NetworkMode none, no IP address, no port`);

  // Every address a process on the host could try: each container address on the stack's
  // networks (the proxy's), each network's gateway, on the registries' and proxy-internal ports.
  const proxy = await inspect(t.engine, `${t.prefix}-proxy`);
  const proxyAddresses = Object.values(proxy.NetworkSettings.Networks).flatMap((n) => [n.IPAddress, n.Gateway]);
  const targets = proxyAddresses.flatMap((a) => [...REGISTRY_PORTS, ...PROXY_LOOPBACK_PORTS].map((p) => `http://${a}:${p}/v2/`));
  const socketDir = (await t.engine.docker(["volume", "inspect", "-f", "{{.Mountpoint}}", `${t.prefix}-sockets`])).stdout.trim();
  for (const user of [undefined, "nobody"]) {
    for (const url of targets) await expectUnreachable([url], `${url} from the host as ${user ?? "root"}`, user);
  }
  const socketRefusals: string[] = [];
  const sockets = (await Promise.all(services.map((s) => runningInstances(t.engine, s)))).flat().map((i) => i.socket);
  for (const sock of sockets) {
    socketRefusals.push(await expectUnreachable(["--unix-socket", path.join(socketDir, sock), "http://registry/v2/"], `${sock} from the host as nobody`, "nobody"));
  }
  check.note(`from the host as root and as nobody: ${targets.length} address:port targets (proxy addresses and gateways × ports ${[...REGISTRY_PORTS, ...PROXY_LOOPBACK_PORTS].join(", ")}) all unreachable; the socket files as nobody: ${socketRefusals.join(" / ")}`);
  // Control: the same socket path as root answers, so the refusals above are not a wrong path.
  const { stdout: rootCode } = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-m", "4", "--unix-socket", path.join(socketDir, sockets[0]), "http://registry/v2/"], {
    timeoutMs: 10_000,
  });
  assertEqual(rootCode.trim(), "200", "control: the registry socket as host root");
  check.note(`control: host root opening ${sockets[0]} in the volume gets 200 (root can read the data volume as well: root on the Docker host is outside what a container layout can restrict)`);

  // Containers on the stack's edge network and on another bridge network (the e2e engine has no
  // default bridge; a fresh one stands in for it).
  const probeNetwork = `${t.prefix}-probe`;
  await t.engine.docker(["network", "create", probeNetwork]);
  try {
    const names = ["registry", "registry-auth", ...hidden];
    const tcpTargets = [
      ...names.flatMap((n) => REGISTRY_PORTS.map((p) => `${n}:${p}`)),
      ...proxyAddresses.flatMap((a) => [...REGISTRY_PORTS, ...PROXY_LOOPBACK_PORTS].map((p) => `${a}:${p}`)),
    ];
    const script = tcpTargets.map((target) => `wget -q -T 2 -O /dev/null http://${target}/v2/ 2>/dev/null && echo REACHED ${target};`).join(" ") + " echo probed";
    for (const network of [`${t.prefix}-edge`, probeNetwork]) {
      const { stdout } = await t.engine.docker(["run", "--rm", "--network", network, "--entrypoint", "/bin/sh", NGINX_IMAGE, "-c", script], { timeoutMs: 120_000 });
      assert(!stdout.includes("REACHED"), `from a container on ${network}: ${stdout.trim()}`);
      assertMatch(stdout, /probed/, `probe on ${network} ran`);
    }
    check.note(`containers on ${t.prefix}-edge and on ${probeNetwork}: ${tcpTargets.length} targets each (names ${names.join(", ")} and the proxy's addresses on ports ${[...REGISTRY_PORTS, ...PROXY_LOOPBACK_PORTS].join(", ")}) all unreachable`);
  } finally {
    await t.engine.docker(["network", "rm", probeNetwork]).catch(() => undefined);
  }
}

async function pullOnce(t: HardeningTarget, ref: string): Promise<number> {
  const started = Date.now();
  await t.docker.rmi(ref).catch(() => undefined);
  const pulled = await t.docker.pull(ref);
  assertMatch(pulled.output, /Pull complete|Downloaded newer image/, `docker pull ${ref}`);
  return Date.now() - started;
}

async function waitRestarted(engine: Engine, name: string, oldPid: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const info = await inspect(engine, name);
    if (info.State.Running && info.State.Pid !== oldPid && info.State.Pid > 0) return;
    if (Date.now() > deadline) throw new Error(`${name} was not restarted by its restart policy within 30 s (${info.State.Status})`);
    await sleep(100);
  }
}

/**
 * Between its container running again and its socket accepting connections, a restarted
 * registry is unreachable and the proxy answers 502: measured (bounded to 10 s), as for the verifier.
 */
async function untilRegistryAnswers(t: HardeningTarget): Promise<string> {
  const started = Date.now();
  const early: number[] = [];
  for (;;) {
    const answer = await curl({ url: `${t.baseUrl}/v2/`, cacert: t.cacert, credentials: `${t.user.name}:${t.user.password}`, scratchDir: t.scratch });
    if (answer.status === 200) break;
    assertEqual(answer.status, 502, "answer while the registry starts (its socket not yet accepting)");
    early.push(answer.status);
    assert(Date.now() - started < 10_000, "the restarted registry did not answer within 10 s");
    await sleep(50);
  }
  return `GET /v2/ answered 200 ${Date.now() - started} ms after the container ran again (${early.length} × 502 before its socket accepted)`;
}

/** `docker restart` of the registry and the verifier, and a crash the restart policy recovers. */
export async function restartChecks(check: Check, t: HardeningTarget, ref: string): Promise<void> {
  await t.docker.login(t.endpoint, t.user.name, t.user.password);
  const registry = await instanceOf(t.engine, `${t.prefix}-registry`);
  const verifier = await instanceOf(t.engine, `${t.prefix}-auth`);

  await t.engine.docker(["restart", registry], { timeoutMs: 180_000 });
  const afterRestart = await untilRegistryAnswers(t);
  check.note(`docker restart ${registry}: ${afterRestart}; then at once docker rmi + pull ${ref}: ok in ${await pullOnce(t, ref)} ms`);

  await t.engine.docker(["restart", verifier], { timeoutMs: 180_000 });
  // A wrong password is never cached, so its 401 comes from the restarted verifier itself. The
  // process needs a moment after `docker restart` returns to create its socket: measure it.
  const restarted = Date.now();
  const early: number[] = [];
  for (;;) {
    const wrong = await curl({ url: `${t.baseUrl}/v2/`, cacert: t.cacert, credentials: `${t.user.name}:not-the-password-${early.length}`, scratchDir: t.scratch });
    if (wrong.status === 401) break;
    assertEqual(wrong.status, 503, "answer while the verifier starts (login verification unavailable)");
    early.push(wrong.status);
    assert(Date.now() - restarted < 10_000, "the restarted verifier did not answer within 10 s");
    await sleep(50);
  }
  check.note(
    `docker restart ${verifier}: a wrong password got 401 from the restarted verifier ${Date.now() - restarted} ms after the restart returned ` +
      `(${early.length} × 503 UNAVAILABLE before its socket existed); pull ok in ${await pullOnce(t, ref)} ms`,
  );

  const pid = (await inspect(t.engine, registry)).State.Pid;
  process.kill(pid, "SIGKILL");
  await waitRestarted(t.engine, registry, pid);
  const afterCrash = await untilRegistryAnswers(t);
  check.note(`SIGKILL of ${registry}'s process (pid ${pid}); restart policy brought it back; ${afterCrash}; then at once pull ok in ${await pullOnce(t, ref)} ms`);
}

/** Requests without credentials are answered by nginx; the verifier sees none of them. */
export async function anonymousChecks(check: Check, t: HardeningTarget): Promise<void> {
  // distribution logs every request it serves with its http.request.uri.
  const verifierLines = async () => {
    return (await logLinesOfAll(t.engine, `${t.prefix}-auth`)).filter((line) => line.includes("http.request.uri")).length;
  };
  const before = await verifierLines();
  const started = Date.now();
  const results = await Promise.all(
    Array.from({ length: 20 }, async () => {
      const t0 = Date.now();
      const res = await curl({ url: `${t.baseUrl}/v2/`, cacert: t.cacert, scratchDir: t.scratch });
      return { res, ms: Date.now() - t0 };
    }),
  );
  for (const { res } of results) {
    assertEqual(res.status, 401, "anonymous /v2/");
    assertEqual(res.headers["www-authenticate"], 'Basic realm="Registry"', "WWW-Authenticate of nginx's own 401");
    assertEqual(res.headers["docker-distribution-api-version"], "registry/2.0", "API version header");
    assertEqual((JSON.parse(res.body) as { errors: { code: string }[] }).errors[0].code, "UNAUTHORIZED", "error body");
  }
  await sleep(500);
  assertEqual(await verifierLines(), before, "verifier log lines after 20 anonymous requests");
  const slowest = Math.max(...results.map((r) => r.ms));
  check.note(`20 concurrent anonymous GET /v2/ → 401 UNAUTHORIZED with the Basic challenge, all within ${Date.now() - started} ms (slowest ${slowest} ms, curl process start included); the verifier logged nothing`);
}

/** Wrong passwords are limited per client address; cached logins are not. */
const PULL_SAMPLES = 5;

/** CPU time (ns) a container's processes have used: cgroup v1 cpuacct, or v2 cpu.stat. */
async function containerCpuNs(engine: Engine, name: string): Promise<number> {
  const pid = (await inspect(engine, name)).State.Pid;
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n");
  const v1 = lines.find((l) => /^\d+:[^:]*\bcpuacct\b[^:]*:/.test(l));
  if (v1) return Number(fs.readFileSync(`/sys/fs/cgroup/cpuacct${v1.split(":")[2]}/cpuacct.usage`, "utf8"));
  const v2 = lines.find((l) => l.startsWith("0::"))!.slice(3);
  const usec = /usage_usec (\d+)/.exec(fs.readFileSync(`/sys/fs/cgroup${v2}/cpu.stat`, "utf8"))![1];
  return Number(usec) * 1000;
}

async function medianPull(t: HardeningTarget, ref: string, samples: number): Promise<{ median: number; samples: number[] }> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) times.push(await pullOnce(t, ref));
  return { median: [...times].sort((a, b) => a - b)[Math.floor(samples / 2)], samples: times };
}

/** Wrong-password requests for GET /v2/ over a few keep-alive TLS connections, bounded in count and time. */
class WrongPasswordFlood {
  private stopped = false;
  private readonly agent: https.Agent;

  constructor(
    private readonly t: HardeningTarget,
    private readonly bounds: { connections: number; maxRequests: number; maxMs: number },
  ) {
    this.agent = new https.Agent({ keepAlive: true, maxSockets: bounds.connections, ca: fs.readFileSync(t.cacert) });
  }

  stop(): void {
    this.stopped = true;
  }

  async run(): Promise<{ total: number; ms: number; statuses: Record<string, number> }> {
    const started = Date.now();
    const statuses: Record<string, number> = {};
    let total = 0;
    const url = new URL(`${this.t.baseUrl}/v2/`);
    const one = (n: number) =>
      new Promise<number>((resolve, reject) => {
        const auth = Buffer.from(`${this.t.user.name}:flood-${n}`).toString("base64");
        const req = https.get(url, { agent: this.agent, headers: { Authorization: `Basic ${auth}` }, timeout: 10_000 }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        });
        req.on("timeout", () => req.destroy(new Error("flood request timed out")));
        req.on("error", reject);
      });
    try {
      await Promise.all(
        Array.from({ length: this.bounds.connections }, async () => {
          while (!this.stopped && total < this.bounds.maxRequests && Date.now() - started < this.bounds.maxMs) {
            const status = await one(++total);
            statuses[status] = (statuses[status] ?? 0) + 1;
          }
        }),
      );
    } finally {
      this.agent.destroy();
    }
    return { total, ms: Date.now() - started, statuses };
  }
}

export async function loginLimitChecks(check: Check, t: HardeningTarget, perMinute: number, ref: string): Promise<void> {
  // The pulls below rely on the user's login being cached (a cached login never reaches the
  // limiter): verify it now, so that it is still cached when the address is limited.
  const fresh = await curl({ url: `${t.baseUrl}/v2/`, cacert: t.cacert, credentials: `${t.user.name}:${t.user.password}`, scratchDir: t.scratch });
  assertEqual(fresh.status, 200, "the user's login before the wrong passwords");
  let refusedAt = 0;
  let limited: Awaited<ReturnType<typeof curl>> | undefined;
  const started = Date.now();
  // Five at a time: one curl at a time on busy cores is slow enough for the refill to keep up.
  for (let sent = 0; sent < perMinute + 40 && !limited; sent += 5) {
    const batch = await Promise.all(
      [1, 2, 3, 4, 5].map((k) => curl({ url: `${t.baseUrl}/v2/`, cacert: t.cacert, credentials: `${t.user.name}:wrong-${sent + k}`, scratchDir: t.scratch })),
    );
    batch.forEach((res, k) => {
      if (res.status === 429 && !limited) {
        refusedAt = sent + k + 1;
        limited = res;
      } else if (res.status !== 429) assertEqual(res.status, 401, `wrong password #${sent + k + 1}`);
    });
  }
  const seconds = (Date.now() - started) / 1000;
  assert(limited !== undefined, `no 429 after ${perMinute + 40} wrong passwords`);
  // burst = perMinute, refilled at perMinute per minute while the loop ran. The logins this
  // scenario made through the new proxy before (a handful of first logins and a refused one) used
  // up part of the burst, because every verification counts, not only failed ones.
  const allowed = perMinute + Math.floor((seconds * perMinute) / 60) + 1;
  const earlierLogins = 11;
  assert(refusedAt > perMinute - earlierLogins && refusedAt <= allowed + 1, `first 429 at attempt ${refusedAt}; expected after ${perMinute - earlierLogins} and by ${allowed + 1}`);
  assertEqual(limited.headers["retry-after"], "60", "Retry-After");
  assertEqual(limited.headers["docker-distribution-api-version"], "registry/2.0", "API version header on 429");
  assertEqual((JSON.parse(limited.body) as { errors: { code: string }[] }).errors[0].code, "TOOMANYREQUESTS", "429 body");
  check.note(`wrong passwords: ${refusedAt - 1} × 401, then 429 TOOMANYREQUESTS with Retry-After: 60 (limit ${perMinute}/min per client address, ${seconds.toFixed(1)} s)`);

  // A bounded flood of wrong passwords while the cached user pulls: 4 keep-alive connections
  // from this process (as a scripted attacker would send them; spawning a curl per request
  // would mostly measure process start-up on the shared cores), ≤ 3000 requests, ≤ 30 s.
  const before = await medianPull(t, ref, PULL_SAMPLES);
  const servers = [`${t.prefix}-proxy`, await instanceOf(t.engine, `${t.prefix}-auth`)];
  const serverCpuBefore = await Promise.all(servers.map((n) => containerCpuNs(t.engine, n)));
  const clientCpuBefore = process.cpuUsage();
  const flood = new WrongPasswordFlood(t, { connections: 4, maxRequests: 3000, maxMs: 30_000 });
  const floodDone = flood.run();
  const during = await medianPull(t, ref, PULL_SAMPLES);
  flood.stop();
  const sent = await floodDone;
  const clientCpu = process.cpuUsage(clientCpuBefore);
  const serverCpuMs = (await Promise.all(servers.map((n) => containerCpuNs(t.engine, n)))).map((ns, i) => (ns - serverCpuBefore[i]) / 1e6);
  const cached = await curl({ url: `${t.baseUrl}/v2/`, cacert: t.cacert, credentials: `${t.user.name}:${t.user.password}`, scratchDir: t.scratch });
  assertEqual(cached.status, 200, "cached login while this address is limited");
  check.note(
    `pull of ${ref} by the logged-in user, median of ${PULL_SAMPLES}: ${before.median} ms before (${before.samples.join(", ")}), ` +
      `${during.median} ms during a flood of ${sent.total} wrong passwords in ${(sent.ms / 1000).toFixed(1)} s (answers ${JSON.stringify(sent.statuses)}): ratio ${(during.median / before.median).toFixed(2)}×; ` +
      `server CPU meanwhile (flood and pulls): proxy ${serverCpuMs[0].toFixed(0)} ms, verifier ${serverCpuMs[1].toFixed(0)} ms; the flooding client (this process) ${((clientCpu.user + clientCpu.system) / 1000).toFixed(0)} ms on the same 2 cores; ` +
      "a cached login still gets 200 (a new login from the same address waits for the limit like a wrong one)",
  );
}

interface LoginAnswer {
  status: number;
  body: string;
  retryAfter?: string;
  ms: number;
}

/** GET /v2/ of the proxy on its network, sent from `localAddress` with Basic credentials. */
function loginFrom(proxy: { address: string; ca: string }, localAddress: string, name: string, password: string): Promise<LoginAnswer> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: proxy.address, port: NginxProxy.LISTEN_PORT, path: "/v2/", localAddress, ca: proxy.ca, servername: "localhost", agent: false, timeout: 20_000, headers: { Authorization: `Basic ${Buffer.from(`${name}:${password}`).toString("base64")}` } },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString("utf8")));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers["retry-after"] as string | undefined, ms: Date.now() - started }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`a login from ${localAddress}: no answer within 20 s`)));
    req.on("error", reject);
  });
}

const MANY_ADDRESSES = 8;

/**
 * Logins from many addresses, each within its own budget (issue 22): the budget of all addresses
 * together lets `perMinuteAll` a minute reach the verifier, `queue` of them waiting their turn,
 * and answers the rest 429 at once, instead of every guess sharing the verifier's cores. A login
 * verified before keeps working when its cached answer has expired while that budget is spent.
 */
export async function manyAddressesLoginChecks(check: Check, t: HardeningTarget, o: { user: { name: string; password: string }; cacheSeconds: number; perMinuteAll: number; queue: number }): Promise<void> {
  const clients = await addClientAddresses(t.engine, `${t.prefix}-proxy`, MANY_ADDRESSES);
  const proxy = { address: clients.containerAddress, ca: fs.readFileSync(t.cacert, "utf8") };
  const [own, ...others] = clients.addresses;
  try {
    const verifiedAt = Date.now();
    assertEqual((await loginFrom(proxy, own, o.user.name, o.user.password)).status, 200, `${o.user.name}'s first login from ${own}`);

    // 10 wrong passwords from each address at once: 80 logins, each address within its budget of 30.
    const started = Date.now();
    const wrong = await Promise.all(clients.addresses.flatMap((a, i) => Array.from({ length: 10 }, (_, k) => loginFrom(proxy, a, o.user.name, `guess-${i}-${k}`))));
    const seconds = (Date.now() - started) / 1000;
    const count = (status: number) => wrong.filter((w) => w.status === status).length;
    wrong.forEach((w) => assert(w.status === 401 || w.status === 429, `a wrong password: expected 401 or 429, got ${w.status}`));
    const admitted = 1 + o.queue + Math.ceil((o.perMinuteAll / 60) * seconds);
    assert(count(401) <= admitted, `${count(401)} wrong passwords verified (401) in ${seconds.toFixed(1)} s; the budget of all addresses admits at most ${admitted}`);
    const refused = wrong.find((w) => w.status === 429);
    assert(refused !== undefined, `no 429 among ${wrong.length} wrong passwords from ${MANY_ADDRESSES} addresses (${count(401)} × 401 in ${seconds.toFixed(1)} s)`);
    assertEqual((JSON.parse(refused.body) as { errors: { code: string }[] }).errors[0].code, "TOOMANYREQUESTS", "429 body");
    assertEqual(refused.retryAfter, "60", "Retry-After");
    const slowest = Math.max(...wrong.map((w) => w.ms));
    check.note(
      `${wrong.length} wrong passwords at once from ${MANY_ADDRESSES} addresses (10 each, within each address's budget): ${count(401)} × 401 (verified), ${count(429)} × 429, ` +
        `all answered within ${(slowest / 1000).toFixed(1)} s (budget of all addresses ${o.perMinuteAll}/min, ${o.queue} waiting)`,
    );

    // Keep the cached answer in use (nginx drops entries unused for cacheSeconds), then let it expire.
    await sleep(Math.max(0, verifiedAt + (o.cacheSeconds * 2000) / 3 - Date.now()));
    assertEqual((await loginFrom(proxy, own, o.user.name, o.user.password)).status, 200, `${o.user.name} within authCacheSeconds`);
    await sleep(Math.max(0, verifiedAt + (o.cacheSeconds + 3) * 1000 - Date.now()));
    // Spend the budget of all addresses from the other addresses; once it refuses, log in with the expired answer.
    let refusals = 0;
    const spending = Promise.all(
      others.flatMap((a, i) =>
        Array.from({ length: 6 }, (_, k) =>
          loginFrom(proxy, a, o.user.name, `again-${i}-${k}`).then((w) => {
            if (w.status === 429) refusals++;
            return w;
          }),
        ),
      ),
    );
    await pollUntil("the budget of all addresses refusing guesses", async () => (refusals >= 5 ? true : undefined), { timeoutMs: 20_000, intervalMs: 20 });
    const expired = await loginFrom(proxy, own, o.user.name, o.user.password);
    const after = await loginFrom(proxy, own, o.user.name, "one-more-guess");
    const spent = await spending;
    assertEqual(expired.status, 200, `${o.user.name}'s login ${o.cacheSeconds + 3} s after its verification, while the budget is spent`);
    check.note(
      `${o.user.name}, verified ${((Date.now() - verifiedAt) / 1000).toFixed(0)} s before (authCacheSeconds ${o.cacheSeconds}), logs in while ${spent.filter((w) => w.status === 429).length} of ${spent.length} ` +
        `guesses from ${others.length} addresses get 429: 200 in ${expired.ms} ms (the expired cached answer; a wrong password right after: ${after.status})`,
    );
  } finally {
    await clients.remove();
  }
}
