import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { NO_NEW_PRIVILEGES, SCRATCH_TMPFS } from "../constructs/container-defaults";
import { Maintenance } from "../constructs/maintenance";
import { Registry } from "../constructs/registry";
import { REGISTRY_V3_IMAGE } from "../e2e/images";
import { MaintenanceReport, MAINTENANCE_SCRIPT, renderMaintenanceSettings, RetentionRule } from "../renderers/maintenance-settings";
import { renderCollectorConfig } from "../renderers/registry-config";
import { Lab, SERVER_NAME } from "./lab";
import { medianOf, repeat, RepeatResult } from "./reps";
import { Budget } from "./stats";
import { createVolume, getBytes, removeVolume, startV3Registry } from "./storage-lab";

/**
 * Issue #9's figure: how long the storage lifecycle job holds writes. The job is the stack's own:
 * the maintenance container as constructs/maintenance.ts declares it (registry image, the
 * rendered maintenance.sh, settings and collector config, read-only root, /tmp tmpfs, the
 * registry's memory limit), run the way `npm run gc` runs it (`docker exec … maintenance.sh
 * run`); the figures are the durations its own report gives. The store is written straight into
 * the data volume in distribution's filesystem layout (much faster than pushing 10,000 blobs)
 * and a v3.1.1 registry on that volume must serve it before the job runs.
 */

export interface StoreShape {
  readonly key: string;
  readonly label: string;
  readonly repositories: number;
  readonly tagsPerRepository: number;
  /** Layers of each image besides its config (each image has its own). */
  readonly layersPerManifest: number;
  /** Retention keeps this many newest tags per repository; the rest goes. */
  readonly keepNewest: number;
}

export const SUITE_SHAPE: StoreShape = { key: "suite", label: "suite-sized (like e2e check 42)", repositories: 3, tagsPerRepository: 4, layersPerManifest: 1, keepNewest: 2 };
export const LARGE_SHAPE: StoreShape = { key: "large", label: "synthetic 1,000 manifests", repositories: 100, tagsPerRepository: 10, layersPerManifest: 9, keepNewest: 5 };
/** The schema's default `retention.writeSettleSeconds`: part of every write window. */
export const WRITE_SETTLE_SECONDS = 2;
const LAYER_BYTES = 1024;
const MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json";

export interface StoreFacts {
  readonly manifests: number;
  readonly blobs: number;
  readonly bytes: number;
}

export interface GcRun {
  readonly writeWindowMs: number;
  readonly collectorMs: number;
  readonly retentionMs: number;
  /** The `docker exec` as a whole (client's view). */
  readonly execMs: number;
  readonly deletedManifests: number;
  readonly deletedBlobs: number;
}

export interface GcShapeResult {
  readonly shape: StoreShape;
  readonly store: StoreFacts;
  readonly runs: GcRun[];
  readonly reps: RepeatResult;
  readonly writeWindowMedianMs: number;
  readonly collectorMedianMs: number;
  readonly retentionMedianMs: number;
}

export interface GcBenchResult {
  readonly settleSeconds: number;
  readonly shapes: GcShapeResult[];
  readonly checks: string[];
}

interface Image {
  repository: string;
  tag: string;
  manifest: string;
  config: string;
  layers: string[];
}

const sha256 = (b: Buffer | string) => crypto.createHash("sha256").update(b).digest("hex");

/**
 * Writes the store into `v2` (…/docker/registry/v2) as distribution lays it out: blob data,
 * per-repository _layers and _manifests/revisions links, tags with current + index links. Tag
 * links get push times one second apart (the job orders tags by the link's mtime).
 */
export function writeStore(v2: string, shape: StoreShape): { facts: StoreFacts; images: Image[] } {
  let blobs = 0;
  let bytes = 0;
  const putBlob = (content: Buffer): string => {
    const hex = sha256(content);
    const dir = path.join(v2, "blobs", "sha256", hex.slice(0, 2), hex);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "data"), content);
    blobs++;
    bytes += content.length;
    return `sha256:${hex}`;
  };
  const link = (file: string, digest: string, mtimeS?: number) => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, digest);
    if (mtimeS !== undefined) fs.utimesSync(file, mtimeS, mtimeS);
  };
  const images: Image[] = [];
  const pushedAt = Math.floor(Date.now() / 1000) - 3600;
  for (let r = 0; r < shape.repositories; r++) {
    const repository = `bench/app-${String(r).padStart(3, "0")}`;
    const repoDir = path.join(v2, "repositories", repository);
    for (let t = 0; t < shape.tagsPerRepository; t++) {
      const tag = `build-${String(t).padStart(3, "0")}`;
      const layers = Array.from({ length: shape.layersPerManifest }, () => putBlob(crypto.randomBytes(LAYER_BYTES)));
      const configBody = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: layers }, history: [{ created_by: `${repository}:${tag}` }] }));
      const config = putBlob(configBody);
      const manifestBody = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MANIFEST_TYPE,
          config: { mediaType: "application/vnd.docker.container.image.v1+json", size: configBody.length, digest: config },
          layers: layers.map((digest) => ({ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: LAYER_BYTES, digest })),
        }),
      );
      const manifest = putBlob(manifestBody);
      for (const d of [config, ...layers]) link(path.join(repoDir, "_layers", "sha256", d.slice(7), "link"), d);
      link(path.join(repoDir, "_manifests", "revisions", "sha256", manifest.slice(7), "link"), manifest);
      const tagDir = path.join(repoDir, "_manifests", "tags", tag);
      link(path.join(tagDir, "current", "link"), manifest, pushedAt + r * shape.tagsPerRepository + t);
      link(path.join(tagDir, "index", "sha256", manifest.slice(7), "link"), manifest);
      images.push({ repository, tag, manifest, config, layers });
    }
  }
  return { facts: { manifests: images.length, blobs, bytes }, images };
}

