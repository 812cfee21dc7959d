import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { DEFAULT_AUTH_CACHE_SECONDS, defaultLoginVerificationsPerMinute } from "../config/schema";
import { verificationQueueLength } from "../config/rules";
import {
  curl,
  DockerClient,
  freePort,
  HttpResult,
  makeOtherCa,
  sClient,
  Skopeo,
  withPermissiveTlsServer,
  writeLayeredContext,
  writeRandomFile,
} from "./clients";
import { Deployment, readStack, synthAndDeploy, SynthResult, TestUser, treeHashes, uploads } from "./deployment";
import { Engine } from "./engine";
import { assert, assertEqual, assertMatch, Check, clip, elapsedSeconds, say, Timings, Workspace } from "./harness";
import { NGINX_IMAGE, REGISTRY_IMAGE, REGISTRY_V3_IMAGE } from "./images";
import { pollUntil } from "./docker-api";
import {
  anonymousChecks,
  HardeningTarget,
  loginLimitChecks,
  manyAddressesLoginChecks,
  reachabilityChecks,
  readOnlyRootChecks,
  LegacyRootData,
  migrationChecks,
  writeLegacyRootData,
  restartChecks,
} from "./hardening";
import { CommandError, run } from "./proc";
import { describePlan, JsonObject, PlanSummary, touched } from "./terraform-plan";
import { TerraformTools } from "./terraform-tools";

/**
 * The checks of issue #3, grouped into four independent deployments that run at the same time
 * on one private engine (different name prefixes, ports, temp dirs and DOCKER_CONFIGs):
 *   tls-proxy  (default topology)        checks 1, 2, 3, 4a, 5, 6, 8
 *   auth-cache (default: 60 s cache)     check 4b
 *   direct-tls (proxy: false)            check 7a
 *   plain-http (tls.mode: none)          check 7b
 */

export interface SuiteContext {
  engine: Engine;
  tools: TerraformTools;
  ws: Workspace;
  timings: Timings;
}

export interface SuiteChecks {
  pushPull: Check;
  largeLayer: Check;
  skopeoTls: Check;
  authRegistry: Check;
  authCache: Check;
  tls: Check;
  persistence: Check;
  directTls: Check;
  plainHttp: Check;
  idempotence: Check;
  reachability: Check;
  readOnlyRoot: Check;
  restarts: Check;
  loginLimit: Check;
  manyAddresses: Check;
  redirect: Check;
  uiHeaders: Check;
  uiBrowser: Check;
  uiScale: Check;
  blobReads: Check;
}

const MIB = 1024 * 1024;
export const MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json";

export interface Manifest {
  mediaType: string;
  config: { digest: string; size: number };
  layers: { digest: string; size: number; mediaType: string }[];
}

/** Base config every scenario shares: the e2e images, loopback publishing, files in the temp dir. */
export function baseConfig(
  dir: string,
  namePrefix: string,
  port: number,
  users: TestUser[],
): JsonObject & { materialDirectory: string; clientConfigDirectory: string } {
  return {
    namePrefix,
    registryImage: REGISTRY_V3_IMAGE,
    proxyImage: NGINX_IMAGE,
    publishAddress: "127.0.0.1",
    publicPort: port,
    materialDirectory: path.join(dir, "material"),
    clientConfigDirectory: path.join(dir, "client-config"),
    users: users.map((u) => ({ name: u.name })),
  };
}

function readGeneratedPasswords(materialDir: string): Record<string, string> {
  const file = path.join(materialDir, "generated-passwords.yml");
  const parsed = parse(fs.readFileSync(file, "utf8")) as unknown;
  assert(parsed !== null && typeof parsed === "object", `${file}: not a YAML map`);
  return parsed as Record<string, string>;
}

/** Users with every password known to the test (generated ones read from the material dir). */
function withGeneratedPasswords(users: TestUser[], materialDir: string): Required<TestUser>[] {
  const generated = users.some((u) => u.password === undefined) ? readGeneratedPasswords(materialDir) : {};
  return users.map((u) => {
    const password = u.password ?? generated[u.name];
    assert(typeof password === "string" && password.length >= 16, `no generated password for ${u.name} in generated-passwords.yml`);
    return { name: u.name, password };
  });
}

async function getManifest(url: string, cacert: string | undefined, creds: string, scratchDir: string): Promise<{ res: HttpResult; manifest: Manifest }> {
  const res = await curl({ url, cacert, credentials: creds, headers: [`Accept: ${MANIFEST_V2}`], scratchDir });
  assertEqual(res.status, 200, `GET ${url}`);
  return { res, manifest: JSON.parse(res.body) as Manifest };
}

/** Builds a small unique image (FROM scratch, random files) so a pull really downloads. */
export async function buildUniqueImage(docker: DockerClient, dir: string, tag: string): Promise<string> {
  writeLayeredContext(dir, "scratch", [
    { files: 2, bytesEach: 64 * 1024 },
    { files: 1, bytesEach: 128 * 1024 },
  ]);
  return docker.build(dir, tag);
}

/** push → rmi every tag → pull → same manifest digest and image ID. Returns the digest. */
export async function roundTrip(check: Check, docker: DockerClient, localTag: string, remoteRef: string): Promise<string> {
  await docker.tag(localTag, remoteRef);
  const before = await docker.inspect(remoteRef);
  const pushed = await docker.push(remoteRef);
  check.note(`docker push ${remoteRef} → ${pushed.digest}`);
  const repo = remoteRef.replace(/:[^:/]+$/, "");
  const afterPush = await docker.inspect(remoteRef);
  assert(afterPush.RepoDigests.includes(`${repo}@${pushed.digest}`), `RepoDigests after push ${JSON.stringify(afterPush.RepoDigests)} lack ${repo}@${pushed.digest}`);
  await docker.rmi(remoteRef, localTag);
  assert(!(await docker.imageExists(before.Id)), `image ${before.Id} still present after docker rmi`);
  const pulled = await docker.pull(remoteRef);
  assertMatch(pulled.output, /Pull complete|Downloaded newer image/, "docker pull downloaded layers");
  const after = await docker.inspect(remoteRef);
  assertEqual(pulled.digest, pushed.digest, "manifest digest of pull vs push");
  assertEqual(after.Id, before.Id, "image ID (config digest) after pull vs before push");
  assert(after.RepoDigests.includes(`${repo}@${pushed.digest}`), `RepoDigests after pull ${JSON.stringify(after.RepoDigests)} lack ${repo}@${pushed.digest}`);
  check.note(`docker rmi + docker pull ${remoteRef} → ${pulled.digest} (same digest, same image ID ${after.Id.slice(0, 19)}…)`);
  return pushed.digest;
}

