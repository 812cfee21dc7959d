import { spawn, ChildProcess } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DockerApi, pollUntil } from "./docker-api";
import { run, RunResult, sleep } from "./proc";

/**
 * A private Docker Engine for one e2e run: its own socket, data-root, exec-root, pidfile,
 * config file and trust key, all under one temp dir. It never reads /etc/docker/daemon.json
 * and never touches /var/run/docker.sock or another engine.
 */

export const DOCKERD = "/usr/sbin/dockerd";
/** The CLI from Debian's docker.io, matching the engine (a newer CLI in PATH also works). */
export const DOCKER_CLI = "/usr/bin/docker";
/**
 * Default address pool for the engine's networks (the e2e suite's): keeps clear of Docker's
 * default pools (172.17-31.x, 192.168.x), which another engine on the host would use. Another
 * private engine running at the same time (the benchmark) must pass its own `addressPool`.
 */
export const ADDRESS_POOL = "base=10.213.0.0/16,size=24";

/**
 * Engine-wide settings hardened hosts have, which a provider may read back into a container's
 * attributes: the suite's engine has them all, so an empty plan after a deploy holds on such
 * hosts too. live-restore keeps containers running while dockerd is down (stop() removes them).
 */
export const HOST_DEFAULTS: Record<string, unknown> = {
  "live-restore": true,
  // Below this sandbox's own hard limit (20000): runc cannot raise it.
  "default-ulimits": { nofile: { Name: "nofile", Soft: 8192, Hard: 16384 } },
  "log-driver": "json-file",
  "log-opts": { "max-size": "20m", "max-file": "2" },
};

export interface EngineOptions {
  /**
   * Let dockerd manage iptables (default true, as on a real host; needed for `internal`
   * networks to be isolated). Port publishing on 127.0.0.1 works either way.
   */
  iptables?: boolean;
  /** Bound for the engine to answer (default 60 s). */
  startTimeoutMs?: number;
  /**
   * `--default-address-pool` for the engine's networks (default ADDRESS_POOL). Give engines
   * that run at the same time on one host different pools, e.g. "base=10.214.0.0/16,size=24".
   */
  addressPool?: string;
  /**
   * More daemon.json settings, e.g. a generated client daemon.json under test (its keys win
   * over the engine's own, except the paths that keep the engine private).
   */
  daemonConfig?: Record<string, unknown>;
  /**
   * Host paths replaced for this engine only: dockerd runs in a mount namespace of its own
   * (`unshare --mount`) where each key (e.g. /etc/hosts, /etc/docker/certs.d) is a bind mount of
   * the value. The host's files are never touched; other engines see the real ones.
   */
  privateFiles?: Record<string, string>;
  /**
   * Run dockerd in this network namespace (/run/netns/<name>) with `nsenter --net=…`, e.g. one
   * node of a test swarm. Not `ip netns exec`: it remounts /sys, which breaks dockerd.
   * @default - the host's network namespace
   */
  netns?: string;
  log?: (line: string) => void;
}

export interface Engine {
  readonly baseDir: string;
  readonly socketPath: string;
  /** unix://… for DOCKER_HOST */
  readonly dockerHost: string;
  readonly pid: number;
  readonly logFile: string;
  /** The engine's own daemon.json (`--config-file`); change it, then reload(). */
  readonly configFile: string;
  readonly api: DockerApi;
  /** process.env plus DOCKER_HOST for this engine and a private DOCKER_CONFIG (docker login writes there). */
  dockerEnv(): NodeJS.ProcessEnv;
  /** Runs the docker CLI against this engine; errors carry its stderr. */
  docker(args: readonly string[], opts?: { timeoutMs?: number; input?: string | Buffer }): Promise<RunResult>;
  /**
   * SIGHUP: dockerd re-reads its config file and applies the reloadable keys (e.g.
   * insecure-registries, debug, labels) without restarting containers. Resolves when the
   * engine answers again; callers check the effect (e.g. with `docker info`).
   */
  reload(): Promise<void>;
  /** SIGTERM, bounded wait, SIGKILL; then removes every directory of the engine. Idempotent. */
  stop(): Promise<void>;
}

