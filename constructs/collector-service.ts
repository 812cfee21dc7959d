import { Network } from "@cdktf/provider-docker/lib/network";
import { Service, ServiceTaskSpecContainerSpecSecrets } from "@cdktf/provider-docker/lib/service";
import { Construct } from "constructs";
import { MaterialStore } from "../material/material-store";
import { MAINTENANCE_SCRIPT, MAINTENANCE_SCRIPT_PATH, RetentionRule, renderMaintenanceSettings } from "../renderers/maintenance-settings";
import { RedisCache, renderRegistryConfig, S3Storage } from "../renderers/registry-config";
import { REGISTRY_UID, REGISTRY_USER } from "./container-defaults";
import { attachNetworks, RESTART_ALWAYS, SCRATCH_TMPFS_BYTES, swarmDuration, wgetHealthcheck } from "./swarm-defaults";
import { SwarmConfig } from "./swarm-config";
import { SwarmSecret } from "./swarm-secret";

export interface CollectorServiceProps {
  readonly serviceName: string;
  /** The registry image: `registry serve`, `registry garbage-collect`, a POSIX shell and busybox nc. */
  readonly image: string;
  readonly network: Network;
  readonly s3: S3Storage;
  /** The replicas' shared blob-descriptor cache, flushed after each run. */
  readonly redis: RedisCache;
  readonly httpSecret: string;
  /** Daily time in UTC, HH:MM. */
  readonly schedule: string;
  readonly dryRun: boolean;
  /** Seconds writes are held before deleting, on top of HOLD_PROPAGATION_SECONDS. */
  readonly writeSettleSeconds: number;
  readonly rules: readonly RetentionRule[];
  readonly logLevel: "error" | "warn" | "info" | "debug";
  /** Where config.yml and the Redis password are written before they become Swarm secrets. */
  readonly secretFiles: MaterialStore;
  readonly stopGraceSeconds: number;
  readonly memoryMb: number;
}

/**
 * The cluster's one garbage collector: a single task of the registry image running the same
 * maintenance job as on one host (renderers/maintenance.sh), on the replicas' S3 storage. It
 * serves a registry of its own on loopback (retention goes through its API: S3 has no filesystem
 * to walk) and a second, empty one whose /debug/health, on the overlay, is 503 while writes are
 * held: every node's proxy polls it and holds writes then, or when it does not answer. After the collector it flushes the
 * replicas' Redis cache, then releases the hold. Runs on a manager, where `npm run gc` finds it.
 */
export class CollectorService extends Construct {
  /** The S3 registry the job plans and deletes through (loopback). */
  public static readonly API_PORT = 5000;
  /** The hold-state registry's debug server, on the overlay: its /debug/health is what the proxies poll. */
  public static readonly HEALTH_PORT = 5001;
  /** The hold-state registry's own API (loopback, unused). */
  public static readonly HOLD_STATE_API_PORT = 5002;
  /** The S3 registry's debug server (loopback). */
  public static readonly API_DEBUG_PORT = 5003;
  public static readonly CONFIG_DIRECTORY = "/etc/registry-stack";
  public static readonly SETTINGS_PATH = `${CollectorService.CONFIG_DIRECTORY}/maintenance.env`;
  public static readonly STATE_DIRECTORY = "/var/lib/registry-stack-maintenance";
  public static readonly HOLD_FILE = `${CollectorService.STATE_DIRECTORY}/write-hold`;
  public static readonly CONFIG_FILE = "collector-config.yml";
  public static readonly HOLD_STATE_CONFIG_FILE = "collector-hold-state.yml";
  public static readonly REDIS_PASSWORD_FILE = "collector-redis-password";
  public static readonly SECRETS_DIRECTORY = "/run/secrets";
  /**
   * Added to writeSettleSeconds: the collector's health check runs each second and each proxy
   * polls it each second, so a hold reaches every node within about two seconds.
   */
  public static readonly HOLD_PROPAGATION_SECONDS = 3;
  public static readonly HEALTHCHECK_INTERVAL_SECONDS = 3;

  public readonly service: Service;
  public readonly serviceName: string;
  /** What each proxy polls: 200 while writes are allowed. */
  public readonly holdStateUrl: string;