async function expectLoginRefused(docker: DockerClient, endpoint: string, user: string, password: string): Promise<string> {
  try {
    await docker.login(endpoint, user, password);
  } catch (err) {
    assert(err instanceof CommandError, `unexpected error: ${String(err)}`);
    assertMatch(err.stderr, /unauthorized|401/i, `docker login ${user} refusal`);
    return clip(err.stderr.trim().split("\n").slice(-1)[0], 200);
  }
  throw new Error(`docker login ${endpoint} as ${user} succeeded but must be refused`);
}

// ---------------------------------------------------------------------------------------------
// Check 4: authentication (run for the default topology and for the nginx auth cache)

interface AuthTarget {
  tag: string;
  endpoint: string;
  /** https://127.0.0.1:<port> */
  baseUrl: string;
  cacert: string;
  materialDir: string;
  users: Required<TestUser>[];
  scratch: string;
  docker: DockerClient;
  /** Repositories pushed earlier in this deployment that the catalog must list too. */
  expectRepos: () => string[];
}

async function authBeforeRemoval(check: Check, t: AuthTarget): Promise<void> {
  const [first] = t.users;
  const creds = `${first.name}:${first.password}`;
  const repo = "e2e/auth-probe";
  await t.docker.login(t.endpoint, first.name, first.password);
  const local = `rse2e-local/${t.tag}-auth-probe:v1`;
  await buildUniqueImage(t.docker, fs.mkdtempSync(path.join(t.scratch, "auth-img-")), local);
  await t.docker.tag(local, `${t.endpoint}/${repo}:v1`);
  const pushed = await t.docker.push(`${t.endpoint}/${repo}:v1`);
  check.note(`pushed ${t.endpoint}/${repo}:v1 as ${first.name} (${pushed.digest})`);

  const { manifest } = await getManifest(`${t.baseUrl}/v2/${repo}/manifests/v1`, t.cacert, creds, t.scratch);
  const blob = manifest.layers[0].digest;

  const catalog = await curl({ url: `${t.baseUrl}/v2/_catalog`, cacert: t.cacert, credentials: creds, scratchDir: t.scratch });
  assertEqual(catalog.status, 200, "GET /v2/_catalog with credentials");
  const repos = (JSON.parse(catalog.body) as { repositories: string[] }).repositories;
  for (const r of [repo, ...t.expectRepos()]) assert(repos.includes(r), `catalog ${JSON.stringify(repos)} lacks ${r}`);
  const tags = await curl({ url: `${t.baseUrl}/v2/${repo}/tags/list`, cacert: t.cacert, credentials: creds, scratchDir: t.scratch });
  assertEqual(tags.status, 200, "GET tags/list with credentials");
  assertEqual(JSON.parse(tags.body), { name: repo, tags: ["v1"] }, "tags/list");
  check.note(`curl --cacert: /v2/_catalog → ${JSON.stringify(repos)}; /v2/${repo}/tags/list → ${tags.body.trim()}`);

  const urls = ["/v2/", "/v2/_catalog", `/v2/${repo}/manifests/v1`, `/v2/${repo}/blobs/${blob}`];
  const accept = [`Accept: ${MANIFEST_V2}`];
  const seen: string[] = [];
  for (const u of urls) {
    const url = `${t.baseUrl}${u}`;
    const anonymous = await curl({ url, cacert: t.cacert, headers: accept, scratchDir: t.scratch });
    assertEqual(anonymous.status, 401, `GET ${u} without credentials`);
    assertMatch(anonymous.headers["www-authenticate"] ?? "", /^Basic realm="Registry"/, `WWW-Authenticate of anonymous GET ${u}`);
    assertEqual(anonymous.headers["docker-distribution-api-version"], "registry/2.0", `Docker-Distribution-Api-Version of anonymous GET ${u}`);
    const wrong = await curl({ url, cacert: t.cacert, credentials: `${first.name}:wrong-${first.password}`, headers: accept, scratchDir: t.scratch });
    assertEqual(wrong.status, 401, `GET ${u} with a wrong password`);
    assertMatch(wrong.headers["www-authenticate"] ?? "", /^Basic realm="Registry"/, `WWW-Authenticate of wrong-password GET ${u}`);
    const unknown = await curl({ url, cacert: t.cacert, credentials: `mallory:${first.password}`, headers: accept, scratchDir: t.scratch });
    assertEqual(unknown.status, 401, `GET ${u} as an unknown user`);
    const right = await curl({ url, cacert: t.cacert, credentials: creds, headers: accept, scratchDir: t.scratch });
    assertEqual(right.status, 200, `GET ${u} with ${first.name}'s password`);
    // A cached success must not let a wrong password in afterwards.
    const wrongAgain = await curl({ url, cacert: t.cacert, credentials: `${first.name}:wrong-${first.password}`, headers: accept, scratchDir: t.scratch });
    assertEqual(wrongAgain.status, 401, `GET ${u} with a wrong password right after a successful one`);
    seen.push(`${u.replace(/sha256:[0-9a-f]{64}/, "sha256:…")} none=401 wrong=401 unknown-user=401 right=200 wrong-after-right=401`);
  }
  // The web UI's header (issue #13) only drops the challenge, it lets nothing in.
  const ui = ["X-Registry-UI: 1"];
  const uiAnonymous = await curl({ url: `${t.baseUrl}/v2/`, cacert: t.cacert, headers: ui, scratchDir: t.scratch });
  const uiWrong = await curl({ url: `${t.baseUrl}/v2/`, cacert: t.cacert, credentials: `${first.name}:wrong-${first.password}`, headers: ui, scratchDir: t.scratch });
  for (const [label, res] of [["none", uiAnonymous], ["wrong", uiWrong]] as const) {
    assertEqual(res.status, 401, `GET /v2/ with X-Registry-UI and credentials ${label}`);
    assertEqual(res.headers["www-authenticate"], undefined, `WWW-Authenticate with X-Registry-UI (credentials ${label})`);
  }
  check.note(`401 + WWW-Authenticate: ${"Basic realm=\"Registry\""} + Docker-Distribution-Api-Version: registry/2.0 on: ${seen.join("; ")}; with X-Registry-UI (web UI): 401 without the challenge`);

  const loginDocker = new DockerClient(t.docker.engine, fs.mkdtempSync(path.join(t.scratch, "docker-users-")));
  for (const u of t.users) {
    const out = await loginDocker.login(t.endpoint, u.name, u.password);
    assertMatch(out, /Login Succeeded/, `docker login ${u.name}`);
  }
  check.note(`docker login succeeded for every configured user: ${t.users.map((u) => u.name).join(", ")}`);
}

