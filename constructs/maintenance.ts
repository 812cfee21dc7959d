import { Container } from "@cdktf/provider-docker/lib/container";
import { Image } from "@cdktf/provider-docker/lib/image";
import { Volume } from "@cdktf/provider-docker/lib/volume";
import { Construct } from "constructs";
import { MAINTENANCE_SCRIPT, MAINTENANCE_SCRIPT_PATH, RetentionRule, renderMaintenanceSettings } from "../renderers/maintenance-settings";
import { renderCollectorConfig } from "../renderers/registry-config";
import { ConfigVolume } from "./config-volume";
import { IGNORE_ENGINE_DEFAULTS, memoryLimit, NO_NEW_PRIVILEGES, REGISTRY_USER, SCRATCH_TMPFS, terraformLiteral } from "./container-defaults";
import { Registry } from "./registry";
import { VolumeOwner } from "./volume-owner";

export interface MaintenanceProps {
  readonly containerName: string;
  /** The registry's image: it has `registry garbage-collect` and a POSIX shell. */
  readonly image: Image;
  /** The registry whose storage is cleaned; the container mounts the same data. */
  readonly registry: Registry;
  /** Name of the volume holding the write-hold flag and the reports. */
  readonly stateVolumeName: string;
  /** Daily time in UTC, HH:MM. */
  readonly schedule: string;
  readonly dryRun: boolean;
  readonly writeSettleSeconds: number;
  readonly rules: readonly RetentionRule[];
  readonly restartPolicy: string;
  /** Seconds a running job gets to finish (and release the write hold) when the container is stopped. */
  readonly stopGraceSeconds: number;
  readonly memoryMb: number;
}

/**
 * Tag retention and garbage collection: a container of the registry image on the same engine
 * that wakes daily, holds writes at the proxy (a flag file in the state volume), deletes what
 * the rules say, runs `registry garbage-collect` and writes a report. `npm run gc` runs the same
 * job in it now (`docker exec`).
 */
export class Maintenance extends Construct {
  public static readonly CONFIG_DIRECTORY = "/etc/registry-stack";
  public static readonly SCRIPT_PATH = MAINTENANCE_SCRIPT_PATH;
  public static readonly SETTINGS_PATH = "/etc/registry-stack/maintenance.env";
  public static readonly COLLECTOR_CONFIG_PATH = "/etc/registry-stack/collector.yml";
  public static readonly STATE_DIRECTORY = "/var/lib/registry-stack-maintenance";
  /** Where the proxy mounts the state volume, read-only. */
  public static readonly PROXY_STATE_DIRECTORY = "/run/registry-stack-maintenance";
  public static readonly HOLD_FILE_NAME = "write-hold";
  /** Prometheus text the job refreshes (storage, last run, the registry's own metrics); the proxy serves it. */
  public static readonly METRICS_FILE_NAME = "metrics.prom";
  public static readonly METRICS_INTERVAL_SECONDS = 30;
  public static readonly REPORTS_DIRECTORY = `${Maintenance.STATE_DIRECTORY}/reports`;
  public static readonly RETRY_AFTER_SECONDS = 10;

  public readonly stateVolume: Volume;
  public readonly container: Container;
  public readonly configVolume: ConfigVolume;
  /** Gives REGISTRY_USER the state volume (the registry's owner container does the data). */
  public readonly volumeOwner: VolumeOwner;

  constructor(scope: Construct, id: string, props: MaintenanceProps) {
    super(scope, id);
    if (!props.registry.dataMount) throw new Error(`${props.registry.node.path}: maintenance needs a registry with persistent storage`);
    this.stateVolume = new Volume(this, "state", { name: props.stateVolumeName });
    const settings = renderMaintenanceSettings({
      dataDirectory: Registry.DATA_PATH,
      stateDirectory: Maintenance.STATE_DIRECTORY,
      collectorConfigPath: Maintenance.COLLECTOR_CONFIG_PATH,
      schedule: props.schedule,
      dryRun: props.dryRun,
      writeSettleSeconds: props.writeSettleSeconds,
      rules: props.rules,
      registryMetricsUrl: `http://127.0.0.1:${props.registry.debugPort}/metrics`,
      metricsIntervalSeconds: Maintenance.METRICS_INTERVAL_SECONDS,
    });

    // Not secret (rules, paths, the script): as content, so `cdktf diff` shows every change.
    this.configVolume = new ConfigVolume(this, "config", {
      containerName: props.containerName,
      image: props.image.imageId,
      directory: Maintenance.CONFIG_DIRECTORY,
      uploads: [
        { file: Maintenance.SCRIPT_PATH, content: terraformLiteral(MAINTENANCE_SCRIPT), permissions: "0755" },
        { file: Maintenance.SETTINGS_PATH, content: terraformLiteral(settings), permissions: "0644" },
        { file: Maintenance.COLLECTOR_CONFIG_PATH, content: terraformLiteral(renderCollectorConfig(Registry.DATA_PATH)), permissions: "0644" },
      ],
    });

    const stateMount = { volumeName: this.stateVolume.name, containerPath: Maintenance.STATE_DIRECTORY };
    this.volumeOwner = new VolumeOwner(this, "volume-owner", { containerName: props.containerName, image: props.image.imageId, mounts: [stateMount] });

    this.container = new Container(this, "container", {
      name: props.containerName,
      image: props.image.imageId,
      entrypoint: ["/bin/sh", Maintenance.SCRIPT_PATH, "schedule"],
      env: [`MAINTENANCE_SETTINGS=${Maintenance.SETTINGS_PATH}`, "OTEL_TRACES_EXPORTER=none"],
      // The registry's network namespace (loopback only: the registry has no network): the job
      // reaches the registry's debug server for its metrics, and nothing else. It talks to the
      // proxy through the flag file.
      networkMode: `container:${props.registry.container.id}`,
      volumes: [props.registry.dataMount, stateMount, this.configVolume.mount],
      // The job's scratch files go to /tmp (mktemp); everything it changes is on the two volumes.
      readOnly: true,
      tmpfs: SCRATCH_TMPFS,
      user: REGISTRY_USER,
      dependsOn: [this.configVolume.seeder, this.volumeOwner.container],
      restart: props.restartPolicy,
      mustRun: true,
      capabilities: { drop: ["ALL"] },
      securityOpts: NO_NEW_PRIVILEGES,
      ...memoryLimit(props.memoryMb),
      destroyGraceSeconds: props.stopGraceSeconds,
      lifecycle: IGNORE_ENGINE_DEFAULTS,
    });
  }
}
