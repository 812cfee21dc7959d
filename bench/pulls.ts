import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as path from "path";
import { RegistryStorage } from "../e2e/registry-storage";
import { run } from "../e2e/proc";
import { REGISTRY_GID, REGISTRY_UID } from "../renderers/volume-ownership";
import { expectGet, MANIFEST_ACCEPT, Server } from "./http";

/**
 * Images written straight into the deployed registry's filesystem store (faster than pushing
 * them), and a client that pulls them as docker does: the manifest, then the config and the
 * layers, three at a time, on keep-alive connections of its own.
 */

export interface StoredImage {
  readonly repo: string;
  readonly tag: string;
  readonly bytes: number;
}

export function storeImage(storage: RegistryStorage, repo: string, tag: string, layers: number, layerBytes: number): StoredImage {
  const now = new Date();
  const blobs = Array.from({ length: layers }, () => storage.putBlob(crypto.randomBytes(layerBytes)));
  const manifest = storage.putImage(repo, blobs, now);
  storage.tag(repo, tag, manifest.digest, now);
  return { repo, tag, bytes: layers * layerBytes };
}

/**
 * Files written as root are handed to the registry's user, as the stack's volume owner does, where
 * the registry may write: the blob folders and every repository folder but the scale ones (tens
 * of thousands of files the registry only reads; their parents are enough).
 */
export async function handToRegistry(storage: RegistryStorage, readOnly = ["scale"]): Promise<void> {
  const repositories = path.join(storage.v2, "repositories");
  const tops = fs.existsSync(repositories) ? fs.readdirSync(repositories) : [];
  const chain = [path.join(storage.root, "docker"), path.join(storage.root, "docker", "registry"), storage.v2, repositories, ...tops.filter((t) => readOnly.includes(t)).map((t) => path.join(repositories, t))];
  const deep = [path.join(storage.v2, "blobs"), ...tops.filter((t) => !readOnly.includes(t)).map((t) => path.join(repositories, t))];
  const owner = `${REGISTRY_UID}:${REGISTRY_GID}`;
  await run("chown", [owner, ...chain.filter((p) => fs.existsSync(p))], { timeoutMs: 60_000 });
  await run("chown", ["-R", owner, ...deep.filter((p) => fs.existsSync(p))], { timeoutMs: 120_000 });
}

interface ManifestDoc {
  config: { digest: string; size: number };
  layers: Array<{ digest: string; size: number }>;
}

/** One pull; returns its wall time in ms. Every blob must arrive whole. */
export async function pull(server: Server, image: StoredImage, credentials?: { name: string; password: string }): Promise<number> {
  const started = Date.now();
  const agent = new https.Agent({ keepAlive: true, maxSockets: 3, ca: server.ca });
  try {
    const o = { agent, credentials };
    const manifest = JSON.parse((await expectGet(server, `/v2/${image.repo}/manifests/${image.tag}`, 200, { ...o, headers: { Accept: MANIFEST_ACCEPT } })).body) as ManifestDoc;
    const queue = [manifest.config, ...manifest.layers];
    const worker = async () => {
      for (let blob = queue.shift(); blob; blob = queue.shift()) {
        const reply = await expectGet(server, `/v2/${image.repo}/blobs/${blob.digest}`, 200, o);
        if (reply.bytes !== blob.size) throw new Error(`${image.repo} ${blob.digest}: ${reply.bytes} of ${blob.size} bytes`);
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    return Date.now() - started;
  } finally {
    agent.destroy();
  }
}

/** `clients` pulls at once; returns the wall time until the last one finished, in ms. */
export async function concurrentPulls(server: Server, image: StoredImage, clients: number, credentials: { name: string; password: string }): Promise<number> {
  const started = Date.now();
  await Promise.all(Array.from({ length: clients }, () => pull(server, image, credentials)));
  return Date.now() - started;
}