async function authAfterRemoval(check: Check, t: AuthTarget, removed: Required<TestUser>, generatedBefore: Record<string, string>): Promise<void> {
  const docker = new DockerClient(t.docker.engine, fs.mkdtempSync(path.join(t.scratch, "docker-after-")));
  const refusal = await expectLoginRefused(docker, t.endpoint, removed.name, removed.password);
  const curlRemoved = await curl({ url: `${t.baseUrl}/v2/`, cacert: t.cacert, credentials: `${removed.name}:${removed.password}`, scratchDir: t.scratch });
  assertEqual(curlRemoved.status, 401, `GET /v2/ as removed user ${removed.name}`);
  check.note(`after redeploy without ${removed.name}: docker login refused (${refusal}); curl /v2/ → 401`);
  const generatedAfter = readGeneratedPasswords(t.materialDir);
  for (const [name, pw] of Object.entries(generatedBefore)) {
    if (name !== removed.name) assertEqual(generatedAfter[name], pw, `generated password of ${name} kept across the redeploy`);
  }
  for (const u of t.users) {
    const out = await docker.login(t.endpoint, u.name, u.password);
    assertMatch(out, /Login Succeeded/, `docker login ${u.name} after the redeploy`);
  }
  check.note(`remaining users still log in: ${t.users.map((u) => u.name).join(", ")} (generated passwords unchanged)`);
}

// ---------------------------------------------------------------------------------------------
// Scenario: default topology (nginx + TLS, registry-side auth)

