import { Engine } from "./engine";
import { run } from "./proc";

/**
 * More client addresses for tests of per-address limits: the host gets extra addresses on the
 * bridge of a container's network (removed afterwards), so that requests sent from them straight
 * to the container's address there arrive from distinct client addresses.
 */

interface NetworkInfo {
  IPAddress: string;
  Gateway: string;
}

export interface ClientAddresses {
  /** The container's address on that network. */
  readonly containerAddress: string;
  /** Host addresses to send from (`localAddress`). */
  readonly addresses: string[];
  remove(): Promise<void>;
}

/** Adds `count` host addresses (.200 upwards) on the bridge of the container's network whose gateway is a host address. */
export async function addClientAddresses(engine: Engine, container: string, count: number): Promise<ClientAddresses> {
  const networks = JSON.parse((await engine.docker(["inspect", "-f", "{{json .NetworkSettings.Networks}}", container])).stdout) as Record<string, NetworkInfo>;
  const links = (await run("ip", ["-o", "-4", "addr", "show"], { timeoutMs: 10_000 })).stdout.split("\n");
  for (const net of Object.values(networks)) {
    const line = net.Gateway ? links.find((l) => l.includes(` inet ${net.Gateway}/`)) : undefined;
    if (!line) continue;
    const iface = line.split(/\s+/)[1];
    const prefix = net.Gateway.split(".").slice(0, 3).join(".");
    const addresses = Array.from({ length: count }, (_, i) => `${prefix}.${200 + i}`);
    const added: string[] = [];
    const remove = async () => {
      for (const a of added.splice(0)) await run("ip", ["addr", "del", `${a}/32`, "dev", iface], { timeoutMs: 10_000 }).catch(() => undefined);
    };
    try {
      for (const a of addresses) {
        await run("ip", ["addr", "add", `${a}/32`, "dev", iface], { timeoutMs: 10_000 });
        added.push(a);
      }
    } catch (err) {
      await remove();
      throw err;
    }
    return { containerAddress: net.IPAddress, addresses, remove };
  }
  throw new Error(`${container}: no network whose gateway is a host address (${JSON.stringify(networks)})`);
}
