import { Container, ContainerHealthcheck, ContainerPorts, ContainerUpload, ContainerVolumes } from "@cdktf/provider-docker/lib/container";
import { Image } from "@cdktf/provider-docker/lib/image";
import { Network } from "@cdktf/provider-docker/lib/network";
import { Volume } from "@cdktf/provider-docker/lib/volume";
import { createHash } from "crypto";
import { Construct } from "constructs";
import { MaterialStore } from "../material/material-store";
import { AccessRules, renderAccessModule } from "../renderers/access-module";
import { AUTH_CACHE_DIR, DEFAULT_PROXY_TUNING, GENERATION_PATH, LoginLimitScope, MirrorBlobCache, ProxyTuning, renderNginxConf, UpstreamAddress } from "../renderers/nginx/nginx-conf";
import { renderProxySupervisor, renderReloadCheck } from "../renderers/proxy-supervisor";
import { ConfigVolume, uploadsDigest } from "./config-volume";
import { exitedZero, IGNORE_ENGINE_DEFAULTS, memoryLimit, NO_NEW_PRIVILEGES, SCRATCH_TMPFS } from "./container-defaults";
import { Maintenance } from "./maintenance";
import { UiFile } from "../renderers/ui-assets";
import { Registry } from "./registry";
import { secretUpload } from "./secret-upload";

export interface NginxProxyProps {
  readonly containerName: string;
  /** Pinned nginx image. */
  readonly image: string;
  /** The registry to proxy to; it listens on a unix socket in `socketVolume`. */
  readonly registry: Registry;
  /**
   * A registry holding the htpasswd file that nginx asks (and caches) instead of the data registry.
   * @default - none: the data registry checks credentials itself on every request
   */
  readonly authVerifier?: {
    readonly registry: Registry;
    readonly cacheSeconds: number;
    /** Logins verified per client address and minute; cached logins do not count. */
    readonly verificationsPerMinute: number;
    /** @default - verificationsPerMinute */
    readonly verificationBurst?: number;
    /** Logins verified per minute from all client addresses together. */
    readonly totalVerificationsPerMinute: number;
    /** @default "address" */
    readonly limitScope?: LoginLimitScope;
    /** What each verified login (and anyone, with anonymous pull) may do. */
    readonly access: AccessRules;
  };
  /**
   * The maintenance container whose write hold the proxy honours (503 for writes while it collects garbage).
   * @default - writes are never held
   */
  readonly maintenance?: Maintenance;
  /** The volume holding the registry's (and the verifier's) unix socket; mounted read-only. */
  readonly socketVolume: Volume;
  /** The network whose bridge publishes the public port. */
  readonly edgeNetwork: Network;
  readonly serverNames: string[];
  readonly publish: { readonly address: string; readonly port: number };
  /**
   * TLS certificate chain and key.
   * @default - plain HTTP (lab mode)
   */
  readonly tls?: { readonly certificateChainPem: string; readonly privateKeyPem: string };
  /** Where the TLS key is written before upload. */
  readonly secretFiles: MaterialStore;
  /**
   * Host port of a plain-HTTP listener that redirects to HTTPS.
   * @default - none
   */
  readonly httpRedirectPort?: number;
  /**
   * Proxy buffering and timeouts.
   * @default DEFAULT_PROXY_TUNING
   */
  readonly tuning?: ProxyTuning;
  /**
   * The web UI's files, served under /ui/ (and / redirects there).
   * @default - no UI
   */
  readonly uiFiles?: UiFile[];
  /**
   * Pull-through caches, each served on its own published port with the proxy's TLS.
   * @default []
   */
  readonly mirrors?: ReadonlyArray<{
    readonly name: string;
    readonly registry: Registry;
    /** Host port clients use. */
    readonly port: number;
    /** The registry it caches, as clients name it (docker.io). */
    readonly mirrorOf: string;
    readonly anonymousPull: boolean;
    /**
     * nginx's cache of the mirror's blobs, on a volume of its own, which makes concurrent first
     * pulls of a blob one upstream fetch. Needs `authVerifier` or `anonymousPull` (nginx must be
     * the one checking logins).
     * @default - no cache: every request goes to the mirror
     */
    readonly blobCache?: {
      /** Name of the cache's Docker volume. */
      readonly volumeName: string;
      readonly maxSizeMb: number;
      /** How long a cached blob is used without asking the mirror again; unused ones are dropped after it too. */
      readonly validSeconds: number;
    };
  }>;
  /**
   * Answer plain blob downloads from the registry's storage, mounted read-only into the proxy
   * (renderNginxConf `blobReads`). Only with `authVerifier`: nginx must be the one checking logins.
   * @default false
   */
  readonly serveBlobsFromStorage?: boolean;
  readonly restartPolicy: string;
  /** Seconds nginx gets to finish in-flight transfers (graceful SIGQUIT) before it is killed. */
  readonly stopGraceSeconds: number;
  readonly memoryMb: number;
}

