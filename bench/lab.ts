import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { NginxProxy } from "../constructs/nginx-proxy";
import { Registry, socketServeScript } from "../constructs/registry";
import { NO_NEW_PRIVILEGES } from "../constructs/container-defaults";
import { Engine, startEngine } from "../e2e/engine";
import { NGINX_IMAGE, prepareImages, REGISTRY_V3_IMAGE } from "../e2e/images";
import { singleFileTar } from "../e2e/tar";
import { systemEntropy } from "../material/entropy";
import { MaterialStore } from "../material/material-store";
import { ensureSelfSignedTls } from "../material/self-signed-tls";
import { renderRegistryConfig } from "../renderers/registry-config";
import { CpuMeter } from "./cpu";

/**
 * The bench's own Docker Engine and the containers it measures, created the way the stack's
 * constructs declare them (same images as the e2e suite, same commands, paths, capabilities,
 * networks), but directly through the Engine API: realizing a stack waits for a health check
 * with a 15 s interval per container, and the bench needs dozens of short-lived variants.
 *
 * Isolation from an e2e engine running at the same time on this host:
 * - its own address pool (10.214.0.0/16 or BENCH_ADDRESS_POOL; the e2e engine uses 10.213.0.0/16);
 * - `--iptables=false`: a dockerd that manages iptables flushes the DOCKER chains of every
 *   other engine when it starts (libnetwork removeIPChains). Without it, the host's
 *   FORWARD policy (DROP, left by any dockerd) would drop container-to-container traffic on
 *   our bridges, so the lab inserts one `-i br -o br -j ACCEPT` rule per bridge it owns —
 *   the rule dockerd itself adds — and deletes exactly those rules again.
 */

export const DEFAULT_ADDRESS_POOL = "base=10.214.0.0/16,size=24";
/** BENCH_ADDRESS_POOL gives the bench engine other networks when another engine on the host uses the default. */
export const ADDRESS_POOL = process.env.BENCH_ADDRESS_POOL || DEFAULT_ADDRESS_POOL;
export const SERVER_NAME = "127.0.0.1";
/** The registry's socket, where the stack puts it (constructs/registry.ts, stacks/registry-stack.ts). */
export const REGISTRY_SOCKET = `${Registry.SOCKET_DIRECTORY}/registry.sock`;

export type Log = (line: string) => void;

export interface ContainerHandle {
  readonly name: string;
  readonly id: string;
  /** Published host port on 127.0.0.1, if any. */
  readonly port?: number;
}

export interface RegistryOptions {
  name: string;
  alias: string;
  /** htpasswd file content; none = no auth section (the stack's data registry behind an auth cache). */
  htpasswd?: string;
  /** Storage: the shared data volume (default) or in-memory (the stack's auth verifier). */
  inMemory?: boolean;
  /** Also join the edge network and publish 5000 on 127.0.0.1 (for direct measurements). */
  publish?: boolean;
  /** Terminate TLS in the registry itself (the stack's `proxy: false` topology). */
  tls?: boolean;
  /** Listen only on REGISTRY_SOCKET in the lab's socket volume, as the stack's registry behind the proxy does. */
  socket?: boolean;
}

export interface NginxOptions {
  name: string;
  /** Complete nginx.conf. */
  conf: string;
  /** Upload the TLS certificate and key (the conf refers to NginxProxy's paths). */
  tls: boolean;
  /** Readiness probe path on the published port (any HTTP answer counts). */
  probePath?: string;
  /** tmpfs mounts (path → options), as the construct declares them. */
  tmpfs?: Record<string, string>;
  /** Mount the data volume read-only at Registry.DATA_PATH (serveBlobsFromStorage). */
  storage?: boolean;
  /** More files beside nginx.conf: [path, content, mode]. */
  files?: [string, string, number][];
  /** More volume mounts, Docker's `volume:path[:ro]`. */
  binds?: string[];
  /** Mount the lab's socket volume at Registry.SOCKET_DIRECTORY (a registry listening on REGISTRY_SOCKET). */
  socket?: boolean;
  /** More container ports published on 127.0.0.1 (a mirror's server); their host ports are in `ports`. */
  morePorts?: number[];
}

