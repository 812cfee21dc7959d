import * as fs from "fs";
import * as path from "path";
import { NO_NEW_PRIVILEGES, REGISTRY_GID, REGISTRY_UID, REGISTRY_USER, SCRATCH_TMPFS } from "../constructs/container-defaults";
import { MaintenanceReport, renderMaintenanceSettings, RetentionRule } from "../renderers/maintenance-settings";
import { renderOwnershipScript } from "../renderers/volume-ownership";
import { Engine } from "./engine";
import { assert, assertEqual, assertMatch, Check, clip, say } from "./harness";
import { REGISTRY_V3_IMAGE } from "./images";
import { CommandError } from "./proc";
import { RegistryStorage } from "./registry-storage";
import { SuiteContext } from "./scenarios";

/**
 * The stack's two shell scripts run where they run in production: in a container of the registry
 * image, with the user, capabilities and read-only root filesystem the stack gives that
 * container, on files the suite writes and inspects from the host. Their folder is bind-mounted
 * at the same path, so the paths a script prints are the host's. No deployment: the scripts, not
 * the stack, are under test. Each script runs with both tool sets of the image:
 *   volume-ownership script (renderers/volume-ownership.ts)  check 50 busybox, 51 /bin/sh
 *   maintenance job (renderers/maintenance.sh)               check 52 busybox, 53 /bin/sh
 */

const TAG = "scripts-in-image";
const PREFIX = "rse2e-scripts";
/** The image's PATH (images.ts), where /bin/sh is dash and the tools are Debian's coreutils. */
const IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SCRIPT_TIMEOUT_MS = 60_000;

export interface ScriptsInImageChecks {
  ownershipBusybox: Check;
  ownershipShell: Check;
  maintenanceBusybox: Check;
  maintenanceShell: Check;
}

interface Toolset {
  readonly name: string;
  readonly busybox: boolean;
}

const BUSYBOX: Toolset = { name: "busybox sh and applets, as in the official registry image", busybox: true };
const SHELL: Toolset = { name: "the image's /bin/sh (dash) and Debian's coreutils", busybox: false };

interface ScriptResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * A container of the registry image that only sleeps; each script run is a `docker exec` in it,
 * so every run sees the same mounts, user and capabilities.
 */
class ScriptContainer {
  /** The shell that runs the scripts, and the PATH its tools come from. */
  readonly shell: string;
  readonly toolsPath: string;

  private constructor(
    private readonly engine: Engine,
    readonly name: string,
    readonly toolset: Toolset,
    applets: string,
  ) {
    this.shell = toolset.busybox ? path.join(applets, "sh") : "/bin/sh";
    this.toolsPath = toolset.busybox ? applets : IMAGE_PATH;
  }

  /**
   * Starts the container with `dir` mounted at the same path; for busybox, installs its applets
   * into `dir/busybox` (links to the image's /bin/busybox), owned like `dir`.
   */
  static async start(engine: Engine, name: string, dir: string, toolset: Toolset, security: readonly string[]): Promise<ScriptContainer> {
    // 600 s bounds the container even if removal is missed; the checks take well under a minute.
    await engine.docker(
      ["run", "-d", "--name", name, "--network", "none", "--read-only", "--security-opt", NO_NEW_PRIVILEGES[0], ...security, "-v", `${dir}:${dir}`, "--entrypoint", "sleep", REGISTRY_V3_IMAGE, "600"],
      { timeoutMs: 60_000 },
    );
    const applets = path.join(dir, "busybox");
    const container = new ScriptContainer(engine, name, toolset, applets);
    if (toolset.busybox) {
      const { uid, gid } = fs.statSync(dir);
      fs.mkdirSync(applets);
      fs.chownSync(applets, uid, gid);
      const installed = await container.exec(["/bin/busybox", "--install", "-s", applets], {});
      assertEqual(installed.status, 0, `busybox --install in the image (${clip(installed.stderr)})`);
      // The applets are links to the image's /bin/busybox, which the host need not have: lstat, not exists.
      const installedApplet = (name: string) => fs.lstatSync(path.join(applets, name), { throwIfNoEntry: false }) !== undefined;
      assert(installedApplet("chown") && installedApplet("stat"), `busybox --install put no chown/stat applets into ${applets}`);
    }
    return container;
  }

