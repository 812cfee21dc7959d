import { ChildProcess, spawn, spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { REFUSED_PREFIX, ProxySupervisorInput, renderProxySupervisor, renderReloadCheck } from "../../renderers/proxy-supervisor";
import { stopScript, until } from "../fixtures/script-runs";

/**
 * The supervisor run for real by /bin/sh (dash here; busybox ash in the image: every e2e
 * deployment with a proxy runs it there) with stand-ins on PATH: `nginx` (node: answers the
 * first line of its configuration at the generation URL, takes a reload the number of
 * milliseconds in `reload-delay-ms` after SIGHUP; `-t` refuses a configuration containing
 * "broken", and one whose `file <path> <sha256>` lines name a file that is missing or holds
 * something else; while it runs, the file named in `rewritten-during-test` is half written, as
 * during an upload) and `wget` (node: prints the body of a 200).
 */

function fakeTools(dir: string, port: number): string {
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  fs.writeFileSync(
    path.join(bin, "nginx"),
    `#!${process.execPath}
const fs = require("fs"), http = require("http");
const args = process.argv.slice(2);
const conf = args[args.indexOf("-c") + 1];
const firstLine = () => fs.readFileSync(conf, "utf8").split("\\n")[0];
if (args.includes("-t")) {
  // An upload in progress while the test runs: the file named there is half written meanwhile.
  const rewrittenList = ${JSON.stringify(path.join(dir, "rewritten-during-test"))};
  const rewritten = fs.existsSync(rewrittenList) ? fs.readFileSync(rewrittenList, "utf8").trim() : undefined;
  const whole = rewritten === undefined ? undefined : fs.readFileSync(rewritten);
  if (rewritten !== undefined) fs.writeFileSync(rewritten, whole.subarray(0, whole.length >> 1));
  process.on("exit", () => { if (rewritten !== undefined) fs.writeFileSync(rewritten, whole); });
  const text = fs.readFileSync(conf, "utf8");
  if (/broken/.test(text)) { console.error('nginx: [emerg] unknown directive "broken"'); process.exit(1); }
  for (const [, file, sum] of text.matchAll(/^file (\\S+) (\\S+)$/gm)) {
    const held = fs.existsSync(file) ? require("crypto").createHash("sha256").update(fs.readFileSync(file)).digest("hex") : "nothing";
    if (held !== sum) { console.error(\`nginx: [emerg] cannot load \${file}: it holds \${held}\`); process.exit(1); }
  }
  process.exit(0);
}
let generation = firstLine();
const server = http.createServer((req, res) => res.end(generation)).listen(${port}, "127.0.0.1");
process.on("SIGHUP", () => {
  const next = firstLine();
  const delay = Number(fs.readFileSync(${JSON.stringify(path.join(dir, "reload-delay-ms"))}, "utf8"));
  setTimeout(() => { generation = next; }, delay);
});
for (const signal of ["SIGQUIT", "SIGTERM"]) process.on(signal, () => { server.close(); process.exit(0); });
`,
    { mode: 0o755 },
  );
  fs.writeFileSync(
    path.join(bin, "wget"),
    `#!${process.execPath}
require("http").get(process.argv[process.argv.length - 1], (res) => {
  let body = "";
  res.on("data", (d) => (body += d));
  res.on("end", () => { process.stdout.write(body); process.exit(res.statusCode === 200 ? 0 : 1); });
}).on("error", () => process.exit(4));
`,
    { mode: 0o755 },
  );
  return bin;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

describe("renderProxySupervisor", () => {
  let dir: string;
  let child: ChildProcess | undefined;
  let stderr = "";
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxy-supervisor-"));
    fs.mkdirSync(path.join(dir, "config"));
    fs.mkdirSync(path.join(dir, "status"));
    fs.writeFileSync(path.join(dir, "reload-delay-ms"), "0");
    stderr = "";
  });
  afterEach(async () => {
    await stopScript(child);
    child = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

  function input(port: number, answerTimeoutSeconds: number): ProxySupervisorInput {
    return {
      uploadDirectory: path.join(dir, "config"),
      markerName: "generation",
      configName: "nginx.conf",
      servedDirectory: path.join(dir, "run", "served"),
      statusPath: path.join(dir, "status", "generation"),
      generationUrl: `http://127.0.0.1:${port}/generation`,
      answerTimeoutSeconds,
    };
  }

  /**
   * Writes the files of a generation as a deploy does: each one (nginx.conf: the generation on
   * its first line, then `extra`) and the marker naming the generation and their checksums.
   */
  function upload(i: ProxySupervisorInput, generation: string, extra = "", files: Record<string, string> = {}, markerSum?: string): void {
    const conf = `${generation}\n${extra}`;
    const all = { ...files, [i.configName]: conf };
    for (const [name, text] of Object.entries(all)) fs.writeFileSync(path.join(i.uploadDirectory, name), text);
    const sums = Object.entries(all).map(([name, text]) => `${markerSum ?? sha256(text)}  ${name}`);
    fs.writeFileSync(path.join(i.uploadDirectory, i.markerName), `${generation}\n${sums.join("\n")}\n`);
  }

  function spawnSupervisor(i: ProxySupervisorInput, port: number): void {
    child = spawn("/bin/sh", ["-c", renderProxySupervisor(i)], { env: { ...process.env, PATH: `${fakeTools(dir, port)}:${process.env.PATH}` } });
    child.stderr!.on("data", (d) => (stderr += d.toString()));
  }

  async function start(answerTimeoutSeconds: number): Promise<ProxySupervisorInput> {
    const port = await freePort();
    const i = input(port, answerTimeoutSeconds);
    upload(i, "gen-1");
    spawnSupervisor(i, port);
    await until("the first generation served", () => (status(i) === "gen-1" ? true : undefined));
    return i;
  }

  function status(i: ProxySupervisorInput): string | undefined {
    try {
      return fs.readFileSync(i.statusPath, "utf8").trim();
    } catch {
      return undefined;
    }
  }

  test("a reload nginx answers after 3 s, within the answer timeout (5 s), is recorded as served with the time it took", async () => {
    const i = await start(5);
    fs.writeFileSync(path.join(dir, "reload-delay-ms"), "3000");
    upload(i, "gen-2");
    await until("gen-2 served", () => (status(i) === "gen-2" ? true : undefined));
    const answered = /serving configuration gen-2 \(nginx answered it after (\d+\.\d) s\)/.exec(stderr);
    expect(answered).not.toBeNull();
    expect(Number(answered![1])).toBeGreaterThanOrEqual(2.9);
    expect(Number(answered![1])).toBeLessThan(5);
  });

  test("a reload nginx has not answered within the answer timeout (2 s) is recorded as refused, naming the timeout", async () => {
    const i = await start(2);
    fs.writeFileSync(path.join(dir, "reload-delay-ms"), "4000");
    upload(i, "gen-2");
    await until("gen-2 refused", () => (status(i)?.startsWith(`${REFUSED_PREFIX} gen-2\n`) ? true : undefined));
    expect(status(i)).toBe(`${REFUSED_PREFIX} gen-2\nnginx did not answer it within 2 s after the reload signal: see docker logs of the proxy`);
    expect(stderr).toMatch(/nginx did not answer configuration gen-2 within 2 s/);
  });

  test("a configuration nginx -t refuses is recorded as refused with nginx's reason and never applied; the next one is", async () => {
    const i = await start(5);
    upload(i, "gen-2", "broken;\n");
    await until("gen-2 refused", () => (status(i)?.startsWith(`${REFUSED_PREFIX} gen-2\n`) ? true : undefined));
    expect(status(i)).toBe(`${REFUSED_PREFIX} gen-2\nnginx -t: nginx: [emerg] unknown directive "broken"`);
    expect(stderr).toMatch(/nginx refused configuration gen-2; still serving gen-1: nginx: \[emerg\] unknown directive "broken"/);
    expect(fs.readFileSync(path.join(i.servedDirectory, i.configName), "utf8")).toBe("gen-1\n");
    upload(i, "gen-3");
    await until("gen-3 served", () => (status(i) === "gen-3" ? true : undefined));
    expect(fs.readdirSync(`${i.servedDirectory}.copies`)).toEqual(["gen-3"]);
  });

  test("waits while an uploaded file does not match the marker's checksum", async () => {
    const i = await start(5);
    upload(i, "gen-2", "", {}, "0".repeat(64));
    await new Promise((r) => setTimeout(r, 2500));
    expect(status(i)).toBe("gen-1");
    upload(i, "gen-2");
    await until("gen-2 served", () => (status(i) === "gen-2" ? true : undefined));
  });

  test("a file the upload writes again while nginx -t runs never reaches nginx half written", async () => {
    const certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const port = await freePort();
    const i = input(port, 5);
    const served = path.join(i.servedDirectory, "server.crt");
    const fileLine = `file ${served} ${sha256(certificate)}\n`;
    upload(i, "gen-1", fileLine, { "server.crt": certificate });
    spawnSupervisor(i, port);
    await until("the first generation served", () => (status(i) === "gen-1" ? true : undefined));
    // Each new generation's `nginx -t` runs while the upload writes server.crt again.
    fs.writeFileSync(path.join(dir, "rewritten-during-test"), path.join(i.uploadDirectory, "server.crt"));
    for (let g = 2; g <= 3; g++) {
      upload(i, `gen-${g}`, fileLine, { "server.crt": certificate });
      await until(`gen-${g} handled`, () => (status(i)?.split("\n")[0].endsWith(`gen-${g}`) ? true : undefined));
      expect(status(i)).toBe(`gen-${g}`);
    }
  });

  test("a container started while the files do not match the marker waits for them, then serves", async () => {
    const port = await freePort();
    const i = input(port, 5);
    upload(i, "gen-1", "", {}, "0".repeat(64));
    spawnSupervisor(i, port);
    await until("the supervisor waiting", () => (/waiting until the uploaded files match the marker/.test(stderr) ? true : undefined));
    expect(status(i)).toBeUndefined();
    upload(i, "gen-1");
    await until("gen-1 served", () => (status(i) === "gen-1" ? true : undefined));
  });
});

describe("renderReloadCheck", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "reload-check-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function check(statusText: string): { status: number | null; stdout: string; stderr: string } {
    const statusPath = path.join(dir, "generation");
    fs.writeFileSync(statusPath, statusText);
    const r = spawnSync("/bin/sh", ["-c", renderReloadCheck(statusPath, "gen-2", 1, "proxy")], { encoding: "utf8" });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  test("exits 0 once the proxy serves the generation", () => {
    expect(check("gen-2\n")).toEqual({ status: 0, stdout: "proxy proxy serves configuration gen-2\n", stderr: "" });
  });

  test("exits 1 with the supervisor's reason when the proxy refused it", () => {
    const r = check(`${REFUSED_PREFIX} gen-2\nnginx -t: nginx: [emerg] unknown directive "broken"\n`);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('proxy proxy refused configuration gen-2: nginx -t: nginx: [emerg] unknown directive "broken"\n');
  });

  test("exits 1 naming the status when the proxy has not loaded it within the timeout", () => {
    const r = check("gen-1\n");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/did not load configuration gen-2 within 1 s \(status: gen-1\)/);
  });
});
