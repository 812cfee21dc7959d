import * as crypto from "crypto";
import * as https from "https";
import { sleep } from "./proc";

/**
 * Large blob transfers at a bounded rate, so that one stays in flight across a deploy (issue 18
 * item 6, issue 19 item 1): a pull streamed into a hash, and a push of one streamed PATCH and a
 * PUT with the digest. Each on its own connection; nothing is held in memory but one chunk.
 */

export interface TransferTarget {
  /** https://127.0.0.1:<port> */
  readonly baseUrl: string;
  /** Host header (a configured name with the port). */
  readonly host: string;
  readonly ca: string;
  readonly user: { readonly name: string; readonly password: string };
  readonly repository: string;
}

export interface TransferResult {
  readonly kind: "pull" | "push";
  readonly ok: boolean;
  readonly bytes: number;
  readonly digest: string;
  readonly startedAt: number;
  readonly endedAt: number;
  /** What failed, or what was verified. */
  readonly detail: string;
}

const CHUNK = 1024 * 1024;
const TIMEOUT_MS = 15 * 60_000;

function headersFor(t: TransferTarget, extra: Record<string, string> = {}): Record<string, string> {
  return { Host: t.host, Authorization: `Basic ${Buffer.from(`${t.user.name}:${t.user.password}`).toString("base64")}`, ...extra };
}

/** The n-th chunk of a blob: one random block with the chunk's number in front (every chunk differs). */
function chunkOf(block: Buffer, n: number): Buffer {
  const chunk = Buffer.from(block);
  chunk.writeUInt32BE(n, 0);
  return chunk;
}

