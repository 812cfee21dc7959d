import { ANONYMOUS_LOCATION, authRequest } from "./auth-cache";
import { block, hostForUrl, registryError } from "./block";
import type { NginxConfInput } from "./nginx-conf";
import { REFUSAL_HEADER, UPSTREAM_NAME, proxyDirectives, upstreamBlock } from "./proxy";
import type { ProxyTuning } from "./proxy";

// Roles and repository scopes: the njs decision, the refusal server, the catalog filter, anonymous pull.

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

/** Where the proxy serves its own endpoints (the web UI's `me`, the anonymous-pull token realm). */
export const STACK_ENDPOINT_PREFIX = "/registry-stack";

/** The `service` of the token challenge with anonymous pull. */
export const TOKEN_SERVICE = "registry-stack";

export const ANONYMOUS_PULL_LOCATION = "/_registry_anonymous_pull";

const ANONYMOUS_TOKEN_LOCATION = "/_registry_anonymous_token";

const REFUSAL_UPSTREAM_NAME = "registry-refusal";

export const NJS_IMPORT = "registry_access";

/** `registryUpstream`: what proxy_pass names for the registry (see upstreamReference). */
export function accessHttpDirectives(access: AccessControl, registryUpstream: string = UPSTREAM_NAME): string[] {
  return [
    `js_import ${NJS_IMPORT} from ${access.modulePath};`,
    // Read in the content phase only (proxy_pass), so after auth_request verified the login.
    `js_set $registry_access ${NJS_IMPORT}.access;`,
    ...block("map $registry_access $registry_upstream", [`allow ${registryUpstream};`, `default ${REFUSAL_UPSTREAM_NAME};`]),
    ...block("map $registry_access $registry_catalog_upstream", [`allow ${registryUpstream};`, `filter ${registryUpstream};`, `default ${REFUSAL_UPSTREAM_NAME};`]),
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
export function tokenRealmMap(input: NginxConfInput, access: AccessControl): string[] {
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
export function refusalServer(access: AccessControl): string[] {
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

// Its own location so that only catalog answers pass through the njs body filter.
export function catalogLocation(tuning: ProxyTuning, checks: Array<string | string[]>, withUi: boolean): string[] {
  return block("location = /v2/_catalog", [
    ...checks,
    ...proxyDirectives(tuning, { upstream: "$registry_catalog_upstream", decided: true }, true, withUi),
    `js_header_filter ${NJS_IMPORT}.catalogHeaders;`,
    `js_body_filter ${NJS_IMPORT}.catalogBody;`,
  ]);
}

// Requests without credentials (or with the anonymous token) when anyone may pull: the decision
// allows pulls and answers everything else with 401 and the token challenge.
export function anonymousPullLocation(tuning: ProxyTuning): string[] {
  return block(`location = ${ANONYMOUS_PULL_LOCATION}`, ["internal;", 'proxy_set_header Authorization "";', ...proxyDirectives(tuning, { upstream: "$registry_upstream", decided: true }, true, false)]);
}

export function anonymousTokenLocation(): string[] {
  return block(`location = ${ANONYMOUS_TOKEN_LOCATION}`, ["internal;", `js_content ${NJS_IMPORT}.token;`]);
}

/** The proxy's own endpoints, behind the same login check and limit as /v2/. */
export function stackLocations(access: AccessControl): string[][] {
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