export async function tlsProxyScenario(ctx: SuiteContext, c: SuiteChecks): Promise<void> {
  const tag = "tls-proxy";
  const mine = [c.pushPull, c.largeLayer, c.skopeoTls, c.authRegistry, c.tls, c.persistence];
  const dir = ctx.ws.dir(tag);
  const scratch = ctx.ws.dir(`${tag}-scratch`);
  const port = await freePort();
  const users: TestUser[] = [
    { name: "alice", password: "alice-e2e-password-1" },
    { name: "bob", password: "bob e2e password with spaces" },
    { name: "carol" }, // generated
    { name: "dave", password: "dave-e2e-password-4" },
  ];
  const config = {
    ...baseConfig(dir, "e2e-tls", port, users),
    hostnames: ["localhost", "store.example.test"],
    ipAddresses: ["127.0.0.1"],
    logLevel: "info",
    // Registry-side htpasswd (check 4a); the auth-cache deployment covers the default (4b).
    authCacheSeconds: 0,
    httpRedirectPort: await freePort(),
  };
  const endpoint = `localhost:${port}`;
  const baseUrl = `https://127.0.0.1:${port}`;
  const clientDir = config.clientConfigDirectory;
  const materialDir = config.materialDirectory;
  const cacert = path.join(clientDir, "certs.d", endpoint, "ca.crt");
  const dep = new Deployment(ctx, tag, dir);

  try {
    const s1 = await ctx.timings.time(`${tag}: synth`, () => dep.synth("out-1", config, users));
    const printed = s1.stdout.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").split("\n").filter((l) => /Generated passwords/.test(l));
    assert(printed.length === 1 && printed[0].includes("carol"), `synth did not report carol's generated password file: ${clip(s1.stdout, 500)}`);
    say(tag, `synth: ${printed[0].trim()}`);

    // Check 8 runs its second synth while the first one is being deployed.
    const idempotence = idempotenceCheck(c.idempotence, dep, config, users, s1);
    const deployed = await ctx.timings
      .time(`${tag}: cdktf deploy`, () => dep.deploy(s1))
      .then(
        () => true,
        (err: Error) => {
          for (const ch of mine) ch.abort(`deployment failed: ${err.message}`);
          return false;
        },
      );
    await idempotence;
    if (!deployed) return;

    assertEqual(dep.output("docker_login_command"), `docker login ${endpoint} -u alice`, "output docker_login_command");
    const known = withGeneratedPasswords(users, materialDir);
    const alice = known[0];
    const docker = new DockerClient(ctx.engine, path.join(scratch, "docker-config"));
    const pushedRepos: string[] = [];
    const digests: Record<string, string> = {};

    // 1. multi-layer push/pull through the proxy
    await c.pushPull.phase("login, build, push, rmi, pull", async () => {
      const out = await docker.login(endpoint, alice.name, alice.password);
      assertMatch(out, /Login Succeeded/, "docker login");
      c.pushPull.note(`docker login ${endpoint} -u alice: ${out}`);
      const ctxDir = fs.mkdtempSync(path.join(scratch, "multi-"));
      const files = writeLayeredContext(ctxDir, NGINX_IMAGE, [
        { files: 3, bytesEach: 512 * 1024 },
        { files: 2, bytesEach: MIB },
        { files: 4, bytesEach: 256 * 1024 },
      ]);
      await docker.build(ctxDir, "rse2e-local/app:1.0");
      const ref = `${endpoint}/e2e/app:1.0`;
      const digest = await roundTrip(c.pushPull, docker, "rse2e-local/app:1.0", ref);
      digests["e2e/app"] = digest;
      pushedRepos.push("e2e/app");
      const { manifest } = await getManifest(`${baseUrl}/v2/e2e/app/manifests/${digest}`, cacert, `alice:${alice.password}`, scratch);
      assertEqual(manifest.layers.length, 4, "layers in the pushed manifest (base + 3 COPY)");
      const sums = await docker.runInImage(ref, ["sha256sum", ...files.map((f) => f.imagePath)]);
      for (const f of files) assertMatch(sums, new RegExp(`^${f.sha256}\\s+${f.imagePath}$`, "m"), `content of ${f.imagePath} in the pulled image`);
      c.pushPull.note(`manifest ${digest.slice(0, 19)}… has ${manifest.layers.length} layers; all ${files.length} generated files have their sha256 in a container of the pulled image`);
    });
    c.pushPull.finish();

    // 2. ≥ 256 MiB layer
    await c.largeLayer.phase("256 MiB random layer: build, push, rmi, pull, verify", async () => {
      const size = 256 * MIB;
      const ctxDir = fs.mkdtempSync(path.join(scratch, "big-"));
      const t0 = Date.now();
      const sha = writeRandomFile(path.join(ctxDir, "big", "random.bin"), size);
      fs.writeFileSync(path.join(ctxDir, "Dockerfile"), `FROM ${NGINX_IMAGE}\nCOPY big/ /data/big/\n`);
      c.largeLayer.note(`generated ${size} random bytes (sha256 ${sha.slice(0, 16)}…) in ${elapsedSeconds(t0)}`);
      await docker.login(endpoint, alice.name, alice.password);
      const t1 = Date.now();
      await docker.build(ctxDir, "rse2e-local/big:1");
      fs.rmSync(ctxDir, { recursive: true, force: true });
      c.largeLayer.note(`classic build in ${elapsedSeconds(t1)}`);
      const ref = `${endpoint}/e2e/big:1`;
      const t2 = Date.now();
      const digest = await roundTrip(c.largeLayer, docker, "rse2e-local/big:1", ref);
      c.largeLayer.note(`push + rmi + pull in ${elapsedSeconds(t2)}`);
      digests["e2e/big"] = digest;
      pushedRepos.push("e2e/big");
      const { manifest } = await getManifest(`${baseUrl}/v2/e2e/big/manifests/${digest}`, cacert, `alice:${alice.password}`, scratch);
      const biggest = manifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
      assert(biggest.size >= size, `largest layer is ${biggest.size} bytes, expected ≥ ${size}`);
      const head = await curl({ url: `${baseUrl}/v2/e2e/big/blobs/${biggest.digest}`, method: "HEAD", cacert, credentials: `alice:${alice.password}`, scratchDir: scratch });
      assertEqual(head.status, 200, "HEAD of the big blob");
      assertEqual(head.headers["docker-content-digest"], biggest.digest, "Docker-Content-Digest of the big blob");
      const sums = await docker.runInImage(ref, ["sha256sum", "/data/big/random.bin"]);
      assertMatch(sums, new RegExp(`^${sha}\\s`), "sha256 of the 256 MiB file in the pulled image");
      c.largeLayer.note(`layer ${biggest.digest.slice(0, 19)}… is ${biggest.size} bytes (HEAD via proxy: ${head.headers["content-length"]} bytes); file sha256 in the pulled image matches`);
    });
    c.largeLayer.finish();

    // 3. skopeo with strict TLS, exactly the generated certs.d/<host:port> directory
    await c.skopeoTls.phase("skopeo copy/inspect with the generated cert dir; refused with another CA", async () => {
      const skopeo = new Skopeo(path.join(scratch, "skopeo"));
      const unique = fs.mkdtempSync(path.join(scratch, "skopeo-img-"));
      await buildUniqueImage(docker, unique, "rse2e-local/skopeo:1");
      const archive = path.join(scratch, "skopeo-src.tar");
      await docker.run(["save", "--output", archive, "rse2e-local/skopeo:1"], { timeoutMs: 60_000 });
      const certDir = path.dirname(cacert);
      assertEqual(fs.readdirSync(certDir), ["ca.crt"], `files in ${certDir}`);
      const dest = `docker://${endpoint}/e2e/skopeo:1`;
      await skopeo.run(["copy", "--dest-cert-dir", certDir, "--dest-creds", `alice:${alice.password}`, `docker-archive:${archive}`, dest]);
      pushedRepos.push("e2e/skopeo");
      const ipCertDir = path.join(clientDir, "certs.d", `127.0.0.1:${port}`);
      const inspected = JSON.parse(
        (await skopeo.run(["inspect", "--cert-dir", ipCertDir, "--creds", `bob:${known[1].password}`, `docker://127.0.0.1:${port}/e2e/skopeo:1`])).stdout,
      ) as { Digest: string };
      const back = path.join(scratch, "skopeo-back");
      await skopeo.run(["copy", "--src-cert-dir", certDir, "--src-creds", `alice:${alice.password}`, dest, `dir:${back}`]);
      assert(fs.existsSync(path.join(back, "manifest.json")), "skopeo copy to dir: wrote no manifest.json");
      c.skopeoTls.note(`skopeo copy docker-archive → ${dest} with --dest-cert-dir ${path.relative(clientDir, certDir)} (TLS verify on): ok; ` +
        `inspect via 127.0.0.1 with certs.d/127.0.0.1:${port}: ${inspected.Digest.slice(0, 19)}…; copy back to dir: ok`);

      const otherCa = await makeOtherCa(path.join(scratch, "other-ca", "certs"));
      for (const args of [
        ["copy", "--dest-cert-dir", path.dirname(otherCa), "--dest-creds", `alice:${alice.password}`, `docker-archive:${archive}`, `docker://${endpoint}/e2e/skopeo:other-ca`],
        ["inspect", "--cert-dir", path.dirname(otherCa), "--creds", `alice:${alice.password}`, dest],
      ]) {
        let stderr = "";
        try {
          await skopeo.run(args);
        } catch (err) {
          assert(err instanceof CommandError, String(err));
          stderr = err.stderr;
        }
        assert(stderr !== "", `skopeo ${args[0]} with an unrelated CA succeeded`);
        assertMatch(stderr, /x509: certificate signed by unknown authority/, `skopeo ${args[0]} with an unrelated CA`);
        c.skopeoTls.note(`skopeo ${args[0]} with an unrelated CA (openssl req -x509): refused: …${clip(stderr.slice(stderr.indexOf("x509") - 60), 140)}`);
      }
    });
    c.skopeoTls.finish();

    // 4a. authentication with registry-side htpasswd
    const authTarget: AuthTarget = {
      tag,
      endpoint,
      baseUrl,
      cacert,
      materialDir,
      users: known,
      scratch,
      docker: new DockerClient(ctx.engine, path.join(scratch, "docker-auth")),
      expectRepos: () => [...pushedRepos],
    };
    const generatedBefore = readGeneratedPasswords(materialDir);
    c.authRegistry.note(`users: ${known.map((u) => u.name).join(", ")}; carol's password generated, read from ${path.relative(dir, path.join(materialDir, "generated-passwords.yml"))}`);
    await c.authRegistry.phase("before removal", () => authBeforeRemoval(c.authRegistry, authTarget));

    // 5. TLS
    await c.tls.phase("protocol versions and certificate names", () => tlsChecks(c.tls, port, cacert, materialDir, scratch));
    c.tls.finish();
    await c.redirect.phase("redirect targets", () => redirectChecks(c.redirect, config.httpRedirectPort, port));
    c.redirect.finish();

    // 6. persistence (first half): push an image that exists nowhere else
    const survivorRef = `${endpoint}/e2e/survivor:1`;
    let survivor: { digest: string; imageId: string } | undefined;
    const idsBefore: Record<string, string> = {};
    await c.persistence.phase("push before the config change", async () => {
      const imageId = await buildUniqueImage(docker, fs.mkdtempSync(path.join(scratch, "survivor-")), "rse2e-local/survivor:1");
      await docker.tag("rse2e-local/survivor:1", survivorRef);
      const { digest } = await docker.push(survivorRef);
      await docker.rmi(survivorRef, "rse2e-local/survivor:1");
      survivor = { digest, imageId };
      // The proxy reaches the registry by socket path, so a registry change no longer replaces it.
      for (const n of ["e2e-tls-registry"]) idsBefore[n] = await dep.containerId(n);
      c.persistence.note(`pushed ${survivorRef} → ${digest}, then removed it locally (image ${imageId.slice(0, 19)}…)`);
    });

    // Redeploy: dave removed (check 4a) and logLevel changed (check 6), volume kept.
    const remaining = users.filter((u) => u.name !== "dave");
    const config2 = { ...config, users: remaining.map((u) => ({ name: u.name })), logLevel: "debug" };
    let s2: SynthResult | undefined;
    let changePlan: PlanSummary | undefined;
    const redeployed = await ctx.timings
      .time(`${tag}: synth + redeploy (dave removed, logLevel debug)`, async () => {
        s2 = await dep.synth("out-2", config2, remaining);
        changePlan = await dep.plan(s2);
        say(tag, `saved plan of the change (dave removed, logLevel debug): ${describePlan(changePlan)}`);
        await dep.deploy(s2);
      })
      .then(
        () => true,
        (err: Error) => {
          c.authRegistry.abort(`redeploy failed: ${err.message}`);
          c.persistence.abort(`redeploy failed: ${err.message}`);
          return false;
        },
      );
    if (!redeployed) return;

    await c.authRegistry.phase("after redeploy without dave", () =>
      authAfterRemoval(c.authRegistry, { ...authTarget, users: known.filter((u) => u.name !== "dave") }, known[3], generatedBefore),
    );
    c.authRegistry.finish();

    await c.persistence.phase("pull after the redeploy", async () => {
      assert(survivor !== undefined, "nothing was pushed before the redeploy");
      const regUpload = (s: SynthResult) => uploads(readStack(s)).find((u) => /registry_config_seeder.* \/etc\/registry-stack\/config.yml$/.test(u.key));
      const h1 = regUpload(s1)?.sourceHash;
      const h2 = s2 ? regUpload(s2)?.sourceHash : undefined;
      assert(h1 !== undefined && h2 !== undefined && h1 !== h2, `registry config.yml upload source_hash should change with logLevel (${h1} → ${h2})`);
      c.persistence.note(`config change: registry config.yml upload source_hash ${h1} → ${h2} (kreuzwerker/docker replaces the container on any upload change)`);
      for (const n of Object.keys(idsBefore)) {
        const now = await dep.containerId(n);
        assert(now !== idsBefore[n], `${n} was not replaced`);
      }
      assert(changePlan !== undefined, "no saved plan of the redeploy");
      const volumes = touched(changePlan).filter((a) => / docker_volume\.registry_data_/.test(a));
      assertEqual(volumes, [], "data volume changes in the redeploy's saved plan");
      c.persistence.note(`containers replaced (${Object.keys(idsBefore).join(", ")} have new IDs); the saved plan touches no volume: ${touched(changePlan).join(", ")}`);
      const pulled = await docker.pull(survivorRef);
      assertMatch(pulled.output, /Pull complete|Downloaded newer image/, "docker pull downloaded layers");
      assertEqual(pulled.digest, survivor.digest, "digest of the pull after the redeploy");
      assertEqual((await docker.inspect(survivorRef)).Id, survivor.imageId, "image ID after the redeploy");
      c.persistence.note(`docker pull ${survivorRef} after the redeploy → ${pulled.digest} (same digest, same image ID)`);
      for (const [repo, digest] of Object.entries(digests)) {
        const head = await curl({
          url: `${baseUrl}/v2/${repo}/manifests/${digest}`,
          method: "HEAD",
          cacert,
          credentials: `alice:${alice.password}`,
          headers: [`Accept: ${MANIFEST_V2}`],
          scratchDir: scratch,
        });
        assertEqual(head.status, 200, `HEAD ${repo}@${digest} after the redeploy`);
        assertEqual(head.headers["docker-content-digest"], digest, `Docker-Content-Digest of ${repo}`);
      }
      if (Object.keys(digests).length > 0) c.persistence.note(`manifests of ${Object.keys(digests).join(", ")} (checks 1, 2) still served by digest`);
    });
    c.persistence.finish();
  } catch (err) {
    for (const ch of mine) ch.abort(`scenario ${tag} failed: ${(err as Error).message}`);
  } finally {
    await ctx.timings.time(`${tag}: destroy`, () => dep.destroy()).catch((err: Error) => say(tag, `destroy failed: ${err.message}`));
  }
}

