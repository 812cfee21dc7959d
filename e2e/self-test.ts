import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { DockerApi } from "./docker-api";
import { Engine, startEngine } from "./engine";
import { ensureRootfsTarball, importImages, NGINX_IMAGE, REGISTRY_IMAGE } from "./images";
import { Json, JsonObject, planStack, realize, RealizeError, Realization } from "./realizer";
import { run } from "./proc";
import { singleFileTar } from "./tar";

/**
 * Self-test of the e2e machinery (engine, images, realizer) on a real private engine:
 *   npx ts-node e2e/self-test.ts
 * Prints one line per check and a closing "N passed, N failed"; exits non-zero on failure.
 */

const FIXTURES = path.join(__dirname, "fixtures");
let print = (line: string) => console.log(line);
const log = (line: string) => print(`  . ${line}`);

/** Redirects the output of the self-test (the e2e suite prefixes its lines). */
export function setSelfTestOutput(fn: (line: string) => void): void {
  print = fn;
}

export interface Result {
  name: string;
  ok: boolean;
  error?: string;
}

const results: Result[] = [];
const timings: string[] = [];

async function check(name: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
    results.push({ name, ok: true });
    print(`ok - ${name}`);
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    results.push({ name, ok: false, error });
    print(`not ok - ${name}\n${error.replace(/^/gm, "    ")}`);
  }
}

