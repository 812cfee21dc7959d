import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as path from "path";
import { DockerClient, freePort } from "./clients";
import { Deployment, synthAndDeploy, TestUser } from "./deployment";
import { assert, assertEqual, assertMatch, say } from "./harness";
import { socketOf } from "./stack-containers";
import { baseConfig, buildUniqueImage, roundTrip, SuiteChecks, SuiteContext } from "./scenarios";

/**
 * serveBlobsFromStorage (#12): nginx answers plain blob downloads from the data volume. Every
 * answer the proxy gives for a blob URL is compared with the registry's own answer to the same
 * request (over its unix socket, from the host): status, every header but the hop's own (Date,
 * Server, Connection, Keep-Alive), and the body byte for byte; the proxy's access log says which
 * answers nginx read from storage (upstream=-) and which the registry gave.
 */

const PREFIX = "e2e-blobs";
/** Headers that belong to the connection or the answering server, not to the resource. */
const HOP_HEADERS = new Set(["date", "server", "connection", "keep-alive"]);

export interface Answer {
  readonly status: number;
  /** Lower-case name → values in order (duplicates kept). */
  readonly headers: Record<string, string[]>;
  readonly body: Buffer;
}

export interface Request {
  readonly method: "GET" | "HEAD" | "DELETE";
  readonly path: string;
  readonly headers?: Record<string, string>;
}

function collect(res: http.IncomingMessage): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("error", reject);
    res.on("end", () => {
      const headers: Record<string, string[]> = {};
      for (let i = 0; i < res.rawHeaders.length; i += 2) {
        const name = res.rawHeaders[i].toLowerCase();
        (headers[name] ??= []).push(res.rawHeaders[i + 1]);
      }
      resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks) });
    });
  });
}

export function send(options: https.RequestOptions, secure: boolean, body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request({ ...options, agent: false, timeout: 30_000 }, (res) => collect(res).then(resolve, reject));
    req.on("timeout", () => req.destroy(new Error(`${options.method} ${options.path}: no answer within 30 s`)));
    req.on("error", reject);
    req.end(body);
  });
}

class Paths {
  constructor(
    private readonly port: number,
    private readonly ca: string,
    private readonly authorization: string,
    private readonly socketPath: string,
  ) {}

  /** Through the proxy (TLS, logged in unless `authorization` is given). */
  proxy(r: Request, authorization: string | undefined = this.authorization, body?: Buffer): Promise<Answer> {
    const headers = { ...(r.headers ?? {}), ...(authorization ? { Authorization: authorization } : {}) };
    return send({ host: "127.0.0.1", port: this.port, servername: "localhost", ca: this.ca, method: r.method, path: r.path, headers }, true, body);
  }

  /** The registry itself, on its socket (it runs without auth behind the auth cache). */
  registry(r: Request): Promise<Answer> {
    return send({ socketPath: this.socketPath, method: r.method, path: r.path, headers: { Host: "registry", ...(r.headers ?? {}) } }, false);
  }

  /** Pushes a blob the way docker does (POST, then PUT ?digest= with the content). */
  async push(repo: string, content: Buffer): Promise<string> {
    const digest = `sha256:${crypto.createHash("sha256").update(content).digest("hex")}`;
    const post = await send(
      { host: "127.0.0.1", port: this.port, servername: "localhost", ca: this.ca, method: "POST", path: `/v2/${repo}/blobs/uploads/`, headers: { Authorization: this.authorization, "Content-Length": "0" } },
      true,
    );
    assertEqual(post.status, 202, `POST /v2/${repo}/blobs/uploads/`);
    const location = new URL(post.headers.location[0], `https://localhost:${this.port}`);
    location.searchParams.set("digest", digest);
    const put = await send(
      {
        host: "127.0.0.1",
        port: this.port,
        servername: "localhost",
        ca: this.ca,
        method: "PUT",
        path: `${location.pathname}${location.search}`,
        headers: { Authorization: this.authorization, "Content-Type": "application/octet-stream", "Content-Length": String(content.length) },
      },
      true,
      content,
    );
    assertEqual(put.status, 201, `PUT ${repo} ?digest=${digest}`);
    return digest;
  }
}

