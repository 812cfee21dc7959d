// The registry API as the UI uses it. Credentials live in this object only (memory of the tab):
// never in storage, never in a URL. Every request carries the header named in /ui/settings.json
// (X-Registry-UI), for which the proxy leaves out the Basic challenge, so a 401 never opens the
// browser's own login dialog.
import { accessOf, Access, parseMe, UiSettings } from "./access.js";
import {
  Descriptor,
  distinctBlobSize,
  failureMessage,
  isIndex,
  MANIFEST_ACCEPT,
  ManifestDocument,
  MEDIA_TYPES,
  nextLink,
  platformLabel,
  platformManifests,
  imageSize,
  registryErrorCode,
  retryAfterSeconds,
} from "./format.js";

/** A failed request, with a message meant for the person using the page. */
export class RegistryError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

export interface TagDetails {
  readonly digest: string;
  /** Compressed size: layers and config, each blob once across platforms. */
  readonly size: number;
  /** Newest `created` among the platforms' configs. */
  readonly created?: string;
  /** Platforms of an index; for a single image, its own platform from the config. */
  readonly platforms: readonly { readonly platform: string; readonly size: number }[];
  readonly isIndex: boolean;
}

interface ImageConfig {
  readonly created?: string;
  readonly os?: string;
  readonly architecture?: string;
  readonly variant?: string;
}