export class Lab {
  readonly id = crypto.randomBytes(3).toString("hex");
  readonly workDir: string;
  readonly caFile: string;
  readonly caDir: string;
  readonly tls: { certificateChainPem: string; privateKeyPem: string; caCertificatePem: string };
  readonly httpSecret = crypto.randomBytes(32).toString("base64url");
  readonly edge: string;
  readonly backend: string;
  readonly volume: string;
  /** Shared by a registry listening on a unix socket and the proxies in front of it, as in the stack. */
  readonly socketVolume: string;
  private readonly bridges: string[] = [];
  private readonly rules: string[][] = [];
  private readonly containers = new Map<string, ContainerHandle>();
  private networksCreated: string[] = [];
  private volumeCreated = false;
  private engine?: Engine;
  /** On any exit (also Ctrl-C, which e2e/engine.ts turns into stopping dockerd and exiting). */
  private readonly onExit = () => {
    this.removeRulesSync();
    // After a signal dockerd is stopped without removing its networks: their bridges would stay.
    for (const bridge of this.bridges) {
      try {
        execFileSync("ip", ["link", "delete", bridge], { stdio: "pipe", timeout: 10_000 });
      } catch {
        // already gone (the normal path removes the networks first)
      }
    }
    fs.rmSync(this.workDir, { recursive: true, force: true });
  };
  /** CPU used by everything that is not the bench (its processes, engine and containers). */
  readonly meter = new CpuMeter(
    () => [process.pid],
    () => [...this.containers.values()].map((c) => c.id),
  );

  constructor(private readonly log: Log) {
    this.workDir = fs.mkdtempSync(path.join(os.tmpdir(), "rsbench-"));
    const store = new MaterialStore(path.join(this.workDir, "material"));
    // The stack's own TLS material code, for the names clients use here.
    const material = ensureSelfSignedTls(store, { hostnames: ["localhost"], ipAddresses: [SERVER_NAME] }, systemEntropy);
    this.tls = material;
    this.caDir = path.join(this.workDir, "ca");
    fs.mkdirSync(this.caDir);
    this.caFile = path.join(this.caDir, "ca.crt");
    fs.writeFileSync(this.caFile, material.caCertificatePem);
    this.edge = `rsbench-${this.id}-edge`;
    this.backend = `rsbench-${this.id}-backend`;
    this.volume = `rsbench-${this.id}-data`;
    this.socketVolume = `rsbench-${this.id}-sockets`;
    process.once("exit", this.onExit);
  }

  get api() {
    if (!this.engine) throw new Error("lab not started");
    return this.engine.api;
  }

  get engineHandle(): Engine {
    if (!this.engine) throw new Error("lab not started");
    return this.engine;
  }

  /** Starts the engine and imports the e2e suite's images (its registry is distribution v3.1.1, the version the stack deploys). */
  async start(): Promise<void> {
    this.engine = await startEngine({ iptables: false, addressPool: ADDRESS_POOL, log: this.log });
    await prepareImages(this.engine, this.log);
    // Bridge names we choose, so the FORWARD rules name exactly our bridges (max 15 chars).
    for (const [name, internal, suffix] of [
      [this.edge, false, "e"],
      [this.backend, true, "b"],
    ] as const) {
      const bridge = `rsb${this.id}${suffix}`;
      await this.api.call({
        method: "POST",
        path: "/networks/create",
        json: { Name: name, Internal: internal, CheckDuplicate: true, Options: { "com.docker.network.bridge.name": bridge } },
      });
      this.networksCreated.push(name);
      this.bridges.push(bridge);
      const rule = ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"];
      execFileSync("iptables", ["-I", ...rule], { stdio: "pipe", timeout: 10_000 });
      this.rules.push(rule);
    }
    await this.api.call({ method: "POST", path: "/volumes/create", json: { Name: this.volume } });
    await this.api.call({ method: "POST", path: "/volumes/create", json: { Name: this.socketVolume } });
    this.volumeCreated = true;
  }

