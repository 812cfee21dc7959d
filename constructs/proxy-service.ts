import { Network } from "@cdktf/provider-docker/lib/network";
import { Service, ServiceTaskSpecContainerSpecConfigs, ServiceTaskSpecContainerSpecSecrets } from "@cdktf/provider-docker/lib/service";
import { createHash } from "crypto";
import { Construct } from "constructs";
import { NginxProxy } from "./nginx-proxy";
import { MaterialStore } from "../material/material-store";
import { AccessRules, renderAccessModule } from "../renderers/access-module";
import { AUTH_CACHE_DIR, DEFAULT_PROXY_TUNING, LoginLimitScope, renderNginxConf } from "../renderers/nginx/nginx-conf";
import { renderWriteHoldPoller } from "../renderers/write-hold-poller";
import { RegistryService } from "./registry-service";
import { attachNetworks, RESTART_ALWAYS, rollingUpdate, SCRATCH_TMPFS_BYTES, swarmDuration, wgetHealthcheck } from "./swarm-defaults";
import { SwarmConfig } from "./swarm-config";
import { SwarmSecret } from "./swarm-secret";

export interface ProxyServiceProps {
  readonly serviceName: string;
  /** Pinned nginx image with the njs module; present on every node or pullable there. */
  readonly image: string;
  readonly network: Network;
  readonly registry: RegistryService;
  /** The replicated verifier holding the htpasswd file; nginx asks it and caches the answer. */
  readonly verifier: {
    readonly service: RegistryService;
    readonly cacheSeconds: number;
    readonly verificationsPerMinute: number;
    /** @default - verificationsPerMinute */
    readonly verificationBurst?: number;
    /** Logins verified per minute from all client addresses together. */
    readonly totalVerificationsPerMinute: number;
    readonly limitScope: LoginLimitScope;
    readonly access: AccessRules;
  };
  readonly serverNames: string[];
  /** Published on every node, on all of its addresses (Swarm cannot bind one address: moby#26696). */
  readonly publicPort: number;
  /**
   * @default - plain HTTP (lab mode)
   */
  readonly tls?: { readonly certificateChainPem: string; readonly privateKeyPem: string };
  /** Where the TLS key is written before it becomes a Swarm secret. */
  readonly secretFiles: MaterialStore;
  readonly stopGraceSeconds: number;
  readonly memoryMb: number;
  /**
   * Hold writes (503) while this URL does not answer 200: the collector's hold state, polled
   * each second by every proxy task.
   * @default - writes are never held (no collector)
   */
  readonly writeHoldStateUrl?: string;
}

/**
 * nginx on every node (a global service) publishing the public port in host mode (the ingress
 * routing mesh needs IPVS), in front of the registry and verifier services, which it finds
 * through Docker's DNS on every request: a replica that stops is out of the answers within
 * seconds, and a connection refused by one is retried on the next (proxy_next_upstream).
 */
export class ProxyService extends Construct {
  // The same nginx ports as on a single host (renderers and health checks assume them).
  public static readonly LISTEN_PORT = NginxProxy.LISTEN_PORT;
  public static readonly HEALTH_LISTEN_PORT = NginxProxy.HEALTH_LISTEN_PORT;
  public static readonly LOGIN_LIMITER_LISTEN_PORT = NginxProxy.LOGIN_LIMITER_LISTEN_PORT;
  public static readonly REFUSAL_LISTEN_PORT = 8083;
  public static readonly CONFIG_PATH = "/etc/registry-stack/nginx.conf";
  public static readonly ACCESS_MODULE_PATH = "/etc/registry-stack/registry-access.js";
  public static readonly CERTIFICATE_PATH = "/etc/registry-stack/tls/server.crt";
  public static readonly KEY_FILE = "registry-server.key";
  public static readonly HOLD_DIRECTORY = "/run/registry-stack-hold";
  public static readonly HOLD_FLAG_FILE = `${ProxyService.HOLD_DIRECTORY}/write-hold`;
  public static readonly HOLD_POLL_SECONDS = 1;
  public static readonly RETRY_AFTER_SECONDS = 10;

  public readonly service: Service;
  /** The rendered nginx.conf (not secret). */
  public readonly nginxConf: string;