function basicAuthorization(user: string, password: string): string {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

function encodeRepository(name: string): string {
  return name.split("/").map(encodeURIComponent).join("/");
}

/** Turns a failed response into an error whose message says what happened and what to do. */
async function failure(response: Response, action: string): Promise<RegistryError> {
  const error = registryErrorCode(await response.text().catch(() => ""));
  const retry = response.status === 429 ? (retryAfterSeconds(response.headers.get("Retry-After")) ?? 60) : undefined;
  return new RegistryError(failureMessage(response.status, error, retry, action), response.status, error?.code, retry);
}

export class RegistryClient {
  private authorization: string | undefined;
  private readonly aborts = new AbortController();

  private constructor(
    readonly user: string,
    authorization: string,
    private readonly settings: UiSettings,
  ) {
    this.authorization = authorization;
  }

  /** Reads the stack's settings (public), then checks the credentials against `/v2/`; returns a client holding them. */
  static async signIn(user: string, password: string): Promise<RegistryClient> {
    const client = new RegistryClient(user, basicAuthorization(user, password), await readSettings());
    const response = await client.request("/v2/");
    if (!response.ok) throw await failure(response, "sign in");
    return client;
  }

  /** Forgets the credentials and cancels every request still running. */
  signOut(): void {
    this.authorization = undefined;
    this.aborts.abort();
  }

  get signedIn(): boolean {
    return this.authorization !== undefined;
  }

  private async request(path: string, init: { method?: string; accept?: string } = {}): Promise<Response> {
    if (this.authorization === undefined) throw new RegistryError("Signed out.", 0);
    const headers: Record<string, string> = { Authorization: this.authorization, [this.settings.requestHeader]: "1" };
    if (init.accept) headers.Accept = init.accept;
    try {
      return await fetch(path, { method: init.method ?? "GET", headers, cache: "no-store", credentials: "omit", signal: this.aborts.signal });
    } catch (err) {
      if (this.aborts.signal.aborted) throw new RegistryError("Signed out.", 0);
      throw new RegistryError(`Cannot reach the registry (${(err as Error).message}).`, 0);
    }
  }

  private async json<T>(path: string, what: string, accept?: string): Promise<{ body: T; response: Response }> {
    const response = await this.request(path, { accept });
    if (!response.ok) throw await failure(response, what);
    return { body: (await response.json()) as T, response };
  }

  /** What the user may do: the proxy's roles if it has them (issue #11), else the stack's settings. */
  async access(): Promise<Access> {
    const response = await this.request("/registry-stack/me");
    if (response.status === 404) return accessOf(this.user, undefined, this.settings);
    if (!response.ok) throw await failure(response, "read your access rights");
    const me = parseMe(await response.json());
    if (!me) throw new RegistryError("The proxy answered /registry-stack/me with an unexpected document.", response.status);
    return accessOf(this.user, me, this.settings);
  }

  /**
   * Repository names page by page, following the catalog's `Link` header: the first page small
   * (so the list appears at once), the rest in pages of 1000, the registry's maximum.
   */
  async *repositories(firstPageSize = 100): AsyncGenerator<string[]> {
    let path: string | undefined = `/v2/_catalog?n=${firstPageSize}`;
    while (path !== undefined) {
      const { body, response }: { body: { repositories?: string[] }; response: Response } = await this.json(path, "list the repositories");
      yield body.repositories ?? [];
      const next = nextLink(response.headers.get("Link"));
      path = next === undefined ? undefined : withPageSize(next, 1000);
    }
  }

  /** Every tag of a repository (tags/list, following `Link`). */
  async tags(repository: string): Promise<string[]> {
    const tags: string[] = [];
    let path: string | undefined = `/v2/${encodeRepository(repository)}/tags/list?n=1000`;
    while (path !== undefined) {
      const { body, response }: { body: { tags?: string[] | null }; response: Response } = await this.json(path, `list the tags of ${repository}`);
      tags.push(...(body.tags ?? []));
      path = nextLink(response.headers.get("Link"));
    }
    return tags;
  }

  private async manifest(repository: string, reference: string): Promise<{ doc: ManifestDocument; digest: string; contentType: string | null }> {
    const { body, response } = await this.json<ManifestDocument>(
      `/v2/${encodeRepository(repository)}/manifests/${encodeURIComponent(reference)}`,
      `read the manifest ${repository}:${reference}`,
      MANIFEST_ACCEPT,
    );
    return { doc: body, digest: response.headers.get("Docker-Content-Digest") ?? reference, contentType: response.headers.get("Content-Type") };
  }

  private async config(repository: string, descriptor: Descriptor | undefined): Promise<ImageConfig | undefined> {
    const type = descriptor?.mediaType;
    if (!descriptor || (type !== MEDIA_TYPES.ociConfig && type !== MEDIA_TYPES.dockerConfig)) return undefined;
    const { body } = await this.json<ImageConfig>(`/v2/${encodeRepository(repository)}/blobs/${descriptor.digest}`, "read an image config");
    return body;
  }

  /** Digest, size, created time and platforms of one tag. */
  async tagDetails(repository: string, tag: string): Promise<TagDetails> {
    const top = await this.manifest(repository, tag);
    if (isIndex(top.doc, top.contentType)) {
      const entries = platformManifests(top.doc);
      const images = await Promise.all(
        entries.map(async (entry) => {
          const image = await this.manifest(repository, entry.digest);
          const config = await this.config(repository, image.doc.config);
          return { entry, image: image.doc, config };
        }),
      );
      return {
        digest: top.digest,
        size: distinctBlobSize(images.map((i) => i.image)),
        created: newest(images.map((i) => i.config?.created)),
        platforms: images.map((i) => ({ platform: platformLabel(i.entry.platform), size: imageSize(i.image) })),
        isIndex: true,
      };
    }
    const config = await this.config(repository, top.doc.config);
    const size = imageSize(top.doc);
    const platform = config ? platformLabel(config) : undefined;
    return { digest: top.digest, size, created: config?.created, platforms: platform ? [{ platform, size }] : [], isIndex: false };
  }

  /**
   * Removes one tag (distribution 3 untags; the manifest stays reachable by digest until garbage
   * collection). Other tags of the same manifest are untouched.
   */
  async deleteTag(repository: string, tag: string): Promise<void> {
    const response = await this.request(`/v2/${encodeRepository(repository)}/manifests/${encodeURIComponent(tag)}`, { method: "DELETE" });
    if (!response.ok) throw await failure(response, `delete tags in ${repository}`);
  }
}

/** /ui/settings.json, which the stack writes next to the page (no credentials needed). */
async function readSettings(): Promise<UiSettings> {
  let response: Response;
  try {
    response = await fetch("/ui/settings.json", { cache: "no-store", credentials: "omit" });
  } catch (err) {
    throw new RegistryError(`Cannot reach the registry (${(err as Error).message}).`, 0);
  }
  if (!response.ok) throw await failure(response, "read the UI settings");
  return (await response.json()) as UiSettings;
}

function withPageSize(path: string, size: number): string {
  const url = new URL(path, "http://registry.invalid");
  url.searchParams.set("n", String(size));
  return `${url.pathname}${url.search}`;
}

function newest(times: (string | undefined)[]): string | undefined {
  return times.filter((t): t is string => t !== undefined).sort((a, b) => Date.parse(b) - Date.parse(a))[0];
}
