import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderOwnershipScript } from "../../renderers/volume-ownership";

/**
 * The ownership script run by /bin/sh with the host's tools (GNU coreutils, as in the e2e
 * suite's Debian stand-in) and by busybox (as in the official Alpine registry image), on real
 * files. Changing files to another owner needs root, as the script itself does in its container.
 */

const OWNER = "65532:65532";
const TOOLSETS = [
  { name: "/bin/sh and coreutils", busybox: false },
  { name: "busybox sh and applets, as in the official registry image", busybox: true },
];

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error("these tests chown files to another user, which needs root (the script runs as root in its container)");
}

function setUp(busybox: boolean) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "volume-ownership-"));
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  let toolsPath = process.env.PATH ?? "/usr/bin:/bin";
  if (busybox) {
    const applets = path.join(dir, "busybox");
    fs.mkdirSync(applets);
    const installed = spawnSync("busybox", ["--install", "-s", applets], { encoding: "utf8" });
    if (installed.error || installed.status !== 0) throw new Error("busybox --install failed: install busybox (Debian: apt-get install busybox)");
    toolsPath = applets;
  }
  const realChown = busybox ? `${toolsPath}/chown` : "chown";
  // A chown that fails on paths containing "poison", to interrupt a run half-way.
  fs.writeFileSync(path.join(bin, "chown"), `#!/bin/sh\ncase "$*" in *poison*) echo "chown: refused $*" >&2; exit 1 ;; esac\nPATH=${toolsPath}\nexec ${realChown} "$@"\n`, { mode: 0o755 });
  const run = (stores: string[], always: string[] = [], keepFilledWith?: string) =>
    spawnSync(busybox ? path.join(toolsPath, "sh") : "/bin/sh", ["-c", renderOwnershipScript({ stores: stores.map((p) => ({ path: p, keepFilledWith })), always }, OWNER)], {
      env: { PATH: `${bin}:${toolsPath}` },
      encoding: "utf8",
      timeout: 30_000,
    });
  return { dir, run };
}

const ownerOf = (p: string) => {
  const s = fs.lstatSync(p);
  return `${s.uid}:${s.gid}`;
};

/** A store as an earlier, root registry left it: nested files, a dot file, a link pointing out of it. */
function rootOwnedStore(parent: string, name: string, outside: string): string {
  const store = path.join(parent, name);
  fs.mkdirSync(path.join(store, "docker/registry/v2/blobs/sha256/ab"), { recursive: true });
  fs.writeFileSync(path.join(store, "docker/registry/v2/blobs/sha256/ab/data"), "blob");
  fs.writeFileSync(path.join(store, ".hidden"), "dot");
  fs.symlinkSync(outside, path.join(store, "link-out"));
  return store;
}