  constructor(scope: Construct, id: string, props: ProxyServiceProps) {
    super(scope, id);
    const verifier = props.verifier;
    const accessModule = renderAccessModule(verifier.access);
    // Part of the login cache's keys: a change of users, passwords or roles makes every cached login ask again.
    const loginsGeneration = createHash("sha256").update(JSON.stringify([verifier.service.loginsDigest ?? "", accessModule])).digest("hex").slice(0, 12);
    const keyPath = `${RegistryService.SECRETS_DIRECTORY}/${ProxyService.KEY_FILE}`;
    this.nginxConf = renderNginxConf({
      serverNames: props.serverNames,
      listenPort: ProxyService.LISTEN_PORT,
      healthListenPort: ProxyService.HEALTH_LISTEN_PORT,
      upstream: { serviceName: props.registry.serviceName, port: props.registry.port },
      tls: props.tls ? { certificatePath: ProxyService.CERTIFICATE_PATH, keyPath } : undefined,
      tuning: DEFAULT_PROXY_TUNING,
      writeHold: props.writeHoldStateUrl !== undefined ? { flagFile: ProxyService.HOLD_FLAG_FILE, retryAfterSeconds: ProxyService.RETRY_AFTER_SECONDS } : undefined,
      authCache: {
        verifier: { serviceName: verifier.service.serviceName, port: verifier.service.port },
        loginsGeneration,
        cacheSeconds: verifier.cacheSeconds,
        realm: RegistryService.REALM,
        verificationsPerMinute: verifier.verificationsPerMinute,
        verificationBurst: verifier.verificationBurst,
        totalVerificationsPerMinute: verifier.totalVerificationsPerMinute,
        limitScope: verifier.limitScope,
        limiterListenPort: ProxyService.LOGIN_LIMITER_LISTEN_PORT,
        access: {
          modulePath: ProxyService.ACCESS_MODULE_PATH,
          anonymousPull: verifier.access.anonymousPull,
          refusalListenPort: ProxyService.REFUSAL_LISTEN_PORT,
          publicPort: props.publicPort,
        },
      },
    });

    const name = props.serviceName;
    const nginxCommand = ["nginx", "-e", "stderr", "-c", ProxyService.CONFIG_PATH, "-g", "daemon off;"];
    const configs: ServiceTaskSpecContainerSpecConfigs[] = [
      new SwarmConfig(this, "nginx-conf", { name: `${name}-nginx-conf`, content: this.nginxConf }).mount(ProxyService.CONFIG_PATH),
      new SwarmConfig(this, "access-module", { name: `${name}-access-module`, content: accessModule }).mount(ProxyService.ACCESS_MODULE_PATH),
    ];
    const secrets: ServiceTaskSpecContainerSpecSecrets[] = [];
    if (props.tls) {
      configs.push(new SwarmConfig(this, "certificate", { name: `${name}-certificate`, content: props.tls.certificateChainPem }).mount(ProxyService.CERTIFICATE_PATH));
      const keyFile = props.secretFiles.write(`${name}.server.key`, props.tls.privateKeyPem);
      // Read by the nginx master (root) before it starts its unprivileged workers.
      secrets.push(new SwarmSecret(this, "key", { name: `${name}-key`, file: keyFile }).mount(ProxyService.KEY_FILE, 0));
    }

    this.service = new Service(this, "service", {
      name,
      mode: { global: true },
      endpointSpec: {
        mode: "dnsrr",
        ports: [{ targetPort: ProxyService.LISTEN_PORT, publishedPort: props.publicPort, publishMode: "host", protocol: "tcp" }],
      },
      taskSpec: {
        containerSpec: {
          image: props.image,
          // Not the official image's entrypoint scripts, which would edit /etc/nginx.
          command:
            props.writeHoldStateUrl === undefined
              ? nginxCommand
              : [
                  "/bin/sh",
                  "-c",
                  renderWriteHoldPoller({ stateUrl: props.writeHoldStateUrl, flagFile: ProxyService.HOLD_FLAG_FILE, intervalSeconds: ProxyService.HOLD_POLL_SECONDS, timeoutSeconds: 2, nginxCommand }),
                ],
          readOnly: true,
          mounts: [
            { type: "tmpfs", target: "/tmp", tmpfsOptions: { sizeBytes: SCRATCH_TMPFS_BYTES } },
            ...(props.writeHoldStateUrl !== undefined ? [{ type: "tmpfs", target: ProxyService.HOLD_DIRECTORY, tmpfsOptions: { sizeBytes: 64 * 1024, mode: 0o755 } }] : []),
            // Cache keys are the clients' Authorization headers: in memory, for nginx only.
            { type: "tmpfs", target: AUTH_CACHE_DIR, tmpfsOptions: { sizeBytes: 16 * 1024 * 1024, mode: 0o700 } },
          ],
          configs,
          secrets,
          healthcheck: wgetHealthcheck(`http://127.0.0.1:${ProxyService.HEALTH_LISTEN_PORT}/healthz`, 5),
          // SIGQUIT is nginx's graceful stop: in-flight pushes and pulls finish within the grace period.
          stopSignal: "SIGQUIT",
          stopGracePeriod: swarmDuration(props.stopGraceSeconds),
          capDrop: ["ALL"],
          // The master needs SETUID/SETGID to drop workers to an unprivileged user and CHOWN for its temp dirs.
          capAdd: ["CAP_CHOWN", "CAP_SETGID", "CAP_SETUID"],
        },
        resources: { limits: { memoryBytes: props.memoryMb * 1024 * 1024 } },
        restartPolicy: RESTART_ALWAYS,
      },
      // The host port is the old task's until it stops: one node at a time, stop first.
      updateConfig: rollingUpdate("stop-first"),
      rollbackConfig: { parallelism: 1, order: "stop-first" },
      // No converge_config: the provider refuses it for global services (it counts replicas).
    });
    attachNetworks(this.service, [props.network]);
  }
}