/** Nginx in front of the registry: TLS termination and the settings large layers need. */
export class NginxProxy extends Construct {
  public static readonly LISTEN_PORT = 8443;
  public static readonly REDIRECT_LISTEN_PORT = 8080;
  public static readonly HEALTH_LISTEN_PORT = 8081;
  public static readonly LOGIN_LIMITER_LISTEN_PORT = 8082;
  /** The folder a deploy uploads into (the config volume). nginx never reads it: see renderProxySupervisor. */
  public static readonly UPLOAD_DIRECTORY = "/etc/registry-stack";
  /** A link to the verified copy of the uploaded folder that nginx reads, on the container's tmpfs. */
  public static readonly SERVED_DIRECTORY = "/tmp/registry-stack/served";
  /** Mirror i listens on this port + i inside the container. */
  public static readonly MIRROR_LISTEN_PORT_BASE = 8500;
  /** The configuration's files, relative to both folders. */
  public static readonly CONFIG_FILE = "nginx.conf";
  public static readonly MARKER_FILE = "generation";
  /** A volume of the proxy's own: the generation it serves, read by the reload check. */
  public static readonly STATUS_DIRECTORY = "/run/registry-stack-proxy";
  public static readonly RELOAD_TIMEOUT_SECONDS = 90;
  public static readonly CERTIFICATE_FILE = "tls/server.crt";
  public static readonly KEY_FILE = "tls/server.key";
  /** The web UI's files, uploaded with nginx.conf. */
  public static readonly UI_FOLDER = "ui";
  public static readonly REFUSAL_LISTEN_PORT = 8083;
  public static readonly ACCESS_MODULE_FILE = "registry-access.js";
  /** Mirror <name>'s blob cache volume is mounted at <this>/mirror-<name>. */
  public static readonly MIRROR_CACHE_DIRECTORY = "/var/cache/registry-stack";

  public readonly container: Container;
  /** Names the uploaded configuration; the proxy answers it once it serves it. */
  public readonly generation: string;
  /** One-shot container that waits until the proxy serves `generation`. */
  public readonly reloadCheck: Container;
  /** The volume with nginx.conf and the TLS files, mounted read-only. */
  public readonly configVolume: ConfigVolume;

