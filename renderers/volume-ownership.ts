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
export function renderOwnershipScript(directories: { readonly stores: readonly string[]; readonly always: readonly string[] }, owner: string): string {
  if (!/^\d+:\d+$/.test(owner)) throw new Error(`owner must be numeric uid:gid, got ${owner}`);
  const all = [...directories.stores, ...directories.always];
  const bad = all.filter((d) => !/^\/[A-Za-z0-9._/-]+$/.test(d));
  if (bad.length > 0) throw new Error(`directories must be plain absolute paths: ${bad.join(", ")}`);
  const lines = ["set -eu", `owner=${owner}`];
  if (directories.stores.length > 0) {
    lines.push(
      `for dir in ${directories.stores.join(" ")}; do`,
      '  was=$(stat -c %u:%g "$dir")',
      '  if [ "$was" = "$owner" ]; then echo "$dir: already owned by $owner"; continue; fi',
      '  echo "$dir: owned by $was, changing everything in it to $owner"',
      '  for entry in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do',
      '    if [ -e "$entry" ] || [ -L "$entry" ]; then chown -R -h "$owner" "$entry"; fi',
      "  done",
      '  chown "$owner" "$dir"',
      "done",
    );
  }
  if (directories.always.length > 0) {
    lines.push(`for dir in ${directories.always.join(" ")}; do`, '  chown -R -h "$owner" "$dir"', '  echo "$dir: every file changed to $owner"', "done");
  }
  return lines.join("\n");
}