  /** The registry container as constructs/registry.ts declares it. */
  async startRegistry(o: RegistryOptions): Promise<ContainerHandle> {
    const config = renderRegistryConfig({
      httpSecret: this.httpSecret,
      listen: o.socket ? { socketPath: REGISTRY_SOCKET } : { port: Registry.PORT },
      drainTimeoutSeconds: 0,
      debugPort: Registry.DEFAULT_DEBUG_PORT,
      htpasswdPath: o.htpasswd !== undefined ? Registry.HTPASSWD_PATH : undefined,
      realm: Registry.REALM,
      deleteEnabled: false,
      logLevel: "warn",
      storageRootDirectory: o.inMemory ? undefined : Registry.DATA_PATH,
      tls: o.tls ? { certificatePath: Registry.CERTIFICATE_PATH, keyPath: Registry.KEY_PATH } : undefined,
    });
    const files: [string, string, number][] = [[Registry.CONFIG_PATH, config, 0o600]];
    if (o.htpasswd !== undefined) files.push([Registry.HTPASSWD_PATH, o.htpasswd, 0o600]);
    if (o.tls) files.push([Registry.CERTIFICATE_PATH, this.tls.certificateChainPem, 0o644], [Registry.KEY_PATH, this.tls.privateKeyPem, 0o600]);
    const port = o.publish ? await freePort() : undefined;
    const networks = o.publish ? [this.backend, this.edge] : [this.backend];
    const handle = await this.create(
      o.name,
      {
        Image: REGISTRY_V3_IMAGE,
        // On a socket: the construct's entrypoint, which opens the socket up for nginx's workers.
        ...(o.socket ? { Entrypoint: ["/bin/sh", "-c", socketServeScript(REGISTRY_SOCKET, Registry.CONFIG_PATH)], Cmd: [] } : { Cmd: [Registry.CONFIG_PATH] }),
        Env: ["OTEL_TRACES_EXPORTER=none"],
        ExposedPorts: port ? { [`${Registry.PORT}/tcp`]: {} } : undefined,
        HostConfig: {
          CapDrop: ["ALL"],
          SecurityOpt: NO_NEW_PRIVILEGES,
          Binds: [...(o.inMemory ? [] : [`${this.volume}:${Registry.DATA_PATH}`]), ...(o.socket ? [`${this.socketVolume}:${Registry.SOCKET_DIRECTORY}`] : [])],
          PortBindings: port ? { [`${Registry.PORT}/tcp`]: [{ HostIp: "127.0.0.1", HostPort: String(port) }] } : undefined,
        },
      },
      networks,
      [o.alias],
      files,
      port,
    );
    if (port) await this.waitHttp(`${o.tls ? "https" : "http"}://${SERVER_NAME}:${port}/`, o.name);
    return handle;
  }

