import * as crypto from "crypto";
import * as https from "https";
import * as zlib from "zlib";
import { singleFileTar } from "./tar";

/**
 * The registry's HTTP API spoken directly (Node's https with the generated CA): pushes small
 * made-up images, image indexes and many repositories quickly, where the docker CLI would need a
 * build per image. Every request is bounded in time; the CA is verified.
 */

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";

export interface Blob {
  digest: string;
  size: number;
}

export interface PushedImage {
  digest: string;
  /** Manifest bytes (what the index refers to). */
  size: number;
  config: Blob;
  layers: Blob[];
}

export function sha256Digest(data: Buffer): string {
  return `sha256:${crypto.createHash("sha256").update(data).digest("hex")}`;
}

export class RegistryApi {
  private readonly agent: https.Agent;
  private readonly authorization: string;

  constructor(
    /** https://127.0.0.1:<port> */
    private readonly baseUrl: string,
    ca: string,
    credentials: { name: string; password: string },
  ) {
    this.agent = new https.Agent({ ca, keepAlive: true, maxSockets: 8 });
    this.authorization = `Basic ${Buffer.from(`${credentials.name}:${credentials.password}`).toString("base64")}`;
  }

  close(): void {
    this.agent.destroy();
  }

  request(method: string, pathOrUrl: string, body?: Buffer, headers: Record<string, string> = {}): Promise<ApiResponse> {
    const url = new URL(pathOrUrl, this.baseUrl);
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        {
          method,
          agent: this.agent,
          timeout: 30_000,
          headers: { Authorization: this.authorization, ...(body ? { "Content-Length": String(body.length) } : {}), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${url.pathname}: no answer in 30 s`)));
      req.on("error", reject);
      req.end(body);
    });
  }

  private async expect(status: number, method: string, path: string, body?: Buffer, headers?: Record<string, string>): Promise<ApiResponse> {
    const res = await this.request(method, path, body, headers);
    if (res.status !== status) throw new Error(`${method} ${path}: expected ${status}, got ${res.status} ${res.body.toString("utf8").slice(0, 300)}`);
    return res;
  }

  /** Monolithic upload (POST then PUT with the digest). */
  async pushBlob(repository: string, data: Buffer): Promise<Blob> {
    const digest = sha256Digest(data);
    const started = await this.expect(202, "POST", `/v2/${repository}/blobs/uploads/`);
    const location = new URL(String(started.headers["location"]), this.baseUrl);
    location.searchParams.set("digest", digest);
    await this.expect(201, "PUT", `${location.pathname}${location.search}`, data, { "Content-Type": "application/octet-stream" });
    return { digest, size: data.length };
  }

  /** Cross-repository mount of a blob the registry already holds in `from`. */
  async mountBlob(repository: string, blob: Blob, from: string): Promise<void> {
    await this.expect(201, "POST", `/v2/${repository}/blobs/uploads/?mount=${blob.digest}&from=${from}`);
  }

  async putManifest(repository: string, reference: string, mediaType: string, document: object): Promise<{ digest: string; size: number }> {
    const body = Buffer.from(JSON.stringify(document));
    const res = await this.expect(201, "PUT", `/v2/${repository}/manifests/${reference}`, body, { "Content-Type": mediaType });
    const digest = sha256Digest(body);
    if (res.headers["docker-content-digest"] !== digest) throw new Error(`PUT manifest ${repository}:${reference}: digest ${String(res.headers["docker-content-digest"])} ≠ ${digest}`);
    return { digest, size: body.length };
  }

  /** A one-layer image whose config names its platform and creation time. */
  async pushImage(repository: string, image: { os: string; architecture: string; variant?: string; created: string; layerBytes: number }): Promise<PushedImage> {
    const content = crypto.randomBytes(image.layerBytes);
    const tar = singleFileTar("data/payload.bin", content, 0o644);
    const layerData = zlib.gzipSync(tar, { level: 1 });
    const config = Buffer.from(
      JSON.stringify({
        created: image.created,
        os: image.os,
        architecture: image.architecture,
        ...(image.variant ? { variant: image.variant } : {}),
        config: {},
        rootfs: { type: "layers", diff_ids: [sha256Digest(tar)] },
      }),
    );
    const configBlob = await this.pushBlob(repository, config);
    const layer = await this.pushBlob(repository, layerData);
    const manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, ...configBlob },
      layers: [{ mediaType: OCI_LAYER, ...layer }],
    };
    const pushed = await this.putManifest(repository, sha256Digest(Buffer.from(JSON.stringify(manifest))), OCI_MANIFEST, manifest);
    return { ...pushed, config: configBlob, layers: [layer] };
  }

  /** Tags a manifest the repository already holds (GET by digest, PUT under the tag). */
  async tagManifest(repository: string, digest: string, tag: string, mediaType: string): Promise<void> {
    const res = await this.expect(200, "GET", `/v2/${repository}/manifests/${digest}`, undefined, { Accept: mediaType });
    const put = await this.expect(201, "PUT", `/v2/${repository}/manifests/${tag}`, res.body, { "Content-Type": mediaType });
    if (put.headers["docker-content-digest"] !== digest) throw new Error(`tagging ${repository}:${tag} gave ${String(put.headers["docker-content-digest"])}, not ${digest}`);
  }

  /** An OCI index over images already pushed to `repository`, tagged `tag`. */
  async pushIndex(repository: string, tag: string, images: { image: PushedImage; platform: { os: string; architecture: string; variant?: string } }[]): Promise<string> {
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: images.map(({ image, platform }) => ({ mediaType: OCI_MANIFEST, digest: image.digest, size: image.size, platform })),
    };
    return (await this.putManifest(repository, tag, OCI_INDEX, index)).digest;
  }
}