/** Reads the whole answer (small requests of the push). */
function small(t: TransferTarget, method: string, path: string, body?: Buffer, extra: Record<string, string> = {}): Promise<{ status: number; location?: string; text: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(path, t.baseUrl), { method, agent: false, ca: t.ca, servername: t.host.split(":")[0], timeout: 60_000, headers: headersFor(t, { ...(body ? { "Content-Length": String(body.length) } : {}), ...extra }) }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, text: Buffer.concat(chunks).toString("utf8").slice(0, 300), headers: res.headers }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within 60 s`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** Pushes a blob of `megabytes` MiB to the repository at once (setup for a later pull). */
export async function pushBlob(t: TransferTarget, megabytes: number, bytesPerSecond = Infinity): Promise<TransferResult> {
  const startedAt = Date.now();
  const block = crypto.randomBytes(CHUNK);
  const hash = crypto.createHash("sha256");
  const fail = (detail: string, bytes = 0): TransferResult => ({ kind: "push", ok: false, bytes, digest: "", startedAt, endedAt: Date.now(), detail });
  try {
    const started = await small(t, "POST", `/v2/${t.repository}/blobs/uploads/`);
    if (started.status !== 202 || !started.location) return fail(`POST upload → ${started.status} ${started.text}`);
    const patchUrl = new URL(started.location, t.baseUrl);
    // One PATCH streaming every chunk at the given rate (chunked transfer encoding, as docker does).
    const patched = await new Promise<{ status: number; location?: string; text: string; sent: number }>((resolve, reject) => {
      const req = https.request(
        patchUrl,
        { method: "PATCH", agent: false, ca: t.ca, servername: t.host.split(":")[0], timeout: TIMEOUT_MS, headers: headersFor(t, { "Content-Type": "application/octet-stream" }) },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, text: Buffer.concat(chunks).toString("utf8").slice(0, 300), sent }));
          res.on("error", reject);
        },
      );
      let sent = 0;
      req.on("timeout", () => req.destroy(new Error(`PATCH: no answer within ${TIMEOUT_MS / 1000} s`)));
      req.on("error", reject);
      void (async () => {
        for (let n = 0; n < megabytes; n++) {
          const chunk = chunkOf(block, n);
          hash.update(chunk);
          sent += chunk.length;
          if (!req.write(chunk)) await new Promise((r) => req.once("drain", r));
          const due = startedAt + (sent / bytesPerSecond) * 1000;
          if (Number.isFinite(due) && due > Date.now()) await sleep(due - Date.now());
        }
        req.end();
      })().catch((err: Error) => req.destroy(err));
    });
    const digest = `sha256:${hash.digest("hex")}`;
    if (patched.status !== 202 || !patched.location) return fail(`PATCH (${patched.sent} bytes) → ${patched.status} ${patched.text}`, patched.sent);
    const putUrl = new URL(patched.location, t.baseUrl);
    putUrl.searchParams.set("digest", digest);
    // The registry computes the digest of what it stored and refuses a PUT whose digest differs.
    const put = await small(t, "PUT", `${putUrl.pathname}${putUrl.search}`, Buffer.alloc(0), { "Content-Type": "application/octet-stream" });
    if (put.status !== 201) return { ...fail(`PUT ?digest=${digest.slice(0, 19)}… → ${put.status} ${put.text}`, patched.sent), digest };
    const head = await small(t, "HEAD", `/v2/${t.repository}/blobs/${digest}`);
    const length = Number(head.headers["content-length"]);
    if (head.status !== 200 || length !== patched.sent) return { ...fail(`HEAD after the push → ${head.status}, Content-Length ${length}, expected ${patched.sent}`, patched.sent), digest };
    return { kind: "push", ok: true, bytes: patched.sent, digest, startedAt, endedAt: Date.now(), detail: `PUT 201 (digest checked by the registry), HEAD 200 with ${length} bytes` };
  } catch (err) {
    return fail((err as Error).message);
  }
}

/** Pulls a blob at most at the given rate, hashing what arrives; ok when size and digest match. */
export async function pullBlob(t: TransferTarget, blob: { digest: string; size: number }, bytesPerSecond = Infinity): Promise<TransferResult> {
  const startedAt = Date.now();
  const hash = crypto.createHash("sha256");
  let bytes = 0;
  const result = (ok: boolean, detail: string): TransferResult => ({ kind: "pull", ok, bytes, digest: blob.digest, startedAt, endedAt: Date.now(), detail });
  try {
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        new URL(`/v2/${t.repository}/blobs/${blob.digest}`, t.baseUrl),
        { method: "GET", agent: false, ca: t.ca, servername: t.host.split(":")[0], timeout: TIMEOUT_MS, headers: headersFor(t) },
        (res) => {
          res.on("data", (c: Buffer) => {
            hash.update(c);
            bytes += c.length;
            const due = startedAt + (bytes / bytesPerSecond) * 1000;
            if (Number.isFinite(due) && due > Date.now() + 5) {
              res.pause();
              setTimeout(() => res.resume(), due - Date.now());
            }
          });
          res.on("end", () => resolve(res.statusCode ?? 0));
          res.on("aborted", () => reject(new Error(`GET cut after ${bytes} bytes`)));
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`GET: stalled after ${bytes} bytes`)));
      req.on("error", reject);
      req.end();
    });
    const digest = `sha256:${hash.digest("hex")}`;
    if (status !== 200) return result(false, `GET → ${status}`);
    if (bytes !== blob.size || digest !== blob.digest) return result(false, `GET 200 but ${bytes} bytes (expected ${blob.size}), digest ${digest.slice(0, 19)}… (expected ${blob.digest.slice(0, 19)}…)`);
    return result(true, `GET 200, ${bytes} bytes, sha256 of the bytes = the digest`);
  } catch (err) {
    return result(false, (err as Error).message);
  }
}

export function describeTransfer(r: TransferResult): string {
  const mib = (r.bytes / 1024 / 1024).toFixed(0);
  const seconds = (r.endedAt - r.startedAt) / 1000;
  return `${r.kind} of ${mib} MiB ${r.ok ? "complete" : "FAILED"} in ${seconds.toFixed(1)} s (${(r.bytes / 1024 / 1024 / Math.max(0.001, seconds)).toFixed(1)} MiB/s): ${r.detail}`;
}
