import * as fs from "fs";
import * as path from "path";
import * as crypto from "crypto";
import { curl, DockerClient, writeLayeredContext } from "./clients";
import { Engine } from "./engine";
import { assert, assertEqual, Check, say } from "./harness";
import { REGISTRY_V3_IMAGE } from "./images";
import { run } from "./proc";

/**
 * Check 46 (issue 20, item 4), in the `mirrors` deployment: a mirror bounded by `maxSizeMb` is
 * filled over its bound by three images pulled one after the other; its size-bound container
 * deletes the least recently used blobs (the first image's) until the volume is under the bound,
 * while a loop keeps pulling through the mirror without a failure; the evicted image pulls again,
 * fetched anew from the upstream.
 */

const MIB = 1024 * 1024;
/** The bound under test: the schema's minimum. */
export const BOUNDED_MIRROR_MAX_SIZE_MB = 8;
/** Three images of one 3 MiB random layer each: about 9.2 MiB together, over the bound. */
const IMAGES = ["e2e/bound-a", "e2e/bound-b", "e2e/bound-c"];
const LAYER_BYTES = 3 * MIB;
/** The job checks every 30 s; on this loaded machine allow three rounds. */
const SHRINK_TIMEOUT_MS = 100_000;
const LOOP_INTERVAL_MS = 1_500;

export interface BoundedMirror {
  readonly engine: Engine;
  /** The mirror as clients reach it, host:port. */
  readonly endpoint: string;
  readonly volumeName: string;
  readonly sizeBoundContainer: string;
  readonly certDir: string;
  readonly scratch: string;
  /** Successful blob downloads per digest the upstream served for one repository. */
  readonly upstreamFetches: (repository: string) => Promise<Record<string, number>>;
}

/** Pushes the three images to the upstream (`upstreamEndpoint`, docker already logged in) and removes them locally. */
export async function seedBoundedImages(docker: DockerClient, upstreamEndpoint: string, scratch: string): Promise<void> {
  for (const repository of IMAGES) {
    const dir = fs.mkdtempSync(path.join(scratch, "bound-"));
    writeLayeredContext(dir, "scratch", [{ files: 1, bytesEach: LAYER_BYTES }]);
    const local = `rse2e-local/${path.basename(repository)}:1`;
    await docker.build(dir, local);
    await docker.tag(local, `${upstreamEndpoint}/${repository}:1`);
    await docker.push(`${upstreamEndpoint}/${repository}:1`);
    await docker.rmi(`${upstreamEndpoint}/${repository}:1`, local);
  }
}

interface VolumeState {
  usedBytes: number;
  /** Digests of the blobs with data in the volume. */
  blobs: string[];
}

async function volumeState(m: BoundedMirror): Promise<VolumeState> {
  const { stdout } = await m.engine.docker(
    ["run", "--rm", "--network", "none", "--entrypoint", "sh", "-v", `${m.volumeName}:/data:ro`, REGISTRY_V3_IMAGE, "-c",
      "du -sk /data; test ! -d /data/docker/registry/v2/blobs || find /data/docker/registry/v2/blobs -name data"],
    { timeoutMs: 60_000 },
  );
  const [du, ...files] = stdout.trim().split("\n");
  return {
    usedBytes: Number(du.split(/\s/)[0]) * 1024,
    blobs: files.map((f) => `sha256:${f.split("/").slice(-2)[0]}`),
  };
}

function skopeo(m: BoundedMirror, args: string[]): Promise<unknown> {
  const policy = path.join(m.scratch, "bound-policy.json");
  if (!fs.existsSync(policy)) fs.writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  return run("skopeo", ["--policy", policy, ...args], { timeoutMs: 120_000 });
}

async function copyImage(m: BoundedMirror, repository: string, into: string): Promise<string> {
  const target = path.join(m.scratch, into);
  fs.rmSync(target, { recursive: true, force: true });
  await skopeo(m, ["copy", "--src-cert-dir", m.certDir, `docker://${m.endpoint}/${repository}:1`, `dir:${target}`]);
  const manifest = JSON.parse(fs.readFileSync(path.join(target, "manifest.json"), "utf8")) as { config: { digest: string }; layers: Array<{ digest: string }> };
  return manifest.layers[0].digest;
}

