import { Container, ContainerHealthcheck, ContainerUpload, ContainerVolumes } from "@cdktf/provider-docker/lib/container";
import { Image } from "@cdktf/provider-docker/lib/image";
import { Network } from "@cdktf/provider-docker/lib/network";
import { Volume } from "@cdktf/provider-docker/lib/volume";
import { createHash } from "crypto";
import { Construct } from "constructs";
import { MaterialStore } from "../material/material-store";
import { renderHtpasswd } from "../renderers/htpasswd";
import { MIRROR_PROBE, mirrorHealthCommand, mirrorModeSocketPath, mirrorOfflineFlagPath, mirrorStatusPath, offlineDebugPort, renderMirrorSupervisor } from "../renderers/mirror-supervisor";
import { renderRegistryConfig } from "../renderers/registry-config";
import { ConfigVolume } from "./config-volume";
import { cpusLiteral, IGNORE_ENGINE_DEFAULTS, memoryLimit, NO_NEW_PRIVILEGES, REGISTRY_USER, SCRATCH_TMPFS, terraformLiteral } from "./container-defaults";
import { secretUpload } from "./secret-upload";
import { VolumeOwner } from "./volume-owner";

export type RegistryStorage =
  | { readonly volumeName: string; readonly preventDestroy: boolean }
  | { readonly hostPath: string }
  /** Nothing kept: an instance that only verifies credentials for the proxy's auth cache. */
  | { readonly inMemory: true };

export interface RegistryProps {
  readonly containerName: string;
  /** The registry image (2.8.x or 3.x). */
  readonly image: Image;
  /**
   * Network alias other containers use to reach this registry.
   * @default Registry.ALIAS
   */
  readonly alias?: string;
  /** Signs upload state (`http.secret`); persisted so it never changes between deploys. */
  readonly httpSecret: string;
  /**
   * htpasswd users.
   * @default - no authentication: only for a registry behind a proxy that verifies credentials
   */
  readonly users?: ReadonlyArray<{ readonly name: string; readonly hash: string }>;
  readonly deleteEnabled: boolean;
  readonly logLevel: "error" | "warn" | "info" | "debug";
  readonly storage: RegistryStorage;
  /**
   * How the registry is reached: a unix socket in a volume shared only with the proxy (the
   * registry then has no network at all), or TCP on networks (the proxy-less topology).
   */
  readonly endpoint:
    | {
        readonly socketVolume: Volume;
        readonly socketName: string;
        /**
         * Networks (by name) the registry joins to reach out, e.g. a mirror's upstream; nothing
         * on them can reach the registry, which listens only on the socket.
         * @default - no network at all
         */
        readonly egressNetworks?: string[];
      }
    | { readonly networks: Network[] };
  /** Where the secret files (config.yml, htpasswd, key) are written before upload. */
  readonly secretFiles: MaterialStore;
  /**
   * Terminate TLS in the registry itself (the proxy-less topology).
   * @default - plain HTTP, for a proxy on a private network
   */
  readonly tls?: { readonly certificateChainPem: string; readonly privateKeyPem: string };
  /**
   * Publish the registry port on the host (the proxy-less topology).
   * @default - not published
   */
  readonly publish?: { readonly address: string; readonly port: number };
  /**
   * Debug server port (/metrics, /debug/health) on the container's loopback; the healthcheck uses it.
   * @default Registry.DEFAULT_DEBUG_PORT
   */
  readonly debugPort?: number;
  readonly restartPolicy: string;
  /** Seconds in-flight requests get to finish when the container is replaced or destroyed. */
  readonly stopGraceSeconds: number;
  /**
   * Containers serving the same config and storage, each on a socket of its own (only with a
   * socket endpoint): the proxy spreads requests over them and retries on another when one is
   * gone, so that a crash or restart of one refuses nothing.
   * @default 1
   */
  readonly instances?: number;
  readonly memoryMb: number;
  /**
   * CPU weight against the engine's other containers when the cores are busy (Docker's
   * `--cpu-shares`; 1024 is the default weight).
   * @default - the engine's default
   */
  readonly cpuShares?: number;
  /**
   * Cores the container may use at most (Docker's `--cpus`).
   * @default - no limit
   */
  readonly cpus?: number;
  /**
   * Serve as a pull-through cache of an upstream registry (distribution's proxy mode).
   * @default - a registry of its own content
   */
  readonly pullThrough?: {
    readonly remoteUrl: string;
    readonly username?: string;
    readonly password?: string;
    readonly ttl: string;
    /**
     * CA certificate (PEM) trusted for the upstream instead of the image's bundle.
     * @default - the image's CA bundle
     */
    readonly caCertificatePem?: string;
  };
  /**
   * distribution's in-memory blob-descriptor cache; off when the garbage collector deletes blobs
   * behind the registry's back (distribution#4569).
   * @default true
   */
  readonly blobDescriptorCache?: boolean;
}