/** Check 13: the plain-HTTP redirect never sends clients to a host name it was not configured with. */
async function redirectChecks(check: Check, redirectPort: number, port: number): Promise<void> {
  const cases: [string, string][] = [
    ["evil.example", `https://localhost:${port}/v2/`],
    [`store.example.test:${redirectPort}`, `https://store.example.test:${port}/v2/`],
    [`localhost:${redirectPort}`, `https://localhost:${port}/v2/`],
  ];
  const seen: string[] = [];
  for (const [host, expected] of cases) {
    const { stdout } = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", `Host: ${host}`, `http://127.0.0.1:${redirectPort}/v2/`], {
      timeoutMs: 20_000,
    });
    assertEqual(stdout.trim(), `301 ${expected}`, `redirect for Host: ${host}`);
    seen.push(`Host: ${host} → ${expected}`);
  }
  check.note(`http://127.0.0.1:${redirectPort}/v2/: ${seen.join("; ")}`);
}

async function tlsChecks(check: Check, port: number, cacert: string, materialDir: string, scratch: string): Promise<void> {
  const target = `127.0.0.1:${port}`;
  const weak = ["-cipher", "DEFAULT@SECLEVEL=0"];
  // Positive control: against an s_server that allows only this old protocol, the probe flags
  // complete a handshake (and without SECLEVEL=0 the client itself refuses, as FACTS says).
  for (const flag of ["-tls1", "-tls1_1"] as const) {
    const control = await withPermissiveTlsServer(
      { certFile: path.join(materialDir, "server.crt"), keyFile: path.join(materialDir, "server.key"), protocolFlag: flag, port: await freePort(), connections: 2 },
      async (p) => ({
        plain: await sClient(["-connect", `127.0.0.1:${p}`, flag]),
        weak: await sClient(["-connect", `127.0.0.1:${p}`, flag, ...weak]),
      }),
    );
    assert(!control.plain.ok, `control: s_client ${flag} without SECLEVEL=0 completed a handshake`);
    assert(control.weak.ok && /^TLSv1(\.1)?$/.test(control.weak.protocol ?? ""), `control: s_client ${flag} ${weak.join(" ")} against a permissive s_server did not negotiate it:\n${clip(control.weak.output, 800)}`);
    const probe = await sClient(["-connect", target, "-servername", "localhost", flag, ...weak]);
    assert(!probe.ok, `proxy accepted ${flag}: protocol ${probe.protocol}`);
    assertMatch(probe.output, /alert protocol version/, `proxy refusal of ${flag}`);
    check.note(
      `${flag} -cipher DEFAULT@SECLEVEL=0 → proxy refuses: "${/\S*alert protocol version/.exec(probe.output)?.[0]}"; ` +
        `control s_server (${flag} only): negotiated ${control.weak.protocol} with the same flags, refused without SECLEVEL=0 (${/legacy sigalg[^:]*|no protocols available|unsupported protocol/.exec(control.plain.output)?.[0] ?? "handshake failed"})`,
    );
  }
  const v12 = await sClient(["-connect", target, "-servername", "localhost", "-tls1_2", "-CAfile", cacert, "-verify_return_error"]);
  assert(v12.ok && v12.protocol === "TLSv1.2", `TLS 1.2 not accepted: ${clip(v12.output, 800)}`);
  assertEqual(v12.verifyResult, "0 (ok)", "verify result over TLS 1.2");
  const v13 = await sClient(["-connect", target, "-servername", "localhost", "-tls1_3", "-CAfile", cacert, "-verify_return_error"]);
  check.note(`-tls1_2: accepted (Protocol ${v12.protocol}, verify ${v12.verifyResult}); -tls1_3: ${v13.ok ? `accepted (${v13.protocol})` : "refused"}`);

  const names: [string, string[]][] = [
    ["localhost", ["-servername", "localhost", "-verify_hostname", "localhost"]],
    ["store.example.test", ["-servername", "store.example.test", "-verify_hostname", "store.example.test"]],
    ["127.0.0.1", ["-verify_ip", "127.0.0.1"]],
  ];
  for (const [name, args] of names) {
    const p = await sClient(["-connect", target, "-CAfile", cacert, "-verify_return_error", ...args]);
    assert(p.ok, `chain/name verification for ${name} failed: ${clip(p.output, 800)}`);
    assertEqual(p.verifyResult, "0 (ok)", `verify result for ${name}`);
  }
  const wrongName = await sClient(["-connect", target, "-CAfile", cacert, "-verify_return_error", "-servername", "other.example.test", "-verify_hostname", "other.example.test"]);
  assert(!wrongName.ok, "a name that is not configured verified");
  assertMatch(wrongName.output, /hostname mismatch/, "unconfigured name refusal");
  check.note(`openssl -CAfile <generated ca.crt> -verify_return_error: localhost, store.example.test (-verify_hostname), 127.0.0.1 (-verify_ip) → "Verify return code: 0 (ok)"; other.example.test → ${wrongName.verifyResult}`);

  const viaCurl: string[] = [];
  for (const [host, resolve] of [
    ["localhost", [`localhost:${port}:127.0.0.1`]],
    ["store.example.test", [`store.example.test:${port}:127.0.0.1`]],
    ["127.0.0.1", []],
  ] as [string, string[]][]) {
    const res = await curl({ url: `https://${host}:${port}/v2/`, cacert, resolve, scratchDir: scratch });
    assertEqual(res.status, 401, `curl https://${host}:${port}/v2/ (TLS verified)`);
    viaCurl.push(`${host}=${res.status}`);
  }
  check.note(`curl --cacert (--resolve …:127.0.0.1) https://<name>:${port}/v2/ verifies and gets the auth challenge: ${viaCurl.join(", ")}`);
}

