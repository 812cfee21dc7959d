import { Engine } from "./engine";

/**
 * Behind the proxy, every registry service (the registry, the verifier, each mirror) runs as
 * instances named `<service>-<generation>` (instance 1) and `<service>-<generation>-<n>`, all
 * replaced by new ones at each change; these find the running ones.
 */

const SERVICE_LABEL = "registry-stack.service";
const SOCKET_LABEL = "registry-stack.socket";
const INSTANCE_LABEL = "registry-stack.instance";

interface ContainerSummary {
  Names: string[];
  Labels: Record<string, string>;
  State: string;
}

export interface RunningInstance {
  /** Container name. */
  readonly name: string;
  /** Socket file in the socket volume. */
  readonly socket: string;
  /** 1, 2, … within its generation. */
  readonly instance: number;
}

async function instances(engine: Engine, service: string): Promise<ContainerSummary[]> {
  const filters = encodeURIComponent(JSON.stringify({ label: [`${SERVICE_LABEL}=${service}`] }));
  return engine.api.call<ContainerSummary[]>({ method: "GET", path: `/containers/json?all=true&filters=${filters}` });
}

const nameOf = (c: ContainerSummary) => c.Names[0].replace(/^\//, "");
const numberOf = (c: ContainerSummary) => Number(c.Labels[INSTANCE_LABEL] ?? "1");

async function firstInstance(engine: Engine, service: string): Promise<ContainerSummary | undefined> {
  const all = await instances(engine, service);
  if (all.length === 0) return undefined;
  const running = all.filter((c) => c.State === "running" && numberOf(c) === 1);
  if (running.length !== 1) throw new Error(`${service}: expected one running first instance, found ${running.length} of ${all.length} (${all.map((c) => `${nameOf(c)} ${c.State}`).join(", ")})`);
  return running[0];
}

/** The container name of the running first instance of `service`, or `service` itself when no instance carries its label (the proxy, a registry without proxy). */
export async function instanceOf(engine: Engine, service: string): Promise<string> {
  const first = await firstInstance(engine, service);
  return first ? nameOf(first) : service;
}

/** The socket file (in the socket volume) of the running first instance of `service`. */
export async function socketOf(engine: Engine, service: string): Promise<string> {
  const socket = (await firstInstance(engine, service))?.Labels[SOCKET_LABEL];
  if (!socket) throw new Error(`${service}: no single running first instance with a ${SOCKET_LABEL} label`);
  return socket;
}

/** Every running instance of `service` (of every generation still running), by instance number. */
export async function runningInstances(engine: Engine, service: string): Promise<RunningInstance[]> {
  return (await instances(engine, service))
    .filter((c) => c.State === "running" && c.Labels[SOCKET_LABEL])
    .map((c) => ({ name: nameOf(c), socket: c.Labels[SOCKET_LABEL], instance: numberOf(c) }))
    .sort((a, b) => a.instance - b.instance || a.name.localeCompare(b.name));
}

/** Lines of `docker logs` of every running instance of `service`, stdout and stderr. */
export async function logLinesOfAll(engine: Engine, service: string): Promise<string[]> {
  const lines: string[] = [];
  for (const { name } of await runningInstances(engine, service)) {
    const { stdout, stderr } = await engine.docker(["logs", name]);
    lines.push(...`${stdout}\n${stderr}`.split("\n"));
  }
  return lines;
}