async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const value = await fn();
  timings.push(`${label}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return value;
}

function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function assertEqual<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

async function expectRealizeError(fn: () => unknown, patterns: RegExp[]): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert(err instanceof RealizeError, `expected a RealizeError, got ${String(err)}`);
    for (const p of patterns) assert(p.test(err.message), `error ${JSON.stringify(err.message)} does not match ${p}`);
    return;
  }
  throw new Error("expected a RealizeError, but nothing was thrown");
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Lays a fixture out like cdktf.out/stacks/<name>/ (with its assets) and returns the cdk.tf.json path. */
function stage(workDir: string, name: string, doc: Json): string {
  const stackDir = path.join(workDir, "cdktf.out", "stacks", name);
  fs.mkdirSync(stackDir, { recursive: true });
  fs.cpSync(path.join(FIXTURES, "assets"), path.join(stackDir, "assets"), { recursive: true });
  const file = path.join(stackDir, "cdk.tf.json");
  fs.writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}

function readFixture(name: string): JsonObject {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, name), "utf8")) as JsonObject;
}

function curl(args: string[]) {
  return run("curl", ["-sS", "-m", "10", ...args], { timeoutMs: 15_000 });
}

async function exists(api: DockerApi, kind: "containers" | "networks" | "volumes", name: string): Promise<boolean> {
  const suffix = kind === "containers" ? "/json" : "";
  return (await api.find(`/${kind}/${encodeURIComponent(name)}${suffix}`)) !== undefined;
}

async function waitExit(api: DockerApi, id: string): Promise<void> {
  await api.call({ method: "POST", path: `/containers/${id}/wait`, timeoutMs: 30_000 });
}

// ---------------------------------------------------------------------------------------------

async function uploadSemantics(api: DockerApi): Promise<void> {
  const created = await api.call<{ Id: string }>({
    method: "POST",
    path: "/containers/create?name=rse2e-probe-upload",
    json: {
      Image: REGISTRY_IMAGE,
      Entrypoint: ["stat", "-c", "%u:%g %a %n", "/probe/a/b/file", "/probe/a/b", "/probe/a"],
      HostConfig: { NetworkMode: "none" },
    },
  });
  try {
    await api.call({
      method: "PUT",
      path: `/containers/${created.Id}/archive?path=%2F&noOverwriteDirNonDir=true`,
      body: singleFileTar("/probe/a/b/file", Buffer.from("x"), 0o600),
      contentType: "application/x-tar",
    });
    await api.call({ method: "POST", path: `/containers/${created.Id}/start` });
    await waitExit(api, created.Id);
    const lines = (await api.logs(created.Id)).trim().split("\n");
    assertEqual(lines, ["0:0 600 /probe/a/b/file", "0:0 755 /probe/a/b", "0:0 755 /probe/a"], "stat of uploaded file and created parents");
  } finally {
    await api.call({ method: "DELETE", path: `/containers/${created.Id}?force=1` });
  }
}

async function readOnlyRootfsRefusesUploads(api: DockerApi): Promise<void> {
  const created = await api.call<{ Id: string }>({
    method: "POST",
    path: "/containers/create?name=rse2e-probe-readonly",
    json: {
      Image: REGISTRY_IMAGE,
      HostConfig: { NetworkMode: "none", ReadonlyRootfs: true, Tmpfs: { "/tmp": "" } },
    },
  });
  try {
    let refused: string | undefined;
    try {
      await api.call({
        method: "PUT",
        path: `/containers/${created.Id}/archive?path=%2F&noOverwriteDirNonDir=true`,
        body: singleFileTar("/tmp/file", Buffer.from("x"), 0o644),
        contentType: "application/x-tar",
      });
    } catch (err) {
      refused = (err as Error).message;
    }
    assert(refused !== undefined, "upload into a read_only container (even below a tmpfs) was accepted");
    assert(/read-only/.test(refused), `unexpected refusal: ${refused}`);
  } finally {
    await api.call({ method: "DELETE", path: `/containers/${created.Id}?force=1` });
  }
}

async function internalOnlyPortIsUnreachable(api: DockerApi): Promise<void> {
  const port = await freePort();
  const netw = await api.call<{ Id: string }>({
    method: "POST",
    path: "/networks/create",
    json: { Name: "rse2e-probe-internal", Internal: true, CheckDuplicate: true },
  });
  let id: string | undefined;
  try {
    const created = await api.call<{ Id: string }>({
      method: "POST",
      path: "/containers/create?name=rse2e-probe-internal-web",
      json: {
        Image: NGINX_IMAGE,
        Entrypoint: ["/bin/busybox", "httpd", "-f", "-p", "8000", "-h", "/etc"],
        ExposedPorts: { "8000/tcp": {} },
        HostConfig: { NetworkMode: "rse2e-probe-internal", PortBindings: { "8000/tcp": [{ HostIp: "127.0.0.1", HostPort: String(port) }] } },
      },
    });
    id = created.Id;
    await api.call({ method: "POST", path: `/containers/${id}/start` });
    const probe = await run("curl", ["-sS", "-m", "3", "-o", "/dev/null", `http://127.0.0.1:${port}/hostname`], { timeoutMs: 10_000 }).then(
      () => "reachable",
      () => "unreachable",
    );
    assertEqual(probe, "unreachable", `127.0.0.1:${port} published from an internal-only network`);
  } finally {
    if (id) await api.call({ method: "DELETE", path: `/containers/${id}?force=1` });
    await api.call({ method: "DELETE", path: `/networks/${netw.Id}` });
  }
}

async function refusals(workDir: string, api: DockerApi): Promise<void> {
  const unsupported = stage(workDir, "unsupported", readFixture("unsupported.cdk.tf.json"));
  await expectRealizeError(() => realize(unsupported, { api, log }), [/docker_container\.web_22222222/, /"gpus"/]);
  assert(!(await exists(api, "networks", "rse2e-unsupported")), "the network was created although the stack was refused");

  const base = (container: JsonObject, extra: JsonObject = {}): JsonObject => ({
    resource: {
      docker_network: { n: { name: "rse2e-n" } },
      docker_container: {
        c: { name: "rse2e-c", image: REGISTRY_IMAGE, networks_advanced: [{ name: "${docker_network.n.name}" }], ...container },
      },
      ...extra,
    },
  });
  const cases: [string, Json, RegExp[]][] = [
    ["function call", base({ command: ['${file("config.yml")}'] }), [/docker_container\.c command\[0\]/, /unsupported expression/]],
    ["variable", base({ user: "${var.user}" }), [/docker_container\.c user/, /unsupported expression/]],
    ["unknown attribute of a reference", base({ hostname: "${docker_network.n.ipam_config}" }), [/docker_container\.c hostname/, /ipam_config/]],
    ["indexing", base({ hostname: "${docker_network.n.name[0]}" }), [/docker_container\.c hostname/, /unsupported expression/]],
    ["template directive", base({ hostname: "%{ if true }x%{ endif }" }), [/docker_container\.c hostname/, /template directives/]],
    ["count", base({ count: 2 }), [/docker_container\.c/, /"count"/]],
    ["dynamic block", base({ dynamic: { ports: { for_each: [] } } }), [/docker_container\.c dynamic/]],
    ["unknown block attribute", base({ ports: [{ internal: 1, publish_mode: "host" }] }), [/docker_container\.c/, /ports\[0\]\.publish_mode/]],
    ["non-default value", base({ privileged: true }), [/docker_container\.c privileged/]],
    ["unknown resource type", base({}, { docker_service: { s: { name: "x" } } }), [/docker_service/]],
    ["data source", { data: { docker_network: { d: { name: "x" } } } }, [/"data"/]],
  ];
  for (const [label, doc, patterns] of cases) {
    const file = stage(workDir, "refusal", doc);
    await expectRealizeError(() => planStack(file), patterns).catch((err: Error) => {
      throw new Error(`${label}: ${err.message}`);
    });
  }
}

