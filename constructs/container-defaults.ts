import { ContainerHealthcheck } from "@cdktf/provider-docker/lib/container";
import { createHash } from "crypto";

/**
 * kreuzwerker/docker 3.6.2 does not apply healthcheck edits (kreuzwerker#988); a label that
 * changes with the healthcheck forces the container to be replaced instead.
 */
export function healthcheckLabel(healthcheck: ContainerHealthcheck): { label: string; value: string } {
  const digest = createHash("sha256").update(JSON.stringify(healthcheck)).digest("hex").slice(0, 16);
  return { label: "registry-stack.healthcheck", value: digest };
}

/** Daemon-wide default log-opts make 3.6.2 replace containers on every apply (kreuzwerker#873). */
export const IGNORE_DAEMON_LOG_OPTS = { ignoreChanges: ["log_opts"] };

export const NO_NEW_PRIVILEGES = ["no-new-privileges:true"];
