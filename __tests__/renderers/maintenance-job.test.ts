import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { MaintenanceReport, renderMaintenanceSettings, RetentionRule } from "../../renderers/maintenance-settings";
import { RegistryStorage } from "../fixtures/registry-storage";

/**
 * The maintenance job (renderers/maintenance.sh) run by /bin/sh on a store written directly:
 * what retention deletes, what the collector would sweep, the report. The collector itself
 * (`registry garbage-collect`) is a stub here; the e2e suite runs the real one.
 */

const DAY = 86400_000;
const METRICS_URL = "http://127.0.0.1:5001/metrics";
/**
 * The shells and tools the job meets: busybox sh and applets in the official (Alpine) registry
 * image, /bin/sh and GNU tools in the e2e suite's Debian stand-in. Every test runs with both.
 */
const TOOLSETS: ReadonlyArray<{ name: string; busybox: boolean }> = [
  { name: "/bin/sh and the host's tools", busybox: false },
  { name: "busybox sh and applets, as in the official registry image", busybox: true },
];

/** A folder of busybox applet links, to put first on PATH. */
function busyboxApplets(parent: string): string {
  const dir = path.join(parent, "busybox");
  fs.mkdirSync(dir);
  const result = spawnSync("busybox", ["--install", "-s", dir], { encoding: "utf8" });
  if (result.error || result.status !== 0) {
    throw new Error(
      `busybox --install failed (${result.error?.message ?? result.stderr}): the maintenance job runs under busybox in the ` +
        "official registry image, so the unit tests need it; install it (Debian: apt-get install busybox)",
    );
  }
  return dir;
}

const NOW = Date.now();
const ago = (ms: number) => new Date(NOW - ms);

function setUp(rules: RetentionRule[], busybox: boolean) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "maintenance-job-"));
  const tools = busybox ? busyboxApplets(dir) : undefined;
  const storage = new RegistryStorage(path.join(dir, "data"));
  const state = path.join(dir, "state");
  const bin = path.join(dir, "bin");
  fs.mkdirSync(state);
  fs.mkdirSync(bin);
  // Stub collector: records whether writes were held while it ran.
  fs.writeFileSync(path.join(bin, "registry"), `#!/bin/sh\n[ -f "${state}/write-hold" ] && echo "$*" >> "${dir}/collector-ran-held"\nexit 0\n`, { mode: 0o755 });
  // Stub of the registry's debug server: answers the metrics URL only.
  fs.writeFileSync(
    path.join(bin, "wget"),
    '#!/bin/sh\nwhile [ $# -gt 1 ]; do case "$1" in -O) out=$2; shift 2 ;; *) shift ;; esac; done\n' +
      `[ "$1" = "${METRICS_URL}" ] || exit 1\nprintf '# TYPE go_goroutines gauge\\ngo_goroutines 7\\n' > "$out"\n`,
    { mode: 0o755 },
  );
  const settings = path.join(dir, "maintenance.env");
  fs.writeFileSync(
    settings,
    renderMaintenanceSettings({
      dataDirectory: storage.root,
      stateDirectory: state,
      collectorConfigPath: "/etc/collector.yml",
      schedule: "03:00",
      dryRun: false,
      writeSettleSeconds: 0,
      rules,
      registryMetricsUrl: METRICS_URL,
      metricsIntervalSeconds: 30,
    }),
  );
  const run = (...args: string[]) =>
    spawnSync(tools ? path.join(tools, "sh") : "/bin/sh", [path.join(__dirname, "..", "..", "renderers", "maintenance.sh"), ...args], {
      env: { PATH: `${bin}:${tools ?? process.env.PATH}`, MAINTENANCE_SETTINGS: settings },
      encoding: "utf8",
      timeout: 60_000,
    });
  return { dir, storage, state, run };
}

function layer(storage: RegistryStorage, name: string, bytes = 1000) {
  return storage.putBlob(Buffer.concat([Buffer.from(name), Buffer.alloc(bytes)]));
}

