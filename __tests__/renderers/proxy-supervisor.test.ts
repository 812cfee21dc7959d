import { ChildProcess, spawn } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { REFUSED_PREFIX, ProxySupervisorInput, renderProxySupervisor } from "../../renderers/proxy-supervisor";
import { stopScript, until } from "../fixtures/script-runs";

/**
 * The supervisor run for real by /bin/sh (dash here; busybox ash in the image: every e2e
 * deployment with a proxy runs it there) with stand-ins on PATH: `nginx` (node: answers the
 * first line of its configuration at the generation URL, takes a reload the number of
 * milliseconds in `reload-delay-ms` after SIGHUP; `-t` refuses a configuration containing
 * "broken") and `wget` (node: prints the body of a 200).
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
  if (/broken/.test(fs.readFileSync(conf, "utf8"))) { console.error('nginx: [emerg] unknown directive "broken"'); process.exit(1); }
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

  /** Writes nginx.conf (the generation on its first line, then `extra`) and the marker naming it with its checksum. */
  function upload(i: ProxySupervisorInput, generation: string, extra = "", markerSum?: string): void {
    const conf = `${generation}\n${extra}`;
    fs.writeFileSync(i.configPath, conf);
    const sum = markerSum ?? createHash("sha256").update(conf).digest("hex");
    fs.writeFileSync(i.generationPath, `${generation}\n${sum}  nginx.conf\n`);
  }

  async function start(answerTimeoutSeconds: number): Promise<ProxySupervisorInput> {
    const port = await freePort();
    const i: ProxySupervisorInput = {
      configDirectory: path.join(dir, "config"),
      configPath: path.join(dir, "config", "nginx.conf"),
      generationPath: path.join(dir, "config", "generation"),
      statusPath: path.join(dir, "status", "generation"),
      generationUrl: `http://127.0.0.1:${port}/generation`,
      answerTimeoutSeconds,
    };
    upload(i, "gen-1");
    child = spawn("/bin/sh", ["-c", renderProxySupervisor(i)], { env: { ...process.env, PATH: `${fakeTools(dir, port)}:${process.env.PATH}` } });
    child.stderr!.on("data", (d) => (stderr += d.toString()));
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
    await until("gen-2 refused", () => (status(i) === `${REFUSED_PREFIX} gen-2` ? true : undefined));
    expect(stderr).toMatch(/nginx did not answer configuration gen-2 within 2 s; still serving gen-1/);
  });

  test("a configuration nginx -t refuses is recorded as refused and never applied; the next one is", async () => {
    const i = await start(5);
    upload(i, "gen-2", "broken;\n");
    await until("gen-2 refused", () => (status(i) === `${REFUSED_PREFIX} gen-2` ? true : undefined));
    expect(stderr).toMatch(/nginx refused configuration gen-2; still serving gen-1/);
    upload(i, "gen-3");
    await until("gen-3 served", () => (status(i) === "gen-3" ? true : undefined));
  });

  test("waits while an uploaded file does not match the marker's checksum", async () => {
    const i = await start(5);
    upload(i, "gen-2", "", "0".repeat(64));
    await new Promise((r) => setTimeout(r, 2500));
    expect(status(i)).toBe("gen-1");
    upload(i, "gen-2");
    await until("gen-2 served", () => (status(i) === "gen-2" ? true : undefined));
  });
});