  /** Runs argv in the container; a non-zero exit is a result, not an error. */
  async exec(argv: readonly string[], env: Record<string, string>): Promise<ScriptResult> {
    const envArgs = Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
    try {
      const { stdout, stderr } = await this.engine.docker(["exec", ...envArgs, this.name, ...argv], { timeoutMs: SCRIPT_TIMEOUT_MS });
      return { status: 0, stdout, stderr };
    } catch (err) {
      if (err instanceof CommandError && err.exitCode !== null) return { status: err.exitCode, stdout: err.stdout, stderr: err.stderr };
      throw err;
    }
  }

  /** Fails unless a process in the container has exactly these effective capabilities (/proc's CapEff mask). */
  async expectCapabilities(mask: bigint, names: string): Promise<string> {
    const { stdout } = await this.exec(["grep", "^CapEff:", "/proc/self/status"], {});
    const capEff = /^CapEff:\s+([0-9a-f]+)$/m.exec(stdout)?.[1];
    assertEqual(capEff === undefined ? undefined : BigInt(`0x${capEff}`).toString(16), mask.toString(16), "effective capabilities in the container (CapEff)");
    return `CapEff ${capEff} (${names})`;
  }
}

async function removeContainer(engine: Engine, name: string): Promise<void> {
  await engine.docker(["rm", "-f", name], { timeoutMs: 30_000 }).catch((err: Error) => {
    if (!/No such container/.test(err.message)) say(TAG, `removing ${name} failed: ${err.message}`);
  });
}

/** chown -R -h on the host, for files a container running as another user must change. */
function lchownTree(p: string, uid: number, gid: number): void {
  fs.lchownSync(p, uid, gid);
  if (fs.lstatSync(p).isDirectory()) for (const e of fs.readdirSync(p)) lchownTree(path.join(p, e), uid, gid);
}

const ownerOf = (p: string) => {
  const s = fs.lstatSync(p);
  return `${s.uid}:${s.gid}`;
};

// ---------------------------------------------------------------------------------------------
// The volume-ownership script (checks 50, 51)

/** A store as an earlier, root registry left it: nested files, a dot file, a link pointing out of it. */
function rootOwnedStore(parent: string, name: string, outside: string): string {
  const store = path.join(parent, name);
  fs.mkdirSync(path.join(store, "docker/registry/v2/blobs/sha256/ab"), { recursive: true });
  fs.writeFileSync(path.join(store, "docker/registry/v2/blobs/sha256/ab/data"), "blob");
  fs.writeFileSync(path.join(store, ".hidden"), "dot");
  fs.symlinkSync(outside, path.join(store, "link-out"));
  return store;
}

type OwnershipRun = (stores: string[], always?: string[], keepFilledWith?: string) => Promise<ScriptResult>;