/** Check 8: a second synth with the same inputs changes nothing. */
async function idempotenceCheck(check: Check, dep: Deployment, config: JsonObject, users: TestUser[], first: SynthResult): Promise<void> {
  const materialDir = config["materialDirectory"] as string;
  const mtimes = (d: string) => Object.fromEntries(fs.readdirSync(d).map((f) => [f, fs.statSync(path.join(d, f)).mtimeMs]));
  await check.phase("second synth with the same inputs", async () => {
    const materialBefore = treeHashes(materialDir);
    const mtimesBefore = mtimes(materialDir);
    // The same config file (same path and content), the same environment, the same material dir.
    const second = await dep.synth("out-1-again", config, users, path.basename(first.configFile, ".yml"));
    const a = fs.readFileSync(first.stackFile);
    const b = fs.readFileSync(second.stackFile);
    const hash = (buf: Buffer) => crypto.createHash("sha256").update(buf).digest("hex");
    assert(a.equals(b), `cdk.tf.json differs between two synths with the same inputs (${hash(a)} vs ${hash(b)})`);
    check.note(`cdk.tf.json byte-identical (${a.length} bytes, sha256 ${hash(a).slice(0, 16)}…)`);
    const u1 = uploads(JSON.parse(a.toString()) as JsonObject);
    const u2 = uploads(JSON.parse(b.toString()) as JsonObject);
    assertEqual(u2, u1, "uploads (source, source_hash, content hash)");
    const sourced = u1.filter((u) => u.sourceHash);
    assert(sourced.length >= 3, `expected ≥ 3 source uploads, got ${sourced.length}`);
    check.note(`upload source_hashes unchanged: ${sourced.map((u) => `${u.key.split(" ")[1]}=${u.sourceHash}`).join(", ")}`);
    // Only what synth writes: the first folder is being deployed (.terraform, lock file, plans).
    const assets = (d: string) => treeHashes(path.join(d, "assets"));
    assertEqual(assets(second.stackDir), assets(first.stackDir), "files of the stack directory (assets)");
    assertEqual(treeHashes(materialDir), materialBefore, "material directory content");
    assertEqual(mtimes(materialDir), mtimesBefore, "material directory mtimes");
    check.note(`asset files identical; material dir (${Object.keys(materialBefore).length} files) neither changed nor rewritten`);
  });
  check.finish();
}

// ---------------------------------------------------------------------------------------------
// Scenario: nginx auth cache with a verifier registry