export async function startEngine(options: EngineOptions = {}): Promise<Engine> {
  if (process.getuid && process.getuid() !== 0) throw new Error("startEngine: dockerd needs root");
  const missing = [DOCKERD, DOCKER_CLI].filter((file) => !fs.existsSync(file));
  if (missing.length > 0) {
    throw new Error(`startEngine: ${missing.join(" and ")} not found. Run \`sudo bash e2e/setup-host.sh\` first: it installs Debian's docker.io, debootstrap, skopeo, curl and openssl (it starts no service).`);
  }
  const log = options.log ?? (() => undefined);
  // Short base path: unix socket paths are limited to 107 bytes.
  const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), "rse2e-"));
  const socketPath = path.join(baseDir, "docker.sock");
  const dataRoot = path.join(baseDir, "data");
  const execRoot = path.join(baseDir, "exec");
  const configDir = path.join(baseDir, "client-config");
  const logFile = path.join(baseDir, "dockerd.log");
  const pidFile = path.join(baseDir, "docker.pid");
  const daemonJson = path.join(baseDir, "daemon.json");
  fs.mkdirSync(configDir);

  const daemonConfig: Record<string, unknown> = { ...HOST_DEFAULTS, ...options.daemonConfig };
  // dockerd < 23 writes a trust key to /etc/docker/key.json unless told otherwise.
  if ((await dockerdMajorVersion()) < 23) daemonConfig["deprecated-key-path"] = path.join(baseDir, "key.json");
  fs.writeFileSync(daemonJson, JSON.stringify(daemonConfig));

  const args = [
    `--config-file=${daemonJson}`,
    `--host=unix://${socketPath}`,
    `--data-root=${dataRoot}`,
    `--exec-root=${execRoot}`,
    `--pidfile=${pidFile}`,
    // No default bridge: docker0 would collide with another engine's. Containers join the
    // networks the stack declares (a container without one fails to start: a mistake shows).
    "--bridge=none",
    `--default-address-pool=${options.addressPool ?? ADDRESS_POOL}`,
    `--iptables=${options.iptables === false ? "false" : "true"}`,
  ];
  const logFd = fs.openSync(logFile, "a");
  const binds = Object.entries(options.privateFiles ?? {});
  if (options.netns && binds.length > 0) throw new Error("startEngine: netns and privateFiles are not supported together");
  // nsenter, unshare and sh exec: the pid stays dockerd's. Private propagation keeps the binds out of the host.
  const child = options.netns
    ? spawn("nsenter", [`--net=/run/netns/${options.netns}`, DOCKERD, ...args], { stdio: ["ignore", logFd, logFd] })
    : binds.length === 0
      ? spawn(DOCKERD, args, { stdio: ["ignore", logFd, logFd] })
      : spawn(
          "unshare",
          ["--mount", "--propagation", "private", "--", "/bin/sh", "-ec",
            `${binds.map((_, i) => `mount --bind "$${2 * i + 1}" "$${2 * i + 2}"`).join("; ")}; shift ${2 * binds.length}; exec ${DOCKERD} "$@"`,
            "dockerd-private-files", ...binds.flatMap(([target, source]) => [source, target]), ...args],
          { stdio: ["ignore", logFd, logFd] },
        );
  fs.closeSync(logFd);
  if (child.pid === undefined) throw new Error(`could not start ${DOCKERD}`);
  const pid = child.pid;
  let exited = false;
  const exitPromise = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      resolve();
    }),
  );
  child.once("error", () => undefined);
  // If this process ends without stop() (uncaught error, Ctrl-C, kill), dockerd is sent
  // SIGTERM and shuts itself down; only the temp dir stays behind.
  const onExit = () => {
    if (!exited) process.kill(pid, "SIGTERM");
    // live-restore keeps containers running without dockerd: end them with their shims.
    killShims(execRoot);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    onExit();
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.once("exit", onExit);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  child.unref();
  log(`dockerd pid ${pid}, socket ${socketPath}`);

  const api = new DockerApi(socketPath);
  const dockerHost = `unix://${socketPath}`;
  let stopped = false;
  const engine: Engine = {
    baseDir,
    socketPath,
    dockerHost,
    pid,
    logFile,
    configFile: daemonJson,
    api,
    dockerEnv: () => ({ ...process.env, DOCKER_HOST: dockerHost, DOCKER_CONFIG: configDir }),
    docker: (dockerArgs, opts = {}) =>
      run(DOCKER_CLI, dockerArgs, { env: engine.dockerEnv(), timeoutMs: opts.timeoutMs ?? 120_000, input: opts.input }),
    reload: async () => {
      if (stopped || exited) throw new Error("reload: the engine is not running");
      process.kill(pid, "SIGHUP");
      await pollUntil(
        "dockerd to answer /_ping after SIGHUP",
        async () => {
          if (exited) throw new Error(`dockerd exited after SIGHUP:\n${logTail(logFile)}`);
          const res = await api.raw({ method: "GET", path: "/_ping", timeoutMs: 2_000 }).catch(() => undefined);
          return res?.status === 200 ? true : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 100 },
      );
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      process.removeListener("exit", onExit);
      process.removeListener("SIGINT", onSignal);
      process.removeListener("SIGTERM", onSignal);
      // With live-restore, containers would outlive dockerd.
      if (!exited) await removeAllContainers(api, log);
      await stopProcess(child, pid, () => exited, exitPromise, log);
      const shims = killShims(execRoot);
      if (shims > 0) log(`killed ${shims} container shim(s) left running`);
      await stopOrphanContainerd(execRoot, log);
      await removeTree(baseDir, log);
    },
  };

  const started = Date.now();
  try {
    await pollUntil(
      "dockerd to answer /_ping",
      async () => {
        if (exited) throw new Error(`dockerd exited during start-up:\n${logTail(logFile)}`);
        const res = await api.raw({ method: "GET", path: "/_ping", timeoutMs: 2_000 }).catch(() => undefined);
        return res?.status === 200 ? true : undefined;
      },
      { timeoutMs: options.startTimeoutMs ?? 60_000, intervalMs: 100 },
    );
  } catch (err) {
    await engine.stop();
    throw new Error(`private dockerd did not start: ${(err as Error).message}\n${logTail(logFile)}`);
  }
  log(`dockerd ready in ${Date.now() - started} ms`);
  return engine;
}