async function smokeStack(workDir: string, engine: Engine): Promise<void> {
  const api = engine.api;
  const port = await freePort();
  const doc = readFixture("smoke.cdk.tf.json");
  const resources = doc["resource"] as JsonObject;
  const registry = (resources["docker_container"] as JsonObject)["registry_C0FFEE01"] as JsonObject;
  (registry["ports"] as JsonObject[])[0]["external"] = port;
  ((doc["output"] as JsonObject)["registry_url"] as JsonObject)["value"] = `http://127.0.0.1:${port}`;
  const file = stage(workDir, "smoke", doc);
  const stackDir = path.dirname(file);
  const url = `http://127.0.0.1:${port}`;
  const blob = Buffer.from("e2e blob that must survive a redeploy\n");
  const digest = `sha256:${crypto.createHash("sha256").update(blob).digest("hex")}`;

  let realization: Realization | undefined;
  try {
    realization = await timed("realize smoke stack (incl. wait for healthy)", () => realize(file, { api, log }));
    const r = realization;

    assertEqual(
      r.created.map((c) => c.address),
      [
        "docker_network.backend_1A2B3C4D",
        "docker_network.edge_5E6F7A8B",
        "docker_volume.data_9C0D1E2F",
        "docker_image.registry_image_3A4B5C6D",
        "docker_container.registry_C0FFEE01",
        "local_file.client_note_7D8E9F00",
      ],
      "creation order",
    );
    assertEqual(r.preventDestroy, ["docker_volume.data_9C0D1E2F"], "prevent_destroy recorded");
    assertEqual((await curl(["-f", `${url}/v2/`])).stdout.trim(), "{}", "GET /v2/");
    assertEqual(r.outputs(), { registry_url: url, registry_container: "rse2e-smoke-registry" }, "outputs");

    const stat = await engine.docker([
      "exec",
      "rse2e-smoke-registry",
      "stat",
      "-c",
      "%u:%g %a %n",
      "/etc/registry-stack/config.yml",
      "/etc/registry-stack/secrets/token",
      "/etc/registry-stack/secrets",
      "/usr/local/bin/probe",
    ]);
    assertEqual(
      stat.stdout.trim().split("\n"),
      [
        "0:0 644 /etc/registry-stack/config.yml",
        "0:0 600 /etc/registry-stack/secrets/token",
        "0:0 755 /etc/registry-stack/secrets",
        "0:0 744 /usr/local/bin/probe",
      ],
      "uploaded files",
    );
    assertEqual((await engine.docker(["exec", "rse2e-smoke-registry", "/usr/local/bin/probe"])).stdout, "probe\n", "executable upload runs");

    const info = await api.call<{
      State: { Health?: { Status: string } };
      NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[]>; Networks: Record<string, { Aliases: string[] | null }> };
      HostConfig: { Memory: number; CapDrop: string[]; ReadonlyRootfs: boolean };
    }>({ method: "GET", path: "/containers/rse2e-smoke-registry/json" });
    assertEqual(info.State.Health?.Status, "healthy", "health (wget healthcheck)");
    assertEqual(info.NetworkSettings.Ports["5000/tcp"], [{ HostIp: "127.0.0.1", HostPort: String(port) }], "published port");
    assertEqual(Object.keys(info.NetworkSettings.Networks).sort(), ["rse2e-smoke-backend", "rse2e-smoke-edge"], "networks");
    assert((info.NetworkSettings.Networks["rse2e-smoke-backend"].Aliases ?? []).includes("registry"), "alias on backend");
    assertEqual(info.HostConfig.Memory, 256 * 1024 * 1024, "memory");
    const backend = await api.call<{ Internal: boolean }>({ method: "GET", path: "/networks/rse2e-smoke-backend" });
    assertEqual(backend.Internal, true, "backend network internal");

    const note = path.join(stackDir, "client-config", "registry.txt");
    const id = r.attribute("docker_container.registry_C0FFEE01", "id");
    assertEqual(fs.readFileSync(note, "utf8"), `registry container rse2e-smoke-registry (id ${id}) costs \${nothing}\n`, "local_file content");
    assertEqual((fs.statSync(note).mode & 0o777).toString(8), "640", "local_file mode");
    assertEqual((fs.statSync(path.dirname(note)).mode & 0o777).toString(8), "750", "local_file directory mode");

    await pushBlob(url, "e2e/smoke", blob, digest);

    await r.destroy({ keepVolumes: true });
    realization = undefined;
    assert(!(await exists(api, "containers", "rse2e-smoke-registry")), "container left after destroy");
    assert(!(await exists(api, "networks", "rse2e-smoke-edge")), "network left after destroy");
    assert(await exists(api, "volumes", "rse2e-smoke-data"), "volume removed despite keepVolumes");
    assert(!fs.existsSync(note), "local_file left after destroy");

    realization = await timed("redeploy smoke stack", () => realize(file, { api, log }));
    assertEqual(realization.created.find((c) => c.type === "docker_volume")?.reused, true, "volume reused on redeploy");
    const head = await curl(["-f", "-I", "-o", "/dev/null", "-w", "%{http_code}", `${url}/v2/e2e/smoke/blobs/${digest}`]);
    assertEqual(head.stdout, "200", "blob still there after redeploy");

    await realization.destroy();
    realization = undefined;
    assert(!(await exists(api, "volumes", "rse2e-smoke-data")), "volume left after full destroy");
  } finally {
    await realization?.destroy();
  }
}

