import * as http from "http";

/** A minimal Docker Engine API client over the engine's unix socket (Node built-ins only). */

export class DockerApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "DockerApiError";
  }
}

export interface ApiResponse {
  status: number;
  body: Buffer;
}

export interface ApiRequest {
  method: "GET" | "POST" | "PUT" | "DELETE" | "HEAD";
  path: string;
  json?: unknown;
  body?: Buffer;
  contentType?: string;
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;

export class DockerApi {
  constructor(readonly socketPath: string) {}

  raw(req: ApiRequest): Promise<ApiResponse> {
    const payload = req.json !== undefined ? Buffer.from(JSON.stringify(req.json)) : req.body;
    const headers: http.OutgoingHttpHeaders = {};
    if (payload) {
      headers["Content-Type"] = req.json !== undefined ? "application/json" : (req.contentType ?? "application/octet-stream");
      headers["Content-Length"] = payload.length;
    }
    const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const r = http.request({ socketPath: this.socketPath, path: req.path, method: req.method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      r.setTimeout(timeoutMs, () => r.destroy(new Error(`${req.method} ${req.path}: no answer within ${timeoutMs} ms`)));
      r.on("error", (err) => reject(new DockerApiError(`docker engine ${req.method} ${req.path}: ${err.message}`, 0)));
      r.end(payload);
    });
  }

  /** Sends a request and returns the decoded JSON body (or undefined); throws with the engine's message otherwise. */
  async call<T = unknown>(req: ApiRequest, okStatuses: readonly number[] = [200, 201, 204, 304]): Promise<T> {
    const res = await this.raw(req);
    if (!okStatuses.includes(res.status)) {
      throw new DockerApiError(`docker engine ${req.method} ${req.path}: HTTP ${res.status}: ${errorMessage(res.body)}`, res.status);
    }
    if (res.body.length === 0) return undefined as T;
    const text = res.body.toString();
    try {
      return JSON.parse(text) as T;
    } catch {
      return text as T;
    }
  }

  /** Like call, but a 404 yields undefined instead of an error. */
  async find<T>(path: string): Promise<T | undefined> {
    const res = await this.raw({ method: "GET", path });
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new DockerApiError(`docker engine GET ${path}: HTTP ${res.status}: ${errorMessage(res.body)}`, res.status);
    return JSON.parse(res.body.toString()) as T;
  }

  /** Container logs, demultiplexed (containers without a TTY send 8-byte framed stdout/stderr). */
  async logs(container: string, tailLines = 50): Promise<string> {
    const res = await this.raw({
      method: "GET",
      path: `/containers/${encodeURIComponent(container)}/logs?stdout=1&stderr=1&tail=${tailLines}`,
      timeoutMs: 10_000,
    });
    if (res.status !== 200) return `(logs unavailable: HTTP ${res.status}: ${errorMessage(res.body)})`;
    return demux(res.body);
  }
}

function errorMessage(body: Buffer): string {
  const text = body.toString();
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === "string") return parsed.message;
  } catch {
    // not JSON: show as is
  }
  return text.trim();
}

function demux(buf: Buffer): string {
  const out: string[] = [];
  let offset = 0;
  while (offset + 8 <= buf.length) {
    const stream = buf[offset];
    if (stream > 2 || buf[offset + 1] !== 0 || buf[offset + 2] !== 0 || buf[offset + 3] !== 0) {
      return buf.toString(); // not framed (TTY container)
    }
    const size = buf.readUInt32BE(offset + 4);
    out.push(buf.subarray(offset + 8, offset + 8 + size).toString());
    offset += 8 + size;
  }
  return out.join("");
}

/**
 * Polls `probe` until it returns a value (not undefined); bounded by time and attempts.
 * An error thrown by `probe` ends the wait at once.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  opts: { timeoutMs: number; intervalMs: number },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  const maxAttempts = Math.ceil(opts.timeoutMs / opts.intervalMs) + 1;
  for (let attempt = 0; attempt < maxAttempts && Date.now() <= deadline; attempt++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, opts.intervalMs));
  }
  throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}`);
}
