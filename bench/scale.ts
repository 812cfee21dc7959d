import * as fs from "fs";
import * as https from "https";
import { Engine } from "../e2e/engine";
import { RegistryStorage } from "../e2e/registry-storage";
import { sleep } from "../e2e/proc";
import { expectGet, Server } from "./http";

/**
 * Scale of data (issue 22 item 4): listings over many repositories and tags written straight
 * into the store, and the proxy's memory with many idle keep-alive connections.
 */

export const SCALE_REPOSITORIES = 1000;
export const SCALE_TAGS = 50;
const repoName = (i: number) => `scale/r${String(i).padStart(4, "0")}`;
export const TAGGED_REPOSITORY = repoName(0);

/** Repositories [0, repositories), each with tags t0..t<tags-1> on one small image; what exists is kept. */
export function writeRepositories(storage: RegistryStorage, repositories: number, tags: number): void {
  const now = new Date();
  const layer = storage.putBlob("one layer shared by every scale repository");
  for (let r = 0; r < repositories; r++) {
    const repo = repoName(r);
    const have = new Set(storage.tags(repo));
    const manifest = have.size === 0 ? storage.putImage(repo, [layer], now) : undefined;
    const digest = manifest?.digest ?? storage.revisions(repo)[0];
    for (let t = 0; t < tags; t++) if (!have.has(`t${t}`)) storage.tag(repo, `t${t}`, digest, now);
  }
}

/** The whole catalog, page by page (n=1000, the registry's maximum); returns ms and the count. */
export async function listCatalog(server: Server, credentials: { name: string; password: string }): Promise<{ ms: number; repositories: number }> {
  const started = Date.now();
  const agent = new https.Agent({ keepAlive: true, ca: server.ca });
  let repositories = 0;
  try {
    for (let next: string | undefined = "/v2/_catalog?n=1000"; next; ) {
      const reply = await expectGet(server, next, 200, { agent, credentials });
      repositories += (JSON.parse(reply.body) as { repositories: string[] }).repositories.length;
      const link = reply.headers["link"];
      next = typeof link === "string" ? /<([^>]+)>/.exec(link)?.[1] : undefined;
    }
  } finally {
    agent.destroy();
  }
  return { ms: Date.now() - started, repositories };
}

export async function listTags(server: Server, credentials: { name: string; password: string }): Promise<{ ms: number; tags: number }> {
  const reply = await expectGet(server, `/v2/${TAGGED_REPOSITORY}/tags/list`, 200, { credentials });
  return { ms: reply.ms, tags: (JSON.parse(reply.body) as { tags: string[] }).tags.length };
}

/**
 * Private memory (clean and dirty, KiB in /proc/<pid>/smaps_rollup) of the proxy container's nginx
 * master and workers, in bytes: without the page cache and kernel buffers that make the
 * container's own usage figure too noisy to see a few hundred connections in.
 */
export async function nginxPrivateMemory(engine: Engine, container: string): Promise<number> {
  const top = await engine.api.call<{ Titles: string[]; Processes: string[][] }>({ method: "GET", path: `/containers/${container}/top` });
  const pidColumn = top.Titles.indexOf("PID");
  const commandColumn = top.Titles.indexOf("CMD");
  let kib = 0;
  // Only nginx's own processes: a health check's shell may be gone before its file is read.
  const nginx = top.Processes.filter((r) => r[commandColumn].startsWith("nginx: "));
  if (nginx.length === 0) throw new Error(`${container}: no nginx process in ${JSON.stringify(top.Processes)}`);
  for (const row of nginx) {
    const rollup = fs.readFileSync(`/proc/${row[pidColumn]}/smaps_rollup`, "utf8");
    for (const m of rollup.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB$/gm)) kib += Number(m[1]);
  }
  return kib * 1024;
}

/**
 * Opens `connections` keep-alive TLS connections (each answers one GET /v2/ with a valid login),
 * leaves them idle, and returns the proxy's memory above what it used before they were opened.
 */
export async function idleConnectionMemory(engine: Engine, container: string, server: Server, credentials: { name: string; password: string }, connections: number): Promise<number> {
  const before = await nginxPrivateMemory(engine, container);
  const agent = new https.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections, ca: server.ca, timeout: 120_000 });
  try {
    await Promise.all(Array.from({ length: connections }, () => expectGet(server, "/v2/", 200, { agent, credentials })));
    const open = Object.values(agent.freeSockets).reduce((n, list) => n + (list?.length ?? 0), 0);
    if (open !== connections) throw new Error(`${open} of ${connections} connections kept open`);
    await sleep(1_000);
    return (await nginxPrivateMemory(engine, container)) - before;
  } finally {
    agent.destroy();
    await sleep(500);
  }
}
