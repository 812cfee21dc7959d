import { RegistryApi } from "../e2e/registry-api";
import { RequestLoop, WindowStats } from "../e2e/request-loop";
import { sleep } from "../e2e/proc";
import { ProxiedStack, PUSHER, READER } from "./stack";

/**
 * Issue 19 item 5: the e2e client loop (pulls, pushes, listings, logins, a wrong password; each
 * on a fresh connection) through a `cdktf deploy` that adds a user; p99 during the deploy
 * against the ten seconds before it, and the failures. Two requests a second: the loop's wrong
 * password (one in seven requests, about 17 a minute) stays within the default login limit of 30
 * a minute per address however long the deploy takes (at four a second it met the limit and its
 * logins got 429).
 */

const BEFORE_MS = 10_000;

export interface DeployLatency {
  readonly before: WindowStats;
  readonly during: WindowStats;
  readonly deploySeconds: number;
}

export async function deployLatency(stack: ProxiedStack): Promise<DeployLatency> {
  const api = new RegistryApi(stack.baseUrl, stack.ca, PUSHER);
  const image = await api.pushImage("bench/loop", { os: "linux", architecture: "amd64", created: new Date().toISOString(), layerBytes: 64 * 1024 });
  await api.tagManifest("bench/loop", image.digest, "1", "application/vnd.oci.image.manifest.v1+json");
  api.close();
  const loop = new RequestLoop(
    { baseUrl: stack.baseUrl, host: stack.host, ca: stack.ca, pusher: PUSHER, reader: READER, repository: "bench/loop", tag: "1", blob: image.layers[0] },
    { intervalMs: 500, maxRequests: 1_000, maxMs: 5 * 60_000 },
  );
  const loopStarted = Date.now();
  loop.start();
  try {
    await sleep(Math.max(0, loopStarted + BEFORE_MS - Date.now()));
    const started = Date.now();
    await stack.dep.deploy(stack.withNewcomer, [], { proveEmpty: false });
    const ended = Date.now();
    // Requests started just before the end may still be running.
    await sleep(2_000);
    return { before: loop.stats(started - BEFORE_MS, started), during: loop.stats(started, ended), deploySeconds: (ended - started) / 1000 };
  } finally {
    await loop.stop();
  }
}
