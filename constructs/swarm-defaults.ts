import { Network } from "@cdktf/provider-docker/lib/network";
import { Service, ServiceTaskSpecContainerSpecHealthcheck, ServiceTaskSpecRestartPolicy, ServiceUpdateConfig } from "@cdktf/provider-docker/lib/service";

/**
 * A duration as the provider reads it back from Swarm (Go's time.Duration.String() with a
 * trailing "0s"/"0m" cut: "2m", "1h", "1m30s", "15s"); written any other way ("120s") every plan
 * would show a change.
 */
export function swarmDuration(seconds: number): string {
  if (!Number.isInteger(seconds) || seconds < 0) throw new Error(`swarmDuration: ${seconds} is not a whole number of seconds`);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return s > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${h}h${m}m` : `${h}h`;
  if (m > 0) return s > 0 ? `${m}m${s}s` : `${m}m`;
  return `${s}s`;
}

/** A healthcheck probing a URL on the task's loopback with busybox wget (in the registry and nginx images). */
export function wgetHealthcheck(url: string, startPeriodSeconds: number, intervalSeconds = 15): ServiceTaskSpecContainerSpecHealthcheck {
  return {
    test: ["CMD", "wget", "-q", "-O", "/dev/null", url],
    interval: swarmDuration(intervalSeconds),
    timeout: swarmDuration(5),
    retries: 3,
    startPeriod: swarmDuration(startPeriodSeconds),
  };
}

/**
 * One task at a time, rolled back when it does not become healthy. `start-first` keeps a replica's
 * capacity during the change; a task publishing a host port must stop first (the port is taken).
 */
export function rollingUpdate(order: "start-first" | "stop-first"): ServiceUpdateConfig {
  return { parallelism: 1, delay: swarmDuration(5), failureAction: "rollback", monitor: swarmDuration(15), order };
}

/** Registry and nginx write only to /tmp: a tmpfs, counted in the task's memory. */
export const SCRATCH_TMPFS_BYTES = 64 * 1024 * 1024;

/**
 * Attaches a service to networks by id. kreuzwerker/docker 4.x reads `networks_advanced.id` back
 * and deprecates `name` (a name there plans a replacement at every deploy); the 3.6.2-generated
 * bindings know only `name`, so the block is written directly.
 */
export function attachNetworks(service: Service, networks: readonly Network[]): void {
  service.addOverride("task_spec.networks_advanced", networks.map((network) => ({ id: network.id })));
}

/**
 * Restart a task whatever ended it. `window` is read back as "0s" when unset and would be planned
 * back to null at every deploy, so it is declared.
 */
export const RESTART_ALWAYS: ServiceTaskSpecRestartPolicy = { condition: "any", delay: swarmDuration(5), window: swarmDuration(0) };
