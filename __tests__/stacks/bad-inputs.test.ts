import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { main } from "../../main";
import { issueTestCertificate } from "../fixtures/test-pki";

/**
 * Every bad input runs through the real loader and stack (main()) in a temp project that has
 * synthesized once. Each case first makes a valid change (one more host name, one more user
 * with a generated password: on the old code that re-issued server.crt and rewrote the users'
 * state before a later check failed), then adds the bad input. Every file of the project is
 * hashed before and after. The table in docs/bad-inputs.md is written from these runs.
 */

const SECRET = "Zq-correct-horse-7731";
const BASE_CONFIG = {
  hostnames: ["store.example.test"],
  ipAddresses: ["127.0.0.1"],
  users: [{ name: "alice" }, { name: "bob" }],
  clientConfigDirectory: "client-config",
};
const VALID_CHANGE = {
  hostnames: ["store.example.test", "mirror.example.test"],
  users: [{ name: "alice" }, { name: "bob" }, { name: "carol" }],
};

const CLUSTER_SECTION = {
  nodes: ["10.0.0.11", "10.0.0.12"],
  storage: { endpoint: "http://s3.example.test:9000", bucket: "registry" },
  redis: { addresses: ["redis.example.test:6379"] },
};
const CLUSTER_KEYS = { REGISTRY_S3_ACCESS_KEY: "bad-inputs-access", REGISTRY_S3_SECRET_KEY: SECRET };

interface Project {
  readonly dir: string;
  readonly material: string;
  writeConfig(config: object): void;
  write(file: string, content: string, mode?: number): void;
}

interface Run {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface BadInput {
  /** What the table says the input is. */
  readonly input: string;
  /** Must appear in the message: the field, variable or file the problem is about. */
  readonly names: string;
  /** Makes the bad input (the valid change is already written). */
  readonly apply: (project: Project) => void;
  readonly env?: NodeJS.ProcessEnv;
}

function createProject(dir: string): Project {
  const material = path.join(dir, "assets", "generated", "registry");
  return {
    dir,
    material,
    writeConfig: (config) => fs.writeFileSync(path.join(dir, "registry-stack.yml"), YAML.stringify(config)),
    write: (file, content, mode = 0o600) => {
      const target = path.join(dir, file);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, content, { mode });
      fs.chmodSync(target, mode);
    },
  };
}

function run(project: Project, env: NodeJS.ProcessEnv = {}): Run {
  const out: string[] = [];
  const err: string[] = [];
  const exitCode = main({ env, cwd: project.dir, outdir: path.join(project.dir, "cdktf.out"), stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  return { exitCode, stdout: out.join("\n"), stderr: err.join("\n") };
}

/** Relative path → sha256 of every file under `dir` (and the mode, which is part of what must not change). */
function hashTree(dir: string): Record<string, string> {
  const hashes: Record<string, string> = {};
  const walk = (current: string): void => {
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) {
        const mode = (fs.statSync(full).mode & 0o777).toString(8);
        hashes[path.relative(dir, full)] = `${crypto.createHash("sha256").update(fs.readFileSync(full)).digest("hex")} ${mode}`;
      }
    }
  };
  walk(dir);
  return hashes;
}

function changedFiles(before: Record<string, string>, after: Record<string, string>): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...names].filter((name) => before[name] !== after[name]).sort();
}

const CA_WINDOW = { notBefore: new Date("2020-01-01T00:00:00Z"), notAfter: new Date("2021-01-01T00:00:00Z") };