/** The distribution registry: image, data volume and container with its generated config. */
export class Registry extends Construct {
  /** Network alias other containers use to reach the registry. */
  public static readonly ALIAS = "registry";
  public static readonly PORT = 5000;
  public static readonly CONFIG_DIRECTORY = "/etc/registry-stack";
  public static readonly CONFIG_PATH = "/etc/registry-stack/config.yml";
  /** A mirror's offline-mode config (no proxy section, read-only). */
  public static readonly OFFLINE_CONFIG_PATH = "/etc/registry-stack/offline-config.yml";
  public static readonly HTPASSWD_PATH = "/etc/registry-stack/htpasswd";
  public static readonly CERTIFICATE_PATH = "/etc/registry-stack/tls/server.crt";
  public static readonly KEY_PATH = "/etc/registry-stack/tls/server.key";
  public static readonly UPSTREAM_CA_PATH = "/etc/registry-stack/upstream-ca.crt";
  public static readonly DATA_PATH = "/var/lib/registry";
  public static readonly REALM = "Registry";
  public static readonly DEFAULT_DEBUG_PORT = 5001;
  /** Label naming the service (the configured container name) of every instance. */
  public static readonly SERVICE_LABEL = "registry-stack.service";
  /** Label naming an instance's socket file in the socket volume. */
  public static readonly SOCKET_LABEL = "registry-stack.socket";
  /** Label numbering the instances of one generation, from 1. */
  public static readonly INSTANCE_LABEL = "registry-stack.instance";
  /** Where the socket volume is mounted in the registry and the proxy. */
  public static readonly SOCKET_DIRECTORY = "/run/registry-stack";

  public readonly alias: string;
  public readonly port = Registry.PORT;
  /**
   * The first container's name: behind the proxy `<containerName>-<generation>`, a new one for
   * every change (see the constructor), else containerName. Instance n > 1 is `<instanceName>-<n>`.
   */
  public readonly instanceName: string;
  /** Path of the first instance's unix socket inside the registry and the proxy, when reached by socket. */
  public readonly socketPath?: string;
  /** A supervised mirror's status file and offline flag in the socket volume (renderers/mirror-supervisor.ts). */
  public readonly mirrorModeFiles?: { readonly statusPath: string; readonly offlineFlagPath: string };
  /** Every instance's socket path, in instance order (empty without a socket endpoint). */
  public readonly socketPaths: string[];
  /** Every instance's container; `container` is the first. */
  public readonly containers: Container[];
  /** Names the htpasswd content (a hash), when the registry checks users. */
  public readonly loginsDigest?: string;
  public readonly container: Container;
  /** The volume with config.yml, htpasswd and TLS files, mounted read-only. */
  public readonly configVolume: ConfigVolume;
  /** The named data volume, unless a host folder is used. */
  public readonly volume?: Volume;
  /** Port of the debug server (/metrics, /debug/health) on the container's loopback. */
  public readonly debugPort: number;
  /** How the data (volume or host folder) is mounted at DATA_PATH; none for an in-memory registry. */
  public readonly dataMount?: ContainerVolumes;
  /** Gives REGISTRY_USER the data, the socket directory and the config files before the registry starts. */
  public readonly volumeOwner: VolumeOwner;