/** Each case gets a fresh folder `dir` and returns its evidence line. */
const OWNERSHIP_CASES: ReadonlyArray<{ title: string; run: (dir: string, run: OwnershipRun) => Promise<string> }> = [
  {
    title: "gives every file of a root-owned directory to the owner, the directory last, without following links",
    run: async (dir, run) => {
      const outside = path.join(dir, "outside");
      fs.writeFileSync(outside, "not the store's");
      const store = rootOwnedStore(dir, "data", outside);
      const result = await run([store]);
      assertEqual(result.stderr, "", "stderr");
      assertEqual(result.status, 0, "exit status");
      assertEqual(result.stdout, `${store}: owned by 0:0, changing everything in it to ${REGISTRY_USER}\n`, "stdout");
      for (const p of ["", "docker", "docker/registry/v2/blobs/sha256/ab", "docker/registry/v2/blobs/sha256/ab/data", ".hidden", "link-out"]) {
        assertEqual([p, ownerOf(path.join(store, p))], [p, REGISTRY_USER], "owner of");
      }
      assertEqual(ownerOf(outside), "0:0", "owner of the file the link points to");
      return `every entry (nested, dot file, the link itself) ${REGISTRY_USER}; the link's target still 0:0`;
    },
  },
  {
    title: "leaves a directory whose root already has the owner alone, however much is in it",
    run: async (dir, run) => {
      const store = rootOwnedStore(dir, "data", "/nonexistent");
      fs.lchownSync(store, REGISTRY_UID, REGISTRY_GID);
      const result = await run([store]);
      assertEqual(result.status, 0, "exit status");
      assertEqual(result.stdout, `${store}: already owned by ${REGISTRY_USER}\n`, "stdout");
      assertEqual(ownerOf(path.join(store, ".hidden")), "0:0", "owner of a file inside");
      return `"already owned by ${REGISTRY_USER}", a root-owned file inside untouched`;
    },
  },
  {
    title: "fails without taking the root when a chown fails half-way, so the next run does it all again",
    run: async (dir, run) => {
      const store = rootOwnedStore(dir, "data", "/nonexistent");
      fs.writeFileSync(path.join(store, "poison"), "");
      const second = rootOwnedStore(dir, "second", "/nonexistent");
      const result = await run([store, second]);
      assert(result.status !== 0, `exit status 0 although a chown failed: ${clip(result.stdout)}`);
      assertMatch(result.stderr, /chown: refused/, "stderr");
      assertEqual(ownerOf(store), "0:0", "owner of the interrupted store");
      assertEqual(ownerOf(second), "0:0", "owner of the store after it");
      fs.rmSync(path.join(store, "poison"));
      const retry = await run([store, second]);
      assertEqual(retry.status, 0, "exit status of the retry");
      assertEqual([ownerOf(store), ownerOf(path.join(store, "docker/registry")), ownerOf(second)], [REGISTRY_USER, REGISTRY_USER, REGISTRY_USER], "owners after the retry");
      return `exit ${result.status}, both tops still 0:0; the retry migrated both`;
    },
  },
  {
    title: "changes an always-directory in full every time, also files root wrote again behind its owned top folder",
    run: async (dir, run) => {
      const store = rootOwnedStore(dir, "data", "/nonexistent");
      const config = path.join(dir, "config");
      fs.mkdirSync(path.join(config, "tls"), { recursive: true });
      fs.writeFileSync(path.join(config, "config.yml"), "secret", { mode: 0o600 });
      const first = await run([store], [config]);
      assertEqual(first.stdout, `${store}: owned by 0:0, changing everything in it to ${REGISTRY_USER}\n${config}: every file changed to ${REGISTRY_USER}\n`, "stdout of the first run");
      // A seeder re-created with a new image uploads again as root into the same, owned volume.
      fs.rmSync(path.join(config, "config.yml"));
      fs.writeFileSync(path.join(config, "tls", "server.key"), "key", { mode: 0o600 });
      const again = await run([store], [config]);
      assertEqual(again.status, 0, "exit status of the second run");
      assertEqual(again.stdout, `${store}: already owned by ${REGISTRY_USER}\n${config}: every file changed to ${REGISTRY_USER}\n`, "stdout of the second run");
      assertEqual([ownerOf(config), ownerOf(path.join(config, "tls")), ownerOf(path.join(config, "tls", "server.key"))], [REGISTRY_USER, REGISTRY_USER, REGISTRY_USER], "owners in the config folder");
      assertEqual(fs.statSync(path.join(config, "tls", "server.key")).mode & 0o777, 0o600, "mode of server.key");
      return "a root-written server.key behind the owned top folder changed too, mode 0600 kept";
    },
  },
  {
    title: "fills an empty store with the given folder when it migrates it, so the engine's copy of the image folder into an empty volume cannot undo it",
    run: async (dir, run) => {
      const empty = path.join(dir, "fresh");
      fs.mkdirSync(empty);
      assertEqual((await run([empty], [], "docker")).status, 0, "exit status on the empty store");
      assertEqual(fs.readdirSync(empty), ["docker"], "entries of the migrated empty store");
      assertEqual([ownerOf(empty), ownerOf(path.join(empty, "docker"))], [REGISTRY_USER, REGISTRY_USER], "owners");
      // A store with content keeps what it has; the folder is added only if missing.
      const store = rootOwnedStore(dir, "data", "/nonexistent");
      assertEqual((await run([store], [], "docker")).status, 0, "exit status on a filled store");
      assertEqual(fs.readdirSync(path.join(store, "docker")), ["registry"], "entries of docker/ in the filled store");
      return "empty store got docker/ (owned); a filled store's docker/ kept as it was";
    },
  },
  {
    title: "handles an empty directory",
    run: async (dir, run) => {
      const empty = path.join(dir, "empty");
      fs.mkdirSync(empty);
      assertEqual((await run([empty])).status, 0, "exit status");
      assertEqual(ownerOf(empty), REGISTRY_USER, "owner");
      return `owned by ${REGISTRY_USER}`;
    },
  },
];