  /** An nginx container as constructs/nginx-proxy.ts declares it, with the given nginx.conf. */
  async startNginx(o: NginxOptions): Promise<ContainerHandle & { ports: Record<number, number> }> {
    const files: [string, string, number][] = [[NginxProxy.CONFIG_PATH, o.conf, 0o644], ...(o.files ?? [])];
    if (o.tls) {
      files.push([NginxProxy.CERTIFICATE_PATH, this.tls.certificateChainPem, 0o644], [NginxProxy.KEY_PATH, this.tls.privateKeyPem, 0o600]);
    }
    const port = await freePort();
    const ports: Record<number, number> = { [NginxProxy.LISTEN_PORT]: port };
    for (const internal of o.morePorts ?? []) ports[internal] = await freePort();
    const binds = [
      ...(o.storage ? [`${this.volume}:${Registry.DATA_PATH}:ro`] : []),
      // Read-only, as constructs/nginx-proxy.ts mounts it.
      ...(o.socket ? [`${this.socketVolume}:${Registry.SOCKET_DIRECTORY}:ro`] : []),
      ...(o.binds ?? []),
    ];
    const handle = await this.create(
      o.name,
      {
        Image: NGINX_IMAGE,
        Cmd: ["nginx", "-c", NginxProxy.CONFIG_PATH, "-g", "daemon off;"],
        ExposedPorts: Object.fromEntries(Object.keys(ports).map((p) => [`${p}/tcp`, {}])),
        HostConfig: {
          CapDrop: ["ALL"],
          CapAdd: ["CHOWN", "SETGID", "SETUID"],
          SecurityOpt: NO_NEW_PRIVILEGES,
          Tmpfs: o.tmpfs,
          Binds: binds.length > 0 ? binds : undefined,
          PortBindings: Object.fromEntries(Object.entries(ports).map(([internal, host]) => [`${internal}/tcp`, [{ HostIp: "127.0.0.1", HostPort: String(host) }]])),
        },
      },
      [this.edge, this.backend],
      [],
      files,
      port,
    );
    const scheme = o.tls ? "https" : "http";
    await this.waitHttp(`${scheme}://${SERVER_NAME}:${port}${o.probePath ?? "/healthz"}`, o.name);
    return { ...handle, ports };
  }

  /**
   * CPU seconds used so far by the server side of a path: the named containers (cgroup v1
   * cpuacct, as on this host) plus the engine's docker-proxy for the published port.
   */
  serverCpuSeconds(containerNames: readonly string[], publishedPort: number): number {
    let ns = 0;
    for (const name of containerNames) {
      const c = this.containers.get(name);
      if (!c) throw new Error(`serverCpuSeconds: unknown container ${name}`);
      ns += Number(fs.readFileSync(`/sys/fs/cgroup/cpuacct/docker/${c.id}/cpuacct.usage`, "utf8").trim());
    }
    return ns / 1e9 + this.dockerProxyCpuSeconds(publishedPort);
  }

