import * as https from "https";

/** Small HTTPS requests against a deployed stack, timed, for the bench's client loops. */

export interface Server {
  /** https://127.0.0.1:<port>, or https://<container address>:<port> */
  readonly baseUrl: string;
  /** TLS name and Host header, localhost:<port> */
  readonly host: string;
  readonly ca: string;
}

export interface Reply {
  readonly status: number;
  readonly ms: number;
  readonly bytes: number;
  /** The first 256 KiB of the body. */
  readonly body: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

export interface RequestOptions {
  readonly credentials?: { readonly name: string; readonly password: string };
  /** A keep-alive agent to reuse, or false for a fresh connection. */
  readonly agent?: https.Agent | false;
  readonly headers?: Record<string, string>;
  /** The client address to send from (one of the host's addresses on the stack's network). */
  readonly localAddress?: string;
  readonly timeoutMs?: number;
}

export const MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const KEPT_BODY = 256 * 1024;

export function basic(c: { name: string; password: string }): string {
  return `Basic ${Buffer.from(`${c.name}:${c.password}`).toString("base64")}`;
}

export function get(server: Server, path: string, o: RequestOptions = {}): Promise<Reply> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = https.request(
      new URL(path, server.baseUrl),
      {
        method: "GET",
        agent: o.agent ?? false,
        ca: server.ca,
        servername: server.host.split(":")[0],
        localAddress: o.localAddress,
        timeout: timeoutMs,
        headers: { Host: server.host, ...(o.credentials ? { Authorization: basic(o.credentials) } : {}), ...o.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on("data", (c: Buffer) => {
          if (bytes < KEPT_BODY) chunks.push(c);
          bytes += c.length;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - started) / 1e6, bytes, body: Buffer.concat(chunks).toString("utf8"), headers: res.headers }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${path}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** GET that must answer `status`. */
export async function expectGet(server: Server, path: string, status: number, o: RequestOptions = {}): Promise<Reply> {
  const reply = await get(server, path, o);
  if (reply.status !== status) throw new Error(`GET ${path}: HTTP ${reply.status}, expected ${status}: ${reply.body.slice(0, 200)}`);
  return reply;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1];
}
