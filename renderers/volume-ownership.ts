/**
 * The unprivileged user:group every container of the registry image runs as (the registry, the
 * verifier, each mirror, the maintenance job). The official image (Alpine) has no such user; a
 * numeric id needs none. 65532 is the "nonroot" id of distroless images, outside the ranges
 * hosts give to people (1000+) and system services (<1000), so it owns nothing else on the host.
 */
export const REGISTRY_UID = 65532;
export const REGISTRY_GID = 65532;
export const REGISTRY_USER = `${REGISTRY_UID}:${REGISTRY_GID}`;

/**
 * The script a one-shot container runs (as root, with CAP_CHOWN) before a registry-image
 * container starts as an unprivileged user: it gives that user the directories it writes.
 *
 * Volumes from earlier deploys (the registry used to run as root) and volumes another tool
 * wrote are root-owned; that is the migration. A directory whose root already has the owner is
 * left alone, so a store of any size costs one `stat` per deploy. The root's owner is set last:
 * a run interrupted half-way leaves the root as it was and the next run does the whole tree
 * again. POSIX sh with only `stat -c` and `chown -R -h`, which busybox (official images) and
 * coreutils (Debian) both have; `-h` changes a symbolic link itself, never what it points to.
 */
export interface OwnedDirectories {
  /** Changed only while the top folder does not have the owner; the top folder last. */
  readonly stores: ReadonlyArray<{
    readonly path: string;
    /**
     * A folder created in the store when it is migrated, so that it is never empty: the engine
     * copies an image's folder into an empty named volume, its owner included, each time a
     * container of that image is created with the volume mounted there (the registry image
     * declares VOLUME /var/lib/registry, owned by root), which would undo the change.
     * @default - none
     */
    readonly keepFilledWith?: string;
  }>;
  /** Small folders changed in full at every run. */
  readonly always: readonly string[];
}

export function renderOwnershipScript(directories: OwnedDirectories, owner: string): string {
  if (!/^\d+:\d+$/.test(owner)) throw new Error(`owner must be numeric uid:gid, got ${owner}`);
  const names = [...directories.stores.map((d) => d.path), ...directories.always];
  const bad = names.filter((d) => !/^\/[A-Za-z0-9._/-]+$/.test(d));
  const badFill = directories.stores.map((d) => d.keepFilledWith ?? "").filter((n) => n !== "" && !/^[A-Za-z0-9._-]+$/.test(n));
  if (bad.length > 0) throw new Error(`directories must be plain absolute paths: ${bad.join(", ")}`);
  if (badFill.length > 0) throw new Error(`keepFilledWith must be a plain folder name: ${badFill.join(", ")}`);
  const lines = ["set -eu", `owner=${owner}`];
  if (directories.stores.length > 0) {
    lines.push(
      "own_store() {",
      '  dir=$1; fill=$2',
      '  was=$(stat -c %u:%g "$dir")',
      '  if [ "$was" = "$owner" ]; then echo "$dir: already owned by $owner"; return 0; fi',
      '  echo "$dir: owned by $was, changing everything in it to $owner"',
      '  if [ -n "$fill" ] && [ ! -e "$dir/$fill" ] && [ ! -L "$dir/$fill" ]; then mkdir "$dir/$fill"; fi',
      '  for entry in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do',
      '    if [ -e "$entry" ] || [ -L "$entry" ]; then chown -R -h "$owner" "$entry"; fi',
      "  done",
      '  chown "$owner" "$dir"',
      "}",
      ...directories.stores.map((d) => `own_store ${d.path} "${d.keepFilledWith ?? ""}"`),
    );
  }
  if (directories.always.length > 0) {
    lines.push(`for dir in ${directories.always.join(" ")}; do`, '  chown -R -h "$owner" "$dir"', '  echo "$dir: every file changed to $owner"', "done");
  }
  return lines.join("\n");
}