/** As the stack runs it (constructs/volume-owner.ts): root with only CAP_CHOWN and CAP_DAC_READ_SEARCH. */
async function ownershipCheck(ctx: SuiteContext, check: Check, toolset: Toolset, name: string): Promise<void> {
  const root = ctx.ws.dir(`ownership-${toolset.busybox ? "busybox" : "sh"}`);
  try {
    let container: ScriptContainer | undefined;
    await check.phase("start a registry-image container as the volume owner runs", async () => {
      container = await ScriptContainer.start(ctx.engine, name, root, toolset, ["--user", "0:0", "--cap-drop", "ALL", "--cap-add", "CHOWN", "--cap-add", "DAC_READ_SEARCH"]);
      // Bits 0 and 2 of the capability mask (linux/capability.h).
      const caps = await container.expectCapabilities(0b101n, "CAP_CHOWN, CAP_DAC_READ_SEARCH");
      check.note(`${REGISTRY_V3_IMAGE}, ${toolset.name}; user 0:0, ${caps}, read-only root, no network`);
    });
    if (!container) {
      check.finish();
      return;
    }
    const c = container;
    const bin = path.join(root, "bin");
    fs.mkdirSync(bin);
    const realChown = toolset.busybox ? path.join(c.toolsPath, "chown") : "chown";
    // A chown that fails on paths containing "poison", to interrupt a run half-way.
    fs.writeFileSync(path.join(bin, "chown"), `#!/bin/sh\ncase "$*" in *poison*) echo "chown: refused $*" >&2; exit 1 ;; esac\nPATH=${c.toolsPath}\nexec ${realChown} "$@"\n`, { mode: 0o755 });
    const run: OwnershipRun = (stores, always = [], keepFilledWith) =>
      c.exec([c.shell, "-c", renderOwnershipScript({ stores: stores.map((p) => ({ path: p, keepFilledWith })), always }, REGISTRY_USER)], { PATH: `${bin}:${c.toolsPath}` });
    for (const { title, run: runCase } of OWNERSHIP_CASES) {
      await check.phase(title, async () => {
        const evidence = await runCase(fs.mkdtempSync(path.join(root, "case-")), run);
        check.note(`${title}: ${evidence}`);
      });
    }
    check.finish();
  } finally {
    await removeContainer(ctx.engine, name);
  }
}

// ---------------------------------------------------------------------------------------------
// The maintenance job (checks 52, 53)

const DAY = 86400_000;
const METRICS_URL = "http://127.0.0.1:5001/metrics";
const MAINTENANCE_SCRIPT = path.join(__dirname, "..", "renderers", "maintenance.sh");
const RULES: RetentionRule[] = [
  { repositories: "^team/protected$", keepTags: [] },
  { repositories: "^team/", keepNewest: 2, keepTags: ["^v[0-9]+\\.[0-9]+\\.[0-9]+$"] },
  { repositories: "^multi$", keepTags: ["^release$"], untaggedDays: 0 },
  { repositories: "^aging$", keepTags: [], untaggedDays: 7 },
];

