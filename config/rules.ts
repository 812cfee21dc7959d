import { isIP } from "net";
import * as path from "path";

/**
 * Rule table for configuration values: each rule lives here once and says what to do when it
 * fails. The schema (schema.ts) applies them to the props; the loader applies the password rule
 * where a password arrives (environment, secrets file), so its message names that source.
 */

const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

/** A host name clients connect to: no wildcard (a wildcard is a certificate pattern, not a host). */
export function isDnsName(value: string): boolean {
  return value.length <= 253 && value.split(".").every((label) => DNS_LABEL.test(label)) && !isIP(value);
}
export const DNS_NAME_HINT = "is not a valid DNS name; use letters, digits and hyphens in dot-separated labels (no wildcards)";

/** An IPv4 or IPv6 address without zone id (a zone id means nothing in a certificate). */
export function isIpAddress(value: string): boolean {
  return isIP(value) !== 0 && !value.includes("%");
}
export const IP_HINT = "is not an IPv4 or IPv6 address";

// distribution's htpasswd parser trims each line, skips lines starting with '#' (comments) and
// splits on the first ':': a user named "#ops" could never log in.
// eslint-disable-next-line no-control-regex
export const USER_NAME = /^(?!#)[^:\s\x00-\x1f\x7f]+$/;
export const USER_NAME_HINT = "must not be empty, must not start with '#' (the registry's htpasswd reader skips such lines as comments) and must not contain ':', whitespace or control characters";
export const MAX_USER_NAME_LENGTH = 128;

/** `alice` → `REGISTRY_PASSWORD_ALICE`, `ci.bot-1` → `REGISTRY_PASSWORD_CI_BOT_1`. */
export function passwordEnvName(user: string): string {
  return `REGISTRY_PASSWORD_${user.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

// bcrypt only looks at the first 72 bytes of a password; bcryptjs truncates silently.
export const MAX_PASSWORD_BYTES = 72;

/**
 * A line break or other control character in a password, never quoting it; undefined when there is
 * none. Nobody types such a password at `docker login`; a YAML block scalar (`admin: |`) keeps
 * a final line break without the user seeing it.
 */
export function passwordControlCharacterProblem(password: string): string | undefined {
  if (/[\r\n]/.test(password)) return "contains a line break";
  // Tab is allowed: it can be typed and sent.
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0b-\x1f\x7f]/.test(password)) return "contains a control character (NUL, escape…)";
  return undefined;
}

/** What is wrong with a password, never quoting it; undefined when it is fine. */
export function passwordProblem(password: string): string | undefined {
  if (password === "") return "is empty";
  const control = passwordControlCharacterProblem(password);
  if (control !== undefined) return control;
  const bytes = Buffer.byteLength(password, "utf8");
  if (bytes > MAX_PASSWORD_BYTES) return `is longer than ${MAX_PASSWORD_BYTES} bytes (${bytes}), which bcrypt would silently truncate`;
  return undefined;
}

export const DOCKER_OBJECT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
export const DOCKER_OBJECT_NAME_HINT = "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'";
/** Docker object names get suffixes ("-registry", "-backend"); keep room for them. */
export const MAX_NAME_PREFIX_LENGTH = 48;

// distribution/reference grammar (reference/regexp.go).
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
/**
 * distribution's repository name grammar (reference.NameRegexp) as a regular-expression source:
 * lower-case components separated by single '.', '_', '__' or runs of '-', joined by '/'; so no
 * '..', no '%', no empty component. Used by the schema, nginx.conf and the njs access module.
 */
export const REPOSITORY_NAME_PATTERN = `${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const REPOSITORY = new RegExp(`^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;
const MAX_REPOSITORY_LENGTH = 255;
export const PINNED_IMAGE_HINT = "must be pinned to a tag other than 'latest' or to a digest, e.g. registry:3.1.1";

/**
 * What is wrong with an image reference that must be pinned (`name:tag`, `name@sha256:<64 hex>`
 * or both); undefined when it is fine. Parsed like docker does: `registry@sha256:deadbeef`
 * is a digest of the wrong length, not repository `registry@sha256` with tag `deadbeef`.
 */
export function imageReferenceProblem(value: string): string | undefined {
  const at = value.indexOf("@");
  const beforeDigest = at < 0 ? value : value.slice(0, at);
  if (at >= 0) {
    const digest = value.slice(at + 1);
    if (!SHA256_DIGEST.test(digest)) {
      const hex = digest.startsWith("sha256:") ? digest.slice("sha256:".length) : undefined;
      return hex !== undefined && /^[a-f0-9]*$/.test(hex)
        ? `has a sha256 digest of ${hex.length} hex digits, not 64; copy the whole digest (docker images --digests)`
        : "has a digest that is not sha256:<64 lowercase hex digits>; copy the whole digest (docker images --digests)";
    }
  }
  const lastSlash = beforeDigest.lastIndexOf("/");
  const colon = beforeDigest.indexOf(":", lastSlash + 1);
  const repository = colon < 0 ? beforeDigest : beforeDigest.slice(0, colon);
  const tag = colon < 0 ? undefined : beforeDigest.slice(colon + 1);
  if (repository.length > MAX_REPOSITORY_LENGTH || !REPOSITORY.test(repository)) {
    return `has an invalid repository name "${repository}"; use lowercase letters, digits and . _ - separators, optionally after a registry host`;
  }
  if (tag !== undefined && !TAG.test(tag)) return `has an invalid tag "${tag}"; tags are up to 128 letters, digits, '_', '.' and '-'`;
  if (at < 0 && (tag === undefined || tag === "latest")) return PINNED_IMAGE_HINT;
  return undefined;
}

export const DOCKER_HOST_HINT = "must start with unix:///, ssh:// or tcp://";
const HOST = "(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])";

/** What is wrong with a Docker Engine address; undefined when it is fine. */
export function dockerHostProblem(value: string): string | undefined {
  if (value.startsWith("unix://")) {
    return /^unix:\/\/\/\S+$/.test(value) ? undefined : "needs an absolute socket path after unix://, e.g. unix:///var/run/docker.sock";
  }
  if (value.startsWith("ssh://")) {
    const rest = value.slice("ssh://".length);
    if (rest === "" || rest.endsWith("@")) return "has no host after ssh://; use ssh://user@host or ssh://user@host:port";
    return new RegExp(`^(?:[^@\\s/:]+@)?${HOST}(?::[0-9]{1,5})?/?$`).test(rest)
      ? undefined
      : "is not ssh://[user@]host[:port]; e.g. ssh://deploy@store.example.test";
  }
  if (value.startsWith("tcp://")) {
    return new RegExp(`^${HOST}:[0-9]{1,5}/?$`).test(value.slice("tcp://".length))
      ? undefined
      : "is not tcp://host:port; e.g. tcp://build.example.test:2376";
  }
  return DOCKER_HOST_HINT;
}

export const MIN_BCRYPT_COST = 4;
export const MAX_BCRYPT_COST = 15;

/**
 * Upper bounds on lists. Every host name and address goes into the certificate, nginx's
 * server_name and one certs.d folder each; every user costs a bcrypt hash per synth that
 * changes it. Without a bound, 403k host names ran 163 s and 2.6 GB before failing inside cdktf.
 */
export const MAX_HOSTNAMES = 100;
export const MAX_IP_ADDRESSES = 100;
export const MAX_USERS = 100;
export const MAX_SSH_OPTIONS = 32;
export const MAX_REPOSITORY_SCOPES = 100;

/** What one login-limit budget covers (see README.md, "Login limit"). */
export const LOGIN_LIMIT_SCOPES = ["address", "address-and-user"] as const;

/** Logins above the budget of all addresses (loginVerificationsPerMinute) wait up to this long for their turn before a 429. */
export const VERIFICATION_QUEUE_SECONDS = 5;

/** How many logins the budget of all addresses lets wait (nginx `burst`): VERIFICATION_QUEUE_SECONDS' worth at its rate. */
export function verificationQueueLength(perMinute: number): number {
  return Math.ceil((perMinute * VERIFICATION_QUEUE_SECONDS) / 60);
}

/** What a user may do: pull (GET/HEAD), push (also POST/PUT/PATCH), admin (also DELETE). */
export const ROLES = ["pull", "push", "admin"] as const;
export type Role = (typeof ROLES)[number];

/**
 * A repository scope: a repository name (distribution's grammar) or a name followed by `/*`
 * for every repository below it, e.g. `team-a/*`, `base/debian`.
 */
export const REPOSITORY_SCOPE = new RegExp(`^${REPOSITORY_NAME_PATTERN}(?:/\\*)?$`);
export const REPOSITORY_SCOPE_HINT =
  "must be a repository name (lowercase letters, digits and . _ - separators, '/' between components) or one followed by '/*', e.g. team-a/* or base/debian";

/** Config and secrets files larger than this are refused before they are parsed. */
export const MAX_INPUT_FILE_BYTES = 1024 * 1024;

/** A mirror's name: part of its container, volume and password variable names. */
export const MIRROR_NAME = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
export const MIRROR_NAME_HINT = "must be 1-32 lowercase letters, digits and inner hyphens, e.g. \"hub\" or \"ghcr\"";
export const MAX_MIRRORS = 16;

/** `hub` → `REGISTRY_UPSTREAM_PASSWORD_HUB`, `k8s-io` → `REGISTRY_UPSTREAM_PASSWORD_K8S_IO`. */
export function upstreamPasswordEnvName(mirror: string): string {
  return `REGISTRY_UPSTREAM_PASSWORD_${mirror.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/**
 * What is wrong with an upstream registry name as clients write it in image references
 * (`docker.io`, `ghcr.io`, `registry.example.test:5000`); undefined when it is fine.
 */
export function upstreamProblem(value: string): string | undefined {
  const m = /^([^:/\s]+)(?::([0-9]{1,5}))?$/.exec(value);
  const fine = m !== null && (isDnsName(m[1]) || isIpAddress(m[1])) && (m[2] === undefined || (Number(m[2]) >= 1 && Number(m[2]) <= 65535));
  if (!fine) return "is not a registry name like docker.io, ghcr.io or registry.example.test:5000 (host[:port], no scheme, no path)";
  if (value !== value.toLowerCase()) return "must be lowercase, as in image references";
  return undefined;
}

const DURATION_UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600 };
export const MAX_MIRROR_TTL_HOURS = 24 * 365;

/** Seconds of a Go duration made of h/m/s parts ("168h", "1h30m"); undefined if it is not one. */
export function durationSeconds(value: string): number | undefined {
  if (value === "0") return 0;
  if (!/^(?:[0-9]+[hms])+$/.test(value)) return undefined;
  let total = 0;
  for (const [, amount, unit] of value.matchAll(/([0-9]+)([hms])/g)) total += Number(amount) * DURATION_UNIT_SECONDS[unit];
  return total;
}

/** Seconds of a mirror TTL the schema accepted. */
export function mirrorTtlSeconds(ttl: string): number {
  const seconds = durationSeconds(ttl);
  if (seconds === undefined) throw new Error(`mirror ttl ${JSON.stringify(ttl)} was not validated`);
  return seconds;
}

/** Bounds of a mirror's blob cache in the proxy (MiB). */
export const MIN_MIRROR_BLOB_CACHE_MB = 64;
export const MAX_MIRROR_BLOB_CACHE_MB = 1048576;
/** A mirror's data volume bound (MiB): a few layers at least, 16 TiB at most. */
export const MIN_MIRROR_MAX_SIZE_MB = 8;
export const MAX_MIRROR_MAX_SIZE_MB = 16 * 1024 * 1024;

/** What is wrong with a mirror TTL; undefined when it is fine. */
export function mirrorTtlProblem(value: string): string | undefined {
  const seconds = durationSeconds(value);
  if (seconds === undefined) return "is not a duration like 168h, 72h or 1h30m (hours, minutes, seconds)";
  if (seconds < 60) return "must be at least 1m; 0 would keep cached content forever (unbounded cache)";
  if (seconds > MAX_MIRROR_TTL_HOURS * 3600) return `must be at most ${MAX_MIRROR_TTL_HOURS}h`;
  return undefined;
}

/**
 * Retention patterns are matched by `grep -E` inside the registry image (busybox in the official
 * Alpine image, GNU grep elsewhere): POSIX extended regular expressions. Perl-style escapes and
 * groups mean something else there or nothing at all, so they are refused with the ERE spelling.
 */
const PERL_ONLY_SYNTAX: ReadonlyArray<[RegExp, string]> = [
  [/\\d/, "uses \\d, which grep -E does not know; write [0-9]"],
  [/\\D/, "uses \\D, which grep -E does not know; write [^0-9]"],
  [/\\[wW]/, "uses \\w or \\W, which the registry image's grep -E does not know; write [A-Za-z0-9_] (or [^A-Za-z0-9_])"],
  [/\\[sS]/, "uses \\s or \\S; tags and repository names have no whitespace, leave it out"],
  [/\\[bB]/, "uses \\b or \\B; anchor the pattern with ^ and $ instead"],
  [/\(\?/, "uses a (?…) group, which grep -E does not know; use plain ( ) groups"],
  [/[*+?}]\?/, "uses a lazy quantifier (*?, +?, ??), which grep -E does not know; drop the ?"],
  [/\\[1-9]/, "uses a back-reference, which grep -E does not support"],
];
export const MAX_PATTERN_LENGTH = 256;

/** What is wrong with a retention pattern (POSIX ERE as grep -E reads it); undefined when it is fine. */
export function extendedRegexProblem(value: string): string | undefined {
  if (value === "") return "is empty; an empty pattern matches everything: write ^ or .* if you mean that";
  if (value.length > MAX_PATTERN_LENGTH) return `is longer than ${MAX_PATTERN_LENGTH} characters`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) return "contains a control character (tab, newline…); patterns are one line";
  for (const [syntax, message] of PERL_ONLY_SYNTAX) if (syntax.test(value)) return message;
  try {
    new RegExp(value);
  } catch {
    return "is not a valid regular expression (POSIX extended, as grep -E reads it)";
  }
  return undefined;
}

/** A daily time in UTC, HH:MM. */
export const DAILY_TIME = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;
export const DAILY_TIME_HINT = 'must be a daily time in UTC as HH:MM, e.g. "03:30"';
export const MAX_RETENTION_RULES = 64;
export const MAX_KEEP_TAG_PATTERNS = 32;

/**
 * Edit distance with adjacent transpositions (optimal string alignment): `alcie` is 1 from `alice`.
 * For "did you mean" hints only.
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The candidate closest to `value` (at most 2 edits, or a third of its length), if any. */
export function closestName(value: string, candidates: Iterable<string>): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const distance = editDistance(value.toLowerCase(), name.toLowerCase());
    if (distance <= Math.max(2, Math.floor(name.length / 3)) && (best === undefined || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

/**
 * Host folders that are never a registry store, whatever they hold: the volume-owner container
 * would `chown -R` them to the registry's user. Exact folders, and trees refused at any depth.
 */
export const SYSTEM_FOLDERS = ["/", "/home", "/srv", "/root", "/opt", "/tmp", "/var", "/var/lib", "/var/tmp", "/var/cache", "/var/log", "/var/run", "/run", "/mnt", "/media", "/snap", "/nix", "/lost+found"];
export const SYSTEM_TREES = ["/etc", "/usr", "/boot", "/proc", "/sys", "/dev", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/var/lib/docker", "/var/lib/containerd", "/var/lib/containers", "/var/run/docker", "/run/docker", "/var/snap/docker"];

/** Why a host folder must never hold the registry's data (undefined: it is not a system folder). */
export function systemFolderProblem(folder: string): string | undefined {
  const normal = path.posix.resolve("/", folder);
  if (SYSTEM_FOLDERS.includes(normal)) return "is a system folder";
  const topLevel = `/${normal.split("/")[1] ?? ""}`;
  const inTree = SYSTEM_TREES.some((tree) => normal === tree || normal.startsWith(`${tree}/`)) || /^\/lib/.test(topLevel);
  return inTree ? "is a system folder or inside one" : undefined;
}

/**
 * Header every request of the web UI carries. For such requests the proxy leaves out the Basic
 * challenge on 401s, so the browser never opens its own login dialog; clients without it (docker,
 * skopeo, curl) get the challenge as before. The page reads the name from /ui/settings.json.
 */
export const UI_REQUEST_HEADER = "X-Registry-UI";

/** `host:port` with a DNS name or IPv4 address, e.g. a Redis server. */
export function hostPortProblem(value: string): string | undefined {
  const m = /^([^:\s]+):(\d{1,5})$/.exec(value);
  if (m === null || !(isDnsName(m[1]) || isIpAddress(m[1])) || Number(m[2]) < 1 || Number(m[2]) > 65535)
    return "must be host:port with a DNS name or IPv4 address and a port from 1 to 65535, e.g. redis.internal:6379";
  return undefined;
}

export const MAX_CLUSTER_NODES = 64;
export const MAX_REPLICAS = 32;
export const MAX_REDIS_ADDRESSES = 16;

/** Where cluster mode's secrets come from (never the config file). */
export const S3_ACCESS_KEY_ENV = "REGISTRY_S3_ACCESS_KEY";
export const S3_SECRET_KEY_ENV = "REGISTRY_S3_SECRET_KEY";
export const REDIS_PASSWORD_ENV = "REGISTRY_REDIS_PASSWORD";

/** Registry (and verifier) instances behind the proxy: each is a full registry process. */
export const MAX_REGISTRY_INSTANCES = 4;
