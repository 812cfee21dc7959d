import { BLOB_DIGEST_VARIABLE } from "./blob-reads";
import { block, registryError } from "./block";
import { proxyDirectives } from "./proxy";
import type { ProxyTarget, ProxyTuning, UpstreamServers } from "./proxy";

// Pull-through caches: one read-only server per mirror, and their blob caches.

/** A pull-through cache served on its own port. */
export interface MirrorServer {
  /** Short name, unique among the mirrors; names its nginx upstream. */
  readonly name: string;
  /** Port nginx listens on for this mirror inside its container. */
  readonly listenPort: number;
  /** Where the mirror's registry listens. */
  readonly upstream: UpstreamServers;
  /** The registry it caches as clients name it (docker.io), for the push refusal message. */
  readonly mirrorOf: string;
  /** Where pushes belong instead (`host:port` of the private registry), for the same message. */
  readonly pushTo: string;
  /** Pulls need no credentials; otherwise the same auth as the private registry. */
  readonly anonymousPull: boolean;
  /**
   * Plain blob downloads through nginx's cache, so that concurrent first pulls of a blob wait for
   * one fetch instead of each making the mirror fetch it from the upstream again. Only where
   * nginx checks the logins itself (`authCache`) or nobody needs one (`anonymousPull`): a cached
   * blob is answered without asking the mirror.
   * @default - every request goes to the mirror
   */
  readonly blobCache?: MirrorBlobCache;
  /**
   * The files the mirror's supervisor writes (renderers/mirror-supervisor.ts), in the socket
   * volume nginx mounts: its status, served at MIRROR_STATUS_PATH, and a flag that exists only
   * while the mirror serves offline, when a manifest it has not cached gets a 404 saying so.
   * @default - no status location, the mirror's own 404s
   */
  readonly modeFiles?: { readonly statusPath: string; readonly offlineFlagPath: string };
}

/** Where each mirror's port answers its mode (anonymous, like /healthz: it holds no secret). */
export const MIRROR_STATUS_PATH = "/registry-stack/mirror-status";

/**
 * distribution v3.1.1's proxy mode sends a request for a blob that another request is still
 * fetching to the upstream again (registry/proxy/proxyblobstore.go, `inflight` only guards the
 * copy to its own storage): 8 concurrent cold pulls made 1 to 6 upstream downloads per blob
 * (measured on these machines). nginx's cache lock makes them one.
 */
export interface MirrorBlobCache {
  /**
   * The cache directory, on a writable volume of its own: nginx (the master, with CHOWN) makes it
   * the workers' own at start. Temp files of a download in flight are written here too
   * (`use_temp_path=off`), never to the small /tmp tmpfs.
   */
  readonly directory: string;
  /** `max_size`: the cache manager removes the least recently used blobs above it. */
  readonly maxSizeMb: number;
  /**
   * How long a cached blob is answered without asking the mirror again, and how long one nobody
   * asks for is kept (`inactive`): the mirror's ttl, so that nginx keeps no blob longer than the
   * mirror would after fetching it.
   */
  readonly validSeconds: number;
}

export const READ_ONLY_LOCATION = "/_registry_read_only";

export function mirrorUpstreamName(mirror: MirrorServer): string {
  return `mirror-${mirror.name}`;
}

/** Mirror names have hyphens; nginx variable names may not. */
function mirrorCacheZone(mirror: MirrorServer): string {
  return `registry_mirror_${mirror.name.replace(/-/g, "_")}`;
}

/** How long a request waits for another one's download of the same blob (an hour: a 10 GiB layer at 3 MB/s). */
const MIRROR_BLOB_LOCK_SECONDS = 3600;

const MIRROR_BLOB_GET_VARIABLE = "$registry_mirror_blob_get";

/**
 * Which requests use a mirror's blob cache: plain GETs of a digest named in the raw request line.
 * HEAD (nginx would turn it into a GET of the whole blob to fill the cache), ranges and
 * conditional requests (nginx's answers differ from Go's http.ServeContent in details) and
 * anything the digest map does not read (a query, an encoded name) go to the mirror as before.
 * One zone per mirror: the key is the digest alone (blobs are content-addressed), scoped to it.
 */
export function mirrorBlobCacheHttpDirectives(mirrors: readonly MirrorServer[]): string[] {
  const cached = mirrors.filter((m) => m.blobCache !== undefined);
  if (cached.length === 0) return [];
  const lines = [
    ...block(`map "$request_method$http_range$http_if_match$http_if_none_match$http_if_modified_since$http_if_unmodified_since$http_if_range:${BLOB_DIGEST_VARIABLE}" ${MIRROR_BLOB_GET_VARIABLE}`, [
      '"~^GET:sha256:" 1;',
      "default '';",
    ]),
  ];
  for (const m of cached) {
    const c = m.blobCache!;
    const zone = mirrorCacheZone(m);
    lines.push(
      `proxy_cache_path ${c.directory} levels=1:2 keys_zone=${zone}:2m max_size=${c.maxSizeMb}m inactive=${c.validSeconds}s use_temp_path=off;`,
      ...block(`map ${MIRROR_BLOB_GET_VARIABLE} $${zone}`, [`1 ${zone};`, "default off;"]),
    );
  }
  return lines;
}

