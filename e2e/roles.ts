import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { curl, DockerClient, freePort, HttpResult, Skopeo } from "./clients";
import { Deployment, synthAndDeploy, TestUser } from "./deployment";
import { assert, assertEqual, assertMatch, Check, clip, say } from "./harness";
import { CommandError } from "./proc";
import { logLinesOfAll } from "./stack-containers";
import { JsonObject } from "./terraform-plan";
import { baseConfig, buildUniqueImage, SuiteContext } from "./scenarios";

/**
 * Issue #11: access roles enforced by the proxy, with the clients users run.
 *   14  the matrix: every role × {pull, push, delete, mount-from} × {own, other repository} ×
 *       {docker or skopeo, curl}, expected outcomes from the rules of the issue, printed as a table
 *   15  anonymous pull off, then on after a redeploy, with a logged-out docker CLI
 *   16  a role change takes effect at the deploy that changes it (login cache flushed)
 *   17  /registry-stack/me (the web UI's contract) and the catalog filtered to a user's repositories
 */

export interface RolesChecks {
  matrix: Check;
  anonymousPull: Check;
  roleChange: Check;
  endpoints: Check;
}

type Role = "pull" | "push" | "admin";
type Action = "pull" | "push" | "delete" | "mount-from";
type Target = "own" | "other";
type Outcome = "allow" | "deny";

const ROLES: readonly Role[] = ["pull", "push", "admin"];
const ACTIONS: readonly Action[] = ["pull", "push", "delete", "mount-from"];
const TARGETS: readonly Target[] = ["own", "other"];
const MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json";
const DENIED = "denied: requested access to the resource is denied";
const CACHE_SECONDS = 600;

/**
 * The issue's rules: pull = GET/HEAD, push adds POST/PUT/PATCH, admin adds DELETE; only inside the
 * user's repositories; a mount reads its source, so it needs pull there and push on the target.
 */
function expected(role: Role, action: Action, target: Target): Outcome {
  const own = target === "own";
  const canPush = role === "push" || role === "admin";
  switch (action) {
    case "pull":
      return own ? "allow" : "deny";
    case "push":
      return canPush && own ? "allow" : "deny";
    case "delete":
      return role === "admin" && own ? "allow" : "deny";
    case "mount-from":
      return canPush && own ? "allow" : "deny";
  }
}

interface RoleUser extends Required<TestUser> {
  role: Role;
}

/** The users of the matrix, all scoped to team-a/*: "own" is team-a/…, "other" is team-b/…. */
const MATRIX_USERS: RoleUser[] = [
  { name: "reader", password: "reader-roles-password-1", role: "pull" },
  { name: "writer", password: "writer-roles-password-2", role: "push" },
  { name: "boss", password: "boss-roles-password-3", role: "admin" },
];
const SEED: Required<TestUser> = { name: "seed", password: "seed-roles-password-4" };

function usersConfig(roles: Record<string, Role>): JsonObject[] {
  return [{ name: SEED.name, role: "admin" }, ...MATRIX_USERS.map((u) => ({ name: u.name, role: roles[u.name] ?? u.role, repositories: ["team-a/*"] }))];
}

const repoOf = (target: Target, name: string) => `${target === "own" ? "team-a" : "team-b"}/${name}`;

interface Env {
  ctx: SuiteContext;
  dep: Deployment;
  prefix: string;
  endpoint: string;
  baseUrl: string;
  cacert: string;
  certDir: string;
  scratch: string;
  skopeo: Skopeo;
  seedDocker: DockerClient;
  dockers: Record<string, DockerClient>;
}

/** What a client saw: allowed, or refused the way registries refuse (anything else fails the check). */
interface Observed {
  outcome: Outcome | "error";
  evidence: string;
}

function fromHttp(res: HttpResult, okStatuses: number[]): Observed {
  if (okStatuses.includes(res.status)) return { outcome: "allow", evidence: String(res.status) };
  let code = "";
  try {
    code = (JSON.parse(res.body) as { errors: { code: string }[] }).errors[0].code;
  } catch {
    code = clip(res.body, 80);
  }
  if (res.status === 403 && code === "DENIED") return { outcome: "deny", evidence: "403 DENIED" };
  return { outcome: "error", evidence: `${res.status} ${code}` };
}