/** Runs `fn` with a fresh engine and always stops it. */
export async function withEngine<T>(fn: (engine: Engine) => Promise<T>, options: EngineOptions = {}): Promise<T> {
  const engine = await startEngine(options);
  try {
    return await fn(engine);
  } finally {
    await engine.stop();
  }
}

async function dockerdMajorVersion(): Promise<number> {
  const { stdout } = await run(DOCKERD, ["--version"], { timeoutMs: 10_000 });
  const m = /version (\d+)\./.exec(stdout);
  if (!m) throw new Error(`cannot read dockerd version from: ${stdout}`);
  return Number(m[1]);
}

async function stopProcess(
  child: ChildProcess,
  pid: number,
  hasExited: () => boolean,
  exitPromise: Promise<void>,
  log: (line: string) => void,
): Promise<void> {
  if (hasExited()) return;
  const waitExit = (ms: number) =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      void exitPromise.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  child.kill("SIGTERM");
  // dockerd stops its containers (10 s default each, in parallel) and containerd first.
  if (await waitExit(30_000)) return;
  log(`dockerd ${pid} ignored SIGTERM for 30 s; sending SIGKILL`);
  child.kill("SIGKILL");
  if (!(await waitExit(10_000))) throw new Error(`dockerd ${pid} survived SIGKILL`);
}

async function removeAllContainers(api: DockerApi, log: (line: string) => void): Promise<void> {
  try {
    const containers = await api.call<Array<{ Id: string }>>({ method: "GET", path: "/containers/json?all=true" });
    for (const c of containers) await api.call({ method: "DELETE", path: `/containers/${c.Id}?force=true&v=true` }).catch(() => undefined);
    if (containers.length > 0) log(`removed ${containers.length} leftover container(s)`);
  } catch (err) {
    log(`could not list containers: ${(err as Error).message}`);
  }
}

/**
 * SIGKILLs every containerd shim of this engine (its command line names our exec-root) and the
 * container processes below it; synchronous, so that an exit handler can call it.
 */
function killShims(execRoot: string): number {
  const processes: Array<{ pid: number; ppid: number; cmdline: string }> = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      processes.push({ pid: Number(entry), ppid, cmdline: fs.readFileSync(`/proc/${entry}/cmdline`, "utf8") });
    } catch {
      // gone meanwhile
    }
  }
  const shims = processes.filter((p) => p.cmdline.includes("containerd-shim") && p.cmdline.includes(execRoot));
  const below = (pid: number): number[] => processes.filter((p) => p.ppid === pid).flatMap((p) => [...below(p.pid), p.pid]);
  for (const shim of shims) {
    for (const victim of [...below(shim.pid), shim.pid]) {
      try {
        process.kill(victim, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  return shims.length;
}

/** After a SIGKILL, dockerd's managed containerd (pid in our exec-root) may outlive it. */
async function stopOrphanContainerd(execRoot: string, log: (line: string) => void): Promise<void> {
  const pidFile = path.join(execRoot, "containerd", "containerd.pid");
  if (!fs.existsSync(pidFile)) return;
  const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  // Only ours if its command line names our exec-root (pids get reused).
  const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
  if (!cmdline.includes(execRoot)) return;
  log(`stopping orphaned containerd ${pid}`);
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100);
  if (isAlive(pid)) process.kill(pid, "SIGKILL");
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Unmounts whatever is still mounted below dir (deepest first), then deletes it. */
async function removeTree(dir: string, log: (line: string) => void): Promise<void> {
  const mounts = fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((m): m is string => m !== undefined && (m === dir || m.startsWith(dir + "/")))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    log(`unmounting leftover ${m}`);
    await run("umount", ["-l", m], { timeoutMs: 10_000 }).catch((err: Error) => log(err.message));
  }
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

function logTail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no dockerd log)";
  }
}
