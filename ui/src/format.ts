// Pure helpers of the browser UI: no DOM, no network, so jest tests them directly.

export const MEDIA_TYPES = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
} as const;

/** Every manifest kind the UI understands, for the Accept header. */
export const MANIFEST_ACCEPT = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest].join(", ");

export interface Descriptor {
  readonly mediaType?: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: { readonly os?: string; readonly architecture?: string; readonly variant?: string };
  readonly annotations?: Record<string, string>;
}

/** An image manifest or an index, as far as the UI reads it. */
export interface ManifestDocument {
  readonly mediaType?: string;
  readonly config?: Descriptor;
  readonly layers?: readonly Descriptor[];
  readonly manifests?: readonly Descriptor[];
}

/** 1536 → "1.5 KiB"; binary units like `docker image ls` sizes are not (it uses SI), but like registries' storage. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

/** "sha256:0123456789abcdef…" → "sha256:0123456789ab" (12 hex digits, as docker prints image IDs). */
export function shortDigest(digest: string): string {
  const [algorithm, hex] = digest.split(":", 2);
  return hex === undefined ? digest : `${algorithm}:${hex.slice(0, 12)}`;
}

/**
 * The `rel="next"` target of a registry `Link` header, e.g.
 * `</v2/_catalog?last=a%2Fb&n=100>; rel="next"` → "/v2/_catalog?last=a%2Fb&n=100".
 */
export function nextLink(header: string | null): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(",")) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (match && /(^|;)\s*rel="?next"?\s*(;|$)/.test(match[2])) return match[1];
  }
  return undefined;
}

/** Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or undefined. */
export function retryAfterSeconds(header: string | null, now: number = Date.now()): number | undefined {
  if (!header) return undefined;
  if (/^\s*\d+\s*$/.test(header)) return Number(header);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

export function isIndex(doc: ManifestDocument, contentType?: string | null): boolean {
  const type = doc.mediaType ?? contentType ?? "";
  return type === MEDIA_TYPES.ociIndex || type === MEDIA_TYPES.dockerList || (doc.manifests !== undefined && doc.layers === undefined);
}

export function platformLabel(platform: Descriptor["platform"]): string {
  if (!platform?.os || !platform.architecture) return "unknown";
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join("/");
}

/**
 * Entries of an index that are images for a platform: BuildKit's attestation manifests
 * (platform unknown/unknown with a reference-type annotation) are not platforms.
 */
export function platformManifests(index: ManifestDocument): Descriptor[] {
  return (index.manifests ?? []).filter((m) => m.annotations?.["vnd.docker.reference.type"] !== "attestation-manifest" && platformLabel(m.platform) !== "unknown");
}

/** Compressed size of an image: its layers as stored (and downloaded) plus its config. */
export function imageSize(manifest: ManifestDocument): number {
  return (manifest.config?.size ?? 0) + (manifest.layers ?? []).reduce((sum, layer) => sum + layer.size, 0);
}

/** Size of several images together, each blob counted once (platforms often share layers). */
export function distinctBlobSize(manifests: readonly ManifestDocument[]): number {
  const sizes = new Map<string, number>();
  for (const m of manifests) for (const d of [...(m.config ? [m.config] : []), ...(m.layers ?? [])]) sizes.set(d.digest, d.size);
  return [...sizes.values()].reduce((a, b) => a + b, 0);
}

/** An ISO time from an image config as "2026-11-29 04:12 UTC"; anything unparsable as "–". */
export function formatCreated(created: string | undefined): string {
  if (!created) return "–";
  const date = new Date(created);
  if (Number.isNaN(date.getTime()) || date.getTime() <= 0) return "–";
  return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** Case-insensitive substring filter. */
export function filterNames(names: readonly string[], filter: string): string[] {
  const needle = filter.trim().toLowerCase();
  return needle === "" ? [...names] : names.filter((n) => n.toLowerCase().includes(needle));
}

/** `docker pull` line for a tag, with the address the page was opened at (host[:port]). */
export function pullCommand(host: string, repository: string, tag: string): string {
  return `docker pull ${host}/${repository}:${tag}`;
}

/** The registry's error body `{"errors":[{"code","message"}]}`, or nothing. */
export function registryErrorCode(body: string): { code: string; message: string } | undefined {
  try {
    const parsed = JSON.parse(body) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = parsed.errors?.[0];
    if (first && typeof first.code === "string") return { code: first.code, message: typeof first.message === "string" ? first.message : "" };
  } catch {
    // not JSON: nginx's own HTML error pages
  }
  return undefined;
}

/** What the page says about a failed request: what happened and what to do, never a bare error code. */
export function failureMessage(status: number, error: { code: string; message: string } | undefined, retryAfter: number | undefined, action: string): string {
  switch (status) {
    case 401:
      return "Wrong user name or password.";
    case 403:
      return `Your account may not ${action}.`;
    case 405:
      return error?.code === "UNSUPPORTED"
        ? "This registry does not allow deleting (deleteEnabled is false in the stack's configuration)."
        : `The registry does not support this: ${action}.`;
    case 429:
      return `Too many sign-in attempts from your address. Try again in ${retryAfter ?? 60} seconds.`;
    case 503:
      return "The registry cannot verify sign-ins right now; try again shortly.";
  }
  // distribution 2.x reads the reference of DELETE /v2/<name>/manifests/<tag> as a digest.
  if (status === 400 && error?.code === "DIGEST_INVALID" && action.startsWith("delete")) {
    return "This registry (distribution 2.x) deletes only whole manifests by digest, not single tags; with registry 3.x the page deletes tags.";
  }
  return `Could not ${action}: HTTP ${status}${error ? ` ${error.code}: ${error.message}` : ""}.`;
}
