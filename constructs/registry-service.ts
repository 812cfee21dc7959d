import { Network } from "@cdktf/provider-docker/lib/network";
import { Service, ServiceTaskSpecContainerSpecSecrets } from "@cdktf/provider-docker/lib/service";
import { createHash } from "crypto";
import { Construct } from "constructs";
import { MaterialStore } from "../material/material-store";
import { renderHtpasswd } from "../renderers/htpasswd";
import { RedisCache, renderRegistryConfig, S3Storage } from "../renderers/registry-config";
import { REGISTRY_GID, REGISTRY_UID, REGISTRY_USER } from "./container-defaults";
import { attachNetworks, RESTART_ALWAYS, rollingUpdate, SCRATCH_TMPFS_BYTES, swarmDuration, wgetHealthcheck } from "./swarm-defaults";
import { SwarmSecret } from "./swarm-secret";

export interface RegistryServiceProps {
  /** The Swarm service's name, which Docker's DNS answers on the network with one address per task. */
  readonly serviceName: string;
  /** Pinned registry image (3.x: `redis.addrs`); present on every node or pullable there. */
  readonly image: string;
  readonly network: Network;
  readonly replicas: number;
  /** Shared by every replica: an upload that crosses replicas needs the same `http.secret`. */
  readonly httpSecret: string;
  /**
   * htpasswd users, for a verifier the proxies ask.
   * @default - no authentication (the proxies check logins)
   */
  readonly users?: ReadonlyArray<{ readonly name: string; readonly hash: string }>;
  /** S3 storage and the Redis cache shared by the replicas, or nothing kept (a verifier). */
  readonly storage: { readonly s3: S3Storage; readonly redis: RedisCache } | { readonly inMemory: true };
  /**
   * Purge abandoned uploads. With several replicas on one storage exactly one should (distribution#4074).
   * @default false
   */
  readonly uploadPurging?: boolean;
  readonly deleteEnabled: boolean;
  readonly logLevel: "error" | "warn" | "info" | "debug";
  /** Where config.yml and htpasswd are written before they become Swarm secrets. */
  readonly secretFiles: MaterialStore;
  readonly stopGraceSeconds: number;
  readonly memoryMb: number;
  /** @default 5001 */
  readonly debugPort?: number;
}

/**
 * distribution as a replicated Swarm service without published ports: reached by its service
 * name on the overlay network (`dnsrr`: one DNS answer per task, no virtual IP, which needs IPVS).
 * config.yml (with the S3 keys, the Redis password and `http.secret`) and htpasswd are Swarm secrets.
 */
export class RegistryService extends Construct {
  public static readonly PORT = 5000;
  public static readonly CONFIG_FILE = "registry-config.yml";
  public static readonly HTPASSWD_FILE = "registry-htpasswd";
  public static readonly SECRETS_DIRECTORY = "/run/secrets";
  public static readonly REALM = "Registry";

  public readonly service: Service;
  public readonly serviceName: string;
  public readonly port = RegistryService.PORT;
  /** Names the htpasswd content (a hash), when the service checks users. */
  public readonly loginsDigest?: string;

  constructor(scope: Construct, id: string, props: RegistryServiceProps) {
    super(scope, id);
    this.serviceName = props.serviceName;
    const debugPort = props.debugPort ?? 5001;
    const htpasswdText = props.users ? renderHtpasswd(props.users) : undefined;
    if (htpasswdText !== undefined) this.loginsDigest = createHash("sha256").update(htpasswdText).digest("hex").slice(0, 16);
    const config = renderRegistryConfig({
      httpSecret: props.httpSecret,
      listen: { port: RegistryService.PORT },
      drainTimeoutSeconds: props.stopGraceSeconds,
      htpasswdPath: htpasswdText !== undefined ? `${RegistryService.SECRETS_DIRECTORY}/${RegistryService.HTPASSWD_FILE}` : undefined,
      realm: RegistryService.REALM,
      deleteEnabled: props.deleteEnabled,
      logLevel: props.logLevel,
      debugPort,
      ...("s3" in props.storage ? { s3: props.storage.s3, redis: props.storage.redis } : {}),
      uploadPurging: props.uploadPurging ?? false,
    });
    const secrets: ServiceTaskSpecContainerSpecSecrets[] = [
      new SwarmSecret(this, "config", { name: `${props.serviceName}-config`, file: props.secretFiles.write(`${props.serviceName}.config.yml`, config) }).mount(
        RegistryService.CONFIG_FILE,
        REGISTRY_UID,
      ),
    ];
    if (htpasswdText !== undefined) {
      const file = props.secretFiles.write(`${props.serviceName}.htpasswd`, htpasswdText);
      secrets.push(new SwarmSecret(this, "htpasswd", { name: `${props.serviceName}-htpasswd`, file }).mount(RegistryService.HTPASSWD_FILE, REGISTRY_UID));
    }
    if (REGISTRY_GID !== REGISTRY_UID) throw new Error("the registry's secrets are mounted for one id as user and group");

    this.service = new Service(this, "service", {
      name: props.serviceName,
      mode: { replicated: { replicas: props.replicas } },
      endpointSpec: { mode: "dnsrr" },
      taskSpec: {
        containerSpec: {
          image: props.image,
          // `args`, not `command` (the entrypoint): the image's entrypoint turns a *.yml argument into `registry serve <file>`.
          args: [`${RegistryService.SECRETS_DIRECTORY}/${RegistryService.CONFIG_FILE}`],
          // Registry 3.0 images export OpenTelemetry traces to localhost:4318 unless told not to.
          env: { OTEL_TRACES_EXPORTER: "none" },
          user: REGISTRY_USER,
          readOnly: true,
          mounts: [{ type: "tmpfs", target: "/tmp", tmpfsOptions: { sizeBytes: SCRATCH_TMPFS_BYTES } }],
          secrets,
          healthcheck: wgetHealthcheck(`http://127.0.0.1:${debugPort}/debug/health`, 10),
          stopGracePeriod: swarmDuration(props.stopGraceSeconds),
          capDrop: ["ALL"],
        },
        resources: { limits: { memoryBytes: props.memoryMb * 1024 * 1024 } },
        restartPolicy: RESTART_ALWAYS,
      },
      updateConfig: rollingUpdate("start-first"),
      rollbackConfig: { parallelism: 1, order: "start-first" },
      convergeConfig: { delay: swarmDuration(2), timeout: swarmDuration(300) },
    });
    attachNetworks(this.service, [props.network]);
  }
}
