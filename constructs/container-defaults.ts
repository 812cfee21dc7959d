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

/**
 * Engine-wide defaults read back as drift, and both attributes force replacement in 3.6.2:
 * default `log-opts` (kreuzwerker#873) and `default-ulimits` (hardened hosts, Amazon Linux).
 * The stack sets neither, so ignoring them hides nothing it declares.
 */
export const IGNORE_ENGINE_DEFAULTS = { ignoreChanges: ["log_opts", "ulimit"] };

export const NO_NEW_PRIVILEGES = ["no-new-privileges:true"];

/**
 * The only writable place besides volumes in containers with a read-only root filesystem:
 * nginx's pid file and temp paths, anything a program puts in /tmp. In memory, counted in
 * the container's memory limit.
 */
export const SCRATCH_TMPFS = { "/tmp": "rw,noexec,nosuid,nodev,size=64m" };

/**
 * Text Terraform must take literally: `${` and `%{` start template sequences in any string of the
 * configuration (an upload's content included), `$${` and `%%{` are their escapes.
 */
export function terraformLiteral(text: string): string {
  // A function replacement: in a replacement string "$$" would itself mean one "$".
  return text.replace(/\$\{/g, () => "$${").replace(/%\{/g, () => "%%{");
}

/**
 * The unprivileged user:group every container of the registry image runs as (the registry, the
 * verifier, each mirror, the maintenance job). The official image (Alpine) has no such user; a
 * numeric id needs none. 65532 is the "nonroot" id of distroless images, outside the ranges
 * hosts give to people (1000+) and system services (<1000), so it owns nothing else on the host.
 */
export const REGISTRY_UID = 65532;
export const REGISTRY_GID = 65532;
export const REGISTRY_USER = `${REGISTRY_UID}:${REGISTRY_GID}`;
