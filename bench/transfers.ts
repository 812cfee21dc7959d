import * as crypto from "crypto";
import * as fs from "fs";
import { Engine } from "../e2e/engine";
import { run } from "../e2e/proc";

/** A target of blob transfers with curl: a base URL on 127.0.0.1 (or a unix socket) and how to reach it. */
export interface Endpoint {
  readonly label: string;
  /** e.g. https://127.0.0.1:41234, or http://localhost with `unixSocket` */
  readonly base: string;
  readonly caFile?: string;
  readonly unixSocket?: string;
  /** user:password */
  readonly credentials?: string;
}

export interface BlobFile {
  readonly file: string;
  readonly size: number;
  readonly digest: string;
}

/** Writes `size` random bytes to `file` in 16 MiB pieces and returns its sha256 digest. */
export function writeRandomBlob(file: string, size: number): BlobFile {
  const hash = crypto.createHash("sha256");
  const fd = fs.openSync(file, "w", 0o600);
  try {
    const piece = Buffer.alloc(16 * 1024 * 1024);
    for (let written = 0; written < size; ) {
      const n = Math.min(piece.length, size - written);
      crypto.randomFillSync(piece, 0, n);
      fs.writeSync(fd, piece, 0, n);
      hash.update(piece.subarray(0, n));
      written += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { file, size, digest: `sha256:${hash.digest("hex")}` };
}

function curlArgs(ep: Endpoint, timeoutMs: number): string[] {
  // No `Expect: 100-continue` (curl waits up to 1 s for it; Docker's client never sends it).
  return [
    "-sS",
    "--http1.1",
    "-H",
    "Expect:",
    "-m",
    String(Math.max(1, Math.floor(timeoutMs / 1000))),
    ...(ep.caFile ? ["--cacert", ep.caFile] : []),
    ...(ep.unixSocket ? ["--unix-socket", ep.unixSocket] : []),
    ...(ep.credentials ? ["-u", ep.credentials] : []),
  ];
}

interface CurlResult {
  status: number;
  seconds: number;
  headers: string;
}

async function curl(ep: Endpoint, args: string[], timeoutMs: number): Promise<CurlResult> {
  const { stdout } = await run("curl", [...curlArgs(ep, timeoutMs), "-D", "-", "-o", "/dev/null", "-w", "\n%{http_code} %{time_total}", ...args], { timeoutMs: timeoutMs + 5_000 });
  const lines = stdout.trimEnd().split("\n");
  const [code, seconds] = lines[lines.length - 1].split(" ");
  return { status: Number(code), seconds: Number(seconds), headers: lines.slice(0, -1).join("\n") };
}

export interface UploadTimes {
  readonly post: number;
  readonly patch: number;
  readonly put: number;
}

function location(ep: Endpoint, headers: string, what: string): URL {
  const m = /^location:\s*(\S+)/im.exec(headers);
  if (!m) throw new Error(`${ep.label} ${what}: no Location header:\n${headers}`);
  return new URL(m[1], ep.base);
}

/**
 * Pushes a blob the way docker push sends a layer: POST (start), one PATCH streaming the file
 * with chunked transfer encoding, PUT ?digest= (commit). Returns curl's time_total of each of the
 * three requests, in seconds.
 */
export async function uploadBlob(ep: Endpoint, repo: string, blob: BlobFile, timeoutMs: number): Promise<UploadTimes> {
  const started = await curl(ep, ["-X", "POST", `${ep.base}/v2/${repo}/blobs/uploads/`], 30_000);
  if (started.status !== 202) throw new Error(`${ep.label} POST upload: HTTP ${started.status}\n${started.headers}`);
  const patchUrl = location(ep, started.headers, "POST upload");
  const patch = await curl(ep, ["-X", "PATCH", "-H", "Content-Type: application/octet-stream", "-H", "Transfer-Encoding: chunked", "-T", blob.file, patchUrl.toString()], timeoutMs);
  if (patch.status !== 202) throw new Error(`${ep.label} PATCH: HTTP ${patch.status}\n${patch.headers}`);
  const putUrl = location(ep, patch.headers, "PATCH");
  putUrl.searchParams.set("digest", blob.digest);
  const put = await curl(ep, ["-X", "PUT", "-H", "Content-Length: 0", putUrl.toString()], 60_000);
  if (put.status !== 201) throw new Error(`${ep.label} PUT: HTTP ${put.status}\n${put.headers}`);
  return { post: started.seconds, patch: patch.seconds, put: put.seconds };
}

/** GETs the blob to /dev/null; returns curl's time_total in seconds. */
export async function downloadBlob(ep: Endpoint, repo: string, blob: BlobFile, timeoutMs: number): Promise<number> {
  const { stdout } = await run("curl", [...curlArgs(ep, timeoutMs), "-o", "/dev/null", "-w", "%{http_code} %{time_total} %{size_download}", `${ep.base}/v2/${repo}/blobs/${blob.digest}`], {
    timeoutMs: timeoutMs + 5_000,
  });
  const [code, seconds, size] = stdout.trim().split(" ");
  if (code !== "200" || Number(size) !== blob.size) throw new Error(`${ep.label} GET blob: HTTP ${code}, ${size} of ${blob.size} bytes`);
  return Number(seconds);
}

/** CPU seconds a container has used so far (the engine's one-shot stats). */
export async function containerCpuSeconds(engine: Engine, container: string): Promise<number> {
  const stats = await engine.api.call<{ cpu_stats: { cpu_usage: { total_usage: number } } }>({ method: "GET", path: `/containers/${container}/stats?stream=false&one-shot=true` });
  return stats.cpu_stats.cpu_usage.total_usage / 1e9;
}

/** CPU seconds of this process's finished children (the curl processes), from /proc/self/stat. */
export function childrenCpuSeconds(): number {
  const stat = fs.readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 16 and 17 (cutime, cstime), counted from field 3 (state) at index 0; in clock ticks of 10 ms.
  return (Number(fields[13]) + Number(fields[14])) / 100;
}
