import { ANONYMOUS_PULL_LOCATION, NJS_IMPORT, accessHttpDirectives, anonymousPullLocation, anonymousTokenLocation, catalogLocation, refusalServer, stackLocations, tokenRealmMap } from "./access";
import type { AccessControl } from "./access";
import { ANONYMOUS_LOCATION, anonymousLocation, authCacheHttpDirectives, authErrorLocation, authLocation, authRequest, loginRefusedLocation } from "./auth-cache";
import type { AuthCache } from "./auth-cache";
import { blobDigestMap, blobLinkCheck, blobLocations, blobReadMaps } from "./blob-reads";
import type { BlobReads } from "./blob-reads";
import { block } from "./block";
import { fallbackLocation, healthLocation, healthServer } from "./health";
import { LOGIN_USER_VARIABLE, loginLimiterServer } from "./login-limit";
import { metricsAccessMaps, metricsAuthLocation, metricsLocation } from "./metrics";
import { READ_ONLY_LOCATION, mirrorBlobCacheHttpDirectives, mirrorBlobLocation, mirrorManifestLocations, mirrorStatusLocation, mirrorUpstreamName, readOnlyLocation } from "./mirrors";
import type { MirrorServer } from "./mirrors";
import { ACCESS_LOG_FORMAT, ANCIENT_DOCKER_USER_AGENT, DEFAULT_UPSTREAM_KEEPALIVE, DOCKER_DNS_RESOLVER, DOCKER_DNS_VALID_SECONDS, UPSTREAM_NAME, eventsBlock, mainContext, proxyDirectives, serverList, upstreamBlock, upstreamReference, upstreamRetryDirectives, usesServiceDns } from "./proxy";
import type { ProxyTarget, ProxyTuning, UpstreamServers } from "./proxy";
import { redirectServers } from "./redirect";
import { tlsDirectives } from "./tls";
import { challengeMaps, uiLocations } from "./ui";
import { writeHeldLocation, writeHoldCheck, writeHoldFlag } from "./write-hold";
import type { WriteHold } from "./write-hold";


// The renderer's public face: what the constructs, the bench and the tests use.
export { DEFAULT_PROXY_TUNING, NJS_MODULE_PATH } from "./proxy";
export type { ProxyTuning, UpstreamAddress, UpstreamServers } from "./proxy";
export { AUTH_CACHE_DIR } from "./auth-cache";
export type { AuthCache } from "./auth-cache";
export type { LoginLimitScope } from "./login-limit";
export { STACK_ENDPOINT_PREFIX, TOKEN_SERVICE } from "./access";
export type { AccessControl } from "./access";
export { GENERATION_PATH } from "./health";
export type { MirrorBlobCache, MirrorServer } from "./mirrors";
export type { WriteHold } from "./write-hold";
export type { BlobReads } from "./blob-reads";
export { UI_SECURITY_HEADERS } from "./ui";

/** Input for a complete nginx.conf in front of the registry; callers validate the values. */
export interface NginxConfInput {
  /** `server_name` values, e.g. ["registry.example.com"]. */
  readonly serverNames: string[];
  /** Port nginx listens on inside its container, e.g. 8443. */
  readonly listenPort: number;
  /** Where the registry listens: one address, or each of its instances. */
  readonly upstream: UpstreamServers;
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

export function renderNginxConf(input: NginxConfInput): string {
  if (input.authCache?.limitScope === "address-and-user" && !input.authCache.access)
    throw new Error('a login limit per address and user needs access control (the njs module reads the user name)');
  // File tests with `set` in the server, not in a location: there an `if` that matches replaces
  // the location's configuration and try_files (the blob location's) would not run.
  const serverChecks = [...(input.writeHold ? writeHoldFlag(input.writeHold) : []), ...(input.blobReads ? blobLinkCheck() : [])];
  const access = input.authCache?.access;
  const main = serverLocations(input, { upstreamName: upstreamReference(UPSTREAM_NAME, input.upstream), withAuth: true, ui: input.ui, writeHold: input.writeHold, blobReads: input.blobReads, access, metricsFile: input.metricsFile });
  const servers = [proxyServer(input, input.listenPort, main, serverChecks)];
  for (const mirror of input.mirrors ?? []) {
    const locations = serverLocations(input, { upstreamName: upstreamReference(mirrorUpstreamName(mirror), mirror.upstream), withAuth: !mirror.anonymousPull, readOnly: mirror });
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
  if (options.readOnly?.modeFiles) {
    locations.push(mirrorStatusLocation(options.readOnly.modeFiles));
    // proxy_intercept_errors would also hand the mirror's own 500s and 401s to the login check's
    // error pages ("login verification is unavailable"): with nginx checking logins, the
    // mirror's 404 stays distribution's.
    if (!authCache) locations.push(...mirrorManifestLocations(input.tuning, to, false, checks, options.readOnly));
  }
  if (options.blobReads) locations.push(...blobLocations(input.tuning, to, authCache !== undefined, withUi, checks, options.blobReads));
  if (access) locations.push(catalogLocation(input.tuning, checks, withUi), ...stackLocations(access));
  locations.push(healthLocation(), fallbackLocation());
  if (options.ui) locations.push(...uiLocations(options.ui.directory));
  if (authCache) locations.push(authLocation(authCache), anonymousLocation(authCache.realm, withUi), loginRefusedLocation(), authErrorLocation());
  if (access?.anonymousPull) locations.push(anonymousPullLocation(input.tuning), anonymousTokenLocation());
  if (options.readOnly) locations.push(readOnlyLocation(options.readOnly));
  if (options.writeHold) locations.push(writeHeldLocation(options.writeHold));
  if (options.metricsFile !== undefined) {
    locations.push(...metricsLocation(options.metricsFile, authCache !== undefined, access !== undefined));
    if (!authCache) locations.push(metricsAuthLocation(options.upstreamName));
  }
  return locations;
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
  const upstreams = [input.upstream, ...(input.authCache ? [input.authCache.verifier] : []), ...(input.mirrors ?? []).map((m) => m.upstream)];
  if (usesServiceDns(upstreams)) {
    // Replicas come and go; ipv6=off: Docker's overlay networks here are IPv4 only.
    body.push("", `resolver ${DOCKER_DNS_RESOLVER} valid=${DOCKER_DNS_VALID_SECONDS}s ipv6=off;`, "resolver_timeout 5s;");
  }
  const instances = Math.max(...upstreams.map((u) => serverList(u).length));
  if (instances > 1) body.push("", ...upstreamRetryDirectives(instances));
  for (const mirror of input.mirrors ?? []) {
    body.push("", upstreamBlock(mirrorUpstreamName(mirror), mirror.upstream, input.tuning.upstreamKeepalive ?? DEFAULT_UPSTREAM_KEEPALIVE));
  }
  if (input.authCache) {
    body.push("", ...authCacheHttpDirectives(input.authCache));
  }
  if (input.authCache?.access) {
    body.push("", ...accessHttpDirectives(input.authCache.access, upstreamReference(UPSTREAM_NAME, input.upstream)), "", ...tokenRealmMap(input, input.authCache.access));
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