  private dockerProxyCpuSeconds(port: number): number {
    const enginePid = this.engineHandle.pid;
    let jiffies = 0;
    for (const entry of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const args = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
        if (!args[0].endsWith("docker-proxy")) continue;
        const i = args.indexOf("-host-port");
        if (i < 0 || args[i + 1] !== String(port)) continue;
        const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
        const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (Number(rest[1]) !== enginePid) continue; // only our engine's proxies
        jiffies += Number(rest[11]) + Number(rest[12]);
      } catch {
        // process ended meanwhile
      }
    }
    return jiffies / 100;
  }

  async remove(name: string): Promise<void> {
    const c = this.containers.get(name);
    if (!c) return;
    this.containers.delete(name);
    await this.api.call({ method: "DELETE", path: `/containers/${c.id}?force=1&v=1` }, [200, 204, 404]);
  }

  async logs(name: string): Promise<string> {
    return this.api.logs(name, 30);
  }

  /**
   * Contents of every file below `dir` inside a running container, read from the host through
   * /proc/<pid>/root of the container's main process (sees tmpfs mounts, unlike `docker cp`).
   */
  async readTree(name: string, dir: string): Promise<Buffer[]> {
    const info = await this.api.call<{ State: { Pid: number } }>({ method: "GET", path: `/containers/${name}/json` });
    const root = path.join(`/proc/${info.State.Pid}/root`, dir);
    const out: Buffer[] = [];
    const walk = (d: string, depth: number) => {
      if (depth > 4) return;
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p, depth + 1);
        else if (e.isFile() && out.length < 1000) out.push(fs.readFileSync(p));
      }
    };
    walk(root, 0);
    return out;
  }

  /** Removes everything the lab created, also after failures; never throws. */
  async cleanup(): Promise<void> {
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        this.log(`cleanup ${what}: ${(err as Error).message}`);
      }
    };
    if (this.engine) {
      for (const name of [...this.containers.keys()]) await step(`container ${name}`, () => this.remove(name));
      for (const n of this.networksCreated.reverse()) await step(`network ${n}`, () => this.api.call({ method: "DELETE", path: `/networks/${n}` }, [200, 204, 404]));
      this.networksCreated = [];
      if (this.volumeCreated) {
        await step("volume", () => this.api.call({ method: "DELETE", path: `/volumes/${this.volume}` }, [200, 204, 404]));
        await step("socket volume", () => this.api.call({ method: "DELETE", path: `/volumes/${this.socketVolume}` }, [200, 204, 404]));
      }
      this.volumeCreated = false;
    }
    this.removeRulesSync();
    if (this.engine) await step("engine", () => this.engine!.stop());
    fs.rmSync(this.workDir, { recursive: true, force: true });
    process.removeListener("exit", this.onExit);
  }

  private removeRulesSync(): void {
    while (this.rules.length > 0) {
      const rule = this.rules.pop()!;
      try {
        execFileSync("iptables", ["-D", ...rule], { stdio: "pipe", timeout: 10_000 });
      } catch (err) {
        this.log(`iptables -D ${rule.join(" ")}: ${(err as Error).message}`);
      }
    }
  }

  /** Creates, fills (`files`, not on a read-only root) and starts a container the lab removes at cleanup. */
  async create(
    name: string,
    body: Record<string, unknown>,
    networks: string[],
    aliases: string[],
    files: [string, string, number][],
    port: number | undefined,
  ): Promise<ContainerHandle> {
    const [first, ...others] = networks;
    const endpoint = { Aliases: aliases.length > 0 ? aliases : undefined };
    const hostConfig = { ...(body.HostConfig as Record<string, unknown>), NetworkMode: first };
    // `container:<id>` shares another container's network namespace: no endpoint of its own.
    const networking = first.startsWith("container:") ? {} : { NetworkingConfig: { EndpointsConfig: { [first]: endpoint } } };
    const created = await this.api.call<{ Id: string }>({
      method: "POST",
      path: `/containers/create?name=${encodeURIComponent(name)}`,
      json: { ...body, HostConfig: hostConfig, ...networking },
    });
    const handle: ContainerHandle = { name, id: created.Id, port };
    this.containers.set(name, handle);
    for (const n of others) {
      await this.api.call({ method: "POST", path: `/networks/${n}/connect`, json: { Container: created.Id, EndpointConfig: endpoint } });
    }
    for (const [file, content, mode] of files) {
      await this.api.call({
        method: "PUT",
        path: `/containers/${created.Id}/archive?path=%2F&noOverwriteDirNonDir=true`,
        body: singleFileTar(file, Buffer.from(content), mode),
        contentType: "application/x-tar",
      });
    }
    await this.api.call({ method: "POST", path: `/containers/${created.Id}/start` });
    return handle;
  }

  private async waitHttp(url: string, name: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    let last = "";
    for (let i = 0; i < 300 && Date.now() < deadline; i++) {
      try {
        await httpStatus(url, this.tls.caCertificatePem);
        return;
      } catch (err) {
        last = (err as Error).message;
      }
      const info = await this.api.call<{ State: { Running: boolean } }>({ method: "GET", path: `/containers/${name}/json` });
      if (!info.State.Running) throw new Error(`${name} exited:\n${await this.logs(name)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${name}: no answer on ${url} within 30 s (${last})\n${await this.logs(name)}`);
  }
}

/** Status of one GET (any status counts as an answer). */
export function httpStatus(url: string, ca?: string, timeoutMs = 2_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === "https:" ? https : http;
    const req = mod.request(u, { method: "GET", ca, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}
