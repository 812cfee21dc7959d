// Access decisions of the registry proxy, run by nginx's JavaScript module (njs).
//
// Written in the subset that njs 0.7 (Debian bookworm) and njs 0.9 (nginx:*-alpine) both run:
// var/function, no classes or async. The stack prepends `var RULES = {...};` generated from the
// configuration and `var REPOSITORY_NAME` from config/rules.ts (renderers/access-module.ts).
//
// Every decision uses the raw request target ($request_uri), exactly what the registry
// receives, and only after nginx verified the credentials it names (auth_request runs in the
// access phase; the variables below are read in the content phase). The path is %-decoded once,
// as the registry's router does; a path that is then not one of the registry's routes in plain
// form (no dot segments, no empty segments, nothing still escaped) is refused, so nginx and the
// registry can never read a different repository out of one request.

var NAME = "(" + REPOSITORY_NAME + ")";
var REFERENCE = "[A-Za-z0-9_+.:=-]+";
var REPOSITORY_ROUTE = new RegExp(
  "^/v2/" + NAME + "/(manifests/" + REFERENCE + "|blobs/uploads/[A-Za-z0-9_.=-]*|blobs/" + REFERENCE + "|tags/list|referrers/" + REFERENCE + ")$"
);
var ANONYMOUS_TOKEN = "anonymous";
var RANK = { pull: 1, push: 2, admin: 3 };

/** { user, anonymous } from the Authorization header (Basic, or Bearer with a token of ours). */
function principal(authorization) {
  var header = authorization || "";
  var match = /^(Basic|Bearer) +(\S+)$/i.exec(header);
  if (header === "" || (match && match[1].toLowerCase() === "bearer" && match[2] === ANONYMOUS_TOKEN)) {
    return { user: null, anonymous: true };
  }
  if (!match) return { user: null, anonymous: false };
  var decoded = Buffer.from(match[2], "base64").toString();
  var colon = decoded.indexOf(":");
  return { user: colon > 0 ? decoded.slice(0, colon) : null, anonymous: false };
}

function inScope(scopes, repository) {
  if (scopes === null) return true;
  for (var i = 0; i < scopes.length; i++) {
    var scope = scopes[i];
    if (scope.slice(-2) === "/*") {
      if (repository.indexOf(scope.slice(0, -1)) === 0) return true;
    } else if (scope === repository) {
      return true;
    }
  }
  return false;
}

/** May this principal do `action` (pull | push | delete) on `repository`? */
function allowed(who, action, repository) {
  if (who.anonymous) return action === "pull" && RULES.anonymousPull;
  var user = who.user === null ? undefined : RULES.users[who.user];
  if (!user) return false;
  var needed = action === "delete" ? RANK.admin : action === "push" ? RANK.push : RANK.pull;
  return RANK[user.role] >= needed && inScope(user.repositories, repository);
}

/** Every value of query parameter `key`, decoded the way Go's url.ParseQuery does. */
function queryValues(query, key) {
  var values = [];
  var pairs = query.split("&");
  for (var i = 0; i < pairs.length; i++) {
    if (pairs[i] === "") continue;
    var eq = pairs[i].indexOf("=");
    var rawKey = eq < 0 ? pairs[i] : pairs[i].slice(0, eq);
    var rawValue = eq < 0 ? "" : pairs[i].slice(eq + 1);
    var name;
    var value;
    try {
      name = decodeURIComponent(rawKey.replace(/\+/g, " "));
      value = decodeURIComponent(rawValue.replace(/\+/g, " "));
    } catch (e) {
      // Undecodable: count it under every key, so it is checked (and refused) wherever it matters.
      values.push(rawValue);
      continue;
    }
    if (name === key) values.push(value);
  }
  return values;
}

/**
 * The decision for one request:
 *   "allow"  pass to the registry
 *   "filter" pass to the registry, the catalog answer filtered to the user's repositories
 *   "login"  401: log in first (anonymous, and the action needs a user)
 *   "deny"   403 DENIED
 */
function decide(method, requestUri, authorization) {
  var who = principal(authorization);
  if (!who.anonymous && who.user === null) return "deny";
  var question = requestUri.indexOf("?");
  var path;
  try {
    path = decodeURIComponent(question < 0 ? requestUri : requestUri.slice(0, question));
  } catch (e) {
    return "deny";
  }
  var query = question < 0 ? "" : requestUri.slice(question + 1);
  var read = method === "GET" || method === "HEAD";

  if (path === "/v2/") {
    // The bare Authorization-less ping is what makes docker ask for a token (see token()).
    return who.anonymous && !authorization ? "login" : "allow";
  }
  if (path === "/v2/_catalog") {
    if (!read) return "deny";
    if (who.anonymous) return "login";
    var user = RULES.users[who.user];
    if (!user) return "deny";
    return user.repositories === null ? "allow" : "filter";
  }
  var route = REPOSITORY_ROUTE.exec(path);
  if (!route) return "deny";
  var repository = route[1];
  var kind = route[2].split("/")[0];
  var upload = route[2].indexOf("blobs/uploads/") === 0;
  var action;
  if (upload) action = "push";
  else if (read) action = "pull";
  else if (method === "DELETE" && (kind === "manifests" || kind === "blobs")) action = "delete";
  else if ((method === "PUT" || method === "POST" || method === "PATCH") && kind === "manifests") action = "push";
  else return "deny";

  var ok = allowed(who, action, repository);
  if (ok && upload && method === "POST") {
    // A cross-repository mount reads the source: it needs pull there as well.
    var sources = queryValues(query, "from");
    for (var i = 0; i < sources.length; i++) {
      if (!allowed(who, "pull", sources[i])) ok = false;
    }
  }
  if (ok) return "allow";
  return who.anonymous ? "login" : "deny";
}