export async function authCacheScenario(ctx: SuiteContext, c: SuiteChecks): Promise<void> {
  const tag = "auth-cache";
  const dir = ctx.ws.dir(tag);
  const scratch = ctx.ws.dir(`${tag}-scratch`);
  const port = await freePort();
  const users: TestUser[] = [
    { name: "alice", password: "alice-cache-password-1" },
    { name: "bob", password: "bob-cache-password-2" },
    { name: "carol" },
    { name: "dave", password: "dave-cache-password-4" },
  ];
  // No authCacheSeconds: the default topology (proxy + 60 s auth cache) is what this deploys.
  const config = { ...baseConfig(dir, "e2e-cache", port, users), hostnames: ["localhost"], ipAddresses: ["127.0.0.1"] };
  const endpoint = `localhost:${port}`;
  const cacert = path.join(config.clientConfigDirectory, "certs.d", endpoint, "ca.crt");
  const dep = new Deployment(ctx, tag, dir);
  try {
    // The migration case: the volumes this deploy reuses already hold what a root registry wrote.
    let legacy: LegacyRootData | undefined;
    await c.readOnlyRoot.phase("an earlier deploy: the registry as root pushes into the data volume", async () => {
      legacy = await ctx.timings.time(`${tag}: root registry writes the volumes`, () =>
        writeLegacyRootData(ctx.engine, new DockerClient(ctx.engine, path.join(scratch, "docker-legacy")), "e2e-cache", scratch),
      );
      c.readOnlyRoot.note(`before the deploy: ${legacy.repository}:${legacy.tag} (${legacy.digest.slice(0, 19)}…) pushed to the registry image running as root on e2e-cache-data; files 0:0; a root-owned registry.sock left in e2e-cache-sockets`);
    });
    const s1 = await synthAndDeploy(ctx.timings, dep, [c.authCache], () => dep.synth("out-1", config, users));
    if (s1 === undefined) return;
    const known = withGeneratedPasswords(users, config.materialDirectory);
    const target: AuthTarget = {
      tag,
      endpoint,
      baseUrl: `https://127.0.0.1:${port}`,
      cacert,
      materialDir: config.materialDirectory,
      users: known,
      scratch,
      docker: new DockerClient(ctx.engine, path.join(scratch, "docker-auth")),
      expectRepos: () => [],
    };
    await c.authCache.phase("topology", async () => {
      assert(await dep.containerExists("e2e-cache-auth"), "no verifier container e2e-cache-auth");
      const nginxConf = uploads(readStack(s1)).find((u) => /proxy_config_seeder.* \/etc\/registry-stack\/nginx.conf$/.test(u.key));
      assert(nginxConf?.contentSha256, "no nginx.conf upload");
      const doc = fs.readFileSync(s1.stackFile, "utf8");
      assertMatch(doc, /auth_request \/_registry_auth;/, "nginx.conf uses auth_request");
      assertMatch(doc, /proxy_cache_valid 200 60s;/, "nginx.conf caches logins for 60 s");
      const tmpfs = (await ctx.engine.docker(["inspect", "-f", "{{json .HostConfig.Tmpfs}}", "e2e-cache-proxy"])).stdout.trim();
      assertMatch(tmpfs, /"\/tmp\/nginx-auth-cache":"rw,noexec,nosuid,size=16m,mode=0700"/, "auth cache directory is a tmpfs");
      c.authCache.note(`verifier container e2e-cache-auth runs; nginx.conf has auth_request + proxy_cache_valid 200 60s; proxy tmpfs ${tmpfs}`);
    });
    const generatedBefore = readGeneratedPasswords(config.materialDirectory);
    await c.authCache.phase("before removal", () => authBeforeRemoval(c.authCache, target));

    const hard: HardeningTarget = {
      engine: ctx.engine,
      prefix: "e2e-cache",
      baseUrl: target.baseUrl,
      endpoint,
      cacert,
      scratch,
      user: known[0],
      docker: new DockerClient(ctx.engine, path.join(scratch, "docker-hardening")),
      migrated: legacy !== undefined,
    };
    await c.reachability.phase("registry and verifier reachable only through the proxy", () => reachabilityChecks(c.reachability, hard));
    c.reachability.finish();
    const migrated = legacy;
    if (migrated) await c.readOnlyRoot.phase("the root registry's data after the deploy", () => migrationChecks(c.readOnlyRoot, hard, migrated));
    await c.readOnlyRoot.phase("read-only root filesystems, non-root registries", () => readOnlyRootChecks(c.readOnlyRoot, hard));
    c.readOnlyRoot.finish();
    const restartRef = `${endpoint}/e2e/restart:1`;
    await c.restarts.phase("push a test image", async () => {
      await hard.docker.login(endpoint, hard.user.name, hard.user.password);
      await buildUniqueImage(hard.docker, fs.mkdtempSync(path.join(scratch, "restart-")), "rse2e-local/restart:1");
      await hard.docker.tag("rse2e-local/restart:1", restartRef);
      await hard.docker.push(restartRef);
    });
    await c.restarts.phase("restarts followed at once by a pull", () => restartChecks(c.restarts, hard, restartRef));
    c.restarts.finish();
    await c.loginLimit.phase("requests without credentials", () => anonymousChecks(c.loginLimit, hard));

    const remaining = users.filter((u) => u.name !== "dave");
    try {
      await ctx.timings.time(`${tag}: synth + redeploy (dave removed)`, async () => {
        const s2 = await dep.synth("out-2", { ...config, users: remaining.map((u) => ({ name: u.name })) }, remaining);
        await dep.deploy(s2);
      });
    } catch (err) {
      c.authCache.abort(`redeploy failed: ${(err as Error).message}`);
      return;
    }
    await c.authCache.phase("after redeploy without dave", () =>
      authAfterRemoval(c.authCache, { ...target, users: known.filter((u) => u.name !== "dave") }, known[3], generatedBefore),
    );
    c.authCache.finish();
    // Last: it leaves this client address limited for about a minute.
    await c.loginLimit.phase("failed logins limited per client address", () => loginLimitChecks(c.loginLimit, hard, 30, restartRef));
    c.loginLimit.finish();
    // This deployment's defaults (bcryptCost 10, authCacheSeconds 60).
    const perMinuteAll = defaultLoginVerificationsPerMinute(10);
    await c.manyAddresses.phase("logins from many addresses: one budget for all of them", () =>
      manyAddressesLoginChecks(c.manyAddresses, hard, { user: known[1], cacheSeconds: DEFAULT_AUTH_CACHE_SECONDS, perMinuteAll, queue: verificationQueueLength(perMinuteAll) }),
    );
    c.manyAddresses.finish();
  } catch (err) {
    c.authCache.abort(`scenario ${tag} failed: ${(err as Error).message}`);
  } finally {
    await ctx.timings.time(`${tag}: destroy`, () => dep.destroy()).catch((err: Error) => say(tag, `destroy failed: ${err.message}`));
  }
}

// ---------------------------------------------------------------------------------------------
// Scenario: the registry terminates TLS itself