  constructor(scope: Construct, id: string, props: CollectorServiceProps) {
    super(scope, id);
    this.serviceName = props.serviceName;
    this.holdStateUrl = `http://${props.serviceName}:${CollectorService.HEALTH_PORT}/debug/health`;
    const name = props.serviceName;
    const configPath = `${CollectorService.SECRETS_DIRECTORY}/${CollectorService.CONFIG_FILE}`;
    const holdStateConfigPath = `${CollectorService.SECRETS_DIRECTORY}/${CollectorService.HOLD_STATE_CONFIG_FILE}`;
    const common = { httpSecret: props.httpSecret, drainTimeoutSeconds: props.stopGraceSeconds, realm: "Registry", logLevel: props.logLevel };
    // `registry serve` and `registry garbage-collect` read the same file: S3, deletes on, no cache
    // (the collector must see the storage itself), no upload purging (the purger service does it).
    const config = renderRegistryConfig({
      ...common,
      listen: { host: "127.0.0.1", port: CollectorService.API_PORT },
      deleteEnabled: true,
      debugPort: CollectorService.API_DEBUG_PORT,
      s3: props.s3,
      blobDescriptorCache: false,
      uploadPurging: false,
    });
    // Holds nothing; a failing health check turns a registry's whole API to 503, so it is not the S3 one.
    const holdStateConfig = renderRegistryConfig({
      ...common,
      listen: { host: "127.0.0.1", port: CollectorService.HOLD_STATE_API_PORT },
      deleteEnabled: false,
      debugPort: CollectorService.HEALTH_PORT,
      debugOnAllAddresses: true,
      writeHoldFile: CollectorService.HOLD_FILE,
    });
    const secrets: ServiceTaskSpecContainerSpecSecrets[] = [
      new SwarmSecret(this, "config", { name: `${name}-config`, file: props.secretFiles.write(`${name}.config.yml`, config) }).mount(CollectorService.CONFIG_FILE, REGISTRY_UID),
      new SwarmSecret(this, "hold-state-config", { name: `${name}-hold-state`, file: props.secretFiles.write(`${name}.hold-state.yml`, holdStateConfig) }).mount(
        CollectorService.HOLD_STATE_CONFIG_FILE,
        REGISTRY_UID,
      ),
    ];
    if (props.redis.password !== undefined) {
      const file = props.secretFiles.write(`${name}.redis-password`, props.redis.password);
      secrets.push(new SwarmSecret(this, "redis-password", { name: `${name}-redis-password`, file }).mount(CollectorService.REDIS_PASSWORD_FILE, REGISTRY_UID));
    }
    const settings = renderMaintenanceSettings({
      dataDirectory: "",
      stateDirectory: CollectorService.STATE_DIRECTORY,
      collectorConfigPath: configPath,
      registryApi: { address: `127.0.0.1:${CollectorService.API_PORT}`, serveConfigPath: configPath, holdStateConfigPath },
      redisCache: {
        addresses: props.redis.addresses,
        db: props.redis.db,
        passwordFile: props.redis.password !== undefined ? `${CollectorService.SECRETS_DIRECTORY}/${CollectorService.REDIS_PASSWORD_FILE}` : undefined,
      },
      schedule: props.schedule,
      dryRun: props.dryRun,
      writeSettleSeconds: props.writeSettleSeconds + CollectorService.HOLD_PROPAGATION_SECONDS,
      rules: props.rules,
      registryMetricsUrl: `http://127.0.0.1:${CollectorService.API_DEBUG_PORT}/metrics`,
      metricsIntervalSeconds: 30,
    });

    this.service = new Service(this, "service", {
      name,
      mode: { replicated: { replicas: 1 } },
      endpointSpec: { mode: "dnsrr" },
      taskSpec: {
        containerSpec: {
          image: props.image,
          command: ["/bin/sh", MAINTENANCE_SCRIPT_PATH, "schedule"],
          env: { MAINTENANCE_SETTINGS: CollectorService.SETTINGS_PATH, OTEL_TRACES_EXPORTER: "none" },
          user: REGISTRY_USER,
          readOnly: true,
          mounts: [
            { type: "tmpfs", target: "/tmp", tmpfsOptions: { sizeBytes: SCRATCH_TMPFS_BYTES } },
            // The hold file, the run lock and the reports: the task's own (a new task starts with writes held until it flushed the cache).
            { type: "tmpfs", target: CollectorService.STATE_DIRECTORY, tmpfsOptions: { sizeBytes: 16 * 1024 * 1024, mode: 0o777 } },
          ],
          configs: [
            new SwarmConfig(this, "script", { name: `${name}-script`, content: MAINTENANCE_SCRIPT }).mount(MAINTENANCE_SCRIPT_PATH),
            new SwarmConfig(this, "settings", { name: `${name}-settings`, content: settings }).mount(CollectorService.SETTINGS_PATH),
          ],
          secrets,
          // Its API, not /debug/health: that one is 503 while a run holds writes, and Swarm would kill the run.
          // Swarm's DNS answers for a task only once it is healthy, and the first check runs one
          // interval after the start: every proxy holds writes until then (measured: 15 s at 15 s).
          healthcheck: wgetHealthcheck(`http://127.0.0.1:${CollectorService.API_PORT}/v2/`, 20, CollectorService.HEALTHCHECK_INTERVAL_SECONDS),
          // A run stopped midway releases nothing: the next task holds writes until it flushed the cache.
          stopGracePeriod: swarmDuration(props.stopGraceSeconds),
          capDrop: ["ALL"],
        },
        placement: { constraints: ["node.role==manager"] },
        resources: { limits: { memoryBytes: props.memoryMb * 1024 * 1024 } },
        restartPolicy: RESTART_ALWAYS,
      },
      // One collector at a time: the old task stops before the new one starts.
      updateConfig: { parallelism: 1, delay: swarmDuration(5), failureAction: "rollback", monitor: swarmDuration(15), order: "stop-first" },
      rollbackConfig: { parallelism: 1, order: "stop-first" },
      convergeConfig: { delay: swarmDuration(2), timeout: swarmDuration(300) },
    });
    attachNetworks(this.service, [props.network]);
  }
}
