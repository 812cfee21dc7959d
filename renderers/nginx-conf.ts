import * as path from "path";
import { REPOSITORY_NAME_PATTERN } from "../config/rules";
import { UI_REQUEST_HEADER } from "../ui/src/format";

/** Proxy knobs a benchmark tunes; every value is written as given. */
export interface ProxyTuning {
  /** `proxy_request_buffering`: off streams uploads to the registry as they arrive. */
  readonly requestBuffering: boolean;
  /** `proxy_buffering`. */
  readonly responseBuffering: boolean;
  /** `proxy_buffer_size`, e.g. "64k". */
  readonly proxyBufferSize: string;
  /** `proxy_buffers`, "<number> <size>", e.g. "16 256k". */
  readonly proxyBuffers: string;
  /** `proxy_max_temp_file_size`; "0" keeps responses off the disk. */
  readonly maxTempFileSize: string;
  readonly readTimeoutSeconds: number;
  readonly sendTimeoutSeconds: number;
  /**
   * `proxy_busy_buffers_size`; nginx refuses to start unless it is below the total of
   * proxy_buffers minus one buffer, so set it when proxy_buffers has few large buffers.
   * @default - nginx's default, twice the larger of proxy_buffer_size and one proxy_buffers size
   */
  readonly proxyBusyBuffersSize?: string;
  /**
   * `client_body_buffer_size`; with request buffering off it is the piece size of uploads.
   * @default - nginx's default (16k on 64-bit)
   */
  readonly clientBodyBufferSize?: string;
  /**
   * `output_buffers` of blobs read from storage (serveBlobsFromStorage): the pieces nginx reads the
   * file in before encrypting it (no sendfile through TLS without kernel TLS).
   * @default - nginx's default, 2 32k
   */
  readonly blobOutputBuffers?: string;
  /**
   * `keepalive` of the upstream: idle connections to the registry kept per worker.
   * @default 32
   */
  readonly upstreamKeepalive?: number;
}

/**
 * Chosen with `npm run bench -- --explore=buffers|tls` (docs/benchmarks-explore.md): uploads
 * stream to the registry in 128k pieces (nginx's 16k default was a few per cent slower on a
 * 512 MiB layer); downloads are buffered in memory only (no temp files; other buffer sizes and
 * unbuffered responses were not faster, nginx's 4k/8×4k defaults were slower). Blobs read from
 * storage in 2 × 128k pieces: 2 × 512k was not consistently faster (paired 1.04× and 0.95×
 * against it in two runs, where the same configuration twice differs by 1–2 %), nginx's own
 * 2 × 32k was slower (0.85×–0.99×); 256 KiB per download in flight instead of 1 MiB.
 */
export const DEFAULT_PROXY_TUNING: ProxyTuning = {
  requestBuffering: false,
  responseBuffering: true,
  proxyBufferSize: "64k",
  proxyBuffers: "16 256k",
  maxTempFileSize: "0",
  readTimeoutSeconds: 900,
  sendTimeoutSeconds: 900,
  clientBodyBufferSize: "128k",
  blobOutputBuffers: "2 128k",
};

/** A TCP address, or a unix socket (`unix:` in nginx) in a volume shared with the registry. */
export type UpstreamAddress = { readonly host: string; readonly port: number } | { readonly socketPath: string };

export interface AuthCache {
  /** Where the verifier listens. */
  readonly verifier: UpstreamAddress;
  /** How long a successful login is trusted without asking the verifier again. */
  readonly cacheSeconds: number;
  /** Basic-auth realm of the verifier, repeated in nginx's own 401s. */
  readonly realm: string;
  /**
   * Logins the verifier checks per client address and minute (new or wrong credentials: a
   * cached login never reaches it); more get 429 with Retry-After before any bcrypt work.
   */
  readonly verificationsPerMinute: number;
  /**
   * Verifications a client may make at once above that rate before the 429s start (nginx's
   * `burst`); the burst is refilled at the rate.
   * @default - verificationsPerMinute
   */
  readonly verificationBurst?: number;
  /**
   * What one budget covers: one client address, or one client address and user name (users behind
   * one NAT address then do not share it; user names nobody configured share one per address).
   * "address-and-user" needs `access` (the njs module reads the user name).
   * @default "address"
   */
  readonly limitScope?: LoginLimitScope;
  /** Loopback port of the internal server that applies that limit in front of the verifier. */
  readonly limiterListenPort: number;
  /**
   * Decide what each verified login may do (roles, repository scopes, anonymous pull) with the
   * generated njs module, after the login check and before the registry sees the request.
   * @default - every verified login may do everything
   */
  readonly access?: AccessControl;
  /**
   * Names the logins and rules in force (a hash of the verifier's htpasswd and the access
   * module): part of every cache key, so that a deploy that changes users, passwords or roles
   * makes every cached login ask the verifier again although the proxy only reloads.
   * @default - the Authorization header alone
   */
  readonly loginsGeneration?: string;
}

export type LoginLimitScope = "address" | "address-and-user";

/** Where the pieces of the njs access decision live; the rules themselves are in the module. */
export interface AccessControl {
  /** The generated module (renderAccessModule) inside the container. */
  readonly modulePath: string;
  /** Anyone may pull: requests without credentials go to the decision instead of a 401. */
  readonly anonymousPull: boolean;
  /** Loopback port of the internal server that answers refused requests (403 DENIED, 401). */
  readonly refusalListenPort: number;
  /**
   * The port clients reach the private registry on (the published port), for the URL of the
   * anonymous-pull token realm, which is built from `serverNames` and this port only.
   */
  readonly publicPort: number;
}

/** Where nginx's JavaScript module is, in the official nginx images and in Debian's libnginx-mod-http-js. */
export const NJS_MODULE_PATH = "/usr/lib/nginx/modules/ngx_http_js_module.so";
/** Where the proxy serves its own endpoints (the web UI's `me`, the anonymous-pull token realm). */
export const STACK_ENDPOINT_PREFIX = "/registry-stack";
/** Where the health server answers the configuration's generation (see NginxConfInput.generation). */
export const GENERATION_PATH = "/registry-stack/generation";
/** The `service` of the token challenge with anonymous pull. */
export const TOKEN_SERVICE = "registry-stack";