/** The registry serves a sample of the images: manifest by tag and its blobs, digests checked. */
async function verifyServed(base: string, images: Image[], count: number): Promise<number> {
  const step = Math.max(1, Math.floor(images.length / count));
  let checked = 0;
  for (let i = 0; i < images.length && checked < count; i += step, checked++) {
    const img = images[i];
    const m = await getBytes(`${base}/v2/${img.repository}/manifests/${img.tag}`, MANIFEST_TYPE);
    if (m.status !== 200 || `sha256:${sha256(m.body)}` !== img.manifest) throw new Error(`registry does not serve ${img.repository}:${img.tag} (HTTP ${m.status})`);
    for (const d of [img.config, img.layers[img.layers.length - 1]]) {
      const b = await getBytes(`${base}/v2/${img.repository}/blobs/${d}`);
      if (b.status !== 200 || `sha256:${sha256(b.body)}` !== d) throw new Error(`registry does not serve blob ${d} of ${img.repository} (HTTP ${b.status})`);
    }
  }
  return checked;
}


/** One cycle: fresh store, registry serves it, the maintenance job runs once, the result is checked. */
async function gcCycle(lab: Lab, shape: StoreShape, rep: number, checks: string[], log: (line: string) => void): Promise<{ run: GcRun; facts: StoreFacts }> {
  const tag = `${lab.id}-${shape.key}-${rep}`;
  const dataVolume = `rsbench-gc-${tag}-data`;
  const stateVolume = `rsbench-gc-${tag}-state`;
  const registryName = `rsbench-gc-${tag}-registry`;
  const maintenanceName = `rsbench-gc-${tag}-maintenance`;
  const configDir = path.join(lab.workDir, `gc-${tag}`);
  try {
    const mount = await createVolume(lab, dataVolume);
    await createVolume(lab, stateVolume);
    const written = Date.now();
    const { facts, images } = writeStore(path.join(mount, "docker", "registry", "v2"), shape);
    log(`gc ${shape.key}: wrote ${facts.blobs} blobs in ${facts.manifests} manifests in ${((Date.now() - written) / 1000).toFixed(1)} s`);
    // As with retention configured: deletes on, no blob-descriptor cache (distribution#4569).
    const registry = await startV3Registry(lab, { name: registryName, alias: registryName, volume: dataVolume, logLevel: "warn", deleteEnabled: true, blobDescriptorCache: false });
    const base = `http://${SERVER_NAME}:${registry.port}`;
    const served = await verifyServed(base, images, 20);
    log(`gc ${shape.key}: the registry serves the store (${served} images checked); running the maintenance job`);

    const rule: RetentionRule = { repositories: "^bench/", keepNewest: shape.keepNewest, keepTags: [] };
    fs.mkdirSync(configDir, { recursive: true });
    const settings = renderMaintenanceSettings({
      dataDirectory: Registry.DATA_PATH,
      stateDirectory: Maintenance.STATE_DIRECTORY,
      collectorConfigPath: Maintenance.COLLECTOR_CONFIG_PATH,
      schedule: "03:00",
      dryRun: false,
      writeSettleSeconds: WRITE_SETTLE_SECONDS,
      rules: [rule],
      registryMetricsUrl: `http://127.0.0.1:${Registry.DEFAULT_DEBUG_PORT}/metrics`,
      metricsIntervalSeconds: Maintenance.METRICS_INTERVAL_SECONDS,
    });
    for (const [file, content, mode] of [
      [Maintenance.SCRIPT_PATH, MAINTENANCE_SCRIPT, 0o755],
      [Maintenance.SETTINGS_PATH, settings, 0o644],
      [Maintenance.COLLECTOR_CONFIG_PATH, renderCollectorConfig(Registry.DATA_PATH), 0o644],
    ] as const) {
      fs.writeFileSync(path.join(configDir, path.basename(file)), content, { mode });
    }
    // The construct's container (in the registry's network namespace, for its metrics scrape);
    // its config volume is a read-only bind of the same files here.
    await lab.create(
      maintenanceName,
      {
        Image: REGISTRY_V3_IMAGE,
        Entrypoint: ["/bin/sh", Maintenance.SCRIPT_PATH, "schedule"],
        Env: [`MAINTENANCE_SETTINGS=${Maintenance.SETTINGS_PATH}`, "OTEL_TRACES_EXPORTER=none"],
        HostConfig: {
          CapDrop: ["ALL"],
          SecurityOpt: NO_NEW_PRIVILEGES,
          ReadonlyRootfs: true,
          Tmpfs: SCRATCH_TMPFS,
          Memory: 1024 * 1024 * 1024,
          Binds: [`${dataVolume}:${Registry.DATA_PATH}`, `${stateVolume}:${Maintenance.STATE_DIRECTORY}`, `${configDir}:${Maintenance.CONFIG_DIRECTORY}:ro`],
        },
      },
      [`container:${registry.id}`],
      [],
      [],
      undefined,
    );
    const started = Date.now();
    const { stdout } = await lab.engineHandle.docker(["exec", maintenanceName, "/bin/sh", Maintenance.SCRIPT_PATH, "run"], { timeoutMs: 240_000 });
    const execMs = Date.now() - started;
    const report = JSON.parse(stdout) as MaintenanceReport;

    const goneTags = shape.repositories * (shape.tagsPerRepository - shape.keepNewest);
    const goneBlobs = goneTags * (2 + shape.layersPerManifest);
    if (report.collectorExitCode !== 0) throw new Error(`${shape.key}: registry garbage-collect exited ${report.collectorExitCode}`);
    if (report.deleted.manifests.length !== goneTags || report.deleted.blobs.length !== goneBlobs) {
      throw new Error(`${shape.key}: the job deleted ${report.deleted.manifests.length} manifests and ${report.deleted.blobs.length} blobs; the rule deletes ${goneTags} and ${goneBlobs}`);
    }
    // Afterwards the newest tag of the first repository is still served, its oldest is gone.
    const first = images.filter((i) => i.repository === images[0].repository);
    await verifyServed(base, [first[first.length - 1]], 1);
    const oldest = await getBytes(`${base}/v2/${first[0].repository}/manifests/${first[0].tag}`, MANIFEST_TYPE);
    if (oldest.status !== 404) throw new Error(`${shape.key}: ${first[0].repository}:${first[0].tag} answers ${oldest.status} after the job deleted it`);
    if (rep === 0) {
      checks.push(
        `gc ${shape.key}: ${facts.blobs} blobs in ${facts.manifests} manifests (${shape.repositories} repositories) written in distribution's layout; a v3.1.1 registry served ${served} sampled images (manifest by tag + 2 blobs, digests checked); the maintenance job deleted ${goneTags} manifests and ${goneBlobs} blobs as its rule says, the kept newest tag is still served and a deleted one answers 404`,
      );
    }
    return {
      facts,
      run: {
        writeWindowMs: report.durationsMs.writeWindow,
        collectorMs: report.durationsMs.collector,
        retentionMs: report.durationsMs.retention,
        execMs,
        deletedManifests: report.deleted.manifests.length,
        deletedBlobs: report.deleted.blobs.length,
      },
    };
  } finally {
    await lab.remove(maintenanceName);
    await lab.remove(registryName);
    await removeVolume(lab, dataVolume);
    await removeVolume(lab, stateVolume);
    fs.rmSync(configDir, { recursive: true, force: true });
  }
}

