import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { Engine, DOCKER_CLI } from "./engine";
import { assert, AssertionError, clip } from "./harness";
import { CommandError, run, RunResult, sleep } from "./proc";

/**
 * The real, unmodified clients the suite drives: the docker CLI (against the private
 * engine's socket), curl, openssl and skopeo. Every call is bounded in time.
 */

// ---------------------------------------------------------------------------------------------
// docker CLI

export interface ImageInfo {
  Id: string;
  RepoDigests: string[];
  RepoTags: string[];
}

/** The docker CLI against the private engine, with its own DOCKER_CONFIG (so logins do not mix). */
export class DockerClient {
  constructor(
    readonly engine: Engine,
    readonly configDir: string,
  ) {
    fs.mkdirSync(configDir, { recursive: true, mode: 0o700 });
  }

  run(args: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    return run(DOCKER_CLI, args, {
      // Classic builder (no BuildKit daemon-side session), as the issue asks.
      env: { ...this.engine.dockerEnv(), DOCKER_CONFIG: this.configDir, DOCKER_BUILDKIT: "0" },
      timeoutMs: opts.timeoutMs ?? 120_000,
      input: opts.input,
    });
  }

  async login(endpoint: string, user: string, password: string): Promise<string> {
    const { stdout } = await this.run(["login", "--username", user, "--password-stdin", endpoint], { input: password, timeoutMs: 30_000 });
    return stdout.trim();
  }

  /** `docker build` with the classic builder; returns the image ID. */
  async build(contextDir: string, tag: string, timeoutMs = 180_000): Promise<string> {
    await this.run(["build", "--quiet", "--tag", tag, contextDir], { timeoutMs });
    return (await this.inspect(tag)).Id;
  }

  async tag(source: string, target: string): Promise<void> {
    await this.run(["tag", source, target], { timeoutMs: 30_000 });
  }

  /** `docker push`; returns the manifest digest it reports. */
  async push(ref: string, timeoutMs = 240_000): Promise<{ digest: string; output: string }> {
    const { stdout } = await this.run(["push", ref], { timeoutMs });
    const m = /digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(stdout);
    if (!m) throw new AssertionError(`docker push ${ref}: no digest in output:\n${clip(stdout, 1500)}`);
    return { digest: m[1], output: stdout };
  }

  /** `docker pull`; returns the manifest digest it reports. */
  async pull(ref: string, timeoutMs = 240_000): Promise<{ digest: string; output: string }> {
    const { stdout } = await this.run(["pull", ref], { timeoutMs });
    const m = /Digest: (sha256:[0-9a-f]{64})/.exec(stdout);
    if (!m) throw new AssertionError(`docker pull ${ref}: no digest in output:\n${clip(stdout, 1500)}`);
    return { digest: m[1], output: stdout };
  }

  async inspect(ref: string): Promise<ImageInfo> {
    const { stdout } = await this.run(["image", "inspect", "--format", "{{json .}}", ref], { timeoutMs: 30_000 });
    return JSON.parse(stdout) as ImageInfo;
  }

  async imageExists(ref: string): Promise<boolean> {
    return this.inspect(ref).then(
      () => true,
      (err: unknown) => {
        if (err instanceof CommandError && /No such image/i.test(err.stderr)) return false;
        throw err;
      },
    );
  }

  async rmi(...refs: string[]): Promise<void> {
    await this.run(["rmi", ...refs], { timeoutMs: 60_000 });
  }

  /** Runs a command in a throwaway container without network and returns its stdout. */
  async runInImage(image: string, command: string[]): Promise<string> {
    const { stdout } = await this.run(["run", "--rm", "--network", "none", "--entrypoint", command[0], image, ...command.slice(1)], {
      timeoutMs: 120_000,
    });
    return stdout;
  }
}

// ---------------------------------------------------------------------------------------------
// Build contexts with generated files

export interface GeneratedFile {
  /** Path inside the image. */
  imagePath: string;
  sha256: string;
  size: number;
}