/** POST to start an upload session, PUT the blob with its digest (distribution 2.8 ignores a POST body). */
async function pushBlob(url: string, repo: string, blob: Buffer, digest: string): Promise<void> {
  const started = await curl(["-f", "-X", "POST", "-D", "-", "-o", "/dev/null", `${url}/v2/${repo}/blobs/uploads/`]);
  const location = /^location:\s*(\S+)/im.exec(started.stdout)?.[1];
  assert(location !== undefined, `no Location in upload start:\n${started.stdout}`);
  const target = new URL(location, url);
  target.searchParams.set("digest", digest);
  const put = await run(
    "curl",
    ["-fsS", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "Content-Type: application/octet-stream",
      "--data-binary", "@-", target.toString()],
    { timeoutMs: 15_000, input: blob },
  );
  assertEqual(put.stdout, "201", "blob upload");
}

async function exitingContainerRollsBack(workDir: string, api: DockerApi): Promise<void> {
  const file = stage(workDir, "exits", {
    resource: {
      docker_network: { n: { name: "rse2e-exits" } },
      docker_container: {
        c: {
          name: "rse2e-exits-c",
          image: REGISTRY_IMAGE,
          entrypoint: ["sh", "-c", "echo giving up >&2; exit 3"],
          networks_advanced: [{ name: "${docker_network.n.name}" }],
        },
      },
    },
  });
  await expectRealizeError(() => realize(file, { api, log }), [/docker_container\.c/, /exited immediately \(exit 3\)/, /giving up/]);
  assert(!(await exists(api, "containers", "rse2e-exits-c")), "container left after failed realize");
  assert(!(await exists(api, "networks", "rse2e-exits")), "network left after failed realize");
}

