import { REPOSITORY_NAME_PATTERN } from "../../config/rules";
import { block } from "./block";
import { proxyDirectives } from "./proxy";
import type { ProxyTarget, ProxyTuning } from "./proxy";

// Plain blob downloads answered from the registry's storage, mounted read-only.

/** Where the registry's storage (its filesystem `rootdirectory`) is mounted in the proxy. */
export interface BlobReads {
  readonly storageRoot: string;
}

export const BLOB_DIGEST_VARIABLE = "$registry_blob_digest";

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
export function blobReadMaps(b: BlobReads, withAccess: boolean): string[] {
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
export function blobDigestMap(): string[] {
  return block(`map $request_uri ${BLOB_DIGEST_VARIABLE}`, [`"~^/v2/(${REPOSITORY_NAME})/blobs/(sha256:[0-9a-f]{64})$" $2;`, "default '';"]);
}

export function blobLinkCheck(): string[] {
  return ["set $registry_blob_linked '';", ...block("if (-f $registry_blob_link)", ["set $registry_blob_linked 1;"])];
}

/**
 * The blob location: the same login check as /v2/, then the file from storage with the
 * registry's headers (ETag and digest, its Cache-Control, no Last-Modified), or the registry.
 * This regex location wins over /v2/ for blob URLs: whatever /v2/ checks (login, access
 * decisions) must be here and in the fallback too — the renderer test compares them.
 */
export function blobLocations(tuning: ProxyTuning, to: ProxyTarget, withAuthCache: boolean, withUi: boolean, checks: Array<string | string[]>, b: BlobReads): string[][] {
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
