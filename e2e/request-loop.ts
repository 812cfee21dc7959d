import * as crypto from "crypto";
import * as https from "https";
import { sleep } from "./proc";

/**
 * A loop of small registry requests, each on a fresh TLS connection (as separate CI jobs and
 * nodes would open them), run while something happens to the stack: pulls (manifest, blob),
 * pushes (a small blob upload), catalog and tag listings, a login that must be verified and a
 * wrong password. Any transport error, timeout or unexpected status is a failure. Bounded in
 * count and time; stops by itself.
 */

export interface LoopTarget {
  /** https://127.0.0.1:<port> */
  readonly baseUrl: string;
  /** Host header (a configured name with the port). */
  readonly host: string;
  readonly ca: string;
  /** A user with push rights, and another user whose logins the loop also sends. */
  readonly pusher: { readonly name: string; readonly password: string };
  readonly reader: { readonly name: string; readonly password: string };
  /** A pushed image: repository, tag and one of its blobs. */
  readonly repository: string;
  readonly tag: string;
  readonly blob: { readonly digest: string; readonly size: number };
}

export interface Sample {
  readonly at: number;
  readonly kind: string;
  readonly ms: number;
  readonly ok: boolean;
  readonly detail: string;
}

export interface WindowStats {
  readonly requests: number;
  readonly failures: number;
  readonly p50: number;
  readonly p99: number;
  /** The first few failures: "<kind> at +<s> s: <detail>". */
  readonly failed: string[];
}

const MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export class RequestLoop {
  readonly samples: Sample[] = [];
  private stopped = false;
  private done?: Promise<void>;
  private readonly started = Date.now();

  constructor(
    private readonly target: LoopTarget,
    private readonly bounds: { intervalMs: number; maxRequests: number; maxMs: number } = { intervalMs: 100, maxRequests: 6000, maxMs: 10 * 60_000 },
  ) {}

  start(): void {
    this.done = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  /** Requests that started in [from, to). */
  stats(from: number, to: number): WindowStats {
    return this.describe(this.samples.filter((s) => s.at >= from && s.at < to));
  }

  /** Requests in flight at any moment of [from, to): also those a sudden event cut half-way. */
  inFlight(from: number, to: number): WindowStats {
    return this.describe(this.samples.filter((s) => s.at < to && s.at + s.ms >= from));
  }

  private describe(inWindow: Sample[]): WindowStats {
    const failedSamples = inWindow.filter((s) => !s.ok);
    const times = inWindow.filter((s) => s.ok).map((s) => s.ms).sort((a, b) => a - b);
    return {
      requests: inWindow.length,
      failures: failedSamples.length,
      p50: percentile(times, 50),
      p99: percentile(times, 99),
      failed: failedSamples.slice(0, 5).map((s) => `${s.kind} at +${((s.at - this.started) / 1000).toFixed(1)} s: ${s.detail}`),
    };
  }

  private async run(): Promise<void> {
    const t = this.target;
    const kinds: Array<[string, () => Promise<string | undefined>]> = [
      ["manifest", () => this.expect("GET", `/v2/${t.repository}/manifests/${t.tag}`, t.reader, [200], { Accept: MANIFEST_TYPES })],
      ["blob", () => this.expect("GET", `/v2/${t.repository}/blobs/${t.blob.digest}`, t.reader, [200], {}, undefined, t.blob.size)],
      ["push", () => this.push()],
      ["catalog", () => this.expect("GET", "/v2/_catalog", t.pusher, [200])],
      ["tags", () => this.expect("GET", `/v2/${t.repository}/tags/list`, t.pusher, [200])],
      ["login", () => this.expect("GET", "/v2/", t.reader, [200])],
      ["wrong password", () => this.expect("GET", "/v2/", { name: t.reader.name, password: "not-the-password" }, [401])],
    ];
    const inFlight = new Set<Promise<void>>();
    for (let i = 0; !this.stopped && i < this.bounds.maxRequests && Date.now() - this.started < this.bounds.maxMs; i++) {
      const [kind, send] = kinds[i % kinds.length];
      const at = Date.now();
      const p = send().then(
        (problem) => void this.samples.push({ at, kind, ms: Date.now() - at, ok: problem === undefined, detail: problem ?? "" }),
        (err: Error) => void this.samples.push({ at, kind, ms: Date.now() - at, ok: false, detail: err.message }),
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      await sleep(this.bounds.intervalMs);
    }
    await Promise.all([...inFlight]);
  }

  /** A small blob upload: POST, then PUT with the digest (monolithic). */
  private async push(): Promise<string | undefined> {
    const t = this.target;
    const data = crypto.randomBytes(4096);
    const digest = `sha256:${crypto.createHash("sha256").update(data).digest("hex")}`;
    const started = await this.request("POST", `/v2/${t.repository}/blobs/uploads/`, t.pusher, {});
    if (started.status !== 202) return `POST upload → ${started.status} ${started.body.slice(0, 200)}`;
    const location = new URL(String(started.location), t.baseUrl);
    location.searchParams.set("digest", digest);
    const put = await this.request("PUT", `${location.pathname}${location.search}`, t.pusher, { "Content-Type": "application/octet-stream" }, data);
    return put.status === 201 ? undefined : `PUT upload → ${put.status} ${put.body.slice(0, 200)}`;
  }

  private async expect(
    method: string,
    path: string,
    user: { name: string; password: string },
    statuses: number[],
    headers: Record<string, string> = {},
    body?: Buffer,
    length?: number,
  ): Promise<string | undefined> {
    const res = await this.request(method, path, user, headers, body);
    if (!statuses.includes(res.status)) return `${method} ${path} → ${res.status} ${res.body.slice(0, 200)}`;
    if (length !== undefined && res.bytes !== length) return `${method} ${path}: ${res.bytes} bytes, expected ${length}`;
    return undefined;
  }

  private request(
    method: string,
    path: string,
    user: { name: string; password: string },
    headers: Record<string, string>,
    body?: Buffer,
  ): Promise<{ status: number; body: string; bytes: number; location?: string }> {
    const t = this.target;
    return new Promise((resolve, reject) => {
      const req = https.request(
        new URL(path, t.baseUrl),
        {
          method,
          // A fresh connection per request: no keep-alive reuse across a reload.
          agent: false,
          ca: t.ca,
          servername: t.host.split(":")[0],
          timeout: 20_000,
          headers: {
            Host: t.host,
            Authorization: `Basic ${Buffer.from(`${user.name}:${user.password}`).toString("base64")}`,
            ...(body ? { "Content-Length": String(body.length) } : {}),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let bytes = 0;
          res.on("data", (c: Buffer) => {
            bytes += c.length;
            if (chunks.length < 4) chunks.push(c);
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), bytes, location: res.headers.location }));
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within 20 s`)));
      req.on("error", reject);
      req.end(body);
    });
  }
}