export async function runGcBench(
  lab: Lab,
  opts: { budget: Budget; reserveMs: number; log: (line: string) => void; quick: boolean },
): Promise<GcBenchResult> {
  const checks: string[] = [];
  const shapes: GcShapeResult[] = [];
  for (const [shape, minClean, maxReps] of [
    [SUITE_SHAPE, 3, 4],
    [LARGE_SHAPE, 2, 3],
  ] as const) {
    const runs: GcRun[] = [];
    let store: StoreFacts | undefined;
    const reps = await repeat(
      {
        what: `gc ${shape.key}`,
        minClean: opts.quick ? 1 : minClean,
        maxReps: opts.quick ? 1 : maxReps,
        budget: opts.budget,
        reserveMs: opts.reserveMs,
        meter: lab.meter,
        quietWaitMs: 10_000,
        log: opts.log,
      },
      async (rep) => {
        const { run, facts } = await gcCycle(lab, shape, rep, checks, opts.log);
        store = facts;
        runs.push(run);
        opts.log(`gc ${shape.key} #${rep + 1}: write window ${run.writeWindowMs} ms (collector ${run.collectorMs} ms, retention ${run.retentionMs} ms)`);
      },
    );
    if (!store) throw new Error(`gc ${shape.key}: no run`);
    shapes.push({
      shape,
      store,
      runs,
      reps,
      writeWindowMedianMs: medianOf(runs.map((r) => r.writeWindowMs), reps.used),
      collectorMedianMs: medianOf(runs.map((r) => r.collectorMs), reps.used),
      retentionMedianMs: medianOf(runs.map((r) => r.retentionMs), reps.used),
    });
  }
  return { settleSeconds: WRITE_SETTLE_SECONDS, shapes, checks };
}