/**
 * A mirror's blob downloads: the same checks as its /v2/ (the login check runs in the access
 * phase, before the cache is looked at in the content phase), then its registry through the cache.
 */
export function mirrorBlobLocation(tuning: ProxyTuning, to: ProxyTarget, withAuthCache: boolean, checks: Array<string | string[]>, mirror: MirrorServer, cache: MirrorBlobCache): string[] {
  const zone = mirrorCacheZone(mirror);
  return block('location ~ "^/v2/.+/blobs/sha256:[0-9a-f]{64}$"', [
    ...checks,
    // nginx caches only buffered responses; a cached download goes to a temp file in the cache
    // directory whatever proxy_max_temp_file_size says, so memory stays at proxy_buffers.
    ...proxyDirectives({ ...tuning, responseBuffering: true }, to, withAuthCache, false),
    "",
    `proxy_cache $${zone};`,
    `proxy_cache_key ${BLOB_DIGEST_VARIABLE};`,
    `proxy_cache_valid 200 ${cache.validSeconds}s;`,
    // Only the validity above counts (the registry's year-long Cache-Control would outlive the
    // mirror's ttl); errors, 401s and 404s are never cached.
    "proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires;",
    // One request fetches a blob nobody has cached yet; the others wait for it, up to the lock
    // time, after which a waiting request would go to the mirror itself, uncached.
    "proxy_cache_lock on;",
    `proxy_cache_lock_timeout ${MIRROR_BLOB_LOCK_SECONDS}s;`,
    `proxy_cache_lock_age ${MIRROR_BLOB_LOCK_SECONDS}s;`,
    // The lock covers new entries only: while one request refreshes an expired blob, the others
    // get the cached bytes (a digest's content never changes) instead of each asking the mirror.
    "proxy_cache_use_stale updating;",
  ]);
}

// distribution's proxy mode answers pushes with a bare UNSUPPORTED; this says what to do instead.
// Before any auth: nothing but GET and HEAD is ever served here, whoever asks.
export function readOnlyLocation(mirror: MirrorServer): string[] {
  const message = `this is a read-only pull-through cache of ${mirror.mirrorOf}; push to the private registry ${mirror.pushTo} instead`;
  return block(`location = ${READ_ONLY_LOCATION}`, [
    "internal;",
    "default_type application/json;",
    "add_header Allow 'GET, HEAD' always;",
    "add_header Docker-Distribution-Api-Version registry/2.0 always;",
    `return 405 '${registryError("UNSUPPORTED", message)}';`,
  ]);
}

function notCachedLocationName(mirror: MirrorServer): string {
  return `@mirror_${mirror.name.replace(/-/g, "_")}_not_cached`;
}

export function mirrorStatusLocation(files: NonNullable<MirrorServer["modeFiles"]>): string[] {
  return block(`location = ${MIRROR_STATUS_PATH}`, [
    "access_log off;",
    "default_type application/json;",
    "add_header Cache-Control no-store always;",
    `alias ${files.statusPath};`,
  ]);
}

/**
 * Manifest requests of a mirror with mode files: as /v2/, but a 404 while the mirror is offline
 * says that the upstream is unreachable and the image is not cached (distribution's own answer
 * is a bare "manifest unknown", the same as for an image the upstream does not have). Only
 * where the checks have no error pages (no login check by nginx, see nginx-conf.ts).
 */
export function mirrorManifestLocations(tuning: ProxyTuning, to: ProxyTarget, withAuthCache: boolean, checks: Array<string | string[]>, mirror: MirrorServer): string[][] {
  if (checks.flat().some((line) => line.startsWith("error_page "))) throw new Error(`mirror ${mirror.name}: its checks have error pages of their own, which proxy_intercept_errors would apply to the mirror's answers`);
  const files = mirror.modeFiles!;
  const offline = registryError("MANIFEST_UNKNOWN", `not cached by this mirror, and its upstream ${mirror.mirrorOf} is unreachable (see ${MIRROR_STATUS_PATH})`);
  return [
    block('location ~ "^/v2/.+/manifests/[^/]+$"', [
      ...checks,
      ...proxyDirectives(tuning, to, withAuthCache, false),
      "",
      "proxy_intercept_errors on;",
      `error_page 404 = ${notCachedLocationName(mirror)};`,
    ]),
    block(`location ${notCachedLocationName(mirror)}`, [
      "default_type application/json;",
      "add_header Docker-Distribution-Api-Version registry/2.0 always;",
      block(`if (-f ${files.offlineFlagPath})`, [`return 404 '${offline}';`]),
      `return 404 '${registryError("MANIFEST_UNKNOWN", "manifest unknown")}';`,
    ]),
  ];
}