describe.each(TOOLSETS)("maintenance job with $name", ({ busybox }) => {
  const rules: RetentionRule[] = [
    { repositories: "^team/protected$", keepTags: [] },
    { repositories: "^team/", keepNewest: 2, keepTags: ["^v[0-9]+\\.[0-9]+\\.[0-9]+$"] },
    { repositories: "^multi$", keepTags: ["^release$"], untaggedDays: 0 },
    { repositories: "^aging$", keepTags: [], untaggedDays: 7 },
  ];
  let env: ReturnType<typeof setUp>;
  const expected = { tags: [] as string[], manifests: [] as string[], blobs: new Map<string, number>() };
  const kept = { manifests: [] as string[] };

  beforeAll(() => {
    env = setUp(rules, busybox);
    const s = env.storage;
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

    expected.tags = ["multi old", "team/app build-1", "team/app build-2"];
    expected.manifests = [
      `aging ${aged.digest}`,
      ...[old, ...oldChildren].map((m) => `multi ${m.digest}`),
      `team/app ${images["build-1"].digest}`,
      `team/app ${images["build-2"].digest}`,
    ].sort();
    kept.manifests = [release.digest, ...releaseChildren.map((c) => c.digest), young.digest, tagged.digest, images["build-1"].digest];
    const blobOf = (b: { digest: string }) => expected.blobs.set(b.digest, fs.statSync(s.blobFile(b.digest)).size);
    // build-1 stays referenced from team/protected; build-2's manifest, config and unique layer go.
    const configOf = (m: { digest: string }) => (JSON.parse(fs.readFileSync(s.blobFile(m.digest), "utf8")) as { config: { digest: string } }).config;
    for (const m of [images["build-2"], aged, old, ...oldChildren]) blobOf(m);
    for (const m of [images["build-2"], aged, ...oldChildren]) blobOf(configOf(m));
    for (const b of [unique["build-2"], orphan]) blobOf(b);
    for (const name of ["aged", "old-amd64", "old-arm64"]) blobOf(layer(s, name, name === "aged" ? 400 : 300));
  });

  afterAll(() => fs.rmSync(env.dir, { recursive: true, force: true }));

  it("a dry run reports the plan and changes nothing", () => {
    const before = snapshot(env.storage.root);
    const result = env.run("run", "--dry-run");
    expect(result.stderr).toContain("dry run: would delete 3 tags, 6 manifests, 14 blobs");
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout) as MaintenanceReport;
    expect(report.dryRun).toBe(true);
    expect(report.trigger).toBe("manual");
    expect(report.deleted.tags.map((t) => `${t.repository} ${t.tag}`)).toEqual(expected.tags);
    expect(report.deleted.manifests.map((m) => `${m.repository} ${m.digest}`)).toEqual(expected.manifests);
    expect(new Map(report.deleted.blobs.map((b) => [b.digest, b.bytes]))).toEqual(expected.blobs);
    expect(report.bytesReclaimed).toBe([...expected.blobs.values()].reduce((a, b) => a + b, 0));
    expect(report.durationsMs.writeWindow).toBe(0);
    expect(snapshot(env.storage.root)).toEqual(before);
    expect(fs.existsSync(path.join(env.dir, "collector-ran-held"))).toBe(false);
  });

  it("a real run deletes exactly the planned tags and manifests, with writes held around the collector", () => {
    const result = env.run("run");
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout) as MaintenanceReport;
    expect(report.dryRun).toBe(false);
    expect(report.deleted.tags.map((t) => `${t.repository} ${t.tag}`)).toEqual(expected.tags);
    expect(report.deleted.manifests.map((m) => `${m.repository} ${m.digest}`)).toEqual(expected.manifests);
    expect(fs.readFileSync(path.join(env.dir, "collector-ran-held"), "utf8")).toBe("garbage-collect --quiet /etc/collector.yml\n");
    expect(fs.existsSync(path.join(env.state, "write-hold"))).toBe(false);
    expect(fs.existsSync(path.join(env.state, "run.lock"))).toBe(false);
    expect(env.storage.tags("team/app")).toEqual(["build-3", "dev", "v1.0.0"]);
    expect(env.storage.tags("team/protected")).toEqual(["same-as-build-1"]);
    expect(env.storage.tags("multi")).toEqual(["release"]);
    expect(env.storage.tags("aging")).toEqual(["stable"]);
    const remaining = ["team/app", "team/protected", "multi", "aging"].flatMap((r) => env.storage.revisions(r).map((d) => `${r} ${d}`));
    for (const d of kept.manifests) expect(remaining.some((line) => line.endsWith(d))).toBe(true);
    for (const line of expected.manifests) expect(remaining).not.toContain(line);
    expect(remaining).toHaveLength(9);
    // The stub collector deleted nothing, so nothing was reclaimed: bytes come from the store, not the plan.
    expect(report.deleted.blobs).toEqual([]);
    expect(report.durationsMs.writeWindow).toBeGreaterThanOrEqual(report.durationsMs.collector);
    const latest = JSON.parse(fs.readFileSync(path.join(env.state, "reports", "latest.json"), "utf8")) as MaintenanceReport;
    expect(latest).toEqual(report);
  });

  it("writes the metrics file: storage usage, the last real run, the registry's own metrics", () => {
    const metrics = fs.readFileSync(path.join(env.state, "metrics.prom"), "utf8");
    const sample = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
    expect(sample("registry_stack_storage_filesystem_size_bytes")).toBeGreaterThan(sample("registry_stack_storage_filesystem_available_bytes"));
    expect(sample("registry_stack_storage_used_bytes")).toBeGreaterThan(10_000);
    expect(sample("registry_stack_gc_last_deleted_tags")).toBe(3);
    expect(sample("registry_stack_gc_last_deleted_manifests")).toBe(6);
    expect(sample("registry_stack_gc_last_reclaimed_bytes")).toBe(0);
    expect(sample("registry_stack_gc_last_run_success")).toBe(1);
    expect(Math.abs(sample("registry_stack_gc_last_run_timestamp_seconds") - Date.now() / 1000)).toBeLessThan(120);
    expect(sample("registry_stack_registry_metrics_up")).toBe(1);
    expect(sample("go_goroutines")).toBe(7);
    expect(metrics).toContain("# TYPE registry_stack_storage_used_bytes gauge\n");
    for (const line of metrics.trim().split("\n")) expect(line).toMatch(/^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+ [0-9.e+]+)$/);
  });

  it("fails when another run holds the lock, and leaves it", () => {
    fs.mkdirSync(path.join(env.state, "run.lock"));
    const result = env.run("run", "--dry-run");
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("another run is in progress");
    expect(fs.existsSync(path.join(env.state, "run.lock"))).toBe(true);
    fs.rmdirSync(path.join(env.state, "run.lock"));
  });
});

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