  constructor(scope: Construct, id: string, props: NginxProxyProps) {
    super(scope, id);
    const image = new Image(this, "image", { name: props.image, keepLocally: true });
    const uploaded = (file: string) => `${NginxProxy.UPLOAD_DIRECTORY}/${file}`;
    const served = (file: string) => `${NginxProxy.SERVED_DIRECTORY}/${file}`;

    // Every instance of a registry: nginx balances over them and retries on another (see upstreamRetryDirectives).
    const sockets = (registry: Registry): UpstreamAddress[] => {
      if (registry.socketPaths.length === 0) throw new Error(`${registry.node.path}: the proxy reaches registries by unix socket; give it a socket endpoint`);
      return registry.socketPaths.map((socketPath) => ({ socketPath }));
    };
    const verifier = props.authVerifier;
    const accessModule = verifier ? renderAccessModule(verifier.access) : undefined;
    // Part of the login cache's keys: a change of users, passwords or roles makes every cached
    // login ask the verifier again, although the proxy only reloads.
    const loginsGeneration = verifier
      ? createHash("sha256").update(JSON.stringify([verifier.registry.loginsDigest ?? "", accessModule])).digest("hex").slice(0, 12)
      : undefined;
    const supervisor = {
      uploadDirectory: NginxProxy.UPLOAD_DIRECTORY,
      markerName: NginxProxy.MARKER_FILE,
      configName: NginxProxy.CONFIG_FILE,
      servedDirectory: NginxProxy.SERVED_DIRECTORY,
      statusPath: `${NginxProxy.STATUS_DIRECTORY}/generation`,
      generationUrl: `http://127.0.0.1:${NginxProxy.HEALTH_LISTEN_PORT}${GENERATION_PATH}`,
      answerTimeoutSeconds: NginxProxy.RELOAD_TIMEOUT_SECONDS,
    };
    const firstName = props.serverNames[0];
    const pushEndpoint = `${firstName.includes(":") ? `[${firstName}]` : firstName}:${props.publish.port}`;
    const mirrors = (props.mirrors ?? []).map((m, index) => ({ ...m, listenPort: NginxProxy.MIRROR_LISTEN_PORT_BASE + index }));
    const cacheMounts: ContainerVolumes[] = [];
    const blobCaches = new Map<string, MirrorBlobCache>();
    for (const m of mirrors) {
      if (!m.blobCache) continue;
      if (!verifier && !m.anonymousPull) throw new Error(`${this.node.path}: mirror ${m.name}'s blob cache needs the auth verifier or anonymous pulls (nginx must check every login)`);
      // Per mirror, so that removing a mirror removes its cache; the mirror's name is its identity.
      const volume = new Volume(this, `mirror-${m.name}-blob-cache`, { name: m.blobCache.volumeName });
      const directory = `${NginxProxy.MIRROR_CACHE_DIRECTORY}/mirror-${m.name}`;
      cacheMounts.push({ volumeName: volume.name, containerPath: directory });
      blobCaches.set(m.name, { directory, maxSizeMb: m.blobCache.maxSizeMb, validSeconds: m.blobCache.validSeconds });
    }
    const serveBlobs = props.serveBlobsFromStorage ?? false;
    if (serveBlobs && !verifier) throw new Error(`${this.node.path}: serving blobs from storage needs the auth verifier (nginx must check every login)`);
    const renderConfig = (generation: string | undefined) => renderNginxConf({
      serverNames: props.serverNames,
      listenPort: NginxProxy.LISTEN_PORT,
      healthListenPort: NginxProxy.HEALTH_LISTEN_PORT,
      upstream: sockets(props.registry),
      tls: props.tls ? { certificatePath: served(NginxProxy.CERTIFICATE_FILE), keyPath: served(NginxProxy.KEY_FILE) } : undefined,
      httpRedirect:
        props.httpRedirectPort !== undefined ? { listenPort: NginxProxy.REDIRECT_LISTEN_PORT, publicPort: props.publish.port } : undefined,
      tuning: props.tuning ?? DEFAULT_PROXY_TUNING,
      ui: props.uiFiles ? { directory: served(NginxProxy.UI_FOLDER) } : undefined,
      metricsFile: props.maintenance ? `${Maintenance.PROXY_STATE_DIRECTORY}/${Maintenance.METRICS_FILE_NAME}` : undefined,
      writeHold: props.maintenance
        ? { flagFile: `${Maintenance.PROXY_STATE_DIRECTORY}/${Maintenance.HOLD_FILE_NAME}`, retryAfterSeconds: Maintenance.RETRY_AFTER_SECONDS }
        : undefined,
      blobReads: serveBlobs ? { storageRoot: Registry.DATA_PATH } : undefined,
      generation,
      authCache: verifier
        ? {
            verifier: sockets(verifier.registry),
            loginsGeneration,
            cacheSeconds: verifier.cacheSeconds,
            realm: Registry.REALM,
            verificationsPerMinute: verifier.verificationsPerMinute,
            verificationBurst: verifier.verificationBurst,
            totalVerificationsPerMinute: verifier.totalVerificationsPerMinute,
            limitScope: verifier.limitScope,
            limiterListenPort: NginxProxy.LOGIN_LIMITER_LISTEN_PORT,
            access: {
              modulePath: served(NginxProxy.ACCESS_MODULE_FILE),
              anonymousPull: verifier.access.anonymousPull,
              refusalListenPort: NginxProxy.REFUSAL_LISTEN_PORT,
              publicPort: props.publish.port,
            },
          }
        : undefined,
      mirrors: mirrors.map((m) => ({
        name: m.name,
        listenPort: m.listenPort,
        upstream: sockets(m.registry),
        mirrorOf: m.mirrorOf,
        pushTo: pushEndpoint,
        anonymousPull: m.anonymousPull,
        blobCache: blobCaches.get(m.name),
        modeFiles: m.registry.mirrorModeFiles,
      })),
    });
    const uploads: ContainerUpload[] = [];
    // What each file holds once written: the marker lists their checksums (see below).
    // Per file (relative to both folders), what it holds once written: the marker lists their checksums (see below).
    const written = new Map<string, string>();
    const place = (file: string, text: string, upload: (at: string) => ContainerUpload) => {
      written.set(file, text);
      uploads.push(upload(uploaded(file)));
    };
    // Not secret, and like nginx.conf visible in `cdktf diff`.
    for (const file of props.uiFiles ?? []) {
      place(`${NginxProxy.UI_FOLDER}/${file.path}`, file.content, (at) => ({ file: at, content: terraformLiteral(file.content), permissions: "0644" }));
    }
    // User names and roles are not secret: as content, a role change shows in `cdktf diff`.
    if (accessModule !== undefined) {
      place(NginxProxy.ACCESS_MODULE_FILE, accessModule, (at) => ({ file: at, content: terraformLiteral(accessModule), permissions: "0644" }));
    }
    if (props.tls) {
      const tls = props.tls;
      place(NginxProxy.CERTIFICATE_FILE, tls.certificateChainPem, (at) => ({ file: at, content: tls.certificateChainPem, permissions: "0644" }));
      place(NginxProxy.KEY_FILE, tls.privateKeyPem, (at) => secretUpload(this, "tls-key-file", props.secretFiles.write(`${props.containerName}.server.key`, tls.privateKeyPem), at));
    }

    // The generation names everything uploaded; nginx.conf answers it, so it is hashed without it.
    this.generation = uploadsDigest([...uploads, { file: uploaded(NginxProxy.CONFIG_FILE), content: renderConfig(undefined) }]);
    // nginx.conf holds no secret: uploading it as content makes every change visible in `cdktf diff`.
    const config = renderConfig(this.generation);
    place(NginxProxy.CONFIG_FILE, config, (at) => ({ file: at, content: config, permissions: "0644" }));
    // The provider uploads the files one by one, in no fixed order: the marker names the
    // generation and every file's checksum, so the supervisor serves only a copy in which all match.
    const sums = [...written].map(([file, text]) => `${createHash("sha256").update(text).digest("hex")}  ${file}`);
    uploads.push({ file: uploaded(NginxProxy.MARKER_FILE), content: [this.generation, ...sums, ""].join("\n"), permissions: "0644" });
    // The registries the configuration points to serve before it is uploaded (see ProxySupervisor).
    const upstreams = [props.registry, ...(verifier ? [verifier.registry] : []), ...mirrors.map((m) => m.registry)];
    this.configVolume = new ConfigVolume(this, "config", {
      containerName: props.containerName,
      image: image.imageId,
      directory: NginxProxy.UPLOAD_DIRECTORY,
      uploads,
      reloaded: true,
      dependsOn: upstreams.flatMap((r) => r.containers),
    });
    const statusVolume = new Volume(this, "status", { name: `${props.containerName}-status` });

    const ports: ContainerPorts[] = [{ internal: NginxProxy.LISTEN_PORT, external: props.publish.port, ip: props.publish.address }];
    for (const m of mirrors) ports.push({ internal: m.listenPort, external: m.port, ip: props.publish.address });
    if (props.httpRedirectPort !== undefined) {
      ports.push({ internal: NginxProxy.REDIRECT_LISTEN_PORT, external: props.httpRedirectPort, ip: props.publish.address });
    }

    const healthcheck: ContainerHealthcheck = {
      test: ["CMD", "wget", "-q", "-O", "/dev/null", `http://127.0.0.1:${NginxProxy.HEALTH_LISTEN_PORT}/healthz`],
      interval: "15s",
      timeout: "5s",
      retries: 3,
      startPeriod: "5s",
    };

    this.container = new Container(this, "container", {
      name: props.containerName,
      image: image.imageId,
      // nginx under the supervisor that reloads it (not the official image's entrypoint scripts,
      // which would try to edit /etc/nginx). `-e stderr`: the compiled-in error log is not writable.
      entrypoint: ["/bin/sh", "-c", terraformLiteral(renderProxySupervisor(supervisor))],
      // SIGQUIT is nginx's graceful stop: in-flight pushes and pulls finish within the grace period.
      stopSignal: "SIGQUIT",
      destroyGraceSeconds: props.stopGraceSeconds,
      restart: props.restartPolicy,
      mustRun: true,
      wait: true,
      waitTimeout: 120,
      networksAdvanced: [{ name: props.edgeNetwork.name }],
      volumes: [
        { volumeName: props.socketVolume.name, containerPath: Registry.SOCKET_DIRECTORY, readOnly: true },
        this.configVolume.mount,
        { volumeName: statusVolume.name, containerPath: NginxProxy.STATUS_DIRECTORY },
        ...(props.maintenance ? [{ volumeName: props.maintenance.stateVolume.name, containerPath: Maintenance.PROXY_STATE_DIRECTORY, readOnly: true }] : []),
        ...(serveBlobs && props.registry.dataMount ? [{ ...props.registry.dataMount, readOnly: true }] : []),
        ...cacheMounts,
      ],
      ports,
      readOnly: true,
      dependsOn: [this.configVolume.seeder],
      tmpfs: {
        ...SCRATCH_TMPFS,
        // Cache keys are the clients' Authorization headers: kept in memory, for nginx only.
        ...(verifier ? { [AUTH_CACHE_DIR]: "rw,noexec,nosuid,size=16m,mode=0700" } : {}),
      },
      healthcheck,
      // The master needs SETUID/SETGID to drop workers to an unprivileged user and CHOWN for its temp dirs.
      capabilities: { drop: ["ALL"], add: ["CAP_CHOWN", "CAP_SETGID", "CAP_SETUID"] },
      securityOpts: NO_NEW_PRIVILEGES,
      ...memoryLimit(props.memoryMb),
      lifecycle: IGNORE_ENGINE_DEFAULTS,
    });

    // Terraform goes on (and stops the registries the old configuration pointed to) only once
    // the proxy serves this generation; a configuration nginx refuses fails the deploy here.
    this.reloadCheck = new Container(this, "reload-check", {
      name: `${props.containerName}-reload-check`,
      image: image.imageId,
      entrypoint: ["/bin/sh", "-c", terraformLiteral(renderReloadCheck(supervisor.statusPath, this.generation, NginxProxy.RELOAD_TIMEOUT_SECONDS, props.containerName))],
      networkMode: "none",
      readOnly: true,
      volumes: [{ volumeName: statusVolume.name, containerPath: NginxProxy.STATUS_DIRECTORY, readOnly: true }],
      capabilities: { drop: ["ALL"] },
      securityOpts: NO_NEW_PRIVILEGES,
      attach: true,
      logs: true,
      mustRun: false,
      restart: "no",
      ...memoryLimit(32),
      dependsOn: [this.container, this.configVolume.seeder, ...upstreams.flatMap((r) => r.containers)],
      lifecycle: { ...IGNORE_ENGINE_DEFAULTS, postcondition: [exitedZero(`the proxy ${props.containerName} did not load its new configuration`)] },
    });
  }
}

/**
 * Text Terraform must not interpolate: the scripts' template literals (`${…}`) and `%{`
 * directives are escaped as `$${` and `%%{`. (cdktf's Fn.rawString is meant for use inside
 * expressions; as a plain attribute value it leaves backslash-escaped quotes in the file.)
 */
function terraformLiteral(text: string): string {
  return text.replace(/\$\{/g, "$$${").replace(/%\{/g, "%%{");
}