/** docker prints the registry's refusal as "denied: <message>"; skopeo prints the error body and the status. */
const REFUSED_BY = {
  docker: (text: string) => (text.includes(DENIED) ? DENIED : undefined),
  // skopeo logs the error body JSON-escaped inside its msg="…".
  skopeo: (text: string) => (/\\?"code\\?":\\?"DENIED/.test(text) && text.includes("403 Forbidden") ? "403 Forbidden, DENIED" : undefined),
};

async function fromCommand(fn: () => Promise<string>, client: keyof typeof REFUSED_BY = "docker"): Promise<Observed> {
  try {
    return { outcome: "allow", evidence: clip((await fn()).split("\n").filter(Boolean).slice(-1)[0] ?? "ok", 90) };
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    const refusal = REFUSED_BY[client](`${err.stdout}\n${err.stderr}`);
    if (refusal !== undefined) return { outcome: "deny", evidence: refusal };
    return { outcome: "error", evidence: clip(err.stderr || err.stdout, 300) };
  }
}

/** Lines of the proxy's access log (nginx's combined format: the request line has the query). */
async function proxyLog(env: Env): Promise<string[]> {
  const { stdout } = await env.ctx.engine.docker(["logs", `${env.prefix}-proxy`], { timeoutMs: 30_000 });
  return stdout.split("\n");
}

async function seedImage(env: Env, ref: string): Promise<void> {
  const local = `rse2e-local/roles-${crypto.randomBytes(4).toString("hex")}:1`;
  await buildUniqueImage(env.seedDocker, fs.mkdtempSync(path.join(env.scratch, "seed-")), local);
  await env.seedDocker.tag(local, `${env.endpoint}/${ref}`);
  await env.seedDocker.push(`${env.endpoint}/${ref}`);
}

async function manifestDigest(env: Env, repository: string, tag: string): Promise<string> {
  const res = await curl({ url: `${env.baseUrl}/v2/${repository}/manifests/${tag}`, method: "HEAD", cacert: env.cacert, credentials: `${SEED.name}:${SEED.password}`, headers: [`Accept: ${MANIFEST_V2}`], scratchDir: env.scratch });
  assertEqual(res.status, 200, `HEAD ${repository}:${tag} as seed`);
  return res.headers["docker-content-digest"];
}

async function firstLayer(env: Env, repository: string): Promise<string> {
  const res = await curl({ url: `${env.baseUrl}/v2/${repository}/manifests/1`, cacert: env.cacert, credentials: `${SEED.name}:${SEED.password}`, headers: [`Accept: ${MANIFEST_V2}`], scratchDir: env.scratch });
  assertEqual(res.status, 200, `GET ${repository}:1 as seed`);
  return (JSON.parse(res.body) as { layers: { digest: string }[] }).layers[0].digest;
}

/** One cell of the matrix with the docker CLI (skopeo for delete, which docker cannot do). */
async function viaDockerOrSkopeo(env: Env, user: RoleUser, action: Action, target: Target): Promise<Observed> {
  const docker = env.dockers[user.name];
  const cell = `${user.role}-${target}`;
  switch (action) {
    case "pull": {
      const ref = `${env.endpoint}/${repoOf(target, "app")}:1`;
      await docker.rmi(ref).catch(() => undefined);
      return fromCommand(async () => (await docker.pull(ref)).digest);
    }
    case "push": {
      const local = `rse2e-local/roles-push-${cell}:1`;
      await buildUniqueImage(docker, fs.mkdtempSync(path.join(env.scratch, "push-")), local);
      const ref = `${env.endpoint}/${repoOf(target, `push-${cell}`)}:1`;
      await docker.tag(local, ref);
      return fromCommand(async () => (await docker.push(ref)).digest);
    }
    case "delete": {
      const ref = `docker://${env.endpoint}/${repoOf(target, `del-${cell}-skopeo`)}:1`;
      return fromCommand(async () => (await env.skopeo.run(["delete", "--cert-dir", env.certDir, "--creds", `${user.name}:${user.password}`, ref])).stdout || "deleted", "skopeo");
    }
    case "mount-from": {
      // The seed pushed this image from the same engine, so dockerd knows the source repository
      // of its layers and asks the registry to mount them instead of uploading.
      const source = repoOf(target, `mnt-${cell}`);
      const ref = `${env.endpoint}/team-a/mnt-${cell}-dst:1`;
      await docker.tag(`${env.endpoint}/${source}:src`, ref);
      const before = (await proxyLog(env)).length;
      let output = "";
      const observed = await fromCommand(async () => {
        output = (await docker.push(ref)).output;
        return output;
      });
      const mounts = (await proxyLog(env)).slice(before).filter((line) => line.includes(`"POST /v2/team-a/mnt-${cell}-dst/blobs/uploads/?`) && line.includes("mount="));
      const statuses = [...new Set(mounts.map((line) => /" (\d{3}) /.exec(line)?.[1] ?? "?"))];
      assert(mounts.length > 0, `docker push ${ref}: dockerd sent no mount request (proxy log)`);
      assert(mounts.every((line) => line.includes(`from=${encodeURIComponent(source)}`) || line.includes(`from=${source}`)), `mount requests not from ${source}: ${mounts.join("\n")}`);
      if (observed.outcome === "allow" && statuses.includes("201")) {
        assertMatch(output, new RegExp(`Mounted from ${source}`), "docker push output");
        return { outcome: "allow", evidence: `mount ${statuses.join(",")} ("Mounted from ${source}")` };
      }
      if (observed.outcome === "error") return observed;
      // Refused: every mount request got 403 DENIED (dockerd then uploads the layer itself when it may push).
      if (!statuses.every((s) => s === "403")) return { outcome: "error", evidence: `mount statuses ${statuses.join(",")}` };
      return { outcome: "deny", evidence: `mount 403 DENIED; push ${observed.outcome === "allow" ? "uploaded the layer instead" : "refused"}` };
    }
  }
}

/** The same cell with curl: the request each action starts with, as the user. */
async function viaCurl(env: Env, user: RoleUser, action: Action, target: Target, layer: Record<Target, string>): Promise<Observed> {
  const cell = `${user.role}-${target}`;
  const base = { cacert: env.cacert, credentials: `${user.name}:${user.password}`, scratchDir: env.scratch };
  switch (action) {
    case "pull":
      return fromHttp(await curl({ ...base, url: `${env.baseUrl}/v2/${repoOf(target, "app")}/manifests/1`, headers: [`Accept: ${MANIFEST_V2}`] }), [200]);
    case "push": {
      // A blob upload as clients do it: POST opens the session, PUT with the digest stores the blob (201).
      const blob = path.join(env.scratch, `blob-${cell}`);
      fs.writeFileSync(blob, crypto.randomBytes(1024));
      const digest = `sha256:${crypto.createHash("sha256").update(fs.readFileSync(blob)).digest("hex")}`;
      const start = await curl({ ...base, method: "POST", url: `${env.baseUrl}/v2/${repoOf(target, `push-curl-${cell}`)}/blobs/uploads/` });
      if (start.status !== 202) return fromHttp(start, []);
      const location = start.headers["location"];
      assert(location !== undefined, "upload session without Location");
      const url = `${location.startsWith("/") ? env.baseUrl : ""}${location}${location.includes("?") ? "&" : "?"}digest=${digest}`;
      return fromHttp(await curl({ ...base, method: "PUT", bodyFile: blob, headers: ["Content-Type: application/octet-stream"], url }), [201]);
    }
    case "delete": {
      const repository = repoOf(target, `del-${cell}-curl`);
      const digest = await manifestDigest(env, repository, "1");
      return fromHttp(await curl({ ...base, method: "DELETE", url: `${env.baseUrl}/v2/${repository}/manifests/${digest}` }), [202]);
    }
    case "mount-from":
      return fromHttp(
        await curl({ ...base, method: "POST", url: `${env.baseUrl}/v2/team-a/mnt-curl-${cell}/blobs/uploads/?mount=${layer[target]}&from=${repoOf(target, "app")}` }),
        [201],
      );
  }
}

async function matrix(check: Check, env: Env): Promise<void> {
  // Fixtures, pushed by the unscoped admin "seed".
  await seedImage(env, "team-a/app:1");
  await seedImage(env, "team-b/app:1");
  const archive = path.join(env.scratch, "del.tar");
  await buildUniqueImage(env.seedDocker, fs.mkdtempSync(path.join(env.scratch, "del-")), "rse2e-local/roles-del:1");
  await env.seedDocker.run(["save", "--output", archive, "rse2e-local/roles-del:1"], { timeoutMs: 60_000 });
  for (const role of ROLES) {
    for (const target of TARGETS) {
      for (const client of ["skopeo", "curl"]) {
        await env.skopeo.run(["copy", "--dest-cert-dir", env.certDir, "--dest-creds", `${SEED.name}:${SEED.password}`, `docker-archive:${archive}`, `docker://${env.endpoint}/${repoOf(target, `del-${role}-${target}-${client}`)}:1`]);
      }
      await seedImage(env, `${repoOf(target, `mnt-${role}-${target}`)}:src`);
    }
  }
  const layer = { own: await firstLayer(env, "team-a/app"), other: await firstLayer(env, "team-b/app") };
  check.note(`fixtures pushed by seed (admin, all repositories): team-{a,b}/app:1, 12 images to delete (skopeo copy), 6 mount sources from this engine`);

  for (const user of MATRIX_USERS) {
    const out = await env.dockers[user.name].login(env.endpoint, user.name, user.password);
    assertMatch(out, /Login Succeeded/, `docker login ${user.name}`);
  }

  const rows: string[][] = [];
  const wrong: string[] = [];
  let cells = 0;
  for (const user of MATRIX_USERS) {
    for (const action of ACTIONS) {
      for (const target of TARGETS) {
        const want = expected(user.role, action, target);
        const row = [`${user.role} (${user.name})`, action, `${target} (${repoOf(target, "…")})`, want];
        for (const [client, observe] of [
          [action === "delete" ? "skopeo" : "docker", () => viaDockerOrSkopeo(env, user, action, target)],
          ["curl", () => viaCurl(env, user, action, target, layer)],
        ] as const) {
          const got = await observe();
          cells++;
          const ok = got.outcome === want;
          if (!ok) wrong.push(`${user.role} ${action} ${target} via ${client}: expected ${want}, got ${got.outcome} (${got.evidence})`);
          row.push(`${ok ? "" : "✗ "}${got.outcome}: ${clip(got.evidence, 60)}`);
        }
        rows.push(row);
      }
    }
  }
  const header = ["role (user)", "action", "repository", "expected", "docker / skopeo", "curl"];
  for (const line of formatTable(header, rows)) check.note(line);
  check.note(`${cells - wrong.length}/${cells} outcomes as expected (${((100 * (cells - wrong.length)) / cells).toFixed(0)} %)`);
  assert(wrong.length === 0, `unexpected outcomes:\n${wrong.join("\n")}`);
}

function formatTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)];
}

/** A docker CLI with a config directory nobody ever logged in with. */
function loggedOut(env: Env, name: string): DockerClient {
  const docker = new DockerClient(env.ctx.engine, fs.mkdtempSync(path.join(env.scratch, `${name}-`)));
  assert(!fs.existsSync(path.join(docker.configDir, "config.json")), "fresh DOCKER_CONFIG has a config.json");
  return docker;
}

/**
 * dockerd treats localhost as an insecure registry: after a refusal over HTTPS it also tries plain
 * HTTP, so its last message may be about that attempt. What the proxy answered is in its log.
 */
async function proxyStatuses(env: Env, since: number, request: RegExp): Promise<string[]> {
  return (await proxyLog(env))
    .slice(since)
    .filter((line) => request.test(line) && !line.startsWith("127.0.0.1 "))
    .map((line) => /" (\d{3}) /.exec(line)?.[1] ?? "?");
}

/** The proxy refused over HTTPS with `status`; a 400 is dockerd's plain-HTTP retry on the TLS port. */
function refusedWith(statuses: string[], status: string, what: string): void {
  assert(statuses.includes(status) && statuses.every((s) => s === status || s === "400"), `${what}: proxy answered ${statuses.join(",") || "nothing"}`);
}

async function anonymousOff(check: Check, env: Env): Promise<void> {
  const docker = loggedOut(env, "anon-off");
  const ref = `${env.endpoint}/team-b/app:1`;
  await docker.rmi(ref).catch(() => undefined);
  const since = (await proxyLog(env)).length;
  let message = "";
  try {
    await docker.pull(ref);
  } catch (err) {
    assert(err instanceof CommandError, String(err));
    message = err.stderr;
  }
  assert(message !== "", `logged-out docker pull ${ref} succeeded with anonymousPull off`);
  assert(!(await docker.imageExists(ref)), `${ref} is present after the refused pull`);
  const statuses = await proxyStatuses(env, since, /"GET \/v2\//);
  assert(!statuses.some((s) => s.startsWith("2")), `a request of the logged-out pull was answered ${statuses.join(",")}`);
  const res = await curl({ url: `${env.baseUrl}/v2/team-b/app/manifests/1`, cacert: env.cacert, headers: [`Accept: ${MANIFEST_V2}`], scratchDir: env.scratch });
  assertEqual(res.status, 401, "curl without credentials");
  check.note(
    `anonymousPull: false — logged-out docker pull ${ref} refused: the proxy answered its requests ${statuses.join(",") || "(none logged)"} (400 = dockerd's plain-HTTP retry on the TLS port), nothing pulled ` +
      `(docker's last message: ${clip(message.trim().split("\n").slice(-1)[0], 100)}); curl without credentials → 401`,
  );
}

async function anonymousOn(check: Check, env: Env): Promise<void> {
  const docker = loggedOut(env, "anon-on");
  const ref = `${env.endpoint}/team-b/app:1`;
  await docker.rmi(ref).catch(() => undefined);
  const pulled = await docker.pull(ref);
  assertMatch(pulled.output, /Pull complete|Downloaded newer image/, "logged-out docker pull downloaded layers");
  check.note(`anonymousPull: true — logged-out docker pull ${ref} → ${pulled.digest.slice(0, 19)}… (layers downloaded)`);

  // Pushing still needs a user: logged out it is refused, logged in (same host, same CLI) it works.
  const local = "rse2e-local/roles-anon-push:1";
  await buildUniqueImage(docker, fs.mkdtempSync(path.join(env.scratch, "anon-push-")), local);
  const pushRef = `${env.endpoint}/team-a/anon-push:1`;
  await docker.tag(local, pushRef);
  const since = (await proxyLog(env)).length;
  let refusal = "";
  try {
    await docker.push(pushRef);
  } catch (err) {
    assert(err instanceof CommandError, String(err));
    refusal = `${err.stdout}\n${err.stderr}`;
  }
  assert(refusal !== "", "logged-out docker push succeeded");
  const uploads = await proxyStatuses(env, since, /"POST \/v2\/team-a\/anon-push\/blobs\/uploads\//);
  refusedWith(uploads, "401", "logged-out upload");
  const boss = MATRIX_USERS[2];
  assertMatch(await docker.login(env.endpoint, boss.name, boss.password), /Login Succeeded/, "docker login with anonymous pull on");
  const beforeWrong = (await proxyLog(env)).length;
  const wrong = await docker.login(env.endpoint, boss.name, `wrong-${boss.password}`).then(
    () => "",
    (err: CommandError) => err.stderr,
  );
  assert(wrong !== "", "docker login with a wrong password succeeded while anonymous pull is on");
  const tokenStatuses = await proxyStatuses(env, beforeWrong, /"GET \/registry-stack\/token/);
  refusedWith(tokenStatuses, "401", "token request with a wrong password");
  await docker.login(env.endpoint, boss.name, boss.password);
  const pushed = await docker.push(pushRef);
  check.note(`logged-out docker push ${pushRef}: refused (the proxy answered its uploads ${uploads.join(",")}); docker login ${boss.name} (a wrong password is refused: the token endpoint answered ${tokenStatuses.join(",")}), then push → ${pushed.digest.slice(0, 19)}…`);

  const anonymous = (url: string, method: "GET" | "POST" = "GET") => curl({ url: `${env.baseUrl}${url}`, method, cacert: env.cacert, headers: [`Accept: ${MANIFEST_V2}`], scratchDir: env.scratch });
  const manifest = await anonymous("/v2/team-a/app/manifests/1");
  assertEqual(manifest.status, 200, "anonymous GET manifest");
  const catalog = await anonymous("/v2/_catalog");
  assertEqual(catalog.status, 401, "anonymous catalog");
  const upload = await anonymous("/v2/team-a/app/blobs/uploads/", "POST");
  assertEqual(upload.status, 401, "anonymous upload");
  assertMatch(upload.headers["www-authenticate"] ?? "", /^Bearer realm="https:\/\/127\.0\.0\.1:\d+\/registry-stack\/token",service="registry-stack"$/, "challenge");
  check.note(`curl without credentials: manifest 200, catalog 401, upload 401 with ${upload.headers["www-authenticate"]}`);
}

async function endpointChecks(check: Check, env: Env, anonymousPull: boolean): Promise<void> {
  const me = (credentials?: string) => curl({ url: `${env.baseUrl}/registry-stack/me`, cacert: env.cacert, credentials, scratchDir: env.scratch });
  for (const user of MATRIX_USERS) {
    const res = await me(`${user.name}:${user.password}`);
    assertEqual(res.status, 200, `/registry-stack/me as ${user.name}`);
    assertMatch(res.headers["content-type"] ?? "", /^application\/json/, "content type");
    assertEqual(JSON.parse(res.body), { user: user.name, role: user.role, repositories: ["team-a/*"], deleteEnabled: true, anonymousPull }, `/registry-stack/me as ${user.name}`);
  }
  const seed = await me(`${SEED.name}:${SEED.password}`);
  assertEqual(JSON.parse(seed.body), { user: "seed", role: "admin", repositories: null, deleteEnabled: true, anonymousPull }, "/registry-stack/me as seed");
  check.note(`GET /registry-stack/me → 200 application/json for each user, e.g. ${seed.body.trim()}`);
  for (const [label, credentials] of [["no credentials", undefined], ["a wrong password", `reader:wrong-password`], ["an unknown user", "mallory:x"]] as const) {
    const res = await me(credentials);
    assertEqual(res.status, 401, `/registry-stack/me with ${label}`);
    assertEqual((JSON.parse(res.body) as { errors: { code: string }[] }).errors[0].code, "UNAUTHORIZED", `error code with ${label}`);
  }
  check.note("without credentials, with a wrong password, as an unknown user → 401 with the registry error body UNAUTHORIZED");

  // Blob downloads are answered by nginx from storage (serveBlobsFromStorage, the default): only
  // after the access decision allowed them.
  const reader = MATRIX_USERS[0];
  const since = (await proxyLog(env)).length;
  const blobGet = async (repository: string, agent: string) =>
    curl({ url: `${env.baseUrl}/v2/${repository}/blobs/${await firstLayer(env, repository)}`, cacert: env.cacert, credentials: `${reader.name}:${reader.password}`, headers: [`User-Agent: ${agent}`], scratchDir: env.scratch });
  const own = await blobGet("team-a/app", "rse2e-roles-blob-own");
  const other = await blobGet("team-b/app", "rse2e-roles-blob-other");
  assertEqual(own.status, 200, "reader's GET of a team-a/app layer");
  assertEqual(fromHttp(other, [200]), { outcome: "deny", evidence: "403 DENIED" }, "reader's GET of a team-b/app layer");
  const answeredBy = async (agent: string) => {
    const line = (await proxyLog(env)).slice(since).find((l) => l.includes(`"${agent}"`) && !l.startsWith("127.0.0.1 "));
    assert(line !== undefined, `no access log line for ${agent}`);
    return / upstream=(\S+)/.exec(line)?.[1] ?? "?";
  };
  const ownBy = await answeredBy("rse2e-roles-blob-own");
  const otherBy = await answeredBy("rse2e-roles-blob-other");
  assertEqual(ownBy, "-", "the allowed layer download answered from storage (upstream=-)");
  assertMatch(otherBy, /^127\.0\.0\.1:\d+$/, "the refused layer download answered by the refusal server");
  check.note(`layer downloads (served from storage by default): reader GET team-a/app layer → 200 from storage (upstream=${ownBy}); team-b/app layer (linked, on disk) → 403 DENIED from the refusal server (upstream=${otherBy}), no bytes`);

  const catalogOf = async (user: Required<TestUser>) => {
    const res = await curl({ url: `${env.baseUrl}/v2/_catalog`, cacert: env.cacert, credentials: `${user.name}:${user.password}`, scratchDir: env.scratch });
    assertEqual(res.status, 200, `catalog as ${user.name}`);
    return (JSON.parse(res.body) as { repositories: string[] }).repositories;
  };
  const all = await catalogOf(SEED);
  const scoped = await catalogOf(MATRIX_USERS[0]);
  assert(all.some((r) => r.startsWith("team-b/")) && all.some((r) => r.startsWith("team-a/")), `seed's catalog ${JSON.stringify(all)}`);
  assertEqual(scoped, all.filter((r) => r.startsWith("team-a/")), "reader's catalog = the team-a/ part of the full one");
  // Paging: the registry's pages are filtered, the Link header leads on.
  const seen: string[] = [];
  let url: string | undefined = `/v2/_catalog?n=5`;
  for (let page = 0; url && page < 50; page++) {
    const res: HttpResult = await curl({ url: `${env.baseUrl}${url}`, cacert: env.cacert, credentials: `reader:${MATRIX_USERS[0].password}`, scratchDir: env.scratch });
    assertEqual(res.status, 200, `catalog page ${url}`);
    seen.push(...(JSON.parse(res.body) as { repositories: string[] }).repositories);
    url = /^<([^>]+)>; rel="next"$/.exec(res.headers["link"] ?? "")?.[1];
  }
  assertEqual(seen, scoped, "reader's catalog read in pages of 5");
  check.note(`catalog: seed sees ${all.length} repositories; reader (team-a/*) sees ${scoped.length}, exactly the team-a/ ones, also when paging with n=5`);
}

async function loginLimitOnMe(check: Check, env: Env): Promise<void> {
  let limitedAt = 0;
  // Five at a time: one curl at a time on busy cores is slow enough for the refill to keep up.
  for (let sent = 0; sent < 100 && limitedAt === 0; sent += 5) {
    const batch = await Promise.all(
      [1, 2, 3, 4, 5].map((k) => curl({ url: `${env.baseUrl}/registry-stack/me`, cacert: env.cacert, credentials: `reader:wrong-${sent + k}`, scratchDir: env.scratch })),
    );
    batch.forEach((res, k) => {
      if (res.status === 429) {
        if (limitedAt === 0) limitedAt = sent + k + 1;
        assertEqual((JSON.parse(res.body) as { errors: { code: string }[] }).errors[0].code, "TOOMANYREQUESTS", "429 body");
        assertEqual(res.headers["retry-after"], "60", "Retry-After");
      } else assertEqual(res.status, 401, `wrong password #${sent + k + 1} on /registry-stack/me`);
    });
  }
  assert(limitedAt > 0, "no 429 from /registry-stack/me after 100 wrong passwords");
  // One token comes back every 60/rate s, so a slow machine can let a single /v2/ through right
  // after the 429s; five at once cannot all pass unless /v2/ has a budget of its own (burst 30).
  const wrongOn = (path: string, k: number) =>
    curl({ url: `${env.baseUrl}${path}`, cacert: env.cacert, credentials: `writer:another-wrong-${k}`, scratchDir: env.scratch });
  let v2Statuses: number[] = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    if (attempt > 1) await Promise.all([1, 2, 3].map((k) => wrongOn("/registry-stack/me", attempt * 10 + k)));
    v2Statuses = (await Promise.all([1, 2, 3, 4, 5].map((k) => wrongOn("/v2/", attempt * 10 + k)))).map((r) => r.status);
    v2Statuses.forEach((status) => assert(status === 401 || status === 429, `/v2/ with a wrong password: expected 401 or 429, got ${status}`));
    if (v2Statuses.includes(429)) break;
  }
  assert(v2Statuses.includes(429), `/v2/ with wrong passwords once /registry-stack/me is limited (one limit): five at once answered ${v2Statuses.join(",")}, three times, no 429`);
  check.note(`failed-login limit: wrong passwords on /registry-stack/me → 401 until attempt ${limitedAt}, then 429 TOOMANYREQUESTS (Retry-After: 60); /v2/ from the same address is limited too (one limit): five wrong /v2/ logins at once → ${v2Statuses.join(",")}`);
}

export async function rolesScenario(ctx: SuiteContext, c: RolesChecks): Promise<void> {
  const tag = "roles";
  const mine = [c.matrix, c.anonymousPull, c.roleChange, c.endpoints];
  const dir = ctx.ws.dir(tag);
  const scratch = ctx.ws.dir(`${tag}-scratch`);
  const port = await freePort();
  const users: TestUser[] = [SEED, ...MATRIX_USERS.map(({ name, password }) => ({ name, password }))];
  const config = {
    ...baseConfig(dir, "e2e-roles", port, users),
    hostnames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    deleteEnabled: true,
    // Long enough that a login cached before the redeploy would still be valid after it (check 15).
    authCacheSeconds: CACHE_SECONDS,
    users: usersConfig({}),
  };
  const endpoint = `localhost:${port}`;
  const certDir = path.join(config.clientConfigDirectory, "certs.d", endpoint);
  const dep = new Deployment(ctx, tag, dir);
  const env: Env = {
    ctx,
    dep,
    prefix: "e2e-roles",
    endpoint,
    baseUrl: `https://127.0.0.1:${port}`,
    cacert: path.join(certDir, "ca.crt"),
    certDir,
    scratch,
    skopeo: new Skopeo(path.join(scratch, "skopeo")),
    seedDocker: new DockerClient(ctx.engine, path.join(scratch, "docker-seed")),
    dockers: Object.fromEntries(MATRIX_USERS.map((u) => [u.name, new DockerClient(ctx.engine, path.join(scratch, `docker-${u.name}`))])),
  };
  try {
    const s1 = await synthAndDeploy(ctx.timings, dep, mine, () => dep.synth("out-1", config, users));
    if (s1 === undefined) return;
    assertMatch(await env.seedDocker.login(endpoint, SEED.name, SEED.password), /Login Succeeded/, "docker login seed");

    await c.matrix.phase("every role × action × own/other repository × client", () => matrix(c.matrix, env));
    c.matrix.finish();
    await c.endpoints.phase("/registry-stack/me and the filtered catalog", () => endpointChecks(c.endpoints, env, false));
    await c.anonymousPull.phase("anonymous pull off, docker CLI logged out", () => anonymousOff(c.anonymousPull, env));

    // Role change: writer (push) is demoted to pull and reader (pull) promoted to push, while
    // their logins sit in the proxy's cache; anonymous pull is turned on in the same deploy.
    const writer = MATRIX_USERS[1];
    const reader = MATRIX_USERS[0];
    const before: Record<string, string> = {};
    let cachedAt = 0;
    await c.roleChange.phase("before the redeploy: cached logins with the old roles", async () => {
      const blobPost = (u: RoleUser) => curl({ url: `${env.baseUrl}/v2/team-a/role-change/blobs/uploads/`, method: "POST", cacert: env.cacert, credentials: `${u.name}:${u.password}`, scratchDir: scratch });
      assertEqual((await blobPost(writer)).status, 202, "writer starts an upload before the redeploy");
      assertEqual((await blobPost(reader)).status, 403, "reader starts an upload before the redeploy");
      for (const n of ["e2e-roles-proxy", "e2e-roles-auth", "e2e-roles-registry"]) before[n] = await dep.containerId(n);
      cachedAt = Date.now();
      c.roleChange.note(`before: writer (push) POST upload → 202, reader (pull) → 403 DENIED; both logins now cached by the proxy (authCacheSeconds: ${CACHE_SECONDS})`);
    });
    const verifierRequests = async () => {
      // Every verifier instance: nginx spreads the logins over them.
      return (await logLinesOfAll(ctx.engine, "e2e-roles-auth")).filter((line) => line.includes("http.request.uri")).length;
    };
    let verifierBefore = 0;
    try {
      await ctx.timings.time(`${tag}: synth + redeploy (roles changed, anonymous pull on)`, async () => {
        const s2 = await dep.synth("out-2", { ...config, anonymousPull: true, users: usersConfig({ writer: "pull", reader: "push" }) }, users);
        await dep.deploy(s2);
      });
      verifierBefore = await verifierRequests();
    } catch (err) {
      for (const ch of [c.roleChange, c.anonymousPull, c.endpoints]) ch.abort(`redeploy failed: ${(err as Error).message}`);
      return;
    }
    await c.roleChange.phase("after the redeploy: the new roles at once", async () => {
      const blobPost = (u: RoleUser) => curl({ url: `${env.baseUrl}/v2/team-a/role-change/blobs/uploads/`, method: "POST", cacert: env.cacert, credentials: `${u.name}:${u.password}`, scratchDir: scratch });
      const demoted = await blobPost(writer);
      assertEqual(fromHttp(demoted, [202]), { outcome: "deny", evidence: "403 DENIED" }, "writer (now pull) starts an upload");
      assertEqual((await blobPost(reader)).status, 202, "reader (now push) starts an upload");
      const seconds = (Date.now() - cachedAt) / 1000;
      assert(seconds < CACHE_SECONDS, "the cached logins expired before the check: it proves nothing");
      c.roleChange.note(`after the redeploy, ${seconds.toFixed(0)} s after the logins were cached (cache lifetime ${CACHE_SECONDS} s): writer (now pull) → 403 DENIED, reader (now push) → 202`);
      const verifierAfter = await verifierRequests();
      assert(verifierAfter > verifierBefore, `the verifier saw no login after the redeploy (${verifierBefore} → ${verifierAfter}): the logins came from a cache`);
      const proxyNow = await dep.containerId("e2e-roles-proxy");
      // The proxy reloads instead of being replaced; its cache keys carry the rules in force.
      assertEqual(proxyNow, before["e2e-roles-proxy"], "proxy container (reloaded, not replaced)");
      c.roleChange.note(`the proxy was reloaded (same container), its login-cache keys changed with the roles: the verifier checked the logins again (${verifierAfter - verifierBefore} requests)`);
      const docker = env.dockers[writer.name];
      const ref = `${endpoint}/team-a/push-push-own:1`;
      const push = await fromCommand(async () => (await docker.push(ref)).digest);
      assertEqual(push.outcome, "deny", `docker push ${ref} by the demoted writer (${push.evidence})`);
      c.roleChange.note(`docker push by the demoted writer (still logged in): "${DENIED}"`);
    });
    c.roleChange.finish();
    await c.anonymousPull.phase("anonymous pull on (after the redeploy), docker CLI logged out", () => anonymousOn(c.anonymousPull, env));
    c.anonymousPull.finish();
    await c.endpoints.phase("failed-login limit on /registry-stack/me", () => loginLimitOnMe(c.endpoints, env));
    c.endpoints.finish();
  } catch (err) {
    for (const ch of mine) ch.abort(`scenario ${tag} failed: ${(err as Error).message}`);
  } finally {
    await ctx.timings.time(`${tag}: destroy`, () => dep.destroy()).catch((err: Error) => say(tag, `destroy failed: ${err.message}`));
  }
}