export function comparable(a: Answer): Record<string, string[]> {
  return Object.fromEntries(Object.entries(a.headers).filter(([name]) => !HOP_HEADERS.has(name)).sort(([x], [y]) => x.localeCompare(y)));
}

/** The proxy's and the registry's answers are the same: status, headers (but the hop's), bytes. */
export function assertSameAnswer(proxied: Answer, direct: Answer, what: string): void {
  assertEqual(proxied.status, direct.status, `${what}: status (proxy vs registry)`);
  assertEqual(JSON.stringify(comparable(proxied)), JSON.stringify(comparable(direct)), `${what}: headers (proxy vs registry)`);
  assertEqual(proxied.body.length, direct.body.length, `${what}: body length`);
  assert(proxied.body.equals(direct.body), `${what}: body bytes differ between proxy and registry`);
}

/**
 * A field (`upstream`, `cache`) of the proxy's access-log line for the request with this
 * User-Agent: the last one, since a login the verifier checks is logged before it, by the
 * limiter server (`GET /v2/` with the client's User-Agent).
 */
export async function accessLogField(ctx: SuiteContext, proxy: string, userAgent: string, field: "upstream" | "cache"): Promise<string> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const { stdout } = await ctx.engine.docker(["logs", "--tail", "200", proxy]);
    const line = stdout.split("\n").filter((l) => l.includes(`"${userAgent}"`)).pop();
    const m = line ? new RegExp(` ${field}=(\\S+)(?: |$)`).exec(line.trim()) : null;
    if (m) return m[1];
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no access-log line for User-Agent ${userAgent}`);
}

/** The `upstream=` field of the proxy's access-log line for the request with this User-Agent. */
function answeredBy(ctx: SuiteContext, userAgent: string): Promise<string> {
  return accessLogField(ctx, `${PREFIX}-proxy`, userAgent, "upstream");
}

export async function blobReadsScenario(ctx: SuiteContext, c: SuiteChecks): Promise<void> {
  const tag = "blob-reads";
  const check = c.blobReads;
  const dir = ctx.ws.dir(tag);
  const scratch = ctx.ws.dir(`${tag}-scratch`);
  const port = await freePort();
  const users: TestUser[] = [{ name: "alice", password: "alice-blob-password-1" }];
  // The default topology (proxy, auth cache, so serveBlobsFromStorage on), with DELETE for the deleted-blob case.
  // alice deletes a blob below: that needs the admin role (issue #11).
  const config = { ...baseConfig(dir, PREFIX, port, users), users: [{ name: "alice", role: "admin" }], hostnames: ["localhost"], ipAddresses: ["127.0.0.1"], deleteEnabled: true };
  const endpoint = `localhost:${port}`;
  const cacert = path.join(config.clientConfigDirectory, "certs.d", endpoint, "ca.crt");
  const dep = new Deployment(ctx, tag, dir);
  try {
    const s1 = await synthAndDeploy(ctx.timings, dep, [check], () => dep.synth("out-1", config, users));
    if (s1 === undefined) return;
    const password = users[0].password as string;
    const authorization = `Basic ${Buffer.from(`alice:${password}`).toString("base64")}`;
    const mountpoint = async (volume: string) => (await ctx.engine.docker(["volume", "inspect", "-f", "{{.Mountpoint}}", volume])).stdout.trim();
    const socketPath = path.join(await mountpoint(`${PREFIX}-sockets`), await socketOf(ctx.engine, `${PREFIX}-registry`));
    const dataDir = await mountpoint(`${PREFIX}-data`);
    const paths = new Paths(port, fs.readFileSync(cacert, "utf8"), authorization, socketPath);

    await check.phase("the proxy mounts the data volume read-only", async () => {
      const mounts = JSON.parse((await ctx.engine.docker(["inspect", "-f", "{{json .Mounts}}", `${PREFIX}-proxy`])).stdout) as { Name?: string; Destination: string; RW: boolean }[];
      const data = mounts.find((m) => m.Name === `${PREFIX}-data`);
      assert(data, `the proxy does not mount ${PREFIX}-data: ${JSON.stringify(mounts)}`);
      assertEqual(data.Destination, "/var/lib/registry", "data mount path in the proxy");
      assertEqual(data.RW, false, "data mount writable in the proxy");
      check.note(`${PREFIX}-proxy mounts ${PREFIX}-data at /var/lib/registry read-only (RW=false)`);
    });

    let digestA = "";
    let digestB = "";
    let n = 0;
    const ua = () => `rse2e-blob-reads/${++n}`;
    /** One request through both paths, compared; returns who answered in the proxy. */
    const compare = async (what: string, r: Request): Promise<string> => {
      const agent = ua();
      const req = { ...r, headers: { ...(r.headers ?? {}), "User-Agent": agent } };
      const proxied = await paths.proxy(req);
      const direct = await paths.registry(req);
      assertSameAnswer(proxied, direct, what);
      const by = await answeredBy(ctx, agent);
      return by;
    };

    await check.phase("blobs pushed to two repositories", async () => {
      // 3 MiB + 1 byte: more than one output buffer and an odd length; a small one for the other repository.
      digestA = await paths.push("e2e/fast-a", crypto.randomBytes(3 * 1024 * 1024 + 1));
      digestB = await paths.push("e2e/fast-b", crypto.randomBytes(1000));
      check.note(`pushed ${digestA.slice(0, 19)}… (3 MiB + 1) to e2e/fast-a and ${digestB.slice(0, 19)}… (1000 B) to e2e/fast-b through the proxy`);
    });

    await check.phase("same answers as the registry, header by header and byte by byte", async () => {
      const hexA = digestA.slice("sha256:".length);
      const cases: [string, Request, "storage" | "registry"][] = [
        ["GET of a linked blob", { method: "GET", path: `/v2/e2e/fast-a/blobs/${digestA}` }, "storage"],
        ["HEAD of a linked blob", { method: "HEAD", path: `/v2/e2e/fast-a/blobs/${digestA}` }, "storage"],
        ["GET of the other repository's blob", { method: "GET", path: `/v2/e2e/fast-b/blobs/${digestB}` }, "storage"],
        ["GET of a blob that exists only in another repository", { method: "GET", path: `/v2/e2e/fast-b/blobs/${digestA}` }, "registry"],
        ["HEAD of a blob that exists only in another repository", { method: "HEAD", path: `/v2/e2e/fast-b/blobs/${digestA}` }, "registry"],
        ["GET of an unknown digest", { method: "GET", path: `/v2/e2e/fast-a/blobs/sha256:${"0".repeat(64)}` }, "registry"],
        ["GET in an unknown repository", { method: "GET", path: `/v2/e2e/nothing-here/blobs/${digestA}` }, "registry"],
        ["GET with a range", { method: "GET", path: `/v2/e2e/fast-a/blobs/${digestA}`, headers: { Range: "bytes=1000-200000" } }, "registry"],
        ["GET with a suffix range", { method: "GET", path: `/v2/e2e/fast-a/blobs/${digestA}`, headers: { Range: "bytes=-17" } }, "registry"],
        ["GET with an unsatisfiable range", { method: "GET", path: `/v2/e2e/fast-a/blobs/${digestA}`, headers: { Range: "bytes=99999999-" } }, "registry"],
        ["HEAD with a range", { method: "HEAD", path: `/v2/e2e/fast-a/blobs/${digestA}`, headers: { Range: "bytes=0-9" } }, "registry"],
        ["GET with If-None-Match of its ETag", { method: "GET", path: `/v2/e2e/fast-a/blobs/${digestA}`, headers: { "If-None-Match": `"${digestA}"` } }, "registry"],
        ["GET with a percent-encoded repository name", { method: "GET", path: `/v2/e2e%2Ffast-a/blobs/${digestA}` }, "registry"],
        ["GET with upper-case hex", { method: "GET", path: `/v2/e2e/fast-a/blobs/sha256:${hexA.toUpperCase()}` }, "registry"],
      ];
      for (const [what, r, expected] of cases) {
        const by = await compare(what, r);
        const took = by === "-" ? "storage" : "registry";
        assertEqual(took, expected, `${what}: answered from (access log upstream=${by})`);
        check.note(`${what}: same status, headers and bytes as the registry; answered from ${took} (upstream=${by})`);
      }
    });

    await check.phase("no blob without a valid login", async () => {
      const r: Request = { method: "GET", path: `/v2/e2e/fast-a/blobs/${digestA}` };
      const anonymous = await paths.proxy(r, "");
      assertEqual(anonymous.status, 401, "GET of a linked blob without credentials");
      const wrong = await paths.proxy(r, `Basic ${Buffer.from("alice:wrong-password").toString("base64")}`);
      assertEqual(wrong.status, 401, "GET of a linked blob with a wrong password");
      for (const a of [anonymous, wrong]) assert(a.body.length < 1000, `a refused request got a body of ${a.body.length} bytes`);
      check.note("without credentials and with a wrong password: 401 and no blob (the login check runs before the storage is looked at)");
    });

    await check.phase("a deleted blob is gone from the proxy too, while its data stays on disk", async () => {
      const deleted = await paths.proxy({ method: "DELETE", path: `/v2/e2e/fast-a/blobs/${digestA}` });
      assertEqual(deleted.status, 202, "DELETE of the blob through the proxy");
      const hexA = digestA.slice("sha256:".length);
      const data = path.join(dataDir, "docker/registry/v2/blobs/sha256", hexA.slice(0, 2), hexA, "data");
      assert(fs.existsSync(data), `${data} is gone: the case would not show that the link file decides`);
      const link = path.join(dataDir, "docker/registry/v2/repositories/e2e/fast-a/_layers/sha256", hexA, "link");
      assert(!fs.existsSync(link), `${link} still exists after DELETE`);
      for (const method of ["GET", "HEAD"] as const) {
        const what = `${method} of the deleted blob`;
        const by = await compare(what, { method, path: `/v2/e2e/fast-a/blobs/${digestA}` });
        assertEqual(by === "-" ? "storage" : "registry", "registry", `${what}: answered from`);
        check.note(`${what}: same answer as the registry (${method === "GET" ? "404 BLOB_UNKNOWN" : "404"}), from the registry; the data file is still in the volume (no garbage collection), its link file is gone`);
      }
      const direct = await paths.registry({ method: "GET", path: `/v2/e2e/fast-a/blobs/${digestA}` });
      assertMatch(direct.body.toString(), /"code":"BLOB_UNKNOWN"/, "the registry's answer for the deleted blob");
    });

    await check.phase("docker push and pull through the proxy read the layers from storage", async () => {
      const docker = new DockerClient(ctx.engine, path.join(scratch, "docker-config"));
      assertMatch(await docker.login(endpoint, "alice", password), /Login Succeeded/, "docker login");
      await buildUniqueImage(docker, fs.mkdtempSync(path.join(scratch, "img-")), "rse2e-local/blobs:1");
      await roundTrip(check, docker, "rse2e-local/blobs:1", `${endpoint}/e2e/blobs:1`);
      const { stdout } = await ctx.engine.docker(["logs", "--tail", "400", `${PREFIX}-proxy`]);
      const blobGets = stdout.split("\n").filter((l) => /"GET \/v2\/e2e\/blobs\/blobs\/sha256:[0-9a-f]{64} HTTP/.test(l) && / 200 /.test(l));
      assert(blobGets.length > 0, "no blob GET of the pull in the proxy's access log");
      const fromStorage = blobGets.filter((l) => / upstream=-$/.test(l.trim()));
      assertEqual(fromStorage.length, blobGets.length, "blob GETs of docker pull answered from storage");
      check.note(`docker pull's ${blobGets.length} blob GETs: all 200 and all answered from storage (upstream=-)`);
    });
    check.finish();
  } catch (err) {
    check.abort(`scenario ${tag} failed: ${(err as Error).message}`);
  } finally {
    await ctx.timings.time(`${tag}: destroy`, () => dep.destroy()).catch((err: Error) => say(tag, `destroy failed: ${err.message}`));
  }
}
