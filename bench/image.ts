import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import { singleFileTar } from "../e2e/tar";
import { run } from "./proc";

const sha256 = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

export interface BuiltImage {
  /** A skopeo `dir:` layout (manifest.json, blobs named by hex digest, version). */
  readonly dir: string;
  readonly layerDigests: string[];
  readonly totalBytes: number;
}

/**
 * A Docker schema-2 image with `layers` gzip layers of one random file each (incompressible),
 * written as skopeo's `dir:` transport so skopeo can push it without a daemon.
 */
export function buildImage(dir: string, layers: number, bytesPerLayer: number): BuiltImage {
  fs.mkdirSync(dir, { recursive: true });
  const diffIds: string[] = [];
  const layerDescs: { mediaType: string; size: number; digest: string }[] = [];
  let totalBytes = 0;
  for (let i = 0; i < layers; i++) {
    const tar = singleFileTar(`bench/layer-${String(i).padStart(2, "0")}.bin`, crypto.randomBytes(bytesPerLayer), 0o644);
    diffIds.push(`sha256:${sha256(tar)}`);
    const gz = zlib.gzipSync(tar);
    const hex = sha256(gz);
    fs.writeFileSync(path.join(dir, hex), gz);
    layerDescs.push({ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: gz.length, digest: `sha256:${hex}` });
    totalBytes += gz.length;
  }
  const config = Buffer.from(
    JSON.stringify({ architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: diffIds }, history: [] }),
  );
  const configHex = sha256(config);
  fs.writeFileSync(path.join(dir, configHex), config);
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.docker.distribution.manifest.v2+json",
    config: { mediaType: "application/vnd.docker.container.image.v1+json", size: config.length, digest: `sha256:${configHex}` },
    layers: layerDescs,
  };
  fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest));
  fs.writeFileSync(path.join(dir, "version"), "Directory Transport Version: 1.1\n");
  return { dir, layerDigests: layerDescs.map((l) => l.digest), totalBytes: totalBytes + config.length };
}

export interface SkopeoTarget {
  /** host:port on 127.0.0.1 */
  readonly hostPort: string;
  /** Directory holding ca.crt for the registry's TLS. */
  readonly certDir?: string;
  readonly creds?: string;
  /** Plain HTTP (the registry's own published port): skopeo's --src-tls-verify=false. */
  readonly plainHttp?: boolean;
}

function sourceTlsArgs(from: SkopeoTarget): string[] {
  if (from.plainHttp) return ["--src-tls-verify=false"];
  if (!from.certDir) throw new Error(`${from.hostPort}: a TLS source needs certDir`);
  return ["--src-cert-dir", from.certDir];
}

const SKOPEO_TIMEOUT_MS = 120_000;

export async function pushImage(image: BuiltImage, to: SkopeoTarget, reference: string): Promise<void> {
  await run(
    "skopeo",
    [
      "copy",
      "--insecure-policy",
      "--dest-cert-dir",
      to.certDir ?? "",
      ...(to.creds ? ["--dest-creds", to.creds] : []),
      `dir:${image.dir}`,
      `docker://${to.hostPort}/${reference}`,
    ],
    { timeoutMs: SKOPEO_TIMEOUT_MS },
  );
}

/** Pulls the image into a fresh `dir:` and removes it again; returns the wall time in seconds. */
export async function pullImage(from: SkopeoTarget, reference: string, scratch: string): Promise<number> {
  const dest = fs.mkdtempSync(path.join(scratch, "pull-"));
  try {
    const { seconds } = await run(
      "skopeo",
      [
        "copy",
        "--insecure-policy",
        ...sourceTlsArgs(from),
        ...(from.creds ? ["--src-creds", from.creds] : []),
        `docker://${from.hostPort}/${reference}`,
        `dir:${dest}`,
      ],
      { timeoutMs: SKOPEO_TIMEOUT_MS },
    );
    return seconds;
  } finally {
    fs.rmSync(dest, { recursive: true, force: true });
  }
}