/** Writes `size` random bytes to `file` in 1 MiB pieces; returns its sha256. */
export function writeRandomFile(file: string, size: number): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const hash = crypto.createHash("sha256");
  const fd = fs.openSync(file, "w");
  try {
    for (let left = size; left > 0; ) {
      const chunk = crypto.randomBytes(Math.min(left, 1024 * 1024));
      hash.update(chunk);
      fs.writeSync(fd, chunk);
      left -= chunk.length;
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}

/**
 * A build context: FROM `base`, then one COPY per layer, each of generated random files.
 * Returns the files with their expected hashes.
 */
export function writeLayeredContext(dir: string, base: string, layers: { files: number; bytesEach: number }[]): GeneratedFile[] {
  const files: GeneratedFile[] = [];
  const lines = [`FROM ${base}`];
  layers.forEach((layer, i) => {
    const name = `layer${i + 1}`;
    for (let f = 0; f < layer.files; f++) {
      const rel = path.join(name, `file${f + 1}.bin`);
      const sha256 = writeRandomFile(path.join(dir, rel), layer.bytesEach);
      files.push({ imagePath: `/data/${rel}`, sha256, size: layer.bytesEach });
    }
    lines.push(`COPY ${name}/ /data/${name}/`);
  });
  lines.push(`LABEL org.example.e2e="registry-stack"`);
  fs.writeFileSync(path.join(dir, "Dockerfile"), lines.join("\n") + "\n");
  return files;
}

// ---------------------------------------------------------------------------------------------
// curl

export interface HttpResult {
  status: number;
  /** Lower-cased header names; the last value wins. */
  headers: Record<string, string>;
  body: string;
}

export interface HttpRequest {
  url: string;
  method?: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Request body (--data-binary @file). */
  bodyFile?: string;
  /** Keep the response body in this file (binary) instead of returning it as text. */
  saveBodyTo?: string;
  /** CA file for --cacert (https). */
  cacert?: string;
  /** "user:password" */
  credentials?: string;
  headers?: string[];
  /** --resolve entries, e.g. "store.example.test:5000:127.0.0.1". */
  resolve?: string[];
  /** Where curl writes the body and headers (a directory the suite owns). */
  scratchDir: string;
}

let curlCounter = 0;

/** One request with curl; HTTP errors are results, transport/TLS errors throw (with curl's message). */
export async function curl(req: HttpRequest): Promise<HttpResult> {
  const n = ++curlCounter;
  const headerFile = path.join(req.scratchDir, `curl-${n}.headers`);
  const bodyFile = req.saveBodyTo ?? path.join(req.scratchDir, `curl-${n}.body`);
  const args = ["-sS", "-m", "30", "-o", bodyFile, "-D", headerFile, "-w", "%{http_code}"];
  if (req.method === "HEAD") args.push("-I");
  else if (req.method !== undefined && req.method !== "GET") args.push("-X", req.method);
  if (req.bodyFile) args.push("--data-binary", `@${req.bodyFile}`);
  if (req.cacert) args.push("--cacert", req.cacert);
  if (req.credentials) args.push("-u", req.credentials);
  for (const h of req.headers ?? []) args.push("-H", h);
  for (const r of req.resolve ?? []) args.push("--resolve", r);
  args.push(req.url);
  try {
    const { stdout } = await run("curl", args, { timeoutMs: 40_000 });
    const headers: Record<string, string> = {};
    const raw = fs.readFileSync(headerFile, "utf8");
    for (const line of raw.split(/\r?\n/)) {
      const m = /^([^:\s]+):\s*(.*)$/.exec(line);
      if (m) headers[m[1].toLowerCase()] = m[2];
    }
    const body = !req.saveBodyTo && fs.existsSync(bodyFile) ? fs.readFileSync(bodyFile, "utf8") : "";
    return { status: Number(stdout.trim()), headers, body };
  } finally {
    fs.rmSync(headerFile, { force: true });
    if (!req.saveBodyTo) fs.rmSync(bodyFile, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// openssl

export interface TlsProbe {
  /** s_client exited 0 and a cipher was negotiated. */
  ok: boolean;
  /** stdout + stderr of s_client */
  output: string;
  protocol?: string;
  verifyResult?: string;
}

/** `openssl s_client` with stdin closed; never throws for a failed handshake (ok=false). */
export async function sClient(args: string[]): Promise<TlsProbe> {
  const full = ["s_client", ...args];
  let output: string;
  let ok: boolean;
  try {
    const r = await run("openssl", full, { timeoutMs: 20_000, input: "" });
    output = `${r.stdout}\n${r.stderr}`;
    ok = true;
  } catch (err) {
    if (!(err instanceof CommandError) || err.exitCode === null) throw err;
    output = `${err.stdout}\n${err.stderr}`;
    ok = false;
  }
  // "Protocol" is printed even when the handshake failed; "Cipher is (NONE)" tells.
  const cipher = /^New, \S+, Cipher is (\S+)/m.exec(output)?.[1];
  ok = ok && cipher !== undefined && cipher !== "(NONE)";
  // The session block (with "Protocol") may be missing for TLS 1.3 when stdin closes at once.
  const protocol = /^\s*Protocol\s*:\s*(\S+)/m.exec(output)?.[1] ?? /^New, (TLSv1\.3),/m.exec(output)?.[1];
  const verifyResult = /Verify return code: (\d+ \([^)]*\))/.exec(output)?.[1];
  return { ok, output, protocol, verifyResult };
}

/** A test CA unrelated to the stack's: `<dir>/ca.crt` (and its key). */
export async function makeOtherCa(dir: string): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const crt = path.join(dir, "ca.crt");
  await run(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2", "-subj", "/CN=e2e unrelated CA",
      "-keyout", path.join(dir, "ca.key"), "-out", crt],
    { timeoutMs: 30_000 },
  );
  // skopeo's --cert-dir treats every *.key as a client key that needs a matching *.cert.
  fs.renameSync(path.join(dir, "ca.key"), path.join(dir, "..", `${path.basename(dir)}.ca-key.pem`));
  return crt;
}

/**
 * A throwaway `openssl s_server` allowing exactly one old protocol, as a positive control:
 * it shows the s_client invocation used against the proxy really offers that protocol.
 * Serves `connections` handshakes, then exits; killed by pid if still running.
 */
export async function withPermissiveTlsServer<T>(
  opts: { certFile: string; keyFile: string; protocolFlag: "-tls1" | "-tls1_1"; port: number; connections: number },
  fn: (port: number) => Promise<T>,
): Promise<T> {
  // stdin stays open (a pipe never written to): s_server shuts down at EOF on stdin.
  const child: ChildProcess = spawn(
    "openssl",
    ["s_server", "-accept", `127.0.0.1:${opts.port}`, "-cert", opts.certFile, "-key", opts.keyFile, opts.protocolFlag,
      "-cipher", "DEFAULT@SECLEVEL=0", "-naccept", String(opts.connections)],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  child.stdin?.on("error", () => undefined);
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => child.once("exit", () => ((exited = true), resolve())));
  child.once("error", () => undefined);
  try {
    // It prints ACCEPT once it listens (a probe connection would use up one of its accepts).
    for (let i = 0; i < 100 && !/^ACCEPT$/m.test(output) && !exited; i++) await sleep(50);
    assert(/^ACCEPT$/m.test(output), `openssl s_server did not listen on 127.0.0.1:${opts.port}: ${clip(output)}`);
    return await fn(opts.port);
  } finally {
    child.stdin?.end();
    if (!exited && child.pid !== undefined) {
      process.kill(child.pid, "SIGTERM");
      await Promise.race([exitPromise, sleep(5_000)]);
      if (!exited) process.kill(child.pid, "SIGKILL");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// skopeo

/** skopeo with an explicit policy (accept anything: signatures are not under test). */
export class Skopeo {
  readonly policyFile: string;

  constructor(dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    this.policyFile = path.join(dir, "policy.json");
    fs.writeFileSync(this.policyFile, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  }

  run(args: string[], timeoutMs = 120_000): Promise<RunResult> {
    // TLS verification is on by default for docker:// (--*-tls-verify=true); never turned off here.
    return run("skopeo", ["--policy", this.policyFile, ...args], { timeoutMs });
  }
}

// ---------------------------------------------------------------------------------------------

/** A free TCP port on 127.0.0.1 (not handed out twice by this process). */
const handedOut = new Set<number>();
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error("no free port after 20 attempts");
}

export function sha256File(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}
