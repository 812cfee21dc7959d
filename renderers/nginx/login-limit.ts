import { verificationQueueLength } from "../../config/rules";
import type { AuthCache } from "./auth-cache";
import { block } from "./block";
import { upstreamReference } from "./proxy";
import { challengeDirectives } from "./ui";

// The login limit in front of the verifier: unverified logins per budget and minute.

export type LoginLimitScope = "address" | "address-and-user";

export const AUTH_UPSTREAM_NAME = "registry-auth";

export const LOGIN_LIMIT_ZONE = "registry_logins";

export const VERIFICATION_LIMIT_ZONE = "registry_verifications";

export const LOGIN_USER_VARIABLE = "$registry_login_user";

export const CLIENT_ADDRESS_HEADER = "X-Registry-Client";

/** The header as nginx names it in the limiter server. */
export const CLIENT_ADDRESS_VARIABLE = `$http_${CLIENT_ADDRESS_HEADER.toLowerCase().replace(/-/g, "_")}`;

// Cache misses only (new or wrong credentials) get here, so limiting them per client address
// bounds password guessing and the verifier's bcrypt load without slowing cached logins.
// auth_request hands the verifier's challenge from this server's answer on to the client, so
// the UI's requests lose it here.
// The budget of all addresses queues (no nodelay): the verifier then gets the logins spaced out
// instead of a burst that would share the cores among many bcrypt checks at once, each slower.
// nginx counts a login in neither budget when either refuses it.
export function loginLimiterServer(authCache: AuthCache, withUi: boolean): string[] {
  return block("server", [
    `listen 127.0.0.1:${authCache.limiterListenPort};`,
    "",
    ...block("location /", [
      `limit_req zone=${LOGIN_LIMIT_ZONE} burst=${authCache.verificationBurst ?? authCache.verificationsPerMinute} nodelay;`,
      `limit_req zone=${VERIFICATION_LIMIT_ZONE} burst=${verificationQueueLength(authCache.totalVerificationsPerMinute)};`,
      "limit_req_status 429;",
      // Refusals stay in the error log (warn); logins waiting their turn (notice) do not.
      "limit_req_log_level warn;",
      `proxy_pass http://${upstreamReference(AUTH_UPSTREAM_NAME, authCache.verifier)};`,
      "proxy_http_version 1.1;",
      'proxy_set_header Connection "";',
      "proxy_set_header Host $http_host;",
      `proxy_set_header ${CLIENT_ADDRESS_HEADER} "";`,
      ...(withUi ? challengeDirectives() : []),
    ]),
  ]);
}