/** Input for a complete nginx.conf in front of the registry; callers validate the values. */
export interface NginxConfInput {
  /** `server_name` values, e.g. ["registry.example.com"]. */
  readonly serverNames: string[];
  /** Port nginx listens on inside its container, e.g. 8443. */
  readonly listenPort: number;
  /** Where the registry listens. */
  readonly upstream: UpstreamAddress;
  /**
   * Certificate and key paths inside the container.
   * @default - plain HTTP (lab mode)
   */
  readonly tls?: { readonly certificatePath: string; readonly keyPath: string };
  /**
   * An extra plain-HTTP server answering 301 to https://<name>[:publicPort]$request_uri, where
   * <name> is the requested host if it is one of `serverNames`, else the first of them.
   * @default - none
   */
  readonly httpRedirect?: { readonly listenPort: number; readonly publicPort: number };
  /**
   * A plain-HTTP server on 127.0.0.1:<port> answering only /healthz, for in-container health
   * checks that cannot speak TLS.
   * @default - none
   */
  readonly healthListenPort?: number;
  /**
   * Names this configuration: the health server answers it at GENERATION_PATH, so whoever
   * reloads nginx can tell when the new configuration serves.
   * @default - no such location
   */
  readonly generation?: string;
  /**
   * Verify credentials with an `auth_request` subrequest to this verifier (a registry with the
   * htpasswd file) and cache each successful answer for `cacheSeconds`, keyed on the full
   * Authorization header. The upstream registry then runs without auth and gets no credentials.
   * @default - no auth in nginx: the upstream registry checks every request itself
   */
  readonly authCache?: AuthCache;
  /**
   * Serve the web UI's static files from `directory` under /ui/ and redirect / there.
   * @default - no UI: / and /ui/ answer 404
   */
  readonly ui?: { readonly directory: string };
  /**
   * Answer plain blob downloads (GET/HEAD without Range or conditional headers) from the
   * registry's storage, mounted read-only into the proxy, after the same login check as every
   * other request — but only when the repository's link file for the digest exists, as the
   * registry itself requires. Everything else (unknown or unlinked digests, ranges, conditional
   * requests, other methods) goes to the registry. The private registry's server only, not the
   * mirrors'.
   * @default - every request goes to the registry
   */
  readonly blobReads?: BlobReads;
  /**
   * While `flagFile` exists (the maintenance container creates it around the garbage collector),
   * writes (POST, PUT, PATCH, DELETE) get 503 UNAVAILABLE with Retry-After; reads pass.
   * @default - writes are never held
   */
  readonly writeHold?: WriteHold;
  /**
   * Serve this Prometheus text file at /metrics, after the same login check as /v2/ (the auth
   * cache's verifier, or the registry itself without it). With access control only to users with
   * the admin role (others get 403 DENIED); without it every user may do everything anyway.
   * @default - no /metrics
   */
  readonly metricsFile?: string;
  readonly tuning: ProxyTuning;
  /**
   * One more TLS server per pull-through cache, on its own port, with the same names,
   * certificate and users (or none, for anonymous pulls), refusing everything but GET and HEAD.
   * @default - none
   */
  readonly mirrors?: readonly MirrorServer[];
}

/** A pull-through cache served on its own port. */
export interface MirrorServer {
  /** Short name, unique among the mirrors; names its nginx upstream. */
  readonly name: string;
  /** Port nginx listens on for this mirror inside its container. */
  readonly listenPort: number;
  /** Where the mirror's registry listens. */
  readonly upstream: UpstreamAddress;
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
}

/**
 * distribution v3.1.1's proxy mode sends a request for a blob that another request is still
 * fetching to the upstream again (registry/proxy/proxyblobstore.go, `inflight` only guards the
 * copy to its own storage): 8 concurrent cold pulls made 1 to 6 upstream downloads per blob
 * (docs/benchmarks-storage.md). nginx's cache lock makes them one.
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

export interface WriteHold {
  /** Path of the flag file inside the proxy container. */
  readonly flagFile: string;
  /** Retry-After of the 503; Docker clients retry on their own schedule, others may read it. */
  readonly retryAfterSeconds: number;
}

/** Where the registry's storage (its filesystem `rootdirectory`) is mounted in the proxy. */
export interface BlobReads {
  readonly storageRoot: string;
}

const UPSTREAM_NAME = "docker-registry";
const AUTH_UPSTREAM_NAME = "registry-auth";
const AUTH_LOCATION = "/_registry_auth";
const ANONYMOUS_LOCATION = "/_registry_anonymous";
const AUTH_ERROR_LOCATION = "@registry_auth_error";
const LOGIN_REFUSED_LOCATION = "/_registry_login_refused";
const ANONYMOUS_PULL_LOCATION = "/_registry_anonymous_pull";
const ANONYMOUS_TOKEN_LOCATION = "/_registry_anonymous_token";
const REFUSAL_UPSTREAM_NAME = "registry-refusal";
const REFUSAL_HEADER = "X-Registry-Stack-Refusal";
const NJS_IMPORT = "registry_access";
const READ_ONLY_LOCATION = "/_registry_read_only";
const WRITE_HELD_LOCATION = "/_registry_write_held";
const METRICS_AUTH_LOCATION = "/_registry_metrics_auth";
const LOGIN_LIMIT_ZONE = "registry_logins";
const LOGIN_USER_VARIABLE = "$registry_login_user";
const CLIENT_ADDRESS_HEADER = "X-Registry-Client";
const AUTH_CACHE_ZONE = "registry_auth";
/** The Basic challenge of a 401, left out for requests of the web UI (see UI_REQUEST_HEADER). */
const CHALLENGE_VARIABLE = "$registry_challenge";
const ANONYMOUS_CHALLENGE_VARIABLE = "$registry_anonymous_challenge";
const UI_HEADER_VARIABLE = `$http_${UI_REQUEST_HEADER.toLowerCase().replace(/-/g, "_")}`;

/**
 * Headers of the UI's documents: scripts and styles only from the page's own origin (no inline
 * code, no CDN), requests only to the registry on the same origin, no framing, no referrer.
 */
export const UI_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "X-Content-Type-Options": "nosniff",
  // Revalidated on every load, so a deploy with a new UI is seen at once.
  "Cache-Control": "no-cache",
};
/** Where nginx keeps cached logins; the proxy container mounts a tmpfs there so they never reach a disk. */
export const AUTH_CACHE_DIR = "/tmp/nginx-auth-cache";
const DEFAULT_UPSTREAM_KEEPALIVE = 32;
const ACCESS_LOG_FORMAT = "registry_stack";

// Mozilla "intermediate" TLS 1.2 suites minus DHE (nginx offers DHE only with ssl_dhparam).
const TLS12_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

// From distribution's nginx recipe: docker 1.3–1.5 clients speak a broken v2 protocol.
const ANCIENT_DOCKER_USER_AGENT = String.raw`"^(docker\/1\.(3|4|5(?!\.[0-9]-dev))|Go ).*$"`;

