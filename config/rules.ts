import { isIP } from "net";

/** Rule table for configuration values; each rule says what to do when it fails. */

const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

export function isDnsName(value: string): boolean {
  return value.length <= 253 && value.split(".").every((label) => DNS_LABEL.test(label)) && !isIP(value);
}
export const DNS_NAME_HINT = "is not a valid DNS name; use letters, digits and hyphens in dot-separated labels";

export function isIpAddress(value: string): boolean {
  return isIP(value) !== 0;
}
export const IP_HINT = "is not an IPv4 or IPv6 address";

// distribution's htpasswd parser splits on the first ':' and trims lines.
export const USER_NAME = /^[^:\s]+$/;
export const USER_NAME_HINT = "must not be empty and must not contain ':' or whitespace";

// bcrypt only looks at the first 72 bytes of a password; bcryptjs truncates silently.
export const MAX_PASSWORD_BYTES = 72;

export const DOCKER_OBJECT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
export const DOCKER_OBJECT_NAME_HINT = "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'";

/** An image reference pinned to a tag (not `latest`) or a digest. */
export function isPinnedImage(value: string): boolean {
  if (/@sha256:[a-f0-9]{64}$/.test(value)) return true;
  const lastSegment = value.slice(value.lastIndexOf("/") + 1);
  const colon = lastSegment.indexOf(":");
  return colon > 0 && lastSegment.slice(colon + 1) !== "latest" && /^[\w][\w.-]{0,127}$/.test(lastSegment.slice(colon + 1));
}
export const PINNED_IMAGE_HINT = "must be pinned to a tag other than 'latest' or to a digest, e.g. registry:3.1.1";

export const DOCKER_HOST = /^(unix:\/\/\/.+|ssh:\/\/.+|tcp:\/\/.+)$/;
export const DOCKER_HOST_HINT = "must start with unix:///, ssh:// or tcp://";

export const MIN_BCRYPT_COST = 4;
export const MAX_BCRYPT_COST = 15;
