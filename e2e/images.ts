import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Engine } from "./engine";
import { run } from "./proc";

/**
 * Stand-ins for the official registry and nginx images, built from Debian bookworm packages
 * because no image can be pulled here. One debootstrap rootfs (cached as a tarball) is
 * imported twice with different image configs.
 *
 * What they share with the official images (so the stack needs no e2e special cases):
 * - registry: ENTRYPOINT /entrypoint.sh with the official script (a *.yml/*.yaml argument
 *   becomes `registry serve <file>`), CMD /etc/docker/registry/config.yml (the official 2.x
 *   default config), EXPOSE 5000, VOLUME /var/lib/registry, runs as root, `registry` in PATH.
 * - nginx: CMD nginx -g 'daemon off;', EXPOSE 80, user `nginx` (uid/gid 101),
 *   logs in /var/log/nginx linked to stdout/stderr.
 * - both: busybox `wget` at /usr/bin/wget (as in the alpine-based official images), so a
 *   healthcheck like ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:5000/"] works in both.
 * Differences: distribution 2.8.2 (Debian) and nginx 1.22.1 (Debian, temp paths under
 * /var/lib/nginx instead of /var/cache/nginx); no STOPSIGNAL SIGQUIT in the nginx image
 * (`docker import` refuses it: docker stop sends SIGTERM, a fast shutdown, unless the
 * container sets stop_signal); no curl; both images contain both programs.
 */

export const REGISTRY_IMAGE = "registry-stack-e2e/registry:2.8.2";
/** distribution v3, the version the stack's default image (registry:3.1.1) pins, built from the Go module proxy. */
export const DISTRIBUTION_V3_VERSION = "v3.1.1";
export const REGISTRY_V3_IMAGE = `registry-stack-e2e/registry:${DISTRIBUTION_V3_VERSION.slice(1)}`;
const DISTRIBUTION_V3_PACKAGE = "github.com/distribution/distribution/v3/cmd/registry";
export const NGINX_IMAGE = "registry-stack-e2e/nginx:bookworm";
export const CACHE_DIR = "/var/cache/registry-stack-e2e";
export const DEBIAN_SUITE = "bookworm";
export const DEBIAN_MIRROR = "http://deb.debian.org/debian";
// libnginx-mod-http-js: njs for the proxy's access decisions (the official nginx image ships it).
export const ROOTFS_PACKAGES: readonly string[] = ["busybox", "docker-registry", "libnginx-mod-http-js", "nginx-light"];

/** Bump when the rootfs customisation below changes, so cached tarballs are rebuilt. */
const RECIPE_VERSION = 1;

export interface E2eImages {
  /** Local image IDs (sha256:…); the Debian 2.8.2 registry only when asked for. */
  registry?: string;
  registryV3: string;
  nginx: string;
}

type Log = (line: string) => void;

// The official image's docker-entrypoint.sh (distribution/distribution-library-image).
const ENTRYPOINT_SH = `#!/bin/sh

set -e

case "$1" in
    *.yaml|*.yml) set -- registry serve "$@" ;;
    serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac

exec "$@"
`;

// The official registry:2 image's /etc/docker/registry/config.yml.
const REGISTRY_DEFAULT_CONFIG = `version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`;

const PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const REGISTRY_CHANGES = [
  `ENV ${PATH_ENV}`,
  'ENTRYPOINT ["/entrypoint.sh"]',
  'CMD ["/etc/docker/registry/config.yml"]',
  "EXPOSE 5000",
  'VOLUME ["/var/lib/registry"]',
];

const NGINX_CHANGES = [`ENV ${PATH_ENV}`, 'CMD ["nginx", "-g", "daemon off;"]', "EXPOSE 80"];

function cacheKey(): string {
  const recipe = JSON.stringify({
    suite: DEBIAN_SUITE,
    variant: "minbase",
    packages: [...ROOTFS_PACKAGES].sort(),
    recipe: RECIPE_VERSION,
    extras: [ENTRYPOINT_SH, REGISTRY_DEFAULT_CONFIG],
  });
  return crypto.createHash("sha256").update(recipe).digest("hex").slice(0, 16);
}

