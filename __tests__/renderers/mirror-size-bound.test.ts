import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { MIRROR_SIZE_BOUND_SCRIPT, mirrorSizeBoundEnvironment } from "../../renderers/mirror-size-bound";
import { tempDirectory } from "../fixtures/test-stack";

/**
 * The mirror size-bound job run by the machine's /bin/sh on a distribution store written on disk
 * (the e2e `mirrors` deployment runs it in the registry image beside a real mirror).
 */

const KIB = 1024;

interface Blob {
  digest: string;
  folder: string;
}

/** A blob of `bytes` random bytes whose last use (atime, mtime) is `lastUse` seconds after the epoch. */
function writeBlob(root: string, bytes: number, lastUse: number): Blob {
  const data = crypto.randomBytes(bytes);
  const hex = crypto.createHash("sha256").update(data).digest("hex");
  const folder = path.join(root, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex);
  fs.mkdirSync(folder, { recursive: true });
  fs.writeFileSync(path.join(folder, "data"), data);
  fs.utimesSync(path.join(folder, "data"), lastUse, lastUse);
  return { digest: `sha256:${hex}`, folder };
}

/** A repository link to the blob, as the mirror keeps it (the job leaves links alone). */
function writeLink(root: string, repository: string, blob: Blob): string {
  const link = path.join(root, "docker/registry/v2/repositories", repository, "_layers/sha256", blob.digest.slice(7), "link");
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.writeFileSync(link, blob.digest);
  return link;
}

function usedBytes(root: string): number {
  const du = spawnSync("du", ["-sk", root], { encoding: "utf8" });
  return Number(du.stdout.split(/\s/)[0]) * KIB;
}

function runOnce(root: string, maxSizeMb: number): { status: number | null; stdout: string; stderr: string } {
  const env = Object.fromEntries(mirrorSizeBoundEnvironment({ dataDirectory: root, maxSizeMb, intervalSeconds: 30 }).map((e) => e.split(/=(.*)/s).slice(0, 2)));
  return spawnSync("/bin/sh", ["-c", MIRROR_SIZE_BOUND_SCRIPT, "mirror-size-bound", "once"], { env: { PATH: process.env.PATH, ...env }, encoding: "utf8", timeout: 60_000 });
}

describe("mirror-size-bound.sh", () => {
  test("deletes the least recently used blobs until the volume is at 90% of the bound, and nothing else", () => {
    // GIVEN 12 blobs of 1 MiB (about 12 MiB) used at increasing times, the newest last, under a bound of 8 MiB
    const root = tempDirectory();
    const blobs = Array.from({ length: 12 }, (_, i) => writeBlob(root, 1024 * KIB, 1_700_000_000 + i * 60));
    const links = blobs.map((b) => writeLink(root, "library/app", b));
    const before = usedBytes(root);
    expect(before).toBeGreaterThan(8 * 1024 * KIB);
    // WHEN the job checks once
    const result = runOnce(root, 8);
    // THEN it reports what it did, deleted the oldest blobs only, and the volume is at or under 90% of the bound
    expect(result.status).toBe(0);
    const [reportedBefore, deleted, released, after] = result.stdout.trim().split(" ").map(Number);
    const kept = blobs.filter((b) => fs.existsSync(b.folder));
    expect(deleted).toBe(blobs.length - kept.length);
    expect(kept).toEqual(blobs.slice(blobs.length - kept.length));
    expect(after).toBe(usedBytes(root));
    expect(after).toBeLessThanOrEqual(0.9 * 8 * 1024 * KIB);
    // One more deleted blob would have been one too many: the newest deleted one was needed.
    expect(after + 1024 * KIB).toBeGreaterThan(0.9 * 8 * 1024 * KIB - 64 * KIB);
    expect(reportedBefore).toBe(before);
    expect(released).toBe(before - after);
    expect(result.stderr).toContain(`deleted the ${deleted} least recently used blobs`);
    for (const link of links) expect(fs.existsSync(link)).toBe(true);
  });

  test("takes the later of atime and mtime as the last use: a blob read recently stays", () => {
    // GIVEN three 3 MiB blobs stored long ago; the first was read (atime) just now
    const root = tempDirectory();
    const [read, old1, old2] = [0, 1, 2].map((i) => writeBlob(root, 3 * 1024 * KIB, 1_600_000_000 + i));
    const now = Math.floor(Date.now() / 1000);
    fs.utimesSync(path.join(read.folder, "data"), now, 1_600_000_000);
    // WHEN bounded to 8 MiB (target 7.2 MiB: one of the three must go, then at most two remain)
    const result = runOnce(root, 8);
    // THEN the oldest unread blob went first and the recently read one stayed
    expect(result.status).toBe(0);
    expect([read, old1, old2].map((b) => fs.existsSync(b.folder))).toEqual([true, false, true]);
  });

  test("leaves a volume under its bound alone, and an empty one too", () => {
    const root = tempDirectory();
    const blobs = [writeBlob(root, 512 * KIB, 1_700_000_000), writeBlob(root, 512 * KIB, 1_700_000_100)];
    const result = runOnce(root, 8);
    expect(result.status).toBe(0);
    expect(result.stdout.trim().split(" ").slice(1, 3)).toEqual(["0", "0"]);
    expect(result.stderr).toBe("");
    for (const b of blobs) expect(fs.existsSync(b.folder)).toBe(true);
    const empty = tempDirectory();
    expect(runOnce(empty, 8)).toMatchObject({ status: 0, stderr: "" });
  });

  test("says so when the volume is over the bound without any blob to delete", () => {
    const root = tempDirectory();
    const upload = path.join(root, "docker/registry/v2/repositories/library/app/_uploads/u1/data");
    fs.mkdirSync(path.dirname(upload), { recursive: true });
    fs.writeFileSync(upload, crypto.randomBytes(9 * 1024 * KIB));
    const result = runOnce(root, 8);
    expect(result.status).toBe(0);
    expect(result.stderr).toMatch(/over the bound of 8388608, but no blob to delete/);
    expect(fs.existsSync(upload)).toBe(true);
  });
});