export async function directTlsScenario(ctx: SuiteContext, c: SuiteChecks): Promise<void> {
  const tag = "direct-tls";
  const check = c.directTls;
  const dir = ctx.ws.dir(tag);
  const scratch = ctx.ws.dir(`${tag}-scratch`);
  const port = await freePort();
  const users: TestUser[] = [{ name: "alice", password: "alice-direct-password-1" }];
  const config = { ...baseConfig(dir, "e2e-direct", port, users), hostnames: ["localhost"], ipAddresses: ["127.0.0.1"], proxy: false };
  const endpoint = `localhost:${port}`;
  const certDir = path.join(config.clientConfigDirectory, "certs.d", endpoint);
  const dep = new Deployment(ctx, tag, dir);
  try {
    const s1 = await synthAndDeploy(ctx.timings, dep, [check], () => dep.synth("out-1", config, users));
    if (s1 === undefined) return;
    await check.phase("login, push, rmi, pull; skopeo and curl with the generated CA", async () => {
      assert(!(await dep.containerExists("e2e-direct-proxy")), "a proxy container exists in the proxy-less topology");
      assert(await dep.containerExists("e2e-direct-registry"), "no registry container");
      check.note("no proxy container; the registry publishes 127.0.0.1:" + port + " itself");
      const docker = new DockerClient(ctx.engine, path.join(scratch, "docker-config"));
      assertMatch(await docker.login(endpoint, "alice", users[0].password as string), /Login Succeeded/, "docker login");
      await buildUniqueImage(docker, fs.mkdtempSync(path.join(scratch, "img-")), "rse2e-local/direct:1");
      const digest = await roundTrip(check, docker, "rse2e-local/direct:1", `${endpoint}/e2e/direct:1`);
      const skopeo = new Skopeo(path.join(scratch, "skopeo"));
      const inspected = JSON.parse(
        (await skopeo.run(["inspect", "--cert-dir", certDir, "--creds", `alice:${users[0].password}`, `docker://${endpoint}/e2e/direct:1`])).stdout,
      ) as { Digest: string };
      assertEqual(inspected.Digest, digest, "skopeo inspect digest (strict TLS with the generated cert dir)");
      const anon = await curl({ url: `https://127.0.0.1:${port}/v2/`, cacert: path.join(certDir, "ca.crt"), scratchDir: scratch });
      assertEqual(anon.status, 401, "anonymous GET /v2/");
      assertEqual(anon.headers["docker-distribution-api-version"], "registry/2.0", "Docker-Distribution-Api-Version");
      const old = await sClient(["-connect", `127.0.0.1:${port}`, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
      assert(!old.ok, "the registry accepted TLS 1.1");
      check.note(`skopeo inspect (strict TLS, generated cert dir) → same digest; curl --cacert /v2/ → 401 with registry/2.0; TLS 1.1 refused (${/\S*alert protocol version\S*/.exec(old.output)?.[0] ?? clip(old.output, 80)})`);
    });
    check.finish();
  } catch (err) {
    check.abort(`scenario ${tag} failed: ${(err as Error).message}`);
  } finally {
    await ctx.timings.time(`${tag}: destroy`, () => dep.destroy()).catch((err: Error) => say(tag, `destroy failed: ${err.message}`));
  }
}

// ---------------------------------------------------------------------------------------------
// Scenario: plain HTTP lab (tls.mode none), daemon.json applied to the test engine

interface RegistryConfigInfo {
  IndexConfigs: Record<string, { Name: string; Secure: boolean }>;
  InsecureRegistryCIDRs: string[];
}

export async function plainHttpScenario(ctx: SuiteContext, c: SuiteChecks): Promise<void> {
  const tag = "plain-http";
  const check = c.plainHttp;
  const dir = ctx.ws.dir(tag);
  const scratch = ctx.ws.dir(`${tag}-scratch`);
  const port = await freePort();
  const users: TestUser[] = [{ name: "alice", password: "alice-plain-password-1" }];
  // The one scenario on distribution 2.8 (Debian's 2.8.2), since the README says 2.8.x works too.
  const config = {
    ...baseConfig(dir, "e2e-plain", port, users),
    registryImage: REGISTRY_IMAGE,
    hostnames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    tls: { mode: "none" },
  };
  const clientDir = config.clientConfigDirectory;
  const endpoints = [`localhost:${port}`, `127.0.0.1:${port}`];
  const dep = new Deployment(ctx, tag, dir);
  try {
    // The engine's own daemon.json is the "existing" file the stack must merge into.
    const engineConfig = JSON.parse(fs.readFileSync(ctx.engine.configFile, "utf8")) as Record<string, unknown>;
    fs.mkdirSync(clientDir, { recursive: true });
    fs.copyFileSync(ctx.engine.configFile, path.join(clientDir, "daemon.json"));
    const docker = new DockerClient(ctx.engine, path.join(scratch, "docker-config"));
    const info = async () =>
      JSON.parse((await docker.run(["info", "--format", "{{json .RegistryConfig}}"], { timeoutMs: 30_000 })).stdout) as RegistryConfigInfo;
    const before = await info();
    for (const e of endpoints) assert(!(e in before.IndexConfigs), `${e} already configured before daemon.json was applied`);

    const s1 = await synthAndDeploy(ctx.timings, dep, [check], () => dep.synth("out-1", config, users));
    if (s1 === undefined) return;
    await check.phase("generated daemon.json merged, applied (SIGHUP) and listed by docker info", async () => {
      const written = JSON.parse(fs.readFileSync(path.join(clientDir, "daemon.json"), "utf8")) as Record<string, unknown>;
      for (const [k, v] of Object.entries(engineConfig)) assertEqual(written[k], v, `daemon.json kept the engine's key ${k}`);
      assertEqual(written["insecure-registries"], endpoints, "daemon.json insecure-registries");
      assert(!fs.existsSync(path.join(clientDir, "certs.d")), "certs.d written although TLS is off");
      check.note(`daemon.json = ${JSON.stringify(written)} (engine keys kept: ${Object.keys(engineConfig).join(", ") || "none"})`);
      fs.copyFileSync(path.join(clientDir, "daemon.json"), ctx.engine.configFile);
      await ctx.engine.reload();
      const after = await pollUntil(
        "docker info to list the insecure registries",
        async () => {
          const i = await info();
          return endpoints.every((e) => i.IndexConfigs[e]?.Secure === false) ? i : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 500 },
      );
      check.note(`after SIGHUP, docker info: IndexConfigs ${endpoints.map((e) => `${e} Secure=${after.IndexConfigs[e].Secure}`).join(", ")}; InsecureRegistryCIDRs ${JSON.stringify(after.InsecureRegistryCIDRs)}`);
      const insecureText = (await docker.run(["info"], { timeoutMs: 30_000 })).stdout;
      const section = /Insecure Registries:\n((?:\s+\S+\n)+)/.exec(insecureText)?.[1] ?? "";
      for (const e of endpoints) assertMatch(section, new RegExp(`^\\s+${e.replace(/\./g, "\\.")}$`, "m"), `docker info "Insecure Registries" lists ${e}`);
      check.note(`docker info "Insecure Registries": ${section.trim().split(/\s+/).join(", ")}`);
    });
    await check.phase("plain HTTP login, push, rmi, pull", async () => {
      const anon = await curl({ url: `http://127.0.0.1:${port}/v2/`, scratchDir: scratch });
      assertEqual(anon.status, 401, "anonymous GET http://…/v2/");
      assertMatch(anon.headers["www-authenticate"] ?? "", /^Basic realm="Registry"/, "WWW-Authenticate over plain HTTP");
      let tlsError = "";
      await curl({ url: `https://127.0.0.1:${port}/v2/`, scratchDir: scratch }).catch((err: CommandError) => (tlsError = err.stderr));
      assert(tlsError !== "", "https answered on the plain-HTTP port");
      check.note(`http://127.0.0.1:${port}/v2/ → 401 Basic; https on the same port fails (${clip(tlsError.split("\n")[0], 100)})`);
      assertMatch(await docker.login(endpoints[0], "alice", users[0].password as string), /Login Succeeded/, "docker login");
      await buildUniqueImage(docker, fs.mkdtempSync(path.join(scratch, "img-")), "rse2e-local/plain:1");
      await roundTrip(check, docker, "rse2e-local/plain:1", `${endpoints[0]}/e2e/plain:1`);
      check.note("caveat: dockerd treats 127.0.0.0/8 as insecure anyway, so this round trip alone does not prove daemon.json is needed; the docker info assertion shows the file is valid and applied");
    });
    check.finish();
  } catch (err) {
    check.abort(`scenario ${tag} failed: ${(err as Error).message}`);
  } finally {
    await ctx.timings.time(`${tag}: destroy`, () => dep.destroy()).catch((err: Error) => say(tag, `destroy failed: ${err.message}`));
  }
}