export function renderNginxConf(input: NginxConfInput): string {
  if (input.authCache?.limitScope === "address-and-user" && !input.authCache.access)
    throw new Error('a login limit per address and user needs access control (the njs module reads the user name)');
  // File tests with `set` in the server, not in a location: there an `if` that matches replaces
  // the location's configuration and try_files (the blob location's) would not run.
  const serverChecks = [...(input.writeHold ? writeHoldFlag(input.writeHold) : []), ...(input.blobReads ? blobLinkCheck() : [])];
  const access = input.authCache?.access;
  const main = serverLocations(input, { upstreamName: UPSTREAM_NAME, withAuth: true, ui: input.ui, writeHold: input.writeHold, blobReads: input.blobReads, access, metricsFile: input.metricsFile });
  const servers = [proxyServer(input, input.listenPort, main, serverChecks)];
  for (const mirror of input.mirrors ?? []) {
    const locations = serverLocations(input, { upstreamName: mirrorUpstreamName(mirror), withAuth: !mirror.anonymousPull, readOnly: mirror });
    servers.push(proxyServer(input, mirror.listenPort, locations));
  }
  if (input.authCache) servers.push(loginLimiterServer(input.authCache, input.ui !== undefined));
  if (access) servers.push(refusalServer(access));
  if (input.httpRedirect) {
    servers.push(...redirectServers(input.serverNames, input.httpRedirect.listenPort, input.httpRedirect.publicPort));
  }
  if (input.healthListenPort !== undefined) {
    servers.push(healthServer(input.healthListenPort, input.generation));
  }
  return [...mainContext(access !== undefined), "", ...eventsBlock(), "", ...httpBlock(input, servers)].join("\n") + "\n";
}

/**
 * The locations of one TLS server: the private registry's (with the UI and the access decision,
 * if any) or a mirror's (any verified login may pull from a mirror: roles scope the registry's
 * own repositories).
 */
function serverLocations(
  input: NginxConfInput,
  options: {
    upstreamName: string;
    withAuth: boolean;
    readOnly?: MirrorServer;
    ui?: { readonly directory: string };
    writeHold?: WriteHold;
    blobReads?: BlobReads;
    access?: AccessControl;
    metricsFile?: string;
  },
): string[][] {
  const authCache = options.withAuth ? input.authCache : undefined;
  const access = authCache ? options.access : undefined;
  const withUi = options.ui !== undefined;
  const checks = loginCheck(authCache !== undefined, options.readOnly !== undefined, options.writeHold !== undefined, access);
  // With access control the decision picks the upstream (the registry or the refusal server).
  const to: ProxyTarget = access ? { upstream: "$registry_upstream", decided: true } : { upstream: options.upstreamName, decided: false };
  const locations = [block("location /v2/", [...checks, ...proxyDirectives(input.tuning, to, authCache !== undefined, withUi)])];
  const blobCache = options.readOnly?.blobCache;
  if (blobCache) {
    if (options.withAuth && !authCache) throw new Error(`mirror ${options.readOnly!.name}: a blob cache needs nginx to check the logins (authCache) or anonymous pulls; the mirror registry would never see a cached download`);
    locations.push(mirrorBlobLocation(input.tuning, to, authCache !== undefined, checks, options.readOnly!, blobCache));
  }
  if (options.blobReads) locations.push(...blobLocations(input.tuning, to, authCache !== undefined, withUi, checks, options.blobReads));
  if (access) locations.push(catalogLocation(input.tuning, checks, withUi), ...stackLocations(access));
  locations.push(healthLocation(), fallbackLocation());
  if (options.ui) locations.push(...uiLocations(options.ui.directory));
  if (authCache) locations.push(authLocation(authCache), anonymousLocation(authCache.realm, withUi), loginRefusedLocation(), authErrorLocation(authCache.limitScope ?? "address"));
  if (access?.anonymousPull) locations.push(anonymousPullLocation(input.tuning), anonymousTokenLocation());
  if (options.readOnly) locations.push(readOnlyLocation(options.readOnly));
  if (options.writeHold) locations.push(writeHeldLocation(options.writeHold));
  if (options.metricsFile !== undefined) {
    locations.push(...metricsLocation(options.metricsFile, authCache !== undefined, access !== undefined));
    if (!authCache) locations.push(metricsAuthLocation(options.upstreamName));
  }
  return locations;
}

function mirrorUpstreamName(mirror: MirrorServer): string {
  return `mirror-${mirror.name}`;
}

/** Mirror names have hyphens; nginx variable names may not. */
function mirrorCacheZone(mirror: MirrorServer): string {
  return `registry_mirror_${mirror.name.replace(/-/g, "_")}`;
}

/** How long a request waits for another one's download of the same blob (an hour: a 10 GiB layer at 3 MB/s). */
const MIRROR_BLOB_LOCK_SECONDS = 3600;
const MIRROR_BLOB_GET_VARIABLE = "$registry_mirror_blob_get";
const BLOB_DIGEST_VARIABLE = "$registry_blob_digest";

/**
 * Which requests use a mirror's blob cache: plain GETs of a digest named in the raw request line.
 * HEAD (nginx would turn it into a GET of the whole blob to fill the cache), ranges and
 * conditional requests (nginx's answers differ from Go's http.ServeContent in details) and
 * anything the digest map does not read (a query, an encoded name) go to the mirror as before.
 * One zone per mirror: the key is the digest alone (blobs are content-addressed), scoped to it.
 */
