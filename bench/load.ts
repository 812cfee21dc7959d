import * as https from "https";
import { percentile } from "./stats";

export interface LoadOptions {
  readonly url: string;
  readonly method: "GET" | "HEAD";
  readonly headers?: Record<string, string>;
  /** CA certificate (PEM) for https. */
  readonly ca: string;
  readonly concurrency: number;
  /** Bounds: whichever comes first. */
  readonly maxRequests: number;
  readonly maxMs: number;
  /** Requests sent (and not counted) before measuring, to open the keep-alive connections. */
  readonly warmup: number;
  readonly expectStatus: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Why the loop ended. */
  readonly stoppedBy: "count" | "time";
}

function once(agent: https.Agent, o: LoadOptions, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = https.request(o.url, { method: o.method, headers: o.headers, agent, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on("end", () => {
        if (res.statusCode !== o.expectStatus) reject(new Error(`${o.method} ${o.url}: HTTP ${res.statusCode}, expected ${o.expectStatus}`));
        else resolve(Number(process.hrtime.bigint() - started) / 1e6);
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${o.method} ${o.url}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/**
 * `concurrency` workers over keep-alive HTTPS connections (like a registry client), each
 * sending its next request when the previous one is answered. Bounded by count and time.
 * Any unexpected status fails the measurement.
 */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: o.concurrency, ca: o.ca });
  const perRequestTimeout = Math.max(5_000, o.maxMs);
  try {
    let warm = 0;
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        while (warm < o.warmup) {
          warm++;
          await once(agent, o, perRequestTimeout);
        }
      }),
    );
    const latencies: number[] = [];
    let issued = 0;
    const started = Date.now();
    const deadline = started + o.maxMs;
    let stoppedBy: "count" | "time" = "count";
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        for (;;) {
          if (issued >= o.maxRequests) return;
          if (Date.now() >= deadline) {
            stoppedBy = "time";
            return;
          }
          issued++;
          latencies.push(await once(agent, o, perRequestTimeout));
        }
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    return {
      requests: latencies.length,
      seconds,
      rps: latencies.length / seconds,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      stoppedBy,
    };
  } finally {
    agent.destroy();
  }
}