/** What the rules above must delete from the store `fillStore` writes, and what must stay. */
interface Expected {
  tags: string[];
  manifests: string[];
  blobs: Map<string, number>;
  keptManifests: string[];
}

function layer(storage: RegistryStorage, name: string, bytes = 1000) {
  return storage.putBlob(Buffer.concat([Buffer.from(name), Buffer.alloc(bytes)]));
}

function fillStore(s: RegistryStorage, now: number): Expected {
  const ago = (ms: number) => new Date(now - ms);
  const base = layer(s, "base", 5000);
  // team/app: v1.0.0 oldest, then build-1..3, then dev; keep the newest 2 plus v-tags.
  const images: Record<string, { digest: string; size: number }> = {};
  const unique: Record<string, { digest: string; size: number }> = {};
  ["v1.0.0", "build-1", "build-2", "build-3", "dev"].forEach((tag, i) => {
    unique[tag] = layer(s, `app-${tag}`, 100 * (i + 1));
    images[tag] = s.putImage("team/app", [base, unique[tag]], ago((10 - i) * DAY));
    s.tag("team/app", tag, images[tag].digest, ago((10 - i) * DAY));
  });
  // team/protected matches the first rule (keeps everything) and holds build-1's image too.
  s.putImage("team/protected", [base, unique["build-1"]], ago(DAY));
  s.tag("team/protected", "same-as-build-1", images["build-1"].digest, ago(DAY));
  // multi: release -> index of two platforms; old -> another index; both children untagged.
  const child = (name: string, platform: string) => s.putImage("multi", [layer(s, name, 300)], ago(3 * DAY), platform);
  const releaseChildren = [{ ...child("rel-amd64", "amd64"), platform: "amd64" }, { ...child("rel-arm64", "arm64"), platform: "arm64" }];
  const oldChildren = [{ ...child("old-amd64", "amd64"), platform: "amd64" }, { ...child("old-arm64", "arm64"), platform: "arm64" }];
  const release = s.putIndex("multi", releaseChildren, ago(2 * DAY));
  const old = s.putIndex("multi", oldChildren, ago(3 * DAY));
  s.tag("multi", "release", release.digest, ago(2 * DAY));
  s.tag("multi", "old", old.digest, ago(3 * DAY));
  // aging: untagged manifests 10 days and 1 day old; a tagged one.
  const aged = s.putImage("aging", [layer(s, "aged", 400)], ago(10 * DAY));
  const young = s.putImage("aging", [layer(s, "young", 400)], ago(DAY));
  const tagged = s.putImage("aging", [layer(s, "tagged", 400)], ago(20 * DAY));
  s.tag("aging", "stable", tagged.digest, ago(20 * DAY));
  // An upload nobody referenced: the collector removes it, the plan must predict it.
  const orphan = layer(s, "orphan", 700);

  const blobs = new Map<string, number>();
  const blobOf = (b: { digest: string }) => blobs.set(b.digest, fs.statSync(s.blobFile(b.digest)).size);
  // build-1 stays referenced from team/protected; build-2's manifest, config and unique layer go.
  const configOf = (m: { digest: string }) => (JSON.parse(fs.readFileSync(s.blobFile(m.digest), "utf8")) as { config: { digest: string } }).config;
  for (const m of [images["build-2"], aged, old, ...oldChildren]) blobOf(m);
  for (const m of [images["build-2"], aged, ...oldChildren]) blobOf(configOf(m));
  for (const b of [unique["build-2"], orphan]) blobOf(b);
  for (const name of ["aged", "old-amd64", "old-arm64"]) blobOf(layer(s, name, name === "aged" ? 400 : 300));
  return {
    tags: ["multi old", "team/app build-1", "team/app build-2"],
    manifests: [`aging ${aged.digest}`, ...[old, ...oldChildren].map((m) => `multi ${m.digest}`), `team/app ${images["build-1"].digest}`, `team/app ${images["build-2"].digest}`].sort(),
    blobs,
    keptManifests: [release.digest, ...releaseChildren.map((c) => c.digest), young.digest, tagged.digest, images["build-1"].digest],
  };
}