  constructor(scope: Construct, id: string, props: RegistryProps) {
    super(scope, id);
    this.alias = props.alias ?? Registry.ALIAS;

    const volumes: ContainerVolumes[] = [];
    if ("hostPath" in props.storage) {
      this.dataMount = { hostPath: props.storage.hostPath, containerPath: Registry.DATA_PATH };
    } else if ("volumeName" in props.storage) {
      this.volume = new Volume(this, "data", {
        name: props.storage.volumeName,
        lifecycle: { preventDestroy: props.storage.preventDestroy },
      });
      this.dataMount = { volumeName: this.volume.name, containerPath: Registry.DATA_PATH };
    }
    if (this.dataMount) volumes.push(this.dataMount);

    const socket = "socketVolume" in props.endpoint ? props.endpoint : undefined;
    // A pull-through cache behind the proxy runs under the supervisor that keeps it serving
    // while the upstream is down (renderers/mirror-supervisor.ts).
    const supervised = socket !== undefined && props.pullThrough !== undefined;
    const instances = props.instances ?? 1;
    if (!Number.isInteger(instances) || instances < 1) throw new Error(`${this.node.path}: instances must be a whole number from 1, got ${instances}`);
    if (instances > 1 && !socket) throw new Error(`${this.node.path}: several instances need a socket endpoint (a published port can be bound once)`);
    if (supervised && instances > 1) throw new Error(`${this.node.path}: a mirror runs as one instance (its supervisor and cache-expiry scheduler would run twice)`);
    const debugPort = props.debugPort ?? Registry.DEFAULT_DEBUG_PORT;
    this.debugPort = debugPort;
    const htpasswdText = props.users ? renderHtpasswd(props.users) : undefined;
    if (htpasswdText !== undefined) this.loginsDigest = createHash("sha256").update(htpasswdText).digest("hex").slice(0, 16);
    const upstreamCa = props.pullThrough?.caCertificatePem;
    // Registry 3.0 images export OpenTelemetry traces to localhost:4318 unless told not to.
    const env = ["OTEL_TRACES_EXPORTER=none"];
    // Go's crypto/x509 reads roots from SSL_CERT_FILE instead of the system bundle when it is set.
    if (upstreamCa !== undefined) env.push(`SSL_CERT_FILE=${Registry.UPSTREAM_CA_PATH}`);

    // `offline`: a mirror's offline mode, the same storage without the proxy section, read-only,
    // on a socket and debug port of its own (see the supervisor).
    const renderConfig = (socketPath: string | undefined, mode: "serve" | "offline" = "serve") =>
      renderRegistryConfig({
        httpSecret: props.httpSecret,
        listen: socketPath === undefined ? { port: Registry.PORT } : { socketPath: supervised ? mirrorModeSocketPath(socketPath, mode === "offline" ? "offline" : "proxy") : socketPath },
        drainTimeoutSeconds: props.stopGraceSeconds,
        htpasswdPath: props.users ? Registry.HTPASSWD_PATH : undefined,
        realm: Registry.REALM,
        deleteEnabled: props.deleteEnabled,
        logLevel: props.logLevel,
        storageRootDirectory: "inMemory" in props.storage ? undefined : Registry.DATA_PATH,
        tls: props.tls ? { certificatePath: Registry.CERTIFICATE_PATH, keyPath: Registry.KEY_PATH } : undefined,
        debugPort: mode === "offline" ? offlineDebugPort(debugPort) : debugPort,
        pullThrough:
          props.pullThrough && mode === "serve"
            ? { remoteUrl: props.pullThrough.remoteUrl, username: props.pullThrough.username, password: props.pullThrough.password, ttl: props.pullThrough.ttl }
            : undefined,
        blobDescriptorCache: props.blobDescriptorCache,
        readOnly: mode === "offline" ? true : undefined,
      });
    const renderSupervisor = (socketPath: string, upstreamUrl: string) =>
      renderMirrorSupervisor({
        proxyConfigPath: Registry.CONFIG_PATH,
        offlineConfigPath: Registry.OFFLINE_CONFIG_PATH,
        socketPath,
        upstreamUrl,
        ...MIRROR_PROBE,
        startTimeoutSeconds: 20,
      });

    // Behind the proxy every change makes a new instance beside the old one (create before
    // destroy), on a socket of its own: the proxy reloads onto it and only then does Terraform
    // stop the old one, so a deploy refuses no request. Name and socket carry a hash of
    // everything that would replace the container.
    if (socket) {
      const socketBase = socket.socketName.replace(/\.sock$/, "");
      const generation = createHash("sha256")
        .update(
          JSON.stringify([
            renderConfig(`${Registry.SOCKET_DIRECTORY}/${socket.socketName}`),
            htpasswdText ?? "",
            props.tls ?? "",
            upstreamCa ?? "",
            props.image.nameInput ?? "",
            env,
            props.memoryMb,
            props.restartPolicy,
            props.stopGraceSeconds,
            socket.egressNetworks ?? [],
            instances,
            // Only for mirrors, so that the other registries keep their generation.
            ...(supervised
              ? [renderConfig(`${Registry.SOCKET_DIRECTORY}/${socket.socketName}`, "offline"), renderSupervisor(`${Registry.SOCKET_DIRECTORY}/${socket.socketName}`, props.pullThrough!.remoteUrl)]
              : []),
          ]),
        )
        .digest("hex")
        .slice(0, 10);
      this.instanceName = `${props.containerName}-${generation}`;
      this.socketPaths = Array.from({ length: instances }, (_, i) => `${Registry.SOCKET_DIRECTORY}/${socketBase}-${generation}${i === 0 ? "" : `-${i + 1}`}.sock`);
      this.socketPath = this.socketPaths[0];
      volumes.push({ volumeName: socket.socketVolume.name, containerPath: Registry.SOCKET_DIRECTORY });
    } else {
      this.instanceName = props.containerName;
      this.socketPaths = [];
    }
    const config = renderConfig(this.socketPath);
    if (supervised) this.mirrorModeFiles = { statusPath: mirrorStatusPath(this.socketPath!), offlineFlagPath: mirrorOfflineFlagPath(this.socketPath!) };
    // Files are named after the container so that two registries never share one.
    const uploads: ContainerUpload[] = [
      secretUpload(this, "config-file", props.secretFiles.write(`${props.containerName}.config.yml`, config), Registry.CONFIG_PATH),
    ];
    if (supervised) {
      const offline = props.secretFiles.write(`${props.containerName}.offline-config.yml`, renderConfig(this.socketPath!, "offline"));
      uploads.push(secretUpload(this, "offline-config-file", offline, Registry.OFFLINE_CONFIG_PATH));
    }
    if (htpasswdText !== undefined) {
      const htpasswd = props.secretFiles.write(`${props.containerName}.htpasswd`, htpasswdText);
      uploads.push(secretUpload(this, "htpasswd-file", htpasswd, Registry.HTPASSWD_PATH));
    }
    if (props.tls) {
      uploads.push(
        { file: Registry.CERTIFICATE_PATH, content: props.tls.certificateChainPem, permissions: "0644" },
        secretUpload(this, "tls-key-file", props.secretFiles.write(`${props.containerName}.server.key`, props.tls.privateKeyPem), Registry.KEY_PATH),
      );
    }

    if (upstreamCa !== undefined) uploads.push({ file: Registry.UPSTREAM_CA_PATH, content: upstreamCa, permissions: "0644" });
    const egress = socket?.egressNetworks ?? [];

    this.configVolume = new ConfigVolume(this, "config", {
      containerName: this.instanceName,
      image: props.image.imageId,
      directory: Registry.CONFIG_DIRECTORY,
      uploads,
    });
    // Before the config volume's read-only mount joins: the owner changes it (the secret files
    // are uploaded 0600 root and must be readable by the registry's user).
    this.volumeOwner = new VolumeOwner(this, "volume-owner", {
      containerName: this.instanceName,
      image: props.image.imageId,
      mounts: [...volumes],
      // The registry's own top folder: the image declares VOLUME /var/lib/registry, root-owned.
      keepFilled: { [Registry.DATA_PATH]: "docker" },
      alwaysMounts: [{ volumeName: this.configVolume.volume.name, containerPath: Registry.CONFIG_DIRECTORY }],
      dependsOn: [this.configVolume.seeder],
    });
    volumes.push(this.configVolume.mount);

    const healthcheck: ContainerHealthcheck = {
      // busybox wget is in the official (alpine) images; the debug server is on loopback only.
      test: supervised
        ? ["CMD-SHELL", mirrorHealthCommand(this.socketPath!, debugPort)]
        : ["CMD", "wget", "-q", "-O", "/dev/null", `http://127.0.0.1:${debugPort}/debug/health`],
      interval: "15s",
      timeout: "5s",
      retries: 3,
      startPeriod: "10s",
    };

    // One config.yml (it names the first socket) for all instances; each instance's environment
    // names its own (REGISTRY_HTTP_ADDR overrides http.addr).
    const instance = (n: number): Container => {
      const socketPath = this.socketPaths[n - 1] as string | undefined;
      return new Container(this, n === 1 ? "container" : `instance-${n}`, {
        name: n === 1 ? this.instanceName : `${this.instanceName}-${n}`,
        image: props.image.imageId,
        ...(socketPath !== undefined
          ? {
              entrypoint: ["/bin/sh", "-c", supervised ? terraformLiteral(renderSupervisor(socketPath, props.pullThrough!.remoteUrl)) : socketServeScript(socketPath, Registry.CONFIG_PATH)],
            }
          : {
              // The image entrypoint turns a *.yml argument into `registry serve <file>` (2.8 and 3.x alike).
              command: [Registry.CONFIG_PATH],
            }),
        env: instances > 1 && socketPath !== undefined ? [...env, `REGISTRY_HTTP_ADDR=${socketPath}`] : env,
        restart: props.restartPolicy,
        mustRun: true,
        wait: true,
        waitTimeout: 120,
        ...("networks" in props.endpoint
          ? { networksAdvanced: props.endpoint.networks.map((network) => ({ name: network.name, aliases: [this.alias] })) }
          : egress.length > 0
            ? { networksAdvanced: egress.map((name) => ({ name })) }
            : { networkMode: "none" }),
        ports: props.publish ? [{ internal: Registry.PORT, external: props.publish.port, ip: props.publish.address }] : undefined,
        volumes,
        readOnly: true,
        tmpfs: SCRATCH_TMPFS,
        user: REGISTRY_USER,
        dependsOn: [this.configVolume.seeder, this.volumeOwner.container],
        healthcheck,
        capabilities: { drop: ["ALL"] },
        securityOpts: NO_NEW_PRIVILEGES,
        ...memoryLimit(props.memoryMb),
        cpuShares: props.cpuShares,
        cpus: props.cpus === undefined ? undefined : cpusLiteral(props.cpus),
        destroyGraceSeconds: props.stopGraceSeconds,
        labels: [
          { label: Registry.SERVICE_LABEL, value: props.containerName },
          ...(socketPath !== undefined
            ? [
                { label: Registry.SOCKET_LABEL, value: socketPath.split("/").pop() as string },
                { label: Registry.INSTANCE_LABEL, value: String(n) },
              ]
            : []),
        ],
        lifecycle: socket ? { ...IGNORE_ENGINE_DEFAULTS, createBeforeDestroy: true } : IGNORE_ENGINE_DEFAULTS,
      });
    };
    this.containers = Array.from({ length: instances }, (_, i) => instance(i + 1));
    this.container = this.containers[0];
  }
}

/**
 * Starts the registry on a unix socket that nginx's unprivileged workers can connect to.
 * The registry creates the socket per its umask; a umask of 0 would also make every file it
 * writes to the data volume world-writable, so the socket alone is opened up once it exists
 * (bounded wait: 10 s). A socket left by a killed predecessor would make the listen fail, so
 * it is removed first.
 */
export function socketServeScript(socketPath: string, configPath: string): string {
  const openUp = `(for i in $(seq 200); do if [ -S ${socketPath} ]; then exec chmod 0666 ${socketPath}; fi; sleep 0.05; done) &`;
  return `rm -f ${socketPath} && ${openUp} exec registry serve ${configPath}`;
}