const BAD_INPUTS: BadInput[] = [
  { input: "existing daemon.json is not JSON", names: "daemon.json", apply: (p) => p.write("client-config/daemon.json", "{ not json", 0o644) },
  {
    input: 'daemon.json "insecure-registries" is not a list',
    names: "insecure-registries",
    apply: (p) => p.write("client-config/daemon.json", '{"insecure-registries": "a:5000"}', 0o644),
  },
  { input: "ca.key corrupted", names: "ca.key", apply: (p) => p.write("assets/generated/registry/ca.key", "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n") },
  { input: "ca.key missing, ca.crt present", names: "ca.key", apply: (p) => fs.rmSync(path.join(p.material, "ca.key")) },
  {
    input: "CA expired",
    names: "ca.crt",
    apply: (p) => {
      const ca = issueTestCertificate({ commonName: "old CA", keyIndex: 0, isCa: true, ...CA_WINDOW });
      p.write("assets/generated/registry/ca.key", ca.keyPem);
      p.write("assets/generated/registry/ca.crt", ca.certPem, 0o644);
    },
  },
  {
    input: "clock behind the CA's start date",
    names: "ca.crt",
    apply: (p) => {
      const ca = issueTestCertificate({ commonName: "future CA", keyIndex: 0, isCa: true, notBefore: new Date("2999-01-01T00:00:00Z"), notAfter: new Date("2999-12-31T00:00:00Z") });
      p.write("assets/generated/registry/ca.key", ca.keyPem);
      p.write("assets/generated/registry/ca.crt", ca.certPem, 0o644);
    },
  },
  { input: "generated-passwords.yml is not a map", names: "generated-passwords.yml", apply: (p) => p.write("assets/generated/registry/generated-passwords.yml", "- a\n- b\n") },
  {
    input: "clientConfigDirectory is a regular file",
    names: "clientConfigDirectory",
    apply: (p) => {
      p.write("client-file", "x", 0o644);
      p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, clientConfigDirectory: "client-file" });
    },
  },
  {
    input: "materialDirectory under a regular file",
    names: "materialDirectory",
    apply: (p) => {
      p.write("plain", "x", 0o644);
      p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, materialDirectory: "plain/material" });
    },
  },
  { input: "image digest of the wrong length", names: "registryImage", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, registryImage: "registry@sha256:deadbeef" }) },
  {
    input: "users whose password variables collide",
    names: "users[4].name",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, users: [...VALID_CHANGE.users, { name: "ci-bot" }, { name: "ci_bot" }] }),
  },
  { input: "dockerHost ssh:// without a host", names: "dockerHost", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, dockerHost: "ssh://" }) },
  {
    input: "101 host names",
    names: "hostnames",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, hostnames: Array.from({ length: 101 }, (_, i) => `h${i}.example.test`) }),
  },
  {
    input: "config file over 1 MiB (40k host names)",
    names: "registry-stack.yml",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, hostnames: Array.from({ length: 40_000 }, (_, i) => `host-${i}.example.test`) }),
  },
  { input: "bcryptCost 20", names: "bcryptCost", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, bcryptCost: 20 }) },
  {
    input: "retention pattern with \\d (Perl syntax grep -E does not know)",
    names: "retention.rules[0].keepTags[0]",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, retention: { rules: [{ repositories: "^team/", keepTags: ["^v\\d+$"] }] } }),
  },
  {
    input: "retention with deleteEnabled: false, a bad schedule and no rules",
    names: "retention.schedule",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, deleteEnabled: false, retention: { schedule: "3am", rules: [] } }),
  },
  { input: "retention without the proxy", names: "retention", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, proxy: false, retention: { rules: [{ repositories: "^", keepNewest: 5 }] } }) },
  {
    input: "serveBlobsFromStorage without the auth cache",
    names: "serveBlobsFromStorage",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, authCacheSeconds: 0, serveBlobsFromStorage: true }),
  },
  { input: "misspelled key", names: "hostname", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, hostname: ["x.example.test"] }) },
  {
    input: "TLS files that do not exist",
    names: "tls.certificateFile",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, tls: { mode: "files", certificateFile: "tls/server.crt", keyFile: "tls/server.key", caFile: "tls/ca.crt" } }),
  },
  { input: "empty password in the environment", names: "REGISTRY_PASSWORD_ALICE", apply: () => undefined, env: { REGISTRY_PASSWORD_ALICE: "" } },
  { input: "too-long password in the environment", names: "REGISTRY_PASSWORD_ALICE", apply: () => undefined, env: { REGISTRY_PASSWORD_ALICE: SECRET.repeat(4) } },
  { input: "too-long password in the secrets file", names: "passwords.bob", apply: (p) => p.write("registry.secrets.yml", `passwords:\n  bob: ${SECRET.repeat(4)}\n`) },
  { input: "YAML syntax error in the secrets file", names: "registry.secrets.yml", apply: (p) => p.write("registry.secrets.yml", `passwords:\n  bob: ${SECRET}: x\n`) },
  {
    input: "mirror with an upstream login but no upstream password",
    names: "REGISTRY_UPSTREAM_PASSWORD_HUB",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, mirrors: [{ name: "hub", upstream: "docker.io", port: 5001, username: "hubuser" }] }),
  },
  {
    input: "two mirrors of one upstream on one port",
    names: "mirrors[1].port",
    apply: (p) =>
      p.writeConfig({
        ...BASE_CONFIG,
        ...VALID_CHANGE,
        mirrors: [
          { name: "hub", upstream: "docker.io", port: 5001 },
          { name: "hub2", upstream: "docker.io", port: 5001 },
        ],
      }),
  },
  {
    input: "mirror TTL 0 (unbounded cache)",
    names: "mirrors[0].ttl",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, mirrors: [{ name: "hub", upstream: "docker.io", port: 5001, ttl: "0" }] }),
  },
  {
    input: "mirror blob cache below its minimum",
    names: "mirrors[0].blobCacheMb",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, mirrors: [{ name: "hub", upstream: "docker.io", port: 5001, blobCacheMb: 10 }] }),
  },
  {
    input: "mirror blob cache size not a whole number",
    names: "mirrors[0].blobCacheMb",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, mirrors: [{ name: "hub", upstream: "docker.io", port: 5001, blobCacheMb: 512.5 }] }),
  },
  {
    input: "mirror size bound below its minimum",
    names: "mirrors[0].maxSizeMb",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, mirrors: [{ name: "hub", upstream: "docker.io", port: 5001, maxSizeMb: 1 }] }),
  },
  {
    input: "mirror size bound written in GB",
    names: "mirrors[0].maxSizeMb",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, mirrors: [{ name: "hub", upstream: "docker.io", port: 5001, maxSizeMb: "50GB" }] }),
  },
  {
    input: "foreign containerd hosts.toml where a mirror's goes",
    names: "containerd/certs.d/docker.io/hosts.toml",
    apply: (p) => {
      p.write("client-config/containerd/certs.d/docker.io/hosts.toml", 'server = "https://mine.example.test"\n', 0o644);
      p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, mirrors: [{ name: "hub", upstream: "docker.io", port: 5001 }] });
    },
  },
  {
    input: "existing k3s registries.yaml is not YAML",
    names: "k3sRegistriesFile",
    apply: (p) => p.write("client-config/k3s/registries.yaml", "mirrors: [\n", 0o644),
  },
  {
    input: "upstream password in the config file",
    names: "mirrors[0].password",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, mirrors: [{ name: "hub", upstream: "docker.io", port: 5001, username: "u", password: SECRET }] }),
  },
  {
    input: "password in the config file",
    names: "users[0].password",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, users: [{ name: "alice", password: SECRET }, ...VALID_CHANGE.users.slice(1)] }),
  },
  { input: "web UI without the proxy", names: "ui", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, proxy: false, authCacheSeconds: 0, ui: true }) },
  {
    input: "repository scope that is not a repository name",
    names: "users[1].repositories[0]",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, users: [{ name: "alice" }, { name: "bob", repositories: ["Team-A/**"] }, { name: "carol" }] }),
  },
  {
    input: "pull-only user without the proxy's login check",
    names: "users[1].role",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, authCacheSeconds: 0, users: [{ name: "alice" }, { name: "bob", role: "pull" }, { name: "carol" }] }),
  },
  // issue 20
  { input: "secrets file in flow style with a colon but no space: `{alice:<password>}`", names: "passwords", apply: (p) => p.write("registry.secrets.yml", `passwords: {alice:${SECRET}}\n`) },
  {
    input: "secrets file in flow style with a missing colon: `{alice: …, bob <password>}`",
    names: '"bob"',
    apply: (p) => p.write("registry.secrets.yml", `passwords: {alice: Ok-Pw-0001, bob ${SECRET}}\n`),
  },
  {
    input: "upstreamPasswords in flow style with a colon but no space",
    names: '"hub"',
    apply: (p) => {
      p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, mirrors: [{ name: "hub", upstream: "docker.io", port: 5001, username: "hubuser" }] });
      p.write("registry.secrets.yml", `passwords:\n  alice: ${SECRET}\nupstreamPasswords: {hub:${SECRET}}\n`);
    },
  },
  { input: "a number as a password in the secrets file", names: "quote it", apply: (p) => p.write("registry.secrets.yml", "passwords:\n  bob: 77310042\n") },
  { input: "a password as a YAML block scalar (`bob: |`), which keeps a line break", names: "passwords.bob", apply: (p) => p.write("registry.secrets.yml", `passwords:\n  bob: |\n    ${SECRET}\n`) },
  { input: "a control character in a password in the environment", names: "REGISTRY_PASSWORD_ALICE", apply: () => undefined, env: { REGISTRY_PASSWORD_ALICE: `${SECRET}\u0007` } },
  { input: "a user name starting with '#'", names: "users[3].name", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, users: [...VALID_CHANGE.users, { name: "#ops" }] }) },
  {
    input: "a number in generated-passwords.yml",
    names: 'entry "bob"',
    apply: (p) => p.write("assets/generated/registry/generated-passwords.yml", "bob: 77310042\n"),
  },
  { input: "storageHostPath: /", names: "storageHostPath", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, storageHostPath: "/" }) },
  {
    input: "storageHostPath: a folder with other files",
    names: "storageHostPath",
    apply: (p) => {
      p.write("data/notes.txt", "x", 0o644);
      p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, storageHostPath: path.join(p.dir, "data") });
    },
  },
  {
    input: "k3sRegistriesFile pointing at a folder",
    names: "k3sRegistriesFile",
    apply: (p) => {
      fs.mkdirSync(path.join(p.dir, "rancher"));
      p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, k3sRegistriesFile: "rancher" });
    },
  },
  { input: "failedLoginsScope without the proxy's login check", names: "failedLoginsScope", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, authCacheSeconds: 0, failedLoginsScope: "address-and-user" }) },
  {
    input: "upstream credentials in the mirror's upstreamUrl",
    names: "mirrors[0].upstreamUrl",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, mirrors: [{ name: "hub", upstream: "docker.io", port: 5001, upstreamUrl: `https://u:${SECRET}@registry-1.docker.io` }] }),
  },
  {
    input: "an S3 secret key in the config file (cluster mode)",
    names: "REGISTRY_S3_SECRET_KEY",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, cluster: { ...CLUSTER_SECTION, storage: { ...CLUSTER_SECTION.storage, secretKey: SECRET } } }),
    env: CLUSTER_KEYS,
  },
  { input: "cluster mode without the S3 keys in the environment", names: "REGISTRY_S3_ACCESS_KEY", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, cluster: CLUSTER_SECTION }) },
  {
    input: "retention by push time (keepNewest, untaggedDays) in cluster mode",
    names: "retention.rules[0].keepNewest",
    apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, cluster: CLUSTER_SECTION, retention: { rules: [{ repositories: "^a$", keepNewest: 1, untaggedDays: 7 }] } }),
    env: CLUSTER_KEYS,
  },
  { input: "registryInstances above 1 without the proxy", names: "registryInstances", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, proxy: false, registryInstances: 3 }) },
  { input: "authVerifierCpus of 0", names: "authVerifierCpus", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, authVerifierCpus: 0 }) },
  { input: "authVerifierCpus in cluster mode", names: "authVerifierCpus", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, cluster: CLUSTER_SECTION, authVerifierCpus: 2 }), env: CLUSTER_KEYS },
  { input: "loginVerificationsPerMinute without the login check", names: "loginVerificationsPerMinute", apply: (p) => p.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE, authCacheSeconds: 0, loginVerificationsPerMinute: 60 }) },
];