/** Every file's content and mtime, every folder, below `dir`. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = fs.statSync(p);
      out[path.relative(dir, p)] = e.isDirectory() ? "dir" : `${fs.readFileSync(p).toString("base64")} ${st.mtimeMs}`;
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

/**
 * As the stack runs it (constructs/maintenance.ts): REGISTRY_USER without capabilities, read-only
 * root, /tmp a noexec tmpfs. The collector (`registry garbage-collect`) and the registry's debug
 * server are stubs: the lifecycle deployment runs the real ones.
 */
async function maintenanceCheck(ctx: SuiteContext, check: Check, toolset: Toolset, name: string): Promise<void> {
  const dir = ctx.ws.dir(`maintenance-${toolset.busybox ? "busybox" : "sh"}`);
  try {
    const storage = new RegistryStorage(path.join(dir, "data"));
    const state = path.join(dir, "state");
    const bin = path.join(dir, "bin");
    const script = path.join(dir, "maintenance.sh");
    const settings = path.join(dir, "maintenance.env");
    let expected: Expected | undefined;
    let container: ScriptContainer | undefined;
    await check.phase("a store with known content, the job's files, a registry-image container as the job runs", async () => {
      fs.mkdirSync(state);
      fs.mkdirSync(bin);
      fs.copyFileSync(MAINTENANCE_SCRIPT, script);
      fs.chmodSync(script, 0o755);
      // Stub collector: records whether writes were held while it ran.
      fs.writeFileSync(path.join(bin, "registry"), `#!/bin/sh\n[ -f "${state}/write-hold" ] && echo "$*" >> "${dir}/collector-ran-held"\nexit 0\n`, { mode: 0o755 });
      // Stub of the registry's debug server: answers the metrics URL only.
      fs.writeFileSync(
        path.join(bin, "wget"),
        '#!/bin/sh\nwhile [ $# -gt 1 ]; do case "$1" in -O) out=$2; shift 2 ;; *) shift ;; esac; done\n' +
          `[ "$1" = "${METRICS_URL}" ] || exit 1\nprintf '# TYPE go_goroutines gauge\\ngo_goroutines 7\\n' > "$out"\n`,
        { mode: 0o755 },
      );
      fs.writeFileSync(
        settings,
        renderMaintenanceSettings({
          dataDirectory: storage.root,
          stateDirectory: state,
          collectorConfigPath: "/etc/collector.yml",
          schedule: "03:00",
          dryRun: false,
          writeSettleSeconds: 0,
          rules: RULES,
          registryMetricsUrl: METRICS_URL,
          metricsIntervalSeconds: 30,
        }),
      );
      expected = fillStore(storage, Date.now());
      lchownTree(dir, REGISTRY_UID, REGISTRY_GID);
      container = await ScriptContainer.start(ctx.engine, name, dir, toolset, ["--user", REGISTRY_USER, "--cap-drop", "ALL", "--tmpfs", `/tmp:${SCRATCH_TMPFS["/tmp"]}`]);
      const caps = await container.expectCapabilities(0n, "none");
      check.note(`${REGISTRY_V3_IMAGE}, ${toolset.name}; user ${REGISTRY_USER}, ${caps}, read-only root, /tmp noexec tmpfs, no network`);
      check.note(`store: 4 repositories, ${expected.manifests.length} manifests and ${expected.blobs.size} blobs the rules must delete, an unreferenced upload`);
    });
    if (!container || !expected) {
      check.finish();
      return;
    }
    const c = container;
    const want = expected;
    const run = (...args: string[]) => c.exec([c.shell, script, ...args], { PATH: `${bin}:${c.toolsPath}`, MAINTENANCE_SETTINGS: settings });

    await check.phase("a dry run reports the plan and changes nothing", async () => {
      const before = snapshot(storage.root);
      const result = await run("run", "--dry-run");
      assertMatch(result.stderr, /dry run: would delete 3 tags, 6 manifests, 14 blobs/, "stderr");
      assertEqual(result.status, 0, `exit status (stderr: ${clip(result.stderr)})`);
      const report = JSON.parse(result.stdout) as MaintenanceReport;
      assertEqual(report.dryRun, true, "report.dryRun");
      assertEqual(report.trigger, "manual", "report.trigger");
      assertEqual(report.deleted.tags.map((t) => `${t.repository} ${t.tag}`), want.tags, "planned tags");
      assertEqual(report.deleted.manifests.map((m) => `${m.repository} ${m.digest}`), want.manifests, "planned manifests");
      const blobs = new Map(report.deleted.blobs.map((b) => [b.digest, b.bytes]));
      assertEqual([...blobs.entries()].sort(), [...want.blobs.entries()].sort(), "planned blobs with their sizes");
      assertEqual(report.bytesReclaimed, [...want.blobs.values()].reduce((a, b) => a + b, 0), "report.bytesReclaimed");
      assertEqual(report.durationsMs.writeWindow, 0, "report.durationsMs.writeWindow");
      assertEqual(snapshot(storage.root), before, "every file and mtime of the store");
      assert(!fs.existsSync(path.join(dir, "collector-ran-held")), "the collector ran during a dry run");
      check.note(`dry run: ${want.tags.length} tags, ${want.manifests.length} manifests, ${want.blobs.size} blobs (${report.bytesReclaimed} bytes) planned, as expected; the store unchanged`);
    });

    await check.phase("a real run deletes exactly the planned tags and manifests, with writes held around the collector", async () => {
      const result = await run("run");
      assertEqual(result.status, 0, `exit status (stderr: ${clip(result.stderr)})`);
      const report = JSON.parse(result.stdout) as MaintenanceReport;
      assertEqual(report.dryRun, false, "report.dryRun");
      assertEqual(report.deleted.tags.map((t) => `${t.repository} ${t.tag}`), want.tags, "deleted tags");
      assertEqual(report.deleted.manifests.map((m) => `${m.repository} ${m.digest}`), want.manifests, "deleted manifests");
      assertEqual(fs.readFileSync(path.join(dir, "collector-ran-held"), "utf8"), "garbage-collect --quiet /etc/collector.yml\n", "the collector's arguments, written while writes were held");
      assert(!fs.existsSync(path.join(state, "write-hold")), "the write hold is still there after the run");
      assert(!fs.existsSync(path.join(state, "run.lock")), "the run lock is still there after the run");
      assertEqual(storage.tags("team/app"), ["build-3", "dev", "v1.0.0"], "tags of team/app");
      assertEqual(storage.tags("team/protected"), ["same-as-build-1"], "tags of team/protected");
      assertEqual(storage.tags("multi"), ["release"], "tags of multi");
      assertEqual(storage.tags("aging"), ["stable"], "tags of aging");
      const remaining = ["team/app", "team/protected", "multi", "aging"].flatMap((r) => storage.revisions(r).map((d) => `${r} ${d}`));
      for (const d of want.keptManifests) assert(remaining.some((line) => line.endsWith(d)), `manifest ${d} was deleted but must stay`);
      for (const line of want.manifests) assert(!remaining.includes(line), `manifest ${line} is still there`);
      assertEqual(remaining.length, 9, "number of remaining manifests");
      // The stub collector deleted nothing, so nothing was reclaimed: bytes come from the store, not the plan.
      assertEqual(report.deleted.blobs, [], "report.deleted.blobs");
      assert(report.durationsMs.writeWindow >= report.durationsMs.collector, `write window ${report.durationsMs.writeWindow} ms shorter than the collector's ${report.durationsMs.collector} ms`);
      const latest = JSON.parse(fs.readFileSync(path.join(state, "reports", "latest.json"), "utf8")) as MaintenanceReport;
      assertEqual(latest, report, "reports/latest.json");
      check.note(`real run: the planned ${want.tags.length} tags and ${want.manifests.length} manifests deleted, 9 manifests left; collector ran with writes held (window ${report.durationsMs.writeWindow} ms ≥ collector ${report.durationsMs.collector} ms); latest.json = the report`);
    });

    await check.phase("writes the metrics file: storage usage, the last real run, the registry's own metrics", async () => {
      const metrics = fs.readFileSync(path.join(state, "metrics.prom"), "utf8");
      const sample = (metric: string) => Number(new RegExp(`^${metric} (\\S+)$`, "m").exec(metrics)?.[1]);
      assert(sample("registry_stack_storage_filesystem_size_bytes") > sample("registry_stack_storage_filesystem_available_bytes"), "filesystem size not above available bytes");
      assert(sample("registry_stack_storage_used_bytes") > 10_000, `storage used bytes ${sample("registry_stack_storage_used_bytes")} not above 10000`);
      assertEqual(sample("registry_stack_gc_last_deleted_tags"), 3, "registry_stack_gc_last_deleted_tags");
      assertEqual(sample("registry_stack_gc_last_deleted_manifests"), 6, "registry_stack_gc_last_deleted_manifests");
      assertEqual(sample("registry_stack_gc_last_reclaimed_bytes"), 0, "registry_stack_gc_last_reclaimed_bytes");
      assertEqual(sample("registry_stack_gc_last_run_success"), 1, "registry_stack_gc_last_run_success");
      const age = Math.abs(sample("registry_stack_gc_last_run_timestamp_seconds") - Date.now() / 1000);
      assert(age < 120, `registry_stack_gc_last_run_timestamp_seconds is ${age} s away from now`);
      assertEqual(sample("registry_stack_registry_metrics_up"), 1, "registry_stack_registry_metrics_up");
      assertEqual(sample("go_goroutines"), 7, "go_goroutines (the registry's own metric, from the stub)");
      assert(metrics.includes("# TYPE registry_stack_storage_used_bytes gauge\n"), "no TYPE line for registry_stack_storage_used_bytes");
      for (const line of metrics.trim().split("\n")) assertMatch(line, /^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+ [0-9.e+]+)$/, "metrics line");
      check.note(`metrics.prom: ${metrics.trim().split("\n").length} lines in the exposition format; last run 3 tags, 6 manifests, success; the registry's go_goroutines passed through`);
    });

    await check.phase("fails when another run holds the lock, and leaves it", async () => {
      fs.mkdirSync(path.join(state, "run.lock"));
      const result = await run("run", "--dry-run");
      assert(result.status !== 0, "exit status 0 while another run held the lock");
      assertMatch(result.stderr, /another run is in progress/, "stderr");
      assert(fs.existsSync(path.join(state, "run.lock")), "the other run's lock was removed");
      fs.rmdirSync(path.join(state, "run.lock"));
      check.note(`with run.lock held: exit ${result.status}, "another run is in progress", the lock left in place`);
    });
    check.finish();
  } finally {
    await removeContainer(ctx.engine, name);
  }
}

export async function scriptsInImageScenario(ctx: SuiteContext, checks: ScriptsInImageChecks): Promise<void> {
  const runs: Array<[Check, () => Promise<void>]> = [
    [checks.ownershipBusybox, () => ownershipCheck(ctx, checks.ownershipBusybox, BUSYBOX, `${PREFIX}-owner-busybox`)],
    [checks.ownershipShell, () => ownershipCheck(ctx, checks.ownershipShell, SHELL, `${PREFIX}-owner-sh`)],
    [checks.maintenanceBusybox, () => maintenanceCheck(ctx, checks.maintenanceBusybox, BUSYBOX, `${PREFIX}-maintenance-busybox`)],
    [checks.maintenanceShell, () => maintenanceCheck(ctx, checks.maintenanceShell, SHELL, `${PREFIX}-maintenance-sh`)],
  ];
  for (const [check, runCheck] of runs) {
    await ctx.timings.time(`${TAG}: check ${check.id}`, runCheck).catch((err: Error) => check.abort(`${TAG} failed: ${err.message}`));
  }
}
