import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Engine, startEngine } from "./engine";
import { CACHE_DIR } from "./images";
import { run, sleep } from "./proc";
import { buildGoModule } from "./terraform-tools";

/**
 * A test swarm on this machine: a "hub" network namespace holding a bridge, Redis and an
 * S3-compatible server (versitygw), and one network namespace per node, each with its own dockerd
 * (`nsenter --net`), linked to the hub by veth pairs. The host gets one more veth into the hub
 * so the suite (Node, curl) reaches the nodes' published ports. Every address is in the swarm
 * suite's own pools (SWARM_SUBNETS); nothing is published on the host's own addresses.
 */

type Log = (line: string) => void;

/** The address plan; each /16 is the swarm suite's alone. */
export const SWARM_SUBNETS = {
  /** Hub bridge, node links and the host's link: <prefix>.1 hub, .2… nodes, .254 host. */
  links: "10.143.0",
  /** Per-node engine pools (docker_gwbridge, local networks): node i gets 10.(144+i).0.0/16. */
  enginePoolBase: 144,
  /** Overlay networks of the swarm. */
  overlayPool: "10.147.0.0/16",
};

export const VERSITYGW_MODULE = "github.com/versity/versitygw";
export const VERSITYGW_VERSION = "v1.8.0";

const NETNS_PREFIX = "rse-sw";

export interface SwarmNode {
  readonly name: string;
  readonly netns: string;
  readonly address: string;
  readonly engine: Engine;
  /** Swarm node ID. */
  nodeId: string;
}

export interface S3Server {
  readonly endpoint: string;
  readonly bucket: string;
  readonly accessKey: string;
  readonly secretKey: string;
}

export interface RedisServer {
  readonly address: string;
  readonly password: string;
}

/** versitygw built from the Go module proxy, cached like the Terraform providers. */
export async function ensureVersitygw(log: Log): Promise<string> {
  const target = path.join(CACHE_DIR, "go-builds", `${VERSITYGW_MODULE.replace(/\//g, "_")}@${VERSITYGW_VERSION}`, "versitygw");
  if (!fs.existsSync(target)) await buildGoModule(VERSITYGW_MODULE, VERSITYGW_VERSION, "versitygw", target, log, "./cmd/versitygw");
  return target;
}

async function ip(args: string[]): Promise<void> {
  await run("ip", args, { timeoutMs: 15_000 });
}

function inNetns(netns: string, command: string, args: string[]): [string, string[]] {
  return ["nsenter", [`--net=/run/netns/${netns}`, command, ...args]];
}

/** A long-running server in a namespace; stopped by its pid. */
function startServer(netns: string, command: string, args: string[], logFile: string): ChildProcess {
  const fd = fs.openSync(logFile, "a");
  const [cmd, cmdArgs] = inNetns(netns, command, args);
  const child = spawn(cmd, cmdArgs, { stdio: ["ignore", fd, fd] });
  fs.closeSync(fd);
  child.once("error", () => undefined);
  return child;
}

async function stopServer(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await Promise.race([exited, sleep(10_000)]);
  if (child.exitCode === null) child.kill("SIGKILL");
}

async function waitForTcp(netns: string, address: string, port: number, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const [cmd, args] = inNetns(netns, "bash", ["-c", `exec 3<>/dev/tcp/${address}/${port}`]);
    const ok = await run(cmd, args, { timeoutMs: 5_000 }).then(
      () => true,
      () => false,
    );
    if (ok) return;
    await sleep(200);
  }
  throw new Error(`${what} did not listen on ${address}:${port}`);
}

export class SwarmCluster {
  readonly nodes: SwarmNode[] = [];
  readonly hub = `${NETNS_PREFIX}hub`;
  readonly hostAddress = `${SWARM_SUBNETS.links}.254`;
  readonly hubAddress = `${SWARM_SUBNETS.links}.1`;
  s3?: S3Server;
  redis?: RedisServer;
  private readonly servers: ChildProcess[] = [];
  private readonly namespaces: string[] = [];
  private readonly hostLink = `${NETNS_PREFIX}host0`;

  constructor(
    readonly dir: string,
    private readonly log: Log,
  ) {}

