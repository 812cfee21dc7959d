import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  MirrorStatus,
  mirrorHealthCommand,
  mirrorModeSocketPath,
  mirrorOfflineFlagPath,
  mirrorStatusPath,
  renderMirrorSupervisor,
  MirrorSupervisorInput,
} from "../../renderers/mirror-supervisor";
import { stopScript, until } from "../fixtures/script-runs";

/**
 * The supervisor run for real by /bin/sh (dash here; busybox ash in the image: the e2e
 * `mirrors-outage` deployment runs it there) with stand-ins on PATH: `registry` (node: listens
 * on the config's socket; in proxy mode it exits at start when the upstream is down, as
 * distribution#4038 panics) and `wget` (answers a 401 status line while the upstream is up).
 */

const UP_FILE = "upstream-up";

function fakeTools(dir: string): string {
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  fs.writeFileSync(
    path.join(bin, "registry"),
    `#!${process.execPath}
const fs = require("fs"), net = require("net");
const text = fs.readFileSync(process.argv[3], "utf8");
const addr = /^\\s+addr: (.+)$/m.exec(text)[1].trim();
const proxy = /^proxy:/m.test(text);
if (proxy && !fs.existsSync(${JSON.stringify(path.join(dir, UP_FILE))})) { console.error("panic: upstream does not answer"); process.exit(2); }
fs.appendFileSync(${JSON.stringify(path.join(dir, "starts"))}, (proxy ? "proxy" : "offline") + "\\n");
const server = net.createServer((c) => c.end(proxy ? "proxy" : "offline")).listen(addr);
process.on("SIGTERM", () => { server.close(); process.exit(0); });
`,
    { mode: 0o755 },
  );
  fs.writeFileSync(
    path.join(bin, "wget"),
    `#!/bin/sh
if [ -e ${JSON.stringify(path.join(dir, UP_FILE))} ]; then echo "  HTTP/1.1 401 Unauthorized" >&2; exit 1; fi
echo "wget: bad address 'upstream.test'" >&2
exit 1
`,
    { mode: 0o755 },
  );
  return bin;
}

function input(dir: string): MirrorSupervisorInput {
  const socketPath = path.join(dir, "sockets", "mirror-hub-0123456789.sock");
  fs.mkdirSync(path.dirname(socketPath));
  const config = (name: string, listen: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `version: 0.1\nhttp:\n  net: unix\n  addr: ${listen}\n${name.startsWith("proxy") ? "proxy:\n  remoteurl: https://upstream.test\n" : ""}`);
    return file;
  };
  return {
    proxyConfigPath: config("proxy.yml", mirrorModeSocketPath(socketPath, "proxy")),
    offlineConfigPath: config("offline.yml", mirrorModeSocketPath(socketPath, "offline")),
    socketPath,
    upstreamUrl: "https://upstream.test/",
    probeIntervalSeconds: 1,
    probeTimeoutSeconds: 1,
    failuresToOffline: 2,
    startTimeoutSeconds: 10,
  };
}

function status(socketPath: string): MirrorStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(mirrorStatusPath(socketPath), "utf8")) as MirrorStatus;
  } catch {
    return undefined;
  }
}

/** What the registry behind the socket nginx uses says it is. */
async function servedBy(socketPath: string): Promise<string> {
  const net = await import("net");
  return new Promise((resolve, reject) => {
    let data = "";
    const c = net.createConnection(socketPath);
    c.on("data", (d) => (data += d.toString()));
    c.on("end", () => resolve(data));
    c.on("error", reject);
  });
}