/** Path of the cached rootfs tarball; builds it (debootstrap, ~1-1.5 min) when missing. */
export async function ensureRootfsTarball(log: Log = () => undefined): Promise<string> {
  const tarball = path.join(CACHE_DIR, `rootfs-${DEBIAN_SUITE}-${cacheKey()}.tar`);
  if (fs.existsSync(tarball)) {
    log(`reusing ${tarball}`);
    return tarball;
  }
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  // Build in a temp dir and rename at the end: an interrupted build never looks like a cache hit.
  const work = fs.mkdtempSync(path.join(CACHE_DIR, "build-"));
  const rootfs = path.join(work, "rootfs");
  const partial = path.join(work, "rootfs.tar");
  try {
    const started = Date.now();
    log(`debootstrap ${DEBIAN_SUITE} (${ROOTFS_PACKAGES.join(", ")})…`);
    await run(
      "debootstrap",
      ["--variant=minbase", `--include=${ROOTFS_PACKAGES.join(",")}`, DEBIAN_SUITE, rootfs, DEBIAN_MIRROR],
      { timeoutMs: 15 * 60_000 },
    );
    await customiseRootfs(rootfs);
    await run("tar", ["--numeric-owner", "-C", rootfs, "-cf", partial, "."], { timeoutMs: 5 * 60_000 });
    fs.renameSync(partial, tarball);
    log(`built ${tarball} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return tarball;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function customiseRootfs(root: string): Promise<void> {
  const p = (rel: string) => path.join(root, rel);
  for (const dir of ["var/cache/apt/archives", "var/lib/apt/lists"]) {
    for (const entry of fs.readdirSync(p(dir))) {
      if (entry !== "partial" && entry !== "lock") fs.rmSync(path.join(p(dir), entry), { recursive: true, force: true });
    }
  }

  fs.writeFileSync(p("entrypoint.sh"), ENTRYPOINT_SH, { mode: 0o755 });
  fs.symlinkSync("docker-registry", p("usr/bin/registry"));
  fs.mkdirSync(p("etc/docker/registry"), { recursive: true });
  fs.writeFileSync(p("etc/docker/registry/config.yml"), REGISTRY_DEFAULT_CONFIG, { mode: 0o644 });
  fs.mkdirSync(p("var/lib/registry"), { recursive: true });
  fs.symlinkSync("/bin/busybox", p("usr/bin/wget"));

  // The official nginx images run workers as nginx (uid/gid 101); Debian's docker-registry
  // package took gid 101, so move that group out of the way first.
  await run("chroot", [root, "groupmod", "-g", "102", "docker-registry"], { timeoutMs: 30_000 });
  await run("chroot", [root, "chgrp", "-R", "docker-registry", "/var/lib/docker-registry"], { timeoutMs: 30_000 });
  await run("chroot", [root, "groupadd", "-r", "-g", "101", "nginx"], { timeoutMs: 30_000 });
  await run("chroot", [root, "useradd", "-r", "-u", "101", "-g", "nginx", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", "nginx"], {
    timeoutMs: 30_000,
  });
  for (const [file, target] of [
    ["var/log/nginx/access.log", "/dev/stdout"],
    ["var/log/nginx/error.log", "/dev/stderr"],
  ]) {
    fs.rmSync(p(file), { force: true });
    fs.symlinkSync(target, p(file));
  }
}

/**
 * distribution's `registry` binary at DISTRIBUTION_V3_VERSION, built with `go install` from the
 * Go module proxy (~2 min cold) and cached beside the rootfs.
 */
export async function ensureDistributionV3Binary(log: Log = () => undefined): Promise<string> {
  const dir = path.join(CACHE_DIR, `distribution-${DISTRIBUTION_V3_VERSION}`);
  const binary = path.join(dir, "registry");
  if (fs.existsSync(binary)) {
    log(`reusing ${binary}`);
    return binary;
  }
  const go = ["/usr/local/go/bin/go", "/usr/bin/go"].find((candidate) => fs.existsSync(candidate));
  if (!go) throw new Error("Go is needed to build distribution v3 for the e2e images; install Go 1.26 (/usr/local/go) or run on a machine that has it");
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const work = fs.mkdtempSync(path.join(CACHE_DIR, "go-"));
  try {
    const started = Date.now();
    log(`go install ${DISTRIBUTION_V3_PACKAGE}@${DISTRIBUTION_V3_VERSION}…`);
    await run(go, ["install", `${DISTRIBUTION_V3_PACKAGE}@${DISTRIBUTION_V3_VERSION}`], {
      cwd: work,
      env: { ...process.env, GOBIN: work, CGO_ENABLED: "0", GOFLAGS: "-buildvcs=false" },
      timeoutMs: 15 * 60_000,
    });
    fs.mkdirSync(dir, { recursive: true });
    fs.renameSync(path.join(work, "registry"), binary);
    log(`built ${binary} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return binary;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The rootfs tarball plus /usr/local/bin/registry (v3), which comes first in PATH. */
async function ensureRegistryV3Tarball(baseTarball: string, binary: string): Promise<string> {
  const tarball = baseTarball.replace(/\.tar$/, `-distribution-${DISTRIBUTION_V3_VERSION}.tar`);
  if (fs.existsSync(tarball)) return tarball;
  const work = fs.mkdtempSync(path.join(CACHE_DIR, "v3-"));
  try {
    fs.mkdirSync(path.join(work, "stage/usr/local/bin"), { recursive: true });
    fs.copyFileSync(binary, path.join(work, "stage/usr/local/bin/registry"));
    fs.chmodSync(path.join(work, "stage/usr/local/bin/registry"), 0o755);
    const partial = path.join(work, "rootfs.tar");
    fs.copyFileSync(baseTarball, partial);
    await run("tar", ["--numeric-owner", "--owner=0", "--group=0", "-C", path.join(work, "stage"), "-rf", partial, "./usr/local/bin/registry"], {
      timeoutMs: 5 * 60_000,
    });
    fs.renameSync(partial, tarball);
    return tarball;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Imports the images into the engine from the cached rootfs tarballs (~3-4 s each). */
export async function importImages(engine: Engine, tarball: string, log: Log = () => undefined, v3Tarball?: string, debianRegistry = true): Promise<E2eImages> {
  const importOne = async (file: string, name: string, changes: readonly string[]): Promise<string> => {
    const started = Date.now();
    const args = ["import", ...changes.flatMap((c) => ["--change", c]), file, name];
    const { stdout } = await engine.docker(args, { timeoutMs: 5 * 60_000 });
    log(`imported ${name} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return stdout.trim();
  };
  const registry = debianRegistry || !v3Tarball ? await importOne(tarball, REGISTRY_IMAGE, REGISTRY_CHANGES) : undefined;
  return {
    registry,
    registryV3: v3Tarball ? await importOne(v3Tarball, REGISTRY_V3_IMAGE, REGISTRY_CHANGES) : registry!,
    nginx: await importOne(tarball, NGINX_IMAGE, NGINX_CHANGES),
  };
}

/**
 * ensureRootfsTarball + the distribution v3 binary + importImages; `debianRegistry: false` leaves
 * out the Debian 2.8.2 registry image (the bench deploys only what the stack pins).
 */
export async function prepareImages(engine: Engine, log: Log = () => undefined, options: { debianRegistry?: boolean } = {}): Promise<E2eImages> {
  const [tarball, binary] = await Promise.all([ensureRootfsTarball(log), ensureDistributionV3Binary(log)]);
  return importImages(engine, tarball, log, await ensureRegistryV3Tarball(tarball, binary), options.debianRegistry ?? true);
}

/** Gives a local image another name (e.g. the stack's configured "registry:2"), so no pull is needed. */
export async function tagImage(engine: Engine, source: string, target: string): Promise<void> {
  await engine.docker(["tag", source, target], { timeoutMs: 30_000 });
}
