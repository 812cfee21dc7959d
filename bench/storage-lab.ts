import * as http from "http";
import { NO_NEW_PRIVILEGES } from "../constructs/container-defaults";
import { Registry } from "../constructs/registry";
import { REGISTRY_V3_IMAGE } from "../e2e/images";
import { renderRegistryConfig, RegistryConfigInput } from "../renderers/registry-config";
import { ContainerHandle, freePort, Lab, SERVER_NAME } from "./lab";

/**
 * Helpers the storage parts of the bench (gc-bench.ts, mirror-bench.ts) share: volumes of their
 * own, and distribution v3.1.1 registries (the version the stack's registry:3.1.1 pins) with a
 * published plain-HTTP port.
 */

export async function createVolume(lab: Lab, name: string): Promise<string> {
  await lab.api.call({ method: "POST", path: "/volumes/create", json: { Name: name } });
  const info = await lab.api.call<{ Mountpoint: string }>({ method: "GET", path: `/volumes/${name}` });
  return info.Mountpoint;
}

export async function removeVolume(lab: Lab, name: string): Promise<void> {
  await lab.api.call({ method: "DELETE", path: `/volumes/${name}` }, [200, 204, 404]);
}

export interface V3RegistryOptions {
  readonly name: string;
  readonly alias: string;
  readonly volume: string;
  readonly logLevel: RegistryConfigInput["logLevel"];
  readonly deleteEnabled: boolean;
  readonly pullThrough?: RegistryConfigInput["pullThrough"];
  readonly blobDescriptorCache?: boolean;
}

/** A distribution v3 registry on `volume`, reachable as `alias` on the backend network and at http://127.0.0.1:<port>. */
export async function startV3Registry(lab: Lab, o: V3RegistryOptions): Promise<ContainerHandle & { port: number }> {
  const config = renderRegistryConfig({
    httpSecret: lab.httpSecret,
    listen: { port: Registry.PORT },
    drainTimeoutSeconds: 0,
    debugPort: Registry.DEFAULT_DEBUG_PORT,
    realm: Registry.REALM,
    deleteEnabled: o.deleteEnabled,
    logLevel: o.logLevel,
    storageRootDirectory: Registry.DATA_PATH,
    pullThrough: o.pullThrough,
    blobDescriptorCache: o.blobDescriptorCache,
  });
  const port = await freePort();
  const handle = await lab.create(
    o.name,
    {
      Image: REGISTRY_V3_IMAGE,
      Cmd: [Registry.CONFIG_PATH],
      Env: ["OTEL_TRACES_EXPORTER=none"],
      ExposedPorts: { [`${Registry.PORT}/tcp`]: {} },
      HostConfig: {
        CapDrop: ["ALL"],
        SecurityOpt: NO_NEW_PRIVILEGES,
        Binds: [`${o.volume}:${Registry.DATA_PATH}`],
        PortBindings: { [`${Registry.PORT}/tcp`]: [{ HostIp: "127.0.0.1", HostPort: String(port) }] },
      },
    },
    [lab.backend, lab.edge],
    [o.alias],
    [[Registry.CONFIG_PATH, config, 0o600]],
    port,
  );
  await waitV2(lab, `http://${SERVER_NAME}:${port}/v2/`, o.name);
  return { ...handle, port };
}

async function waitV2(lab: Lab, url: string, name: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  let last = "";
  for (let i = 0; i < 300 && Date.now() < deadline; i++) {
    try {
      const res = await getBytes(url, undefined, 2_000);
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name}: no 200 on ${url} within 30 s (${last})\n${await lab.logs(name)}`);
}

/** GET with a bounded time (node's http: undici's fetch does not keep the process alive while it waits). */
export function getBytes(url: string, accept?: string, timeoutMs = 30_000): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "GET", headers: accept ? { Accept: accept } : {}, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}