function mirrorBlobCacheHttpDirectives(mirrors: readonly MirrorServer[]): string[] {
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
function mirrorBlobLocation(tuning: ProxyTuning, to: ProxyTarget, withAuthCache: boolean, checks: Array<string | string[]>, mirror: MirrorServer, cache: MirrorBlobCache): string[] {
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

/** An nginx block: `header {`, the body indented, `}`. Nested blocks are line arrays too. */
function block(header: string, body: ReadonlyArray<string | string[]>): string[] {
  const lines = body.flatMap((item) => (typeof item === "string" ? [item] : item));
  return [`${header} {`, ...lines.map((line) => (line === "" ? "" : `  ${line}`)), "}"];
}

function onOff(value: boolean): string {
  return value ? "on" : "off";
}

// No `user` directive: the Debian package and the official image compile in an unprivileged
// default for workers, and the directive warns when the master is not root.
function mainContext(withNjs: boolean): string[] {
  // Loaded by path: the stack's nginx.conf replaces the image's, which includes module snippets.
  const modules = withNjs ? [`load_module ${NJS_MODULE_PATH};`] : [];
  return [...modules, "worker_processes auto;", "pid /tmp/nginx.pid;", "error_log stderr warn;"];
}

function eventsBlock(): string[] {
  return block("events", ["worker_connections 1024;"]);
}

function httpBlock(input: NginxConfInput, servers: string[][]): string[] {
  const body: Array<string | string[]> = [
    "server_tokens off;",
    "default_type application/octet-stream;",
    // combined, plus a mirror blob cache's HIT/MISS/STALE/UPDATING ("-" where there is none) and
    // who answered: the registry's socket, or "-" when nginx answered itself (login checks,
    // refusals, blobs read from storage or from a mirror's cache).
    `log_format ${ACCESS_LOG_FORMAT} '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" cache=$upstream_cache_status upstream=$upstream_addr';`,
    `access_log /dev/stdout ${ACCESS_LOG_FORMAT};`,
    "sendfile on;",
    "tcp_nopush on;",
    "keepalive_timeout 65s;",
    "",
    // The compiled-in temp paths (/var/lib/nginx, /var/cache/nginx) differ per build and need a
    // writable image. Directly in /tmp because nginx creates only the last path level: a
    // /tmp/nginx/ parent would have to be created by someone else first.
    "client_body_temp_path /tmp/nginx-client-body;",
    "proxy_temp_path /tmp/nginx-proxy;",
    "fastcgi_temp_path /tmp/nginx-fastcgi;",
    "uwsgi_temp_path /tmp/nginx-uwsgi;",
    "scgi_temp_path /tmp/nginx-scgi;",
    "",
    // Added only when the registry did not send it, so that 401s from nginx-side auth carry it too.
    ...block("map $upstream_http_docker_distribution_api_version $docker_distribution_api_version", [
      "'' 'registry/2.0';",
    ]),
    "",
    upstreamBlock(UPSTREAM_NAME, input.upstream, input.tuning.upstreamKeepalive ?? DEFAULT_UPSTREAM_KEEPALIVE),
  ];
  for (const mirror of input.mirrors ?? []) {
    body.push("", upstreamBlock(mirrorUpstreamName(mirror), mirror.upstream, input.tuning.upstreamKeepalive ?? DEFAULT_UPSTREAM_KEEPALIVE));
  }
  if (input.authCache) {
    body.push("", ...authCacheHttpDirectives(input.authCache));
  }
  if (input.authCache?.access) {
    body.push("", ...accessHttpDirectives(input.authCache.access), "", ...tokenRealmMap(input, input.authCache.access));
    // After js_import: the login limit's key with the user name the credentials claim.
    if (input.authCache.limitScope === "address-and-user") body.push(`js_set ${LOGIN_USER_VARIABLE} ${NJS_IMPORT}.loginUser;`);
    if (input.metricsFile !== undefined) body.push("", ...metricsAccessMaps(input.metricsFile));
  }
  if (input.ui) {
    body.push("", ...challengeMaps(input.authCache?.realm));
  }
  if (input.writeHold) {
    body.push("", ...block("map $request_method $registry_write_request", ["GET 0;", "HEAD 0;", "OPTIONS 0;", "default 1;"]));
  }
  const mirrorCaches = mirrorBlobCacheHttpDirectives(input.mirrors ?? []);
  if (input.blobReads || mirrorCaches.length > 0) body.push("", ...blobDigestMap());
  if (input.blobReads) {
    body.push("", ...blobReadMaps(input.blobReads, input.authCache?.access !== undefined));
  }
  if (mirrorCaches.length > 0) body.push("", ...mirrorCaches);
  for (const server of servers) {
    body.push("", server);
  }
  return block("http", body);
}

function upstreamBlock(name: string, upstream: UpstreamAddress, keepalive: number): string[] {
  const server = "socketPath" in upstream ? `unix:${upstream.socketPath}` : `${upstream.host}:${upstream.port}`;
  return block(`upstream ${name}`, [`server ${server};`, `keepalive ${keepalive};`]);
}

function authCacheHttpDirectives(authCache: AuthCache): string[] {
  return [
    // In /tmp of the proxy container only; entries expire with their validity.
    `proxy_cache_path ${AUTH_CACHE_DIR} levels=1 keys_zone=${AUTH_CACHE_ZONE}:1m max_size=16m inactive=${authCache.cacheSeconds}s use_temp_path=off;`,
    "",
    ...upstreamBlock(AUTH_UPSTREAM_NAME, authCache.verifier, 8),
    "",
    // Keyed on the client address the auth location passes on; only the limiter server sees it.
    `limit_req_zone $http_${CLIENT_ADDRESS_HEADER.toLowerCase().replace(/-/g, "_")} zone=${LOGIN_LIMIT_ZONE}:1m rate=${authCache.verificationsPerMinute}r/m;`,
    ...block("map $registry_auth_status $registry_retry_after", ["429 60;", "default '';"]),
    // What the verifier checks: Basic credentials, or the same credentials as a Bearer token
    // (the anonymous-pull token realm hands them back as the token).
    ...block("map $http_authorization $registry_login", ['"~*^Bearer +(?<registry_token>\\S+)$" "Basic $registry_token";', "default $http_authorization;"]),
  ];
}


function accessHttpDirectives(access: AccessControl): string[] {
  return [
    `js_import ${NJS_IMPORT} from ${access.modulePath};`,
    // Read in the content phase only (proxy_pass), so after auth_request verified the login.
    `js_set $registry_access ${NJS_IMPORT}.access;`,
    ...block("map $registry_access $registry_upstream", [`allow ${UPSTREAM_NAME};`, `default ${REFUSAL_UPSTREAM_NAME};`]),
    ...block("map $registry_access $registry_catalog_upstream", [`allow ${UPSTREAM_NAME};`, `filter ${UPSTREAM_NAME};`, `default ${REFUSAL_UPSTREAM_NAME};`]),
    // Sent only to the refusal server: an empty header is not passed on.
    ...block("map $registry_access $registry_refusal", ["allow '';", "filter '';", "default $registry_access;"]),
    // Requests the login check never sees: no credentials, or the anonymous token.
    ...block("map $http_authorization $registry_anonymous", ["'' 1;", '"~*^Bearer +anonymous$" 1;', "default '';"]),
    "",
    ...upstreamBlock(REFUSAL_UPSTREAM_NAME, { host: "127.0.0.1", port: access.refusalListenPort }, 8),
  ];
}

const TOKEN_REALM_VARIABLE = "$registry_token_realm";

/**
 * The token realm's URL for the name the client connected to, from the configuration only: a
 * client's Host or X-Forwarded-Proto never reaches the challenge (a forged Host would send the
 * client's credentials elsewhere). Unknown names get the first configured one. nginx matches map
 * strings case-insensitively, as host names are.
 */
function tokenRealmMap(input: NginxConfInput, access: AccessControl): string[] {
  const scheme = input.tls ? "https" : "http";
  const defaultPort = input.tls ? 443 : 80;
  const realmOf = (host: string) => `"${scheme}://${host}${STACK_ENDPOINT_PREFIX}/token"`;
  const entries: string[] = [];
  for (const name of input.serverNames) {
    const host = hostForUrl(name);
    if (!/^[A-Za-z0-9.:[\]-]+$/.test(host)) throw new Error(`server name ${JSON.stringify(name)} cannot go into the token realm`);
    const withPort = `${host}:${access.publicPort}`;
    entries.push(`"${withPort}" ${realmOf(withPort)};`);
    if (access.publicPort === defaultPort) entries.push(`"${host}" ${realmOf(host)};`);
  }
  const first = hostForUrl(input.serverNames[0]);
  entries.push(`default ${realmOf(access.publicPort === defaultPort ? first : `${first}:${access.publicPort}`)};`);
  return block(`map $http_host ${TOKEN_REALM_VARIABLE}`, entries);
}

// Refused requests are proxied here instead of to the registry: the decision is read in the
// content phase, after the login check, where only a proxy_pass target can still be chosen.
// The Host header the private registry's server passes on is the client's: the map above turns
// it into one of the configured realms.
function refusalServer(access: AccessControl): string[] {
  const challenge = `Bearer realm="${TOKEN_REALM_VARIABLE}",service="${TOKEN_SERVICE}"`;
  return block("server", [
    `listen 127.0.0.1:${access.refusalListenPort};`,
    "default_type application/json;",
    "",
    ...block("location /", [
      ...block(`if ($http_${REFUSAL_HEADER.toLowerCase().replace(/-/g, "_")} = login)`, [
        `add_header WWW-Authenticate '${challenge}' always;`,
        `return 401 '${registryError("UNAUTHORIZED", "authentication required", "anonymous clients may only pull; log in")}';`,
      ]),
      `return 403 '${registryError("DENIED", "requested access to the resource is denied", "not allowed by the role or repositories of this user")}';`,
    ]),
  ]);
}

// Cache misses only (new or wrong credentials) get here, so limiting them per client address
// bounds password guessing and the verifier's bcrypt load without slowing cached logins.
// auth_request hands the verifier's challenge from this server's answer on to the client, so
// the UI's requests lose it here.

// A browser that gets a Basic challenge on a fetch() opens its own login dialog over the page.
// For the UI's requests the challenge is left out (an empty add_header value adds nothing);
// every other client gets exactly the challenge the registry sent.
function challengeMaps(realm: string | undefined): string[] {
  const maps = block(`map ${UI_HEADER_VARIABLE} ${CHALLENGE_VARIABLE}`, ["'' $upstream_http_www_authenticate;", "default '';"]);
  if (realm === undefined) return maps;
  return [...maps, ...block(`map ${UI_HEADER_VARIABLE} ${ANONYMOUS_CHALLENGE_VARIABLE}`, [`'' 'Basic realm="${realm}"';`, "default '';"])];
}

/** proxy_hide_header cannot depend on a request header: hide always, add back what the map gives. */
function challengeDirectives(): string[] {
  return ["proxy_hide_header WWW-Authenticate;", `add_header WWW-Authenticate ${CHALLENGE_VARIABLE} always;`];
}

// Cache misses only (new or wrong credentials) get here, so limiting them per client address
// bounds password guessing and the verifier's bcrypt load without slowing cached logins.
// auth_request hands the verifier's challenge from this server's answer on to the client, so
// the UI's requests lose it here.
function loginLimiterServer(authCache: AuthCache, withUi: boolean): string[] {
  return block("server", [
    `listen 127.0.0.1:${authCache.limiterListenPort};`,
    "",
    ...block("location /", [
      `limit_req zone=${LOGIN_LIMIT_ZONE} burst=${authCache.verificationBurst ?? authCache.verificationsPerMinute} nodelay;`,
      "limit_req_status 429;",
      `proxy_pass http://${AUTH_UPSTREAM_NAME};`,
      "proxy_http_version 1.1;",
      'proxy_set_header Connection "";',
      "proxy_set_header Host $http_host;",
      `proxy_set_header ${CLIENT_ADDRESS_HEADER} "";`,
      ...(withUi ? challengeDirectives() : []),
    ]),
  ]);
}

// Requests without credentials (every docker client's first /v2/ ping) are answered here:
// they never queue behind the verifier's cache lock or cost a subrequest.
function anonymousLocation(realm: string, withUi: boolean): string[] {
  const challenge = withUi ? ANONYMOUS_CHALLENGE_VARIABLE : `'Basic realm="${realm}"'`;
  return block(`location = ${ANONYMOUS_LOCATION}`, [
    "internal;",
    "default_type application/json;",
    `add_header WWW-Authenticate ${challenge} always;`,
    "add_header Docker-Distribution-Api-Version registry/2.0 always;",
    `return 401 '${registryError("UNAUTHORIZED", "authentication required")}';`,
  ]);
}

function loginRefusedLocation(): string[] {
  return block(`location = ${LOGIN_REFUSED_LOCATION}`, [
    "internal;",
    "default_type application/json;",
    "add_header Docker-Distribution-Api-Version registry/2.0 always;",
    `return 401 '${registryError("UNAUTHORIZED", "authentication required")}';`,
  ]);
}

// auth_request turns any verifier answer other than 2xx/401/403 into 500.
function authErrorLocation(scope: LoginLimitScope): string[] {
  const whose = scope === "address-and-user" ? "from this address for this user" : "from this address";
  return block(`location ${AUTH_ERROR_LOCATION}`, [
    "default_type application/json;",
    "add_header Docker-Distribution-Api-Version registry/2.0 always;",
    "add_header Retry-After $registry_retry_after always;",
    ...block("if ($registry_auth_status = 429)", [
      `return 429 '${registryError("TOOMANYREQUESTS", `too many logins to verify ${whose}; retry later`)}';`,
    ]),
    `return 503 '${registryError("UNAVAILABLE", "login verification is unavailable")}';`,
  ]);
}

// distribution's proxy mode answers pushes with a bare UNSUPPORTED; this says what to do instead.
// Before any auth: nothing but GET and HEAD is ever served here, whoever asks.
function readOnlyLocation(mirror: MirrorServer): string[] {
  const message = `this is a read-only pull-through cache of ${mirror.mirrorOf}; push to the private registry ${mirror.pushTo} instead`;
  return block(`location = ${READ_ONLY_LOCATION}`, [
    "internal;",
    "default_type application/json;",
    "add_header Allow 'GET, HEAD' always;",
    "add_header Docker-Distribution-Api-Version registry/2.0 always;",
    `return 405 '${registryError("UNSUPPORTED", message)}';`,
  ]);
}

// docker turns an error whose message is the code's default and whose detail is null into a bare
// code ("denied"), which its push does not recognise as final and retries five times (~50 s):
// refusals carry a detail, so docker stops at once and prints "<code>: <message>".
function registryError(code: string, message: string, detail: string | null = null): string {
  if (`${message}${detail ?? ""}`.includes("'")) throw new Error("registry error texts go into single-quoted nginx strings: no apostrophes");
  return `${JSON.stringify({ errors: [{ code, message, detail }] })}\n`;
}

// The verifier is a registry holding the htpasswd file: /v2/ answers 200 for valid Basic
// credentials and 401 with the Basic challenge otherwise. Only 200s are cached, so every
// wrong guess still pays the full bcrypt cost.
function authLocation(authCache: AuthCache): string[] {
  return block(`location = ${AUTH_LOCATION}`, [
    "internal;",
    `proxy_pass http://127.0.0.1:${authCache.limiterListenPort}/v2/;`,
    // The limiter's key: the client address, and with that scope the (configured) user name.
    `proxy_set_header ${CLIENT_ADDRESS_HEADER} ${authCache.limitScope === "address-and-user" ? `"$remote_addr ${LOGIN_USER_VARIABLE}"` : "$remote_addr"};`,
    ...BODYLESS_GET_SUBREQUEST,
    "proxy_set_header Authorization $registry_login;",
    `proxy_cache ${AUTH_CACHE_ZONE};`,
    // The whole header, so a changed password never matches an entry of the old one.
    `proxy_cache_key ${authCache.loginsGeneration ? `"${authCache.loginsGeneration}:$registry_login"` : "$registry_login"};`,
    `proxy_cache_valid 200 ${authCache.cacheSeconds}s;`,
    "proxy_cache_valid any 0;",
    "proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;",
    // Parallel layer requests of one client wait for a single bcrypt check instead of each running one.
    "proxy_cache_lock on;",
    "proxy_cache_lock_timeout 10s;",
  ]);
}

function tlsDirectives(tls: NonNullable<NginxConfInput["tls"]>): string[] {
  return [
    `ssl_certificate ${tls.certificatePath};`,
    `ssl_certificate_key ${tls.keyPath};`,
    "ssl_protocols TLSv1.2 TLSv1.3;",
    `ssl_ciphers ${TLS12_CIPHERS};`,
    "ssl_prefer_server_ciphers off;",
    "ssl_session_cache shared:SSL:10m;",
    "ssl_session_timeout 1d;",
    "ssl_session_tickets off;",
  ];
}

function proxyServer(input: NginxConfInput, listenPort: number, locations: string[][], serverChecks: string[] = []): string[] {
  const tuning = input.tuning;
  const body: Array<string | string[]> = [
    `listen ${listenPort}${input.tls ? " ssl" : ""};`,
    `server_name ${input.serverNames.join(" ")};`,
  ];
  if (input.tls) {
    body.push(...tlsDirectives(input.tls));
  }
  body.push(
    "",
    // Layers are pushed in one request of any size (else 413) and may be chunked (else 411).
    "client_max_body_size 0;",
    "chunked_transfer_encoding on;",
  );
  if (tuning.clientBodyBufferSize !== undefined) {
    body.push(`client_body_buffer_size ${tuning.clientBodyBufferSize};`);
  }
  if (serverChecks.length > 0) {
    body.push("", ...serverChecks);
  }
  for (const location of locations) {
    body.push("", location);
  }
  return block("server", body);
}

// Checked in the rewrite phase, before auth: an unverified write gets the 503 too (it learns only
// that the registry is in maintenance), and an anonymous one still gets 401 first with the auth cache.
/** Server level: whether this request is a write to hold (the flag file exists). */
function writeHoldFlag(hold: WriteHold): string[] {
  return ["set $registry_hold_write $registry_write_request;", ...block(`if (!-f ${hold.flagFile})`, ["set $registry_hold_write 0;"])];
}

/** Location level, after the login check: a held write goes to the 503 location. */
function writeHoldCheck(): string[] {
  return block("if ($registry_hold_write)", [`rewrite ^ ${WRITE_HELD_LOCATION} last;`]);
}

function writeHeldLocation(hold: WriteHold): string[] {
  return block(`location = ${WRITE_HELD_LOCATION}`, [
    "internal;",
    "default_type application/json;",
    `add_header Retry-After ${hold.retryAfterSeconds} always;`,
    "add_header Docker-Distribution-Api-Version registry/2.0 always;",
    `return 503 '${registryError("UNAVAILABLE", "the registry is collecting garbage; writes are held, reads work; retry shortly")}';`,
  ]);
}

// The verifier (auth cache) or, for /metrics without it, the data registry (htpasswd) decides.
function authCheck(withAuthCache: boolean): string[] {
  if (!withAuthCache) return [`auth_request ${METRICS_AUTH_LOCATION};`];
  return [...block('if ($http_authorization = "")', [`rewrite ^ ${ANONYMOUS_LOCATION} last;`]), ...authRequest()];
}

const METRICS_FILE_VARIABLE = "$registry_metrics_file";
const METRICS_DENIED_LOCATION = "@registry_metrics_denied";

/**
 * With access control the decision (njs, admins only) picks the file to serve: read by try_files,
 * after auth_request verified the login, like the blob reads. An `if` would run before the login
 * check and tell anyone which user names are admins.
 */
function metricsAccessMaps(file: string): string[] {
  return [
    `js_set $registry_metrics_access ${NJS_IMPORT}.metrics;`,
    ...block(`map $registry_metrics_access ${METRICS_FILE_VARIABLE}`, [`allow /${path.posix.basename(file)};`, "default '';"]),
  ];
}

function metricsLocation(file: string, withAuthCache: boolean, withAccess: boolean): string[][] {
  const common = [...authCheck(withAuthCache), 'default_type "text/plain; version=0.0.4";', "add_header Cache-Control no-store always;"];
  if (!withAccess) return [block("location = /metrics", [...common, `alias ${file};`])];
  return [
    block("location = /metrics", [...common, `root ${path.posix.dirname(file)};`, `try_files ${METRICS_FILE_VARIABLE} ${METRICS_DENIED_LOCATION};`]),
    block(`location ${METRICS_DENIED_LOCATION}`, [
      "default_type application/json;",
      "add_header Docker-Distribution-Api-Version registry/2.0 always;",
      `return 403 '${registryError("DENIED", "requested access to the resource is denied", "metrics are for users with the admin role")}';`,
    ]),
  ];
}

// A login-check subrequest would otherwise carry the client's method (PUT, PATCH) and body.
const BODYLESS_GET_SUBREQUEST = [
  "proxy_method GET;",
  "proxy_pass_request_body off;",
  'proxy_set_header Content-Length "";',
  "proxy_http_version 1.1;",
  'proxy_set_header Connection "";',
  "proxy_set_header Host $http_host;",
];

// Without the auth cache the data registry holds htpasswd: its /v2/ answers 200 for valid
// credentials and 401 with the Basic challenge (passed on to the client) otherwise.
function metricsAuthLocation(upstreamName: string): string[] {
  return block(`location = ${METRICS_AUTH_LOCATION}`, [
    "internal;",
    `proxy_pass http://${upstreamName}/v2/;`,
    ...BODYLESS_GET_SUBREQUEST,
  ]);
}

/**
 * What every registry location does before its content: old clients refused, writes refused on
 * a mirror, the login check, writes held during maintenance.
 */
function loginCheck(withAuthCache: boolean, readOnly: boolean, writeHold: boolean, access?: AccessControl): Array<string | string[]> {
  const lines: Array<string | string[]> = [block(`if ($http_user_agent ~ ${ANCIENT_DOCKER_USER_AGENT})`, ["return 404;"]), ""];
  if (readOnly) lines.push(block("if ($request_method !~ ^(GET|HEAD)$)", [`rewrite ^ ${READ_ONLY_LOCATION} last;`]), "");
  if (withAuthCache) {
    // Requests without credentials are answered (or, with anonymous pull, decided) without asking
    // the verifier; the rest wait for auth_request.
    const anonymous = access?.anonymousPull ? ANONYMOUS_PULL_LOCATION : ANONYMOUS_LOCATION;
    lines.push(
      block(access ? "if ($registry_anonymous)" : 'if ($http_authorization = "")', [`rewrite ^ ${anonymous} last;`]),
      ...authRequest(),
      'proxy_set_header Authorization "";',
      "",
    );
  }
  if (writeHold) lines.push(writeHoldCheck(), "");
  return lines;
}

function authRequest(): string[] {
  return [
    `auth_request ${AUTH_LOCATION};`,
    "auth_request_set $registry_auth_status $upstream_status;",
    `error_page 500 = ${AUTH_ERROR_LOCATION};`,
    // A refused login gets the registry's error body, as one without credentials does; the
    // verifier's challenge (copied by auth_request) stays. nginx passes it on with the 401.
    `error_page 401 ${LOGIN_REFUSED_LOCATION};`,
  ];
}

/**
 * Where a location proxies to. `decided`: the access decision's upstream variable, with the raw
 * request target (exactly what the decision read) and the refusal reason for the refusal server.
 */
interface ProxyTarget {
  readonly upstream: string;
  readonly decided: boolean;
}

function proxyDirectives(tuning: ProxyTuning, to: ProxyTarget, withAuthCache: boolean, withUi: boolean): string[] {
  const lines = [
    ...(to.decided ? [`proxy_pass http://${to.upstream}$request_uri;`, `proxy_set_header ${REFUSAL_HEADER} $registry_refusal;`] : [`proxy_pass http://${to.upstream};`]),
    // HTTP/1.1 with an empty Connection header keeps upstream connections alive, and without
    // it nginx buffers chunked uploads whatever proxy_request_buffering says.
    "proxy_http_version 1.1;",
    'proxy_set_header Connection "";',
    // $http_host keeps the client's port, which the registry puts into Location headers.
    "proxy_set_header Host $http_host;",
    "proxy_set_header X-Real-IP $remote_addr;",
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
    `proxy_read_timeout ${tuning.readTimeoutSeconds}s;`,
    `proxy_send_timeout ${tuning.sendTimeoutSeconds}s;`,
    `proxy_request_buffering ${onOff(tuning.requestBuffering)};`,
    `proxy_buffering ${onOff(tuning.responseBuffering)};`,
    `proxy_buffer_size ${tuning.proxyBufferSize};`,
    `proxy_buffers ${tuning.proxyBuffers};`,
  ];
  if (tuning.proxyBusyBuffersSize !== undefined) {
    lines.push(`proxy_busy_buffers_size ${tuning.proxyBusyBuffersSize};`);
  }
  lines.push(
    `proxy_max_temp_file_size ${tuning.maxTempFileSize};`,
    "",
    "add_header 'Docker-Distribution-Api-Version' $docker_distribution_api_version always;",
  );
  // With the auth cache the data registry runs without auth and sends no challenge itself.
  if (withUi && !withAuthCache) lines.push(...challengeDirectives());
  return lines;
}

// Its own location so that only catalog answers pass through the njs body filter.
function catalogLocation(tuning: ProxyTuning, checks: Array<string | string[]>, withUi: boolean): string[] {
  return block("location = /v2/_catalog", [
    ...checks,
    ...proxyDirectives(tuning, { upstream: "$registry_catalog_upstream", decided: true }, true, withUi),
    `js_header_filter ${NJS_IMPORT}.catalogHeaders;`,
    `js_body_filter ${NJS_IMPORT}.catalogBody;`,
  ]);
}

// Requests without credentials (or with the anonymous token) when anyone may pull: the decision
// allows pulls and answers everything else with 401 and the token challenge.
function anonymousPullLocation(tuning: ProxyTuning): string[] {
  return block(`location = ${ANONYMOUS_PULL_LOCATION}`, ["internal;", 'proxy_set_header Authorization "";', ...proxyDirectives(tuning, { upstream: "$registry_upstream", decided: true }, true, false)]);
}

function anonymousTokenLocation(): string[] {
  return block(`location = ${ANONYMOUS_TOKEN_LOCATION}`, ["internal;", `js_content ${NJS_IMPORT}.token;`]);
}

/** The proxy's own endpoints, behind the same login check and limit as /v2/. */
function stackLocations(access: AccessControl): string[][] {
  const locations = [
    block(`location = ${STACK_ENDPOINT_PREFIX}/me`, [
      block("if ($registry_anonymous)", [`rewrite ^ ${ANONYMOUS_LOCATION} last;`]),
      ...authRequest(),
      "add_header Cache-Control no-store always;",
      `js_content ${NJS_IMPORT}.me;`,
    ]),
  ];
  if (access.anonymousPull) {
    // docker asks here after the Bearer challenge: with credentials (login, push) they are
    // verified first; without, it gets the anonymous token.
    locations.push(
      block(`location = ${STACK_ENDPOINT_PREFIX}/token`, [
        block('if ($http_authorization = "")', [`rewrite ^ ${ANONYMOUS_TOKEN_LOCATION} last;`]),
        ...authRequest(),
        "add_header Cache-Control no-store always;",
        `js_content ${NJS_IMPORT}.token;`,
      ]),
    );
  }
  return locations;
}

// Static files only; the page's API calls carry the credentials, so these paths need no auth.
// Relative redirects: nginx's absolute ones would name its listen port, not the published one.
function uiLocations(directory: string): string[][] {
  return [
    block("location = /", ["absolute_redirect off;", "return 302 /ui/;"]),
    block("location = /ui", ["absolute_redirect off;", "return 301 /ui/;"]),
    block("location /ui/", [
      // alias, not root: nothing beside the UI's own folder (nginx.conf, TLS files) maps to a URI.
      `alias ${directory}/;`,
      "index index.html;",
      block("types", ["text/html html;", "text/css css;", "text/javascript js;", "application/json json;"]),
      "default_type application/octet-stream;",
      ...Object.entries(UI_SECURITY_HEADERS).map(([name, value]) => `add_header ${name} "${value}" always;`),
    ]),
  ];
}

// A captured name can only name a folder below repositories/.
const REPOSITORY_NAME = REPOSITORY_NAME_PATTERN;
/** Layout of distribution's filesystem storage below its rootdirectory. */
const STORAGE_V2 = "/docker/registry/v2";
/** The registry's `Cache-Control` for blobs (blobCacheControlMaxAge, one year). */
const BLOB_CACHE_CONTROL = "max-age=31536000";
const BLOB_FALLBACK_LOCATION = "@registry_blob";

/**
 * The variables of the blob fast path, all from the raw request line: what nginx decoded or
 * normalized ($uri) is never used to name a file. The link file's existence is checked in the
 * server (server-level `if` with `set` only: inside a location it would disable try_files).
 */
function blobReadMaps(b: BlobReads, withAccess: boolean): string[] {
  const uri = (captures: string) => `"~^/v2/(${REPOSITORY_NAME})/blobs/${captures}$"`;
  return [
    ...block("map $request_uri $registry_blob_link", [`${uri("sha256:([0-9a-f]{64})")} ${b.storageRoot}${STORAGE_V2}/repositories/$1/_layers/sha256/$2/link;`, "default '';"]),
    ...block("map $request_uri $registry_blob_data", [`${uri("sha256:(([0-9a-f]{2})[0-9a-f]{62})")} /blobs/sha256/$3/$2/data;`, "default '';"]),
    // The registry answers ranges and conditional requests with Go's http.ServeContent; nginx's
    // answers differ in details (416 body, If-None-Match against its own ETag), so they go there.
    ...block("map $request_method$http_range$http_if_match$http_if_none_match$http_if_modified_since$http_if_unmodified_since$http_if_range $registry_blob_plain", [
      "GET 1;",
      "HEAD 1;",
      "default '';",
    ]),
    // With access control a file is served only when the decision allows the request (read here,
    // in try_files, after the login check); anything else goes to the fallback, which asks it again.
    ...(withAccess
      ? block("map $registry_blob_plain$registry_blob_linked$registry_access $registry_blob_file", ["11allow $registry_blob_data;", "default '';"])
      : block("map $registry_blob_plain$registry_blob_linked $registry_blob_file", ["11 $registry_blob_data;", "default '';"])),
  ];
}

/** The digest of a blob URL, from the raw request line (for blob reads and mirror blob caches). */
function blobDigestMap(): string[] {
  return block(`map $request_uri ${BLOB_DIGEST_VARIABLE}`, [`"~^/v2/(${REPOSITORY_NAME})/blobs/(sha256:[0-9a-f]{64})$" $2;`, "default '';"]);
}

function blobLinkCheck(): string[] {
  return ["set $registry_blob_linked '';", ...block("if (-f $registry_blob_link)", ["set $registry_blob_linked 1;"])];
}

/**
 * The blob location: the same login check as /v2/, then the file from storage with the
 * registry's headers (ETag and digest, its Cache-Control, no Last-Modified), or the registry.
 * This regex location wins over /v2/ for blob URLs: whatever /v2/ checks (login, access
 * decisions) must be here and in the fallback too — the renderer test compares them.
 */
function blobLocations(tuning: ProxyTuning, to: ProxyTarget, withAuthCache: boolean, withUi: boolean, checks: Array<string | string[]>, b: BlobReads): string[][] {
  return [
    block('location ~ "^/v2/.+/blobs/sha256:[0-9a-f]{64}$"', [
      ...checks,
      `root ${b.storageRoot}${STORAGE_V2};`,
      // Runs after the access phase: the login check has passed before a file is looked at.
      `try_files $registry_blob_file ${BLOB_FALLBACK_LOCATION};`,
      "types { }",
      "default_type application/octet-stream;",
      "etag off;",
      ...(tuning.blobOutputBuffers !== undefined ? [`output_buffers ${tuning.blobOutputBuffers};`] : []),
      "add_header Docker-Content-Digest $registry_blob_digest;",
      `add_header Etag '"$registry_blob_digest"';`,
      `add_header Cache-Control ${BLOB_CACHE_CONTROL};`,
      // distribution 3.x sends it with every answer (2.8 did not).
      "add_header X-Content-Type-Options nosniff;",
      // An empty value removes the header nginx would send for a file.
      'add_header Last-Modified "";',
      "add_header 'Docker-Distribution-Api-Version' $docker_distribution_api_version always;",
    ]),
    // A named location inherits nothing from the blob location: credentials are dropped here too.
    block(`location ${BLOB_FALLBACK_LOCATION}`, [...(withAuthCache ? ['proxy_set_header Authorization "";'] : []), ...proxyDirectives(tuning, to, withAuthCache, withUi)]),
  ];
}

// `return` runs before any auth phase, so this location stays anonymous whatever auth is added.
function healthLocation(): string[] {
  return block("location = /healthz", ["access_log off;", "default_type text/plain;", 'return 200 "ok\\n";']);
}

function healthServer(listenPort: number, generation: string | undefined): string[] {
  const generationLocation = generation !== undefined ? ["", ...block(`location = ${GENERATION_PATH}`, ["access_log off;", "default_type text/plain;", `return 200 "${generation}";`])] : [];
  return block("server", [`listen 127.0.0.1:${listenPort};`, "", healthLocation(), ...generationLocation, "", fallbackLocation()]);
}

function fallbackLocation(): string[] {
  return block("location /", ["return 404;"]);
}

// Redirect targets come from the configuration, never from the client's Host header alone:
// $host is used only in the server whose server_name matched it.
function redirectServers(serverNames: string[], listenPort: number, publicPort: number): string[][] {
  const port = publicPort === 443 ? "" : `:${publicPort}`;
  return [
    block("server", [`listen ${listenPort};`, `server_name ${serverNames.join(" ")};`, `return 301 https://$host${port}$request_uri;`]),
    block("server", [`listen ${listenPort} default_server;`, "server_name _;", `return 301 https://${hostForUrl(serverNames[0])}${port}$request_uri;`]),
  ];
}

function hostForUrl(name: string): string {
  return name.includes(":") ? `[${name}]` : name;
}