/** Inputs that are not refused but warned about once (`WARNING:` lines); the synth goes on. */
const WARNED_INPUTS: BadInput[] = [
  {
    input: "a password in the environment and another in the secrets file",
    names: "REGISTRY_PASSWORD_ALICE is used",
    apply: () => undefined,
    env: { REGISTRY_PASSWORD_ALICE: `${SECRET}-env` },
  },
  { input: "REGISTRY_PASSWORD_<X> for no configured user", names: "did you mean REGISTRY_PASSWORD_BOB", apply: () => undefined, env: { REGISTRY_PASSWORD_BBO: `${SECRET}-typo` } },
];

interface Row {
  readonly input: string;
  readonly exitCode: number;
  readonly message: string;
  readonly changed: string[];
}

describe("bad inputs through main(): refused, named, nothing written (issue #8, items 4-7)", () => {
  let baseline: string;
  const rows: Row[] = [];
  const warnedRows: Row[] = [];

  beforeAll(() => {
    baseline = fs.mkdtempSync(path.join(os.tmpdir(), "bad-inputs-baseline-"));
    const project = createProject(baseline);
    project.writeConfig(BASE_CONFIG);
    project.write("registry.secrets.yml", `passwords:\n  alice: ${SECRET}\n`);
    const first = run(project);
    if (first.exitCode !== 0) throw new Error(`baseline synth failed: ${first.stderr}`);
  });

  afterAll(() => {
    // A filtered run must not shrink the committed tables.
    if (rows.length !== BAD_INPUTS.length || warnedRows.length !== WARNED_INPUTS.length) return;
    const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, "<br>");
    const lines = [
      "# Bad inputs",
      "",
      "Generated by `__tests__/stacks/bad-inputs.test.ts` (do not edit by hand). Each input runs through",
      "the real loader and stack (`main()` in `main.ts`) in a temp project that synthesized once. Each case first",
      "makes a valid change (a second host name, a third user with a generated password), then adds",
      "the bad input; every file in the project (material, client files, cdktf.out) is hashed",
      "before and after. `<project>` stands for the temp project folder. The message is exactly what",
      "`cdktf synth` shows the user (besides the CLI's own lines); passwords never appear.",
      "",
      "| # | bad input | exit code | message | files unchanged |",
      "|---|---|---|---|---|",
      ...rows.map(
        (row, i) =>
          `| ${i + 1} | ${cell(row.input)} | ${row.exitCode} | ${cell(row.message)} | ${row.changed.length === 0 ? "yes" : `NO: ${cell(row.changed.join(", "))}`} |`,
      ),
      "",
      "## Warned, not refused",
      "",
      "Choices the stack makes for the user: the synth goes on (exit code 0) and says once what it",
      "ignored, as `WARNING:` lines on stderr, never with a password.",
      "",
      "| # | input | exit code | warning |",
      "|---|---|---|---|",
      ...warnedRows.map((row, i) => `| ${i + 1} | ${cell(row.input)} | ${row.exitCode} | ${cell(row.message)} |`),
      "",
    ];
    fs.writeFileSync(path.join(__dirname, "..", "..", "docs", "bad-inputs.md"), lines.join("\n"));
  });

  test.each(BAD_INPUTS.map((c) => [c.input, c] as const))("fails when %s, naming it, and changes no file", (_, badInput) => {
    // GIVEN a project that synthesized once, a valid change and the bad input
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bad-inputs-"));
    fs.cpSync(baseline, dir, { recursive: true });
    const project = createProject(dir);
    project.writeConfig({ ...BASE_CONFIG, ...VALID_CHANGE });
    badInput.apply(project);
    const before = hashTree(dir);
    // WHEN
    const result = run(project, badInput.env);
    // THEN
    const changed = changedFiles(before, hashTree(dir));
    const message = result.stderr.split(dir).join("<project>").replace(/the clock says [0-9TZ:.-]+;/, "the clock says <now>;");
    rows.push({ input: badInput.input, exitCode: result.exitCode, message, changed });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/^Invalid [^\n]+:\n {2}- /);
    expect(result.stderr).toContain(badInput.names);
    expect(result.stderr).not.toContain(SECRET.slice(0, 8));
    expect(result.stdout).toBe("");
    expect(changed).toEqual([]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test.each(WARNED_INPUTS.map((c) => [c.input, c] as const))("warns once when %s, naming it, and synthesizes", (_, warned) => {
    // GIVEN a project that synthesized once, with alice's password in the secrets file
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bad-inputs-"));
    fs.cpSync(baseline, dir, { recursive: true });
    const project = createProject(dir);
    warned.apply(project);
    // WHEN
    const result = run(project, warned.env);
    // THEN
    const message = result.stderr.split(dir).join("<project>");
    warnedRows.push({ input: warned.input, exitCode: result.exitCode, message, changed: [] });
    expect(result.exitCode).toBe(0);
    expect(result.stderr.split("\n")).toEqual([expect.stringMatching(/^WARNING: /)]);
    expect(result.stderr).toContain(warned.names);
    expect(result.stderr).not.toContain(SECRET.slice(0, 8));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("keeps generated-passwords.yml when a user's password now comes from the environment", () => {
    // GIVEN bob's password was generated by the baseline synth
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bad-inputs-"));
    fs.cpSync(baseline, dir, { recursive: true });
    const file = path.join(dir, "assets", "generated", "registry", "generated-passwords.yml");
    const before = fs.readFileSync(file, "utf8");
    // WHEN
    const result = run(createProject(dir), { REGISTRY_PASSWORD_BOB: "bob-from-env-0001" });
    // THEN
    expect(result.exitCode).toBe(0);
    expect(fs.readFileSync(file, "utf8")).toBe(before);
    expect(Object.keys(YAML.parse(before) as object)).toEqual(["bob"]);
  });

  test("warns, and synthesizes, when the secrets file is readable by others", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bad-inputs-"));
    fs.cpSync(baseline, dir, { recursive: true });
    fs.chmodSync(path.join(dir, "registry.secrets.yml"), 0o644);
    const result = run(createProject(dir));
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toBe(`WARNING: ${path.join(dir, "registry.secrets.yml")} is accessible by group or others (mode 0644); restrict it: chmod 600 ${path.join(dir, "registry.secrets.yml")}`);
  });

  test("fails as a process (npx ts-node main.ts, what cdktf runs) with exit code 1, the problem list once and no stack trace", () => {
    // GIVEN
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bad-inputs-process-"));
    createProject(dir).writeConfig({ ...BASE_CONFIG, registryImage: "registry@sha256:deadbeef", dockerHost: "ssh://" });
    // WHEN
    const root = path.join(__dirname, "..", "..");
    const child = spawnSync(path.join(root, "node_modules", ".bin", "ts-node"), [path.join(root, "main.ts")], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      encoding: "utf8",
      timeout: 90_000,
    });
    // THEN
    expect(child.status).toBe(1);
    expect(child.stdout).toBe("");
    expect(child.stderr).toBe(
      [
        `Invalid configuration in ${path.join(dir, "registry-stack.yml")}:`,
        '  - dockerHost: "ssh://" has no host after ssh://; use ssh://user@host or ssh://user@host:port',
        '  - registryImage: "registry@sha256:deadbeef" has a sha256 digest of 8 hex digits, not 64; copy the whole digest (docker images --digests)',
        "",
      ].join("\n"),
    );
    // cdktf's App and TerraformStack create empty output folders when constructed; no file appears.
    expect(Object.keys(hashTree(dir))).toEqual(["registry-stack.yml"]);
  }, 120_000);
});
