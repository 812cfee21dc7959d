import * as path from "path";
import { Engine } from "../e2e/engine";
import { addClientAddresses } from "../e2e/client-addresses";
import { run, sleep } from "../e2e/proc";
import { get, MANIFEST_ACCEPT, percentile, Server } from "./http";
import { StoredImage } from "./pulls";

/**
 * Valid users' latency during a wrong-password flood (issue 22): the flood comes from several
 * client addresses, so the per-address login limit is not the only defence measured. The host
 * gets extra addresses on the bridge of the proxy's network (removed afterwards) and the flood
 * client sends from them straight to the proxy's address there; the valid users go through the
 * published port as usual.
 */

export const FLOOD_ADDRESSES = 8;
/** Wrong passwords per second, all addresses together: a flood, bounded so the client itself does not take the two cores. */
export const FLOOD_PER_SECOND = 200;

export interface FloodSetup {
  /** The proxy on its network: https://<address>:<listen port> */
  readonly target: Server;
  readonly addresses: string[];
  remove(): Promise<void>;
}

/** FLOOD_ADDRESSES host addresses on the bridge of the proxy's published network. */
export async function prepareFlood(engine: Engine, proxyContainer: string, listenPort: number, published: Server): Promise<FloodSetup> {
  const clients = await addClientAddresses(engine, proxyContainer, FLOOD_ADDRESSES);
  return { target: { baseUrl: `https://${clients.containerAddress}:${listenPort}`, host: published.host, ca: published.ca }, addresses: clients.addresses, remove: clients.remove };
}

export interface FloodRound {
  readonly quietP99: number;
  readonly floodP99: number;
  /** Valid users' requests in each window: how many latencies each p99 is taken from. */
  readonly quietRequests: number;
  readonly floodRequests: number;
  readonly statuses: Record<string, number>;
  readonly errors: number;
  readonly firstError: string;
}

/** Fresh-connection GETs of a manifest by a valid user, two at a time, for `ms`; their latencies. */
async function validUsers(server: Server, image: StoredImage, credentials: { name: string; password: string }, ms: number): Promise<number[]> {
  const times: number[] = [];
  const end = Date.now() + ms;
  const worker = async () => {
    while (Date.now() < end) {
      const r = await get(server, `/v2/${image.repo}/manifests/${image.tag}`, { credentials, headers: { Accept: MANIFEST_ACCEPT } });
      if (r.status !== 200) throw new Error(`a valid user's GET manifest: HTTP ${r.status}`);
      times.push(r.ms);
    }
  };
  await Promise.all([worker(), worker()]);
  return times;
}

/** One paired repetition: `windowMs` of valid users alone, then `windowMs` with the flood. */
export async function floodRound(flood: FloodSetup, published: Server, image: StoredImage, user: { name: string; password: string }, windowMs: number): Promise<FloodRound> {
  const quiet = await validUsers(published, image, user, windowMs);
  const input = JSON.stringify({ ...flood.target, user: user.name, addresses: flood.addresses, perSecond: FLOOD_PER_SECOND, ms: windowMs + 600 });
  // In the idle scheduling class (it runs only when no other task wants the core): a real flood
  // comes from other machines, and this client's own TLS work (about half a core) would otherwise
  // count as the server's slowdown. nice 19 left it that half core on these machines.
  const floodDone = run("chrt", ["--idle", "0", process.execPath, path.join(__dirname, "flood-client.js")], { input, timeoutMs: windowMs + 30_000 });
  await sleep(300);
  const during = await validUsers(published, image, user, windowMs);
  const result = JSON.parse((await floodDone).stdout) as { statuses: Record<string, number>; errors: number; firstError: string };
  // Let the verifier drain what the flood queued before the next quiet window.
  await sleep(1_000);
  return { quietP99: percentile(quiet, 99), floodP99: percentile(during, 99), quietRequests: quiet.length, floodRequests: during.length, ...result };
}