export async function sizeBoundCheck(check: Check, m: BoundedMirror): Promise<void> {
  const bound = BOUNDED_MIRROR_MAX_SIZE_MB * MIB;
  const layers: Record<string, string> = {};
  let filled: VolumeState | undefined;
  await check.phase(`fill the mirror bounded to ${BOUNDED_MIRROR_MAX_SIZE_MB} MiB with three images of a 3 MiB layer each`, async () => {
    for (const repository of IMAGES) {
      layers[repository] = await copyImage(m, repository, `bound-${path.basename(repository)}-1`);
      // Distinct last-use times: the job orders by seconds.
      await new Promise((r) => setTimeout(r, 2_000));
    }
    filled = await volumeState(m);
    check.note(`skopeo copy of ${IMAGES.join(", ")} through ${m.endpoint}: volume ${m.volumeName} then ${(filled.usedBytes / MIB).toFixed(2)} MiB (du), ${filled.blobs.length} blobs`);
  });

  await check.phase("the volume shrinks under the bound, least recently used first, while pulls keep working", async () => {
    assert(filled !== undefined, "no fill");
    const started = Date.now();
    let pulls = 0;
    const failures: string[] = [];
    let state = filled!;
    let shrunkAfterMs: number | undefined;
    // Pull the newest image in a loop (manifest and blobs through the mirror) until the job has run, and a few times after.
    let after = 0;
    while (Date.now() - started < SHRINK_TIMEOUT_MS && after < 3) {
      pulls++;
      await copyImage(m, IMAGES[2], "bound-loop").catch((err: Error) => failures.push(err.message.split("\n").slice(-1)[0]));
      state = await volumeState(m);
      if (shrunkAfterMs === undefined && !state.blobs.includes(layers[IMAGES[0]])) shrunkAfterMs = Date.now() - started;
      if (shrunkAfterMs !== undefined) after++;
      await new Promise((r) => setTimeout(r, LOOP_INTERVAL_MS));
    }
    assert(shrunkAfterMs !== undefined, `the first image's layer is still in the volume after ${SHRINK_TIMEOUT_MS / 1000} s (${(state.usedBytes / MIB).toFixed(2)} MiB used)`);
    assertEqual(failures, [], `failed pulls of ${IMAGES[2]} through the bounded mirror`);
    assert(state.usedBytes <= bound, `volume uses ${state.usedBytes} bytes, over the bound of ${bound}`);
    assert(state.blobs.includes(layers[IMAGES[1]]) && state.blobs.includes(layers[IMAGES[2]]), "a newer image's layer was deleted before the oldest");
    const logs = await m.engine.docker(["logs", m.sizeBoundContainer], { timeoutMs: 30_000 });
    const lines = `${logs.stdout}\n${logs.stderr}`.split("\n").filter((l) => /deleted the \d+ least recently used blobs/.test(l));
    assert(lines.length > 0, `no deletion in docker logs ${m.sizeBoundContainer}`);
    check.note(`first image's layer gone ${(shrunkAfterMs! / 1000).toFixed(0)} s after the fill was first measured (the job checks every 30 s, it may have run during the fill); volume ${(filled!.usedBytes / MIB).toFixed(2)} MiB at that measure, ${(state.usedBytes / MIB).toFixed(2)} MiB at the end (bound ${BOUNDED_MIRROR_MAX_SIZE_MB} MiB, target 90%); the two newer images' layers kept`);
    check.note(`${pulls} pulls of ${IMAGES[2]} meanwhile, ${failures.length} failed; job: ${lines[0].trim()}`);
  });

  await check.phase("the evicted image pulls again; the mirror fetches its layer anew from the upstream", async () => {
    // Through the proxy, a plain GET of the layer may come from the proxy's blob cache (blobCacheMb),
    // which the bound does not touch: the pull works either way.
    const layer = await copyImage(m, IMAGES[0], "bound-a-2");
    assertEqual(layer, layers[IMAGES[0]], `layer of ${IMAGES[0]} pulled again`);
    // A Range request bypasses that cache and reaches the mirror, which no longer has the data.
    const saved = path.join(m.scratch, "bound-a-layer");
    const ranged = await curl({
      url: `https://${m.endpoint}/v2/${IMAGES[0]}/blobs/${layer}`,
      cacert: path.join(m.certDir, "ca.crt"),
      headers: ["Range: bytes=0-"],
      scratchDir: m.scratch,
      saveBodyTo: saved,
    });
    assert(ranged.status === 200 || ranged.status === 206, `GET (Range) of the evicted layer answered ${ranged.status}`);
    const digest = `sha256:${crypto.createHash("sha256").update(fs.readFileSync(saved)).digest("hex")}`;
    assertEqual(digest, layer, "digest of the bytes the mirror served for the evicted layer");
    const fetches = await m.upstreamFetches(IMAGES[0]);
    assertEqual(fetches[layer], 2, `upstream downloads of ${IMAGES[0]}'s layer (first pull, and again after the eviction)`);
    assert((await volumeState(m)).blobs.includes(layer), "the evicted layer is not back in the mirror's volume");
    check.note(`${IMAGES[0]}:1 pulled again (skopeo, same layer); a Range GET of its layer reached the mirror: HTTP ${ranged.status}, bytes with the layer's digest, downloaded from the upstream a second time and stored again`);
  });
  say("mirrors", "46: size bound checked");
}