/** js_set $registry_access */
function access(r) {
  return decide(r.variables.request_method, r.variables.request_uri, r.headersIn["Authorization"]);
}

/** The repositories of a catalog page this user may see (the page's Link header stays). */
function filterCatalogBody(body, authorization) {
  var who = principal(authorization);
  var user = who.user === null ? undefined : RULES.users[who.user];
  var page;
  try {
    page = JSON.parse(body);
  } catch (e) {
    return body;
  }
  if (!page || !Array.isArray(page.repositories)) return body;
  page.repositories = page.repositories.filter(function (name) {
    return user !== undefined && inScope(user.repositories, name);
  });
  return JSON.stringify(page) + "\n";
}

var catalogBuffer = "";

/** js_body_filter of the catalog location. */
function catalogBody(r, data, flags) {
  catalogBuffer += data;
  if (!flags.last) return;
  var body = catalogBuffer;
  catalogBuffer = "";
  r.sendBuffer(r.status === 200 ? filterCatalogBody(body, r.headersIn["Authorization"]) : body, flags);
}

/** js_header_filter of the catalog location: the filtered body has another length. */
function catalogHeaders(r) {
  delete r.headersOut["Content-Length"];
}

/** What /registry-stack/me answers for a verified user. */
function describe(authorization) {
  var who = principal(authorization);
  var user = who.user === null ? undefined : RULES.users[who.user];
  if (!user) return undefined;
  return {
    user: who.user,
    role: user.role,
    repositories: user.repositories,
    deleteEnabled: RULES.deleteEnabled,
    anonymousPull: RULES.anonymousPull,
  };
}

/** js_content of /registry-stack/me (after auth_request). */
function me(r) {
  var body = describe(r.headersIn["Authorization"]);
  r.headersOut["Content-Type"] = "application/json";
  if (body === undefined) {
    r.return(403, JSON.stringify({ errors: [{ code: "DENIED", message: "requested access to the resource is denied", detail: "not a user of this registry" }] }) + "\n");
    return;
  }
  r.return(200, JSON.stringify(body) + "\n");
}

/**
 * js_set $registry_login_user: the user name the credentials claim, for the login limit's key
 * (checked or not: the limit applies before the verifier). Names nobody configured are one "-",
 * so made-up names cannot open new budgets.
 */
function loginUser(r) {
  var who = principal(r.headersIn["Authorization"]);
  return who.user !== null && Object.prototype.hasOwnProperty.call(RULES.users, who.user) ? who.user : "-";
}

/** May this verified login read /metrics? Admins only: the metrics name every repository. */
function metricsDecision(authorization) {
  var who = principal(authorization);
  var user = who.user === null ? undefined : RULES.users[who.user];
  return user !== undefined && user.role === "admin" ? "allow" : "deny";
}

/** js_set $registry_metrics_access (read by try_files, after auth_request verified the login). */
function metrics(r) {
  return metricsDecision(r.headersIn["Authorization"]);
}

/**
 * The token docker asks for after a Bearer challenge: "anonymous" without credentials, else the
 * verified Basic credentials themselves, which nginx verifies (and caches) on every request like
 * Basic ones. No signing key is needed and a token is worth exactly its password.
 */
function tokenFor(authorization) {
  var match = /^Basic +(\S+)$/i.exec(authorization || "");
  return match ? match[1] : ANONYMOUS_TOKEN;
}

/** js_content of the token endpoint (after auth_request when credentials were sent). */
function token(r) {
  var value = tokenFor(r.headersIn["Authorization"]);
  r.headersOut["Content-Type"] = "application/json";
  r.return(200, JSON.stringify({ token: value, access_token: value, expires_in: RULES.tokenSeconds }) + "\n");
}

export default { access: access, catalogBody: catalogBody, catalogHeaders: catalogHeaders, loginUser: loginUser, me: me, metrics: metrics, token: token, decide: decide, filterCatalogBody: filterCatalogBody, describe: describe, metricsDecision: metricsDecision, tokenFor: tokenFor };