describe("renderMirrorSupervisor", () => {
  let dir: string;
  let child: ChildProcess | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mirror-supervisor-"));
  });
  afterEach(async () => {
    await stopScript(child);
    child = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function startSupervisor(i: MirrorSupervisorInput): { stderr: () => string } {
    let stderr = "";
    child = spawn("/bin/sh", ["-c", renderMirrorSupervisor(i)], { env: { ...process.env, PATH: `${fakeTools(dir)}:${process.env.PATH}` } });
    child.stderr!.on("data", (d) => (stderr += d.toString()));
    return { stderr: () => stderr };
  }

  test("starts offline while the upstream is down, switches to proxy when it answers and back when it stops", async () => {
    const i = input(dir);
    const log = startSupervisor(i);
    const first = await until("the offline status", () => (status(i.socketPath)?.mode === "offline" ? status(i.socketPath) : undefined));
    expect(first.upstream).toBe("https://upstream.test/");
    expect(await servedBy(i.socketPath)).toBe("offline");
    expect(fs.existsSync(mirrorOfflineFlagPath(i.socketPath))).toBe(true);
    expect(fs.readlinkSync(i.socketPath)).toBe("mirror-hub-0123456789.sock.offline");
    expect((fs.statSync(mirrorModeSocketPath(i.socketPath, "offline")).mode & 0o777).toString(8)).toBe("666");

    fs.writeFileSync(path.join(dir, UP_FILE), "");
    await until("the proxy status", () => (status(i.socketPath)?.mode === "proxy" ? true : undefined));
    expect(await servedBy(i.socketPath)).toBe("proxy");
    expect(fs.existsSync(mirrorOfflineFlagPath(i.socketPath))).toBe(false);
    // The previous mode's registry is stopped and its socket removed.
    await until("the offline socket to go", () => (fs.existsSync(mirrorModeSocketPath(i.socketPath, "offline")) ? undefined : true));

    fs.rmSync(path.join(dir, UP_FILE));
    const downAt = Date.now();
    await until("the offline status again", () => (status(i.socketPath)?.mode === "offline" ? true : undefined));
    // Two failed probes a second apart, not the first one.
    expect(Date.now() - downAt).toBeGreaterThanOrEqual(1000);
    expect(await servedBy(i.socketPath)).toBe("offline");
    expect(fs.readFileSync(path.join(dir, "starts"), "utf8")).toBe("offline\nproxy\noffline\n");
    expect(log.stderr()).toMatch(/did not answer 2 probes in a row: switching to offline/);
  });

  test("starts in proxy mode when the upstream answers; SIGTERM stops the registry and removes its files", async () => {
    fs.writeFileSync(path.join(dir, UP_FILE), "");
    const i = input(dir);
    startSupervisor(i);
    await until("the proxy status", () => (status(i.socketPath)?.mode === "proxy" ? true : undefined));
    expect(await servedBy(i.socketPath)).toBe("proxy");
    const exited = new Promise<number | null>((r) => child!.once("exit", (code) => r(code)));
    child!.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(fs.readdirSync(path.dirname(i.socketPath))).toEqual([]);
  });

  test("stays offline when proxy mode fails to start although the upstream answers the probe", async () => {
    const i = input(dir);
    // The probe says up, but the registry's own ping fails (distribution#4038 panics).
    const log = startSupervisor(i);
    await until("the offline status", () => (status(i.socketPath)?.mode === "offline" ? true : undefined));
    fs.writeFileSync(path.join(dir, "bin", "wget"), '#!/bin/sh\necho "  HTTP/1.1 401 Unauthorized" >&2\nexit 1\n', { mode: 0o755 });
    await until("a failed proxy start", () => (/proxy mode did not start/.test(log.stderr()) ? true : undefined));
    expect(status(i.socketPath)?.mode).toBe("offline");
    expect(await servedBy(i.socketPath)).toBe("offline");
  });

  test("exits with the registry's status when the serving registry dies (the restart policy takes over)", async () => {
    const i = input(dir);
    startSupervisor(i);
    await until("the offline status", () => (status(i.socketPath)?.mode === "offline" ? true : undefined));
    const exited = new Promise<number | null>((r) => child!.once("exit", (code) => r(code)));
    spawnSync("pkill", ["-KILL", "-P", String(child!.pid), "-f", "offline.yml"]);
    expect(await exited).toBe(137);
  });

  test("an upstream answering 5xx counts as down", async () => {
    const i = input(dir);
    const log = startSupervisor(i);
    fs.writeFileSync(path.join(dir, "bin", "wget"), '#!/bin/sh\necho "  HTTP/1.1 503 Service Unavailable" >&2\nexit 1\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, UP_FILE), "");
    await until("the offline status", () => (status(i.socketPath)?.mode === "offline" ? true : undefined));
    await new Promise((r) => setTimeout(r, 3000));
    expect(status(i.socketPath)?.mode).toBe("offline");
    expect(fs.readFileSync(path.join(dir, "starts"), "utf8")).toBe("offline\n");
    expect(log.stderr()).not.toMatch(/proxy/);
  });

  test("a TLS alert from the upstream counts as an answer (busybox's own TLS and Go's server); a refused connection does not", async () => {
    const i = input(dir);
    const log = startSupervisor(i);
    await until("the offline status", () => (status(i.socketPath)?.mode === "offline" ? true : undefined));
    fs.writeFileSync(path.join(dir, "bin", "wget"), "#!/bin/sh\necho \"wget: can't connect to remote host (10.0.0.2): Connection refused\" >&2\nexit 1\n", { mode: 0o755 });
    fs.writeFileSync(path.join(dir, UP_FILE), "");
    await new Promise((r) => setTimeout(r, 2500));
    expect(status(i.socketPath)?.mode).toBe("offline");
    fs.writeFileSync(
      path.join(dir, "bin", "wget"),
      '#!/bin/sh\necho "Connecting to upstream.test:5000 (10.0.0.2:5000)" >&2\necho "wget: TLS error from peer (alert code 40): handshake failure" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    await until("the proxy status", () => (status(i.socketPath)?.mode === "proxy" ? true : undefined));
    expect(log.stderr()).toMatch(/serving in proxy mode/);
  });

  test("fails when a timing is not a whole number of seconds", () => {
    expect(() => renderMirrorSupervisor({ ...input(dir), probeIntervalSeconds: 0.5 })).toThrow("probeIntervalSeconds must be a whole number ≥ 1, got 0.5");
  });
});

describe("mirrorHealthCommand", () => {
  test("needs the socket nginx uses and either mode's debug server", () => {
    expect(mirrorHealthCommand("/run/registry-stack/m.sock", 5001)).toBe(
      "test -S '/run/registry-stack/m.sock' && { wget -q -O /dev/null http://127.0.0.1:5001/debug/health || wget -q -O /dev/null http://127.0.0.1:5002/debug/health; }",
    );
  });
});
