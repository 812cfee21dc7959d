import type { AccessControl } from "./access";
import { BODYLESS_GET_SUBREQUEST, block, registryError } from "./block";
import { AUTH_UPSTREAM_NAME, CLIENT_ADDRESS_HEADER, CLIENT_ADDRESS_VARIABLE, LOGIN_LIMIT_ZONE, LOGIN_USER_VARIABLE, VERIFICATION_LIMIT_ZONE } from "./login-limit";
import type { LoginLimitScope } from "./login-limit";
import { upstreamBlock } from "./proxy";
import type { UpstreamServers } from "./proxy";
import { ANONYMOUS_CHALLENGE_VARIABLE } from "./ui";

// The login check: auth_request to the verifier, successful logins cached for a while.

export interface AuthCache {
  /** Where the verifier listens: one address, or each of its instances. */
  readonly verifier: UpstreamServers;
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
   * Logins the verifier checks per minute from all client addresses together: those above it
   * wait in a short queue, then get 429, so a flood spread over many addresses, each within its
   * own budget, still cannot keep bcrypt busy beyond this rate.
   */
  readonly totalVerificationsPerMinute: number;
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

const AUTH_LOCATION = "/_registry_auth";

export const ANONYMOUS_LOCATION = "/_registry_anonymous";

const AUTH_ERROR_LOCATION = "@registry_auth_error";

const LOGIN_REFUSED_LOCATION = "/_registry_login_refused";

const AUTH_CACHE_ZONE = "registry_auth";

const LIMITER_UPSTREAM_NAME = "registry-login-limiter";

/** Where nginx keeps cached logins; the proxy container mounts a tmpfs there so they never reach a disk. */
export const AUTH_CACHE_DIR = "/tmp/nginx-auth-cache";

export function authCacheHttpDirectives(authCache: AuthCache): string[] {
  return [
    // In /tmp of the proxy container only; entries expire with their validity.
    `proxy_cache_path ${AUTH_CACHE_DIR} levels=1 keys_zone=${AUTH_CACHE_ZONE}:1m max_size=16m inactive=${authCache.cacheSeconds}s use_temp_path=off;`,
    "",
    ...upstreamBlock(AUTH_UPSTREAM_NAME, authCache.verifier, 8),
    "",
    // The hop to this nginx's own login limiter, listed twice: a connection that a worker killed
    // meanwhile had accepted is sent again (to a live worker) instead of failing the login check.
    ...block(`upstream ${LIMITER_UPSTREAM_NAME}`, [`server 127.0.0.1:${authCache.limiterListenPort} max_fails=0;`, `server 127.0.0.1:${authCache.limiterListenPort} max_fails=0;`]),
    "",
    // Keyed on the client address the auth location passes on; only the limiter server sees it.
    `limit_req_zone ${CLIENT_ADDRESS_VARIABLE} zone=${LOGIN_LIMIT_ZONE}:1m rate=${authCache.verificationsPerMinute}r/m;`,
    // One key for every request: the budget of all addresses together.
    ...block(`map ${CLIENT_ADDRESS_VARIABLE} $registry_verification_pool`, ["default all;"]),
    `limit_req_zone $registry_verification_pool zone=${VERIFICATION_LIMIT_ZONE}:64k rate=${authCache.totalVerificationsPerMinute}r/m;`,
    ...block("map $registry_auth_status $registry_retry_after", ["429 60;", "default '';"]),
    // What the verifier checks: Basic credentials, or the same credentials as a Bearer token
    // (the anonymous-pull token realm hands them back as the token).
    ...block("map $http_authorization $registry_login", ['"~*^Bearer +(?<registry_token>\\S+)$" "Basic $registry_token";', "default $http_authorization;"]),
  ];
}

// Requests without credentials (every docker client's first /v2/ ping) are answered here:
// they never queue behind the verifier's cache lock or cost a subrequest.
export function anonymousLocation(realm: string, withUi: boolean): string[] {
  const challenge = withUi ? ANONYMOUS_CHALLENGE_VARIABLE : `'Basic realm="${realm}"'`;
  return block(`location = ${ANONYMOUS_LOCATION}`, [
    "internal;",
    "default_type application/json;",
    `add_header WWW-Authenticate ${challenge} always;`,
    "add_header Docker-Distribution-Api-Version registry/2.0 always;",
    `return 401 '${registryError("UNAUTHORIZED", "authentication required")}';`,
  ]);
}

export function loginRefusedLocation(): string[] {
  return block(`location = ${LOGIN_REFUSED_LOCATION}`, [
    "internal;",
    "default_type application/json;",
    "add_header Docker-Distribution-Api-Version registry/2.0 always;",
    `return 401 '${registryError("UNAUTHORIZED", "authentication required")}';`,
  ]);
}

// auth_request turns any verifier answer other than 2xx/401/403 into 500. The 429 comes from
// either budget (this client's, or all addresses' together): the limiter cannot say which.
export function authErrorLocation(): string[] {
  return block(`location ${AUTH_ERROR_LOCATION}`, [
    "default_type application/json;",
    "add_header Docker-Distribution-Api-Version registry/2.0 always;",
    "add_header Retry-After $registry_retry_after always;",
    ...block("if ($registry_auth_status = 429)", [
      `return 429 '${registryError("TOOMANYREQUESTS", "too many logins to verify; retry later")}';`,
    ]),
    `return 503 '${registryError("UNAVAILABLE", "login verification is unavailable")}';`,
  ]);
}

// The verifier is a registry holding the htpasswd file: /v2/ answers 200 for valid Basic
// credentials and 401 with the Basic challenge otherwise. Only 200s are cached, so every
// wrong guess still pays the full bcrypt cost.
export function authLocation(authCache: AuthCache): string[] {
  return block(`location = ${AUTH_LOCATION}`, [
    "internal;",
    `proxy_pass http://${LIMITER_UPSTREAM_NAME}/v2/;`,
    // Only a connection that failed before an answer: a 429 or 503 of the limiter is the answer.
    "proxy_next_upstream error;",
    "proxy_next_upstream_tries 2;",
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
    // When a cached login expires, one request asks the verifier again and the others keep the
    // expired 200 meanwhile: with a slow verifier they would otherwise pass the lock's timeout
    // together and spend the login limit's budget (a valid user answered 429). The key holds the
    // logins generation, so an entry never outlives a change of users, passwords or roles.
    // The same when the limiter refuses the check (a flood has spent the budgets): a credential
    // verified before keeps working, instead of its user being locked out by other people's guesses.
    "proxy_cache_use_stale updating http_429;",
  ]);
}

export function authRequest(): string[] {
  return [
    `auth_request ${AUTH_LOCATION};`,
    "auth_request_set $registry_auth_status $upstream_status;",
    `error_page 500 = ${AUTH_ERROR_LOCATION};`,
    // A refused login gets the registry's error body, as one without credentials does; the
    // verifier's challenge (copied by auth_request) stays. nginx passes it on with the 401.
    `error_page 401 ${LOGIN_REFUSED_LOCATION};`,
  ];
}
