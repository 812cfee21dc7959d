import * as fs from "fs";
import * as path from "path";

/** The job the maintenance container runs (POSIX sh; busybox in the official registry image). */
/** Where the maintenance container finds its script (also what `npm run gc` execs). */
export const MAINTENANCE_SCRIPT_PATH = "/etc/registry-stack/maintenance.sh";
export const MAINTENANCE_SCRIPT = fs.readFileSync(path.join(__dirname, "maintenance.sh"), "utf8");

/** The JSON report each run of the job writes to `reports/` (see maintenance.sh). */
export interface MaintenanceReport {
  trigger: string;
  dryRun: boolean;
  deleted: { tags: Array<{ repository: string; tag: string; digest: string }>; manifests: Array<{ repository: string; digest: string }>; blobs: Array<{ digest: string; bytes: number }> };
  bytesReclaimed: number;
  durationsMs: { retention: number; writeWindow: number; collector: number };
  collectorExitCode: number;
}

export interface RetentionRule {
  /** POSIX ERE (grep -E) matched against the repository name. */
  readonly repositories: string;
  readonly keepNewest?: number;
  readonly keepTags: readonly string[];
  readonly untaggedDays?: number;
}

/** Input for the settings file the job sources; callers validate the values. */
export interface MaintenanceSettingsInput {
  /** Registry storage root inside the maintenance container. */
  readonly dataDirectory: string;
  /** Where the write-hold flag, the run lock and the reports live (a volume the proxy mounts read-only). */
  readonly stateDirectory: string;
  /** config.yml for `registry garbage-collect`. */
  readonly collectorConfigPath: string;
  /**
   * Cluster mode (S3 storage): the job serves `serveConfigPath` on loopback and plans and deletes
   * through its API at `address`; it also serves `holdStateConfigPath`, a registry whose health
   * answers 503 while writes are held (a failing health check turns a registry's whole API to 503,
   * so the hold cannot be the API registry's own).
   * @default - the filesystem storage under dataDirectory
   */
  readonly registryApi?: { readonly address: string; readonly serveConfigPath: string; readonly holdStateConfigPath: string };
  /**
   * The registries' shared blob-descriptor cache, flushed (this database only) after each run.
   * @default - none (one host: the cache is the registry's own memory)
   */
  readonly redisCache?: { readonly addresses: readonly string[]; readonly db: number; readonly passwordFile?: string };
  /** Daily time in UTC, HH:MM. */
  readonly schedule: string;
  readonly dryRun: boolean;
  readonly writeSettleSeconds: number;
  readonly rules: readonly RetentionRule[];
  /** The registry's Prometheus endpoint as the maintenance container reaches it (the registry's loopback). */
  readonly registryMetricsUrl: string;
  /** How often the metrics file is refreshed. */
  readonly metricsIntervalSeconds: number;
}

/** `name='value'` lines for sh: single quotes keep every pattern byte as it is. */
export function renderMaintenanceSettings(input: MaintenanceSettingsInput): string {
  const lines: Array<[string, string]> = [
    ["DATA_DIR", input.dataDirectory],
    ["STATE_DIR", input.stateDirectory],
    ["COLLECTOR_CONFIG", input.collectorConfigPath],
    ["SCHEDULE", input.schedule],
    ["DRY_RUN", String(input.dryRun)],
    ["SETTLE_SECONDS", String(input.writeSettleSeconds)],
    ["REGISTRY_METRICS_URL", input.registryMetricsUrl],
    ["METRICS_INTERVAL_SECONDS", String(input.metricsIntervalSeconds)],
    ["RULE_COUNT", String(input.rules.length)],
  ];
  if (input.registryApi) lines.push(["STORAGE_ACCESS", "registry-api"], ["REGISTRY_API", input.registryApi.address], ["REGISTRY_SERVE_CONFIG", input.registryApi.serveConfigPath], ["HOLD_STATE_CONFIG", input.registryApi.holdStateConfigPath]);
  if (input.redisCache) {
    lines.push(["REDIS_ADDRESSES", input.redisCache.addresses.join(" ")], ["REDIS_DB", String(input.redisCache.db)]);
    if (input.redisCache.passwordFile !== undefined) lines.push(["REDIS_PASSWORD_FILE", input.redisCache.passwordFile]);
  }
  input.rules.forEach((rule, i) => {
    const prefix = `RULE_${i + 1}_`;
    lines.push(
      [`${prefix}REPOSITORIES`, rule.repositories],
      [`${prefix}KEEP_NEWEST`, rule.keepNewest === undefined ? "" : String(rule.keepNewest)],
      [`${prefix}UNTAGGED_DAYS`, rule.untaggedDays === undefined ? "" : String(rule.untaggedDays)],
      // One pattern per line: grep -E -f reads them so.
      [`${prefix}KEEP_TAGS`, rule.keepTags.join("\n")],
    );
  });
  return ["# registry-stack maintenance settings (generated; sourced by maintenance.sh)", ...lines.map(([name, value]) => `${name}=${shellQuote(value)}`)].join("\n") + "\n";
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
