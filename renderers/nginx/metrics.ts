import * as path from "path";
import { NJS_IMPORT } from "./access";
import { ANONYMOUS_LOCATION, authRequest } from "./auth-cache";
import { BODYLESS_GET_SUBREQUEST, block, registryError } from "./block";

// /metrics: the maintenance container's file, behind the login check (admins only with roles).

const METRICS_AUTH_LOCATION = "/_registry_metrics_auth";

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
export function metricsAccessMaps(file: string): string[] {
  return [
    `js_set $registry_metrics_access ${NJS_IMPORT}.metrics;`,
    ...block(`map $registry_metrics_access ${METRICS_FILE_VARIABLE}`, [`allow /${path.posix.basename(file)};`, "default '';"]),
  ];
}

export function metricsLocation(file: string, withAuthCache: boolean, withAccess: boolean): string[][] {
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

// Without the auth cache the data registry holds htpasswd: its /v2/ answers 200 for valid
// credentials and 401 with the Basic challenge (passed on to the client) otherwise.
export function metricsAuthLocation(upstreamName: string): string[] {
  return block(`location = ${METRICS_AUTH_LOCATION}`, [
    "internal;",
    `proxy_pass http://${upstreamName}/v2/;`,
    ...BODYLESS_GET_SUBREQUEST,
  ]);
}