  /** Hub, host link, `count` nodes with their engines, a swarm (node 0 manager, the rest workers). */
  async start(count: number): Promise<void> {
    await this.addNetns(this.hub);
    await ip(["-n", this.hub, "link", "set", "lo", "up"]);
    await ip(["-n", this.hub, "link", "add", "br0", "type", "bridge"]);
    await ip(["-n", this.hub, "addr", "add", `${this.hubAddress}/24`, "dev", "br0"]);
    await ip(["-n", this.hub, "link", "set", "br0", "up"]);
    // The host's link: the suite's requests to the nodes' published ports (one left by an aborted run goes first).
    await ip(["link", "del", this.hostLink]).catch(() => undefined);
    await ip(["link", "add", this.hostLink, "type", "veth", "peer", "name", "hub-host", "netns", this.hub]);
    await ip(["-n", this.hub, "link", "set", "hub-host", "master", "br0", "up"]);
    await ip(["addr", "add", `${this.hostAddress}/24`, "dev", this.hostLink]);
    await ip(["link", "set", this.hostLink, "up"]);

    for (let i = 0; i < count; i++) {
      const name = String.fromCharCode(97 + i);
      const netns = `${NETNS_PREFIX}${name}`;
      const address = `${SWARM_SUBNETS.links}.${2 + i}`;
      await this.addNetns(netns);
      await ip(["-n", netns, "link", "set", "lo", "up"]);
      await ip(["-n", this.hub, "link", "add", `hub-${name}`, "type", "veth", "peer", "name", "eth0", "netns", netns]);
      await ip(["-n", this.hub, "link", "set", `hub-${name}`, "master", "br0", "up"]);
      await ip(["-n", netns, "addr", "add", `${address}/24`, "dev", "eth0"]);
      await ip(["-n", netns, "link", "set", "eth0", "up"]);
      await ip(["-n", netns, "route", "add", "default", "via", this.hubAddress]);
      const engine = await startEngine({
        netns,
        addressPool: `base=10.${SWARM_SUBNETS.enginePoolBase + i}.0.0/16,size=24`,
        // Swarm mode refuses live-restore.
        daemonConfig: { "live-restore": false },
        log: (l) => this.log(`node ${name}: ${l}`),
      });
      this.nodes.push({ name, netns, address, engine, nodeId: "" });
    }
    const manager = this.nodes[0];
    await manager.engine.docker(["swarm", "init", "--advertise-addr", manager.address, "--listen-addr", `${manager.address}:2377`, "--default-addr-pool", SWARM_SUBNETS.overlayPool, "--default-addr-pool-mask-length", "24"], {
      timeoutMs: 60_000,
    });
    const token = (await manager.engine.docker(["swarm", "join-token", "-q", "worker"])).stdout.trim();
    for (const node of this.nodes.slice(1)) {
      await node.engine.docker(["swarm", "join", "--token", token, "--advertise-addr", node.address, "--listen-addr", `${node.address}:2377`, `${manager.address}:2377`], { timeoutMs: 60_000 });
    }
    for (const node of this.nodes) node.nodeId = (await node.engine.docker(["info", "--format", "{{.Swarm.NodeID}}"])).stdout.trim();
    this.log(`swarm of ${this.nodes.length} nodes: ${this.nodes.map((n) => `${n.name}=${n.address}`).join(", ")}`);
  }

  /** redis-server from Debian in the hub, with a password, no persistence. */
  async startRedis(password: string): Promise<RedisServer> {
    const port = 6379;
    const child = startServer(
      this.hub,
      "redis-server",
      ["--bind", this.hubAddress, "--port", String(port), "--requirepass", password, "--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", this.dir],
      path.join(this.dir, "redis.log"),
    );
    this.servers.push(child);
    await waitForTcp(this.hub, this.hubAddress, port, "redis-server");
    this.redis = { address: `${this.hubAddress}:${port}`, password };
    return this.redis;
  }

  /** versitygw's posix backend on a folder of the run, and the bucket made through the S3 API. */
  async startS3(binary: string, accessKey: string, secretKey: string, bucket: string): Promise<S3Server> {
    const port = 7070;
    const root = path.join(this.dir, "s3");
    fs.mkdirSync(root, { recursive: true });
    const child = startServer(this.hub, binary, ["--access", accessKey, "--secret", secretKey, "--port", `${this.hubAddress}:${port}`, "--quiet", "posix", root], path.join(this.dir, "versitygw.log"));
    this.servers.push(child);
    await waitForTcp(this.hub, this.hubAddress, port, "versitygw");
    const endpoint = `http://${this.hubAddress}:${port}`;
    // curl signs the request itself (SigV4), so no S3 client is needed.
    const [cmd, args] = inNetns(this.hub, "curl", ["-sS", "-f", "-X", "PUT", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", `${accessKey}:${secretKey}`, `${endpoint}/${bucket}`]);
    await run(cmd, args, { timeoutMs: 30_000 });
    this.s3 = { endpoint, bucket, accessKey, secretKey };
    return this.s3;
  }

  get manager(): SwarmNode {
    return this.nodes[0];
  }

  /** Running containers of a service on one node (swarm task containers carry the service name label). */
  async taskContainers(node: SwarmNode, service: string): Promise<string[]> {
    const { stdout } = await node.engine.docker(["ps", "-q", "--filter", `label=com.docker.swarm.service.name=${service}`]);
    return stdout.split("\n").filter((l) => l.trim() !== "");
  }

  /** Stops servers, engines (they leave no task behind), links and namespaces. Idempotent. */
  async stop(): Promise<void> {
    for (const child of this.servers.splice(0)) await stopServer(child);
    for (const node of this.nodes.splice(0).reverse()) {
      await node.engine.docker(["swarm", "leave", "--force"], { timeoutMs: 60_000 }).catch(() => undefined);
      await node.engine.stop().catch((err: Error) => this.log(`node ${node.name}: stop failed: ${err.message}`));
    }
    await ip(["link", "del", this.hostLink]).catch(() => undefined);
    for (const netns of this.namespaces.splice(0).reverse()) await ip(["netns", "del", netns]).catch(() => undefined);
  }

  private async addNetns(name: string): Promise<void> {
    // A namespace left by an aborted run of this suite (same names): remove it first.
    if (fs.existsSync(`/run/netns/${name}`)) await ip(["netns", "del", name]);
    await ip(["netns", "add", name]);
    this.namespaces.push(name);
  }
}
