import * as fs from "fs";
import * as path from "path";
import { freePort } from "../e2e/clients";
import { Deployment, SuiteTarget, SynthResult, TestUser } from "../e2e/deployment";
import { Engine } from "../e2e/engine";
import { JsonObject } from "../e2e/terraform-plan";
import { baseConfig } from "../e2e/scenarios";
import { socketOf } from "../e2e/stack-containers";

/**
 * The stacks the bench measures, deployed with `cdktf deploy` through the e2e harness: the
 * default topology (proxy, TLS, auth cache, anonymous pull on so that an anonymous pull can be
 * compared with an authenticated one), and the same registry with `proxy: false` (the registry's
 * own TLS). "Direct" is the deployed registry's own socket, which only the proxy uses otherwise.
 */

export interface User {
  readonly name: string;
  readonly password: string;
}

export const PUSHER: User = { name: "pusher", password: "bench-pusher-password-1" };
export const READER: User = { name: "reader", password: "bench-reader-password-2" };
/** Added by the deploy whose client loop issue 19's ratio measures. */
export const NEWCOMER: User = { name: "newcomer", password: "bench-newcomer-password-3" };

export interface DeployedStack {
  readonly dep: Deployment;
  readonly prefix: string;
  readonly config: JsonObject;
  readonly users: TestUser[];
  /** https://127.0.0.1:<port> */
  readonly baseUrl: string;
  /** Host header and TLS name, localhost:<port> */
  readonly host: string;
  readonly caFile: string;
  readonly ca: string;
  /** The data volume's folder on the host (the registry's filesystem store). */
  readonly dataDir: string;
}

export interface ProxiedStack extends DeployedStack {
  /** The same config with NEWCOMER added, synthesized while the first deploy ran. */
  readonly withNewcomer: SynthResult;
  /** The registry's unix socket on the host: plain HTTP, no proxy. */
  readonly registrySocket: string;
  readonly proxyContainer: string;
}

async function volumeDir(engine: Engine, volume: string): Promise<string> {
  return (await engine.docker(["volume", "inspect", "-f", "{{.Mountpoint}}", volume])).stdout.trim();
}

/** Synth and deploy; `alongside` runs while the deploy does (after the synth: the material exists then). */
async function deploy(target: SuiteTarget, dir: string, prefix: string, extra: JsonObject, users: TestUser[], alongside?: (dep: Deployment, config: JsonObject) => Promise<void>): Promise<DeployedStack> {
  const port = await freePort();
  const config: JsonObject = { ...baseConfig(dir, prefix, port, users), hostnames: ["localhost"], ipAddresses: ["127.0.0.1"], ...extra };
  const dep = new Deployment(target, prefix, dir);
  const first = await dep.synth("out-0", config, users);
  await Promise.all([dep.deploy(first, [], { proveEmpty: false }), alongside?.(dep, config)]);
  const caFile = path.join(String(config.clientConfigDirectory), "certs.d", `localhost:${port}`, "ca.crt");
  return {
    dep,
    prefix,
    config,
    users,
    baseUrl: `https://127.0.0.1:${port}`,
    host: `localhost:${port}`,
    caFile,
    ca: fs.readFileSync(caFile, "utf8"),
    dataDir: await volumeDir(target.engine, `${prefix}-data`),
  };
}

/** The default topology, with roles: the pusher may push, the reader only pull; anyone may pull. */
export async function deployProxied(target: SuiteTarget, dir: string): Promise<ProxiedStack> {
  const prefix = "bench";
  const users: TestUser[] = [PUSHER, READER];
  const roles = [{ name: PUSHER.name, role: "push" }, { name: READER.name, role: "pull" }];
  let withNewcomer: SynthResult | undefined;
  const synthNext = async (dep: Deployment, config: JsonObject) => {
    withNewcomer = await dep.synth("out-1", { ...config, users: [...roles, { name: NEWCOMER.name, role: "pull" }] }, [...users, NEWCOMER]);
  };
  const stack = await deploy(target, dir, prefix, { users: roles, anonymousPull: true }, users, synthNext);
  const socket = await socketOf(target.engine, `${prefix}-registry`);
  return { ...stack, withNewcomer: withNewcomer!, registrySocket: path.join(await volumeDir(target.engine, `${prefix}-sockets`), socket), proxyContainer: `${prefix}-proxy` };
}

/** `proxy: false`: the registry terminates TLS on the published port itself. */
export function deployRegistryTls(target: SuiteTarget, dir: string): Promise<DeployedStack> {
  return deploy(target, dir, "benchtls", { proxy: false, users: [{ name: PUSHER.name }] }, [PUSHER]);
}