/**
 * `attach` as kreuzwerker/docker 3.6.2: realize waits until the container has exited, keeps a
 * non-zero exit as `exit_code` without failing; with `must_run` the exited container is deleted
 * and realize fails.
 */
async function attachSemantics(workDir: string, api: DockerApi): Promise<void> {
  const doc = (mustRun: boolean) => ({
    resource: {
      docker_container: {
        c: {
          name: "rse2e-attach-c",
          image: REGISTRY_IMAGE,
          network_mode: "none",
          attach: true,
          must_run: mustRun,
          entrypoint: ["sh", "-c", "sleep 1; exit 4"],
        },
      },
    },
  });
  const started = Date.now();
  const realization = await realize(stage(workDir, "attach", doc(false)), { api, log });
  try {
    const elapsed = Date.now() - started;
    assert(elapsed >= 1000, `realize returned after ${elapsed} ms, before the attached container (sleep 1) exited`);
    const state = (await api.call<{ State: { Status: string; ExitCode: number } }>({ method: "GET", path: "/containers/rse2e-attach-c/json" })).State;
    assert(state.Status === "exited" && state.ExitCode === 4, `state after realize: ${JSON.stringify(state)}`);
    const exitCode = realization.attribute("docker_container.c", "exit_code");
    assert(exitCode === "4", `exit_code attribute: ${exitCode}`);
  } finally {
    await realization.destroy();
  }
  await expectRealizeError(() => realize(stage(workDir, "attach-must-run", doc(true)), { api, log }), [/docker_container\.c/, /failed to be in running state/, /exit 4/]);
  assert(!(await exists(api, "containers", "rse2e-attach-c")), "container left after attach with must_run");
}

/**
 * The machinery checks on an engine that already has both e2e images (see importImages).
 * Creates only rse2e-probe-*, rse2e-smoke-*, rse2e-exits-*, rse2e-attach-* and rse2e-* fixture objects and removes them again.
 */
export async function selfTestOnEngine(engine: Engine): Promise<Result[]> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "rse2e-self-"));
  const before = results.length;
  try {
    await check("upload before start: creates parent dirs (0755), keeps mode, root-owned", () => uploadSemantics(engine.api));
    await check("upload into a read_only container is refused by the engine", () => readOnlyRootfsRefusesUploads(engine.api));
    await check("a port published from an internal-only network is unreachable", () => internalOnlyPortIsUnreachable(engine.api));
    await check("unsupported constructs are refused with address and attribute, before creating anything", () =>
      refusals(workDir, engine.api),
    );
    await check("smoke stack: realize, /v2/ answers {}, uploads, health, outputs, local_file, redeploy keeps data", () =>
      smokeStack(workDir, engine),
    );
    await check("a container that exits at once fails realize and everything is rolled back", () =>
      exitingContainerRollsBack(workDir, engine.api),
    );
    await check("attach: realize waits for the exit, keeps a non-zero exit_code; with must_run the container is deleted and realize fails", () =>
      attachSemantics(workDir, engine.api),
    );
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
  return results.slice(before);
}

/** Runs every check on a fresh private engine; resolves to the process exit code. */
export async function runSelfTest(): Promise<number> {
  let engine: Engine | undefined;
  try {
    engine = await timed("engine start", () => startEngine({ log }));
    const started = engine;
    const tarball = await timed("rootfs tarball (build or cache)", () => ensureRootfsTarball(log));
    await timed("import both images", () => importImages(started, tarball, log));
    await selfTestOnEngine(started);
  } catch (err) {
    results.push({ name: "setup", ok: false, error: (err as Error).message });
    console.log(`not ok - setup\n    ${(err as Error).message}`);
  } finally {
    if (engine) {
      const e = engine;
      await timed("engine stop", () => e.stop());
    }
  }
  console.log(`timings:\n${timings.map((t) => `  ${t}`).join("\n")}`);
  const failed = results.filter((r) => !r.ok).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

if (require.main === module) {
  runSelfTest().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

