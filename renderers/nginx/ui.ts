import { UI_REQUEST_HEADER } from "../../config/rules";
import { block } from "./block";

// The web page: its files, its headers, and 401s without the Basic challenge for its requests.

/** The Basic challenge of a 401, left out for requests of the web UI (see UI_REQUEST_HEADER). */
const CHALLENGE_VARIABLE = "$registry_challenge";

export const ANONYMOUS_CHALLENGE_VARIABLE = "$registry_anonymous_challenge";

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

// A browser that gets a Basic challenge on a fetch() opens its own login dialog over the page.
// For the UI's requests the challenge is left out (an empty add_header value adds nothing);
// every other client gets exactly the challenge the registry sent.
export function challengeMaps(realm: string | undefined): string[] {
  const maps = block(`map ${UI_HEADER_VARIABLE} ${CHALLENGE_VARIABLE}`, ["'' $upstream_http_www_authenticate;", "default '';"]);
  if (realm === undefined) return maps;
  return [...maps, ...block(`map ${UI_HEADER_VARIABLE} ${ANONYMOUS_CHALLENGE_VARIABLE}`, [`'' 'Basic realm="${realm}"';`, "default '';"])];
}

/** proxy_hide_header cannot depend on a request header: hide always, add back what the map gives. */
export function challengeDirectives(): string[] {
  return ["proxy_hide_header WWW-Authenticate;", `add_header WWW-Authenticate ${CHALLENGE_VARIABLE} always;`];
}

// Static files only; the page's API calls carry the credentials, so these paths need no auth.
// Relative redirects: nginx's absolute ones would name its listen port, not the published one.
export function uiLocations(directory: string): string[][] {
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