describe.each(TOOLSETS)("renderOwnershipScript with $name", ({ busybox }) => {
  test("gives every file of a root-owned directory to the owner, the directory last, without following links", () => {
    requireRoot();
    const { dir, run } = setUp(busybox);
    const outside = path.join(dir, "outside");
    fs.writeFileSync(outside, "not the store's");
    const store = rootOwnedStore(dir, "data", outside);
    const result = run([store]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`${store}: owned by 0:0, changing everything in it to ${OWNER}\n`);
    for (const p of ["", "docker", "docker/registry/v2/blobs/sha256/ab", "docker/registry/v2/blobs/sha256/ab/data", ".hidden", "link-out"]) {
      expect([p, ownerOf(path.join(store, p))]).toEqual([p, OWNER]);
    }
    expect(ownerOf(outside)).toBe("0:0");
  });

  test("leaves a directory whose root already has the owner alone, however much is in it", () => {
    requireRoot();
    const { dir, run } = setUp(busybox);
    const store = rootOwnedStore(dir, "data", "/nonexistent");
    fs.lchownSync(store, 65532, 65532);
    const result = run([store]);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`${store}: already owned by ${OWNER}\n`);
    expect(ownerOf(path.join(store, ".hidden"))).toBe("0:0");
  });

  test("fails without taking the root when a chown fails half-way, so the next run does it all again", () => {
    requireRoot();
    const { dir, run } = setUp(busybox);
    const store = rootOwnedStore(dir, "data", "/nonexistent");
    fs.writeFileSync(path.join(store, "poison"), "");
    const second = rootOwnedStore(dir, "second", "/nonexistent");
    const result = run([store, second]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("chown: refused");
    expect(ownerOf(store)).toBe("0:0");
    expect(ownerOf(second)).toBe("0:0");
    fs.rmSync(path.join(store, "poison"));
    const retry = run([store, second]);
    expect(retry.status).toBe(0);
    expect([ownerOf(store), ownerOf(path.join(store, "docker/registry")), ownerOf(second)]).toEqual([OWNER, OWNER, OWNER]);
  });

  test("changes an always-directory in full every time, also files root wrote again behind its owned top folder", () => {
    requireRoot();
    const { dir, run } = setUp(busybox);
    const store = rootOwnedStore(dir, "data", "/nonexistent");
    const config = path.join(dir, "config");
    fs.mkdirSync(path.join(config, "tls"), { recursive: true });
    fs.writeFileSync(path.join(config, "config.yml"), "secret", { mode: 0o600 });
    expect(run([store], [config]).stdout).toBe(`${store}: owned by 0:0, changing everything in it to ${OWNER}\n${config}: every file changed to ${OWNER}\n`);
    // A seeder re-created with a new image uploads again as root into the same, owned volume.
    fs.rmSync(path.join(config, "config.yml"));
    fs.writeFileSync(path.join(config, "tls", "server.key"), "key", { mode: 0o600 });
    const again = run([store], [config]);
    expect(again.status).toBe(0);
    expect(again.stdout).toBe(`${store}: already owned by ${OWNER}\n${config}: every file changed to ${OWNER}\n`);
    expect([ownerOf(config), ownerOf(path.join(config, "tls")), ownerOf(path.join(config, "tls", "server.key"))]).toEqual([OWNER, OWNER, OWNER]);
    expect(fs.statSync(path.join(config, "tls", "server.key")).mode & 0o777).toBe(0o600);
  });

  test("fills an empty store with the given folder when it migrates it, so the engine's copy of the image folder into an empty volume cannot undo it", () => {
    requireRoot();
    const { dir, run } = setUp(busybox);
    const empty = path.join(dir, "fresh");
    fs.mkdirSync(empty);
    expect(run([empty], [], "docker").status).toBe(0);
    expect(fs.readdirSync(empty)).toEqual(["docker"]);
    expect([ownerOf(empty), ownerOf(path.join(empty, "docker"))]).toEqual([OWNER, OWNER]);
    // A store with content keeps what it has; the folder is added only if missing.
    const store = rootOwnedStore(dir, "data", "/nonexistent");
    expect(run([store], [], "docker").status).toBe(0);
    expect(fs.readdirSync(path.join(store, "docker"))).toEqual(["registry"]);
  });

  test("handles an empty directory", () => {
    requireRoot();
    const { dir, run } = setUp(busybox);
    const empty = path.join(dir, "empty");
    fs.mkdirSync(empty);
    expect(run([empty]).status).toBe(0);
    expect(ownerOf(empty)).toBe(OWNER);
  });
});

describe("renderOwnershipScript input", () => {
  test("fails when the owner is not numeric uid:gid", () => {
    expect(() => renderOwnershipScript({ stores: [{ path: "/var/lib/registry" }], always: [] }, "registry")).toThrow("owner must be numeric uid:gid, got registry");
  });

  test("fails when a directory is not a plain absolute path", () => {
    expect(() => renderOwnershipScript({ stores: [{ path: "/var/lib/registry" }], always: ["data; rm -rf /"] }, OWNER)).toThrow("directories must be plain absolute paths: data; rm -rf /");
  });
});
