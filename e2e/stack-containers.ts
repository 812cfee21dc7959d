import { Engine } from "./engine";

/**
 * Behind the proxy, every registry instance (the registry, the verifier, each mirror) is named
 * `<service>-<generation>` and replaced by a new one at each change; these find the one running.
 */

const SERVICE_LABEL = "registry-stack.service";
const SOCKET_LABEL = "registry-stack.socket";

interface ContainerSummary {
  Names: string[];
  Labels: Record<string, string>;
  State: string;
}

async function instances(engine: Engine, service: string): Promise<ContainerSummary[]> {
  const filters = encodeURIComponent(JSON.stringify({ label: [`${SERVICE_LABEL}=${service}`] }));
  return engine.api.call<ContainerSummary[]>({ method: "GET", path: `/containers/json?all=true&filters=${filters}` });
}

/** The container name of the running instance of `service`, or `service` itself when no instance carries its label (the proxy, a registry without proxy). */
export async function instanceOf(engine: Engine, service: string): Promise<string> {
  const all = await instances(engine, service);
  if (all.length === 0) return service;
  const running = all.filter((c) => c.State === "running");
  if (running.length !== 1) throw new Error(`${service}: expected one running instance, found ${running.length} of ${all.length} (${all.map((c) => `${c.Names[0]} ${c.State}`).join(", ")})`);
  return running[0].Names[0].replace(/^\//, "");
}

/** The socket file (in the socket volume) of the running instance of `service`. */
export async function socketOf(engine: Engine, service: string): Promise<string> {
  const running = (await instances(engine, service)).filter((c) => c.State === "running");
  const socket = running[0]?.Labels[SOCKET_LABEL];
  if (running.length !== 1 || !socket) throw new Error(`${service}: no single running instance with a ${SOCKET_LABEL} label`);
  return socket;
}
