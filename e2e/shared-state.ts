import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { freePort } from "./clients";
import { Deployment, PROJECT_ROOT, SynthResult, TestUser } from "./deployment";
import { assert, assertEqual, assertMatch, Check, clip, say } from "./harness";
import { CommandError, run, sleep } from "./proc";
import { baseConfig, SuiteContext } from "./scenarios";
import { describePlan, JsonObject, savedPlan, touched } from "./terraform-plan";

/**
 * Issue 21: a team sharing one state. PostgreSQL (Debian's package, started here) holds the
 * state; two copies of the project in different folders deploy against it:
 *   70  local state moved to PostgreSQL (`cdktf deploy --migrate-state`); the second copy plans
 *       nothing; its change deploys and the first copy's plan sees it
 *   71  two deploys at once: one refused by the lock; a deploy killed half-way, repaired by the next
 *   72  the same config in two folders synthesizes the same cdk.tf.json
 *   73  the review job's commands (docs/examples/*-diff.yml) run here: npm run plan-summary
 */

export interface SharedStateChecks {
  sharedState: Check;
  locking: Check;
  portable: Check;
  review: Check;
}

/** The two lines of the example workflows that the suite runs as they are (check 73). */
export const RESTORE_MATERIAL = 'printf %s "$REGISTRY_STACK_MATERIAL" | base64 -d | tar -xz';
export const PLAN_SUMMARY = "npm run plan-summary -- --out plan-summary.md";
export const WORKFLOWS = ["docs/examples/github-actions-diff.yml", "docs/examples/gitlab-ci-diff.yml"];

const LOCK_MESSAGE = /Error acquiring the state lock/;
const DEPLOY_TIMEOUT_MS = 8 * 60_000;

// ---------------------------------------------------------------------------------------------
// PostgreSQL from Debian's packages, in a temp folder, on a free loopback port

class Postgres {
  private constructor(
    private readonly bin: string,
    private readonly root: string,
    readonly port: number,
    readonly connStr: string,
  ) {}

  private get data(): string {
    return path.join(this.root, "data");
  }

  static async start(log: (line: string) => void): Promise<Postgres> {
    const versions = fs.existsSync("/usr/lib/postgresql") ? fs.readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a)) : [];
    const bin = versions.map((v) => path.join("/usr/lib/postgresql", v, "bin")).find((d) => fs.existsSync(path.join(d, "pg_ctl")));
    if (!bin) throw new Error("PostgreSQL is not installed (/usr/lib/postgresql/<version>/bin/pg_ctl): run `bash e2e/setup-host.sh`");
    const uid = Number((await run("id", ["-u", "postgres"], { timeoutMs: 10_000 })).stdout.trim());
    const gid = Number((await run("id", ["-g", "postgres"], { timeoutMs: 10_000 })).stdout.trim());
    // Not in the suite's workspace: postgres (not root) must reach it, and the workspace is 0700 root.
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "rse2e-pg-"));
    fs.chownSync(root, uid, gid);
    const superPw = path.join(root, "superuser.pw");
    fs.writeFileSync(superPw, `pg-super-${process.pid}-${Date.now()}\n`, { mode: 0o600 });
    fs.chownSync(superPw, uid, gid);
    const port = await freePort();
    const password = `tfstate-${Math.random().toString(36).slice(2)}`;
    const pg = new Postgres(bin, root, port, `postgres://tfstate:${password}@127.0.0.1:${port}/tfstate?sslmode=disable`);
    try {
      await pg.asPostgres("initdb", ["-D", pg.data, "-U", "postgres", "-E", "UTF8", "--auth-local=trust", "--auth-host=scram-sha-256", `--pwfile=${superPw}`]);
      await pg.asPostgres("pg_ctl", ["-D", pg.data, "-l", path.join(root, "postgres.log"), "-w", "-t", "60", "-o", `-c listen_addresses=127.0.0.1 -p ${port} -k ${root}`, "start"]);
      await pg.psql("postgres", `CREATE ROLE tfstate LOGIN PASSWORD '${password}'`);
      await pg.psql("postgres", "CREATE DATABASE tfstate OWNER tfstate");
    } catch (err) {
      await pg.stop();
      throw err;
    }
    log(`PostgreSQL (${bin}) on 127.0.0.1:${port}, data in ${pg.data}; database and user tfstate`);
    return pg;
  }

  private async asPostgres(tool: string, args: string[]): Promise<string> {
    return (await run("runuser", ["-u", "postgres", "--", path.join(this.bin, tool), ...args], { cwd: "/", timeoutMs: 90_000 })).stdout;
  }

  /** SQL over the unix socket as the superuser. */
  psql(database: string, sql: string): Promise<string> {
    return this.asPostgres("psql", ["-h", this.root, "-p", String(this.port), "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]);
  }

  /** pg_ctl stop; the postmaster's pid if that fails; then the folder. */
  async stop(): Promise<void> {
    try {
      if (fs.existsSync(path.join(this.data, "postmaster.pid"))) await this.asPostgres("pg_ctl", ["-D", this.data, "-m", "fast", "-w", "-t", "30", "stop"]);
    } catch {
      const pid = Number(fs.readFileSync(path.join(this.data, "postmaster.pid"), "utf8").split("\n")[0]);
      if (pid > 0) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    }
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Copies of the project: what a teammate's clone holds (tracked files, node_modules linked)

/** The project's files as git lists them (tracked, and new files not ignored), copied; node_modules linked. */
async function copyProject(dest: string): Promise<number> {
  const { stdout } = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: PROJECT_ROOT, timeoutMs: 60_000 });
  let copied = 0;
  for (const file of stdout.split("\0").filter((f) => f !== "")) {
    const from = path.join(PROJECT_ROOT, file);
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(from);
    } catch {
      continue; // deleted in the working tree
    }
    const to = path.join(dest, file);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    if (stat.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from), to);
    else if (stat.isFile()) fs.copyFileSync(from, to);
    else continue;
    copied++;
  }
  fs.symlinkSync(path.join(PROJECT_ROOT, "node_modules"), path.join(dest, "node_modules"));
  return copied;
}

/** Processes (terraform, node) whose working folder is inside `dir`: what a killed cdktf may leave behind. */
function processesIn(dir: string): Array<{ pid: number; args: string }> {
  const out: Array<{ pid: number; args: string }> = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cwd = fs.readlinkSync(`/proc/${entry}/cwd`);
      if (cwd === dir || cwd.startsWith(dir + path.sep)) {
        out.push({ pid: Number(entry), args: fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ").trim() });
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

interface StateContainer {
  name: string;
  id: string;
}

/** docker_container resources of the state (terraform show -json in the stack folder). */
async function stateContainers(s: SynthResult, env: NodeJS.ProcessEnv): Promise<StateContainer[]> {
  const file = path.join(s.stackDir, "state.json");
  await run("/bin/sh", ["-c", 'terraform show -json > "$1"', "sh", file], { cwd: s.stackDir, env, timeoutMs: 120_000 });
  const doc = JSON.parse(fs.readFileSync(file, "utf8")) as { values?: { root_module?: { resources?: Array<{ type: string; values: { name: string; id: string } }> } } };
  fs.rmSync(file, { force: true });
  return (doc.values?.root_module?.resources ?? []).filter((r) => r.type === "docker_container").map((r) => ({ name: r.values.name, id: r.values.id }));
}

/**
 * No half-applied containers: every container of the stack on the engine is in the state (same
 * ID), and every container of the state exists.
 */
async function assertStateMatchesEngine(ctx: SuiteContext, s: SynthResult, prefix: string, check: Check, when: string): Promise<void> {
  const inState = await stateContainers(s, ctx.tools.env(s.env));
  const onEngine = (await ctx.engine.api.call<Array<{ Id: string; Names: string[] }>>({ method: "GET", path: "/containers/json?all=true" }))
    .map((c) => ({ id: c.Id, name: c.Names[0].replace(/^\//, "") }))
    .filter((c) => c.name.startsWith(`${prefix}-`));
  const stateIds = new Set(inState.map((c) => c.id));
  const engineIds = new Set(onEngine.map((c) => c.id));
  const orphans = onEngine.filter((c) => !stateIds.has(c.id));
  const missing = inState.filter((c) => !engineIds.has(c.id));
  assert(orphans.length === 0, `${when}: containers on the engine that the state does not hold: ${orphans.map((c) => c.name).join(", ")}`);
  assert(missing.length === 0, `${when}: containers in the state that the engine does not have: ${missing.map((c) => c.name).join(", ")}`);
  check.note(`${when}: the state's ${inState.length} containers are exactly the engine's ${onEngine.length} ${prefix}-* containers (same IDs)`);
}

interface RawDeploy {
  ok: boolean;
  output: string;
}

/** `cdktf deploy` of a synthesized folder, its result returned rather than thrown. */
async function rawDeploy(ctx: SuiteContext, s: SynthResult): Promise<RawDeploy> {
  try {
    const { stdout, stderr } = await run("npx", ["cdktf", "deploy", "--skip-synth", "--auto-approve", "--skip-provider-lock", "--no-color", "--output", s.outDir], {
      cwd: s.projectRoot,
      env: ctx.tools.env(s.env),
      timeoutMs: DEPLOY_TIMEOUT_MS,
    });
    return { ok: true, output: stdout + stderr };
  } catch (err) {
    if (err instanceof CommandError) return { ok: false, output: err.stdout + err.stderr };
    throw err;
  }
}

function lockLines(output: string): string {
  const lines = output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").split("\n");
  const i = lines.findIndex((l) => LOCK_MESSAGE.test(l));
  return lines.slice(Math.max(0, i), i + 8).map((l) => l.trim()).filter((l) => l !== "").join(" | ");
}

/**
 * A deploy interrupted once Terraform is applying: SIGINT to cdktf's process group (Ctrl-C), then
 * SIGKILL to the group a few seconds later (the terminal closed). cdktf runs Terraform in a
 * pseudo-terminal of its own session, so what survives is listed and then killed by its pid.
 */
async function killedDeploy(ctx: SuiteContext, s: SynthResult, check: Check): Promise<void> {
  const child = spawn("npx", ["cdktf", "deploy", "--skip-synth", "--auto-approve", "--skip-provider-lock", "--no-color", "--output", s.outDir], {
    cwd: s.projectRoot,
    env: ctx.tools.env(s.env),
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const pid = child.pid;
  assert(pid !== undefined, "cdktf deploy did not start");
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch {
      // gone
    }
  };
  try {
    const t0 = Date.now();
    while (!/Creating\.\.\.|Destroying\.\.\.|Modifying\.\.\./.test(output)) {
      assert(child.exitCode === null, `the deploy ended before it applied anything:\n${clip(output, 1500)}`);
      assert(Date.now() - t0 < 240_000, `no apply started within 240 s:\n${clip(output, 1500)}`);
      await sleep(200);
    }
    const applying = /(\S+): (Creating|Destroying|Modifying)\.\.\./.exec(output);
    await sleep(1500);
    killGroup("SIGINT");
    check.note(`deploy killed while applying (${applying ? `${applying[2]} ${applying[1]}` : "?"}): SIGINT to cdktf's process group after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await sleep(3000);
    killGroup("SIGKILL");
    await Promise.race([exited, sleep(10_000)]);
    await sleep(1000);
    const left = processesIn(s.projectRoot);
    if (left.length > 0) {
      check.note(`then SIGKILL to the group; still running in the project: ${left.map((p) => `${p.pid} ${clip(p.args, 60)}`).join("; ")} — SIGKILL by pid`);
      for (const p of left) {
        try {
          process.kill(p.pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      await sleep(1000);
    } else {
      check.note("then SIGKILL to the group; nothing of the deploy left running");
    }
  } finally {
    killGroup("SIGKILL");
    for (const p of processesIn(s.projectRoot)) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
}

/** The `run:` lines of a GitHub workflow, the `script:` lines of a GitLab CI file. */
function workflowCommands(file: string): string[] {
  const doc = parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  const lines: string[] = [];
  const add = (text: unknown) => {
    if (typeof text === "string") lines.push(...text.split("\n").map((l) => l.trim()).filter((l) => l !== ""));
  };
  const jobs = (doc["jobs"] ?? doc) as Record<string, unknown>;
  for (const job of Object.values(jobs)) {
    if (job === null || typeof job !== "object") continue;
    for (const step of ((job as Record<string, unknown>)["steps"] ?? []) as Array<Record<string, unknown>>) add(step["run"]);
    for (const key of ["before_script", "script"]) for (const line of ((job as Record<string, unknown>)[key] ?? []) as unknown[]) add(line);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------

export async function sharedStateScenario(ctx: SuiteContext, c: SharedStateChecks): Promise<void> {
  const tag = "shared-state";
  const prefix = "e2e-shared";
  const dir = ctx.ws.dir(tag);
  const port = await freePort();
  const users: TestUser[] = [{ name: "alice", password: "alice-shared-password-1" }];
  // The client files' folder is the user's choice (absolute, shared); the material is the project's
  // default (assets/generated/registry, relative to each copy): B gets A's from the "secret store".
  const { materialDirectory: _unused, ...base } = baseConfig(dir, prefix, port, users);
  void _unused;
  const config: JsonObject = { ...base, hostnames: ["localhost"], ipAddresses: ["127.0.0.1"], proxy: false, stopGraceSeconds: 2 };
  const withPg = (extra: JsonObject = {}): JsonObject => ({ ...config, stateBackend: { type: "pg" }, ...extra });
  const all = Object.values(c);

  let pg: Postgres | undefined;
  const cloneA = ctx.ws.dir("clone-a");
  const cloneB = ctx.ws.dir("clone-b");
  const depA = new Deployment(ctx, `${tag}/a`, cloneA, cloneA);
  const depB = new Deployment(ctx, `${tag}/b`, cloneB, cloneB);
  let pgEnv: Record<string, string> = {};
  // Each copy's config is its own registry-stack.yml (as committed), its output the default cdktf.out.
  const synthIn = (dep: Deployment, cfg: JsonObject) => ctx.timings.time(`${dep.tag}: synth`, () => dep.synth("cdktf.out", cfg, users, "registry-stack", pgEnv));
  try {
    pg = await ctx.timings.time(`${tag}: postgres start`, () => Postgres.start((l) => say(tag, l)));
    const db = pg;
    pgEnv = { PG_CONN_STR: db.connStr };
    const copied = [await copyProject(cloneA), await copyProject(cloneB)];
    say(tag, `copies of the project: ${cloneA}, ${cloneB} (${copied[0]} files each, node_modules linked)`);

    let sA: SynthResult | undefined;
    let sB: SynthResult | undefined;
    await c.sharedState.phase("deploy from copy A with the local state, then move it to PostgreSQL (cdktf deploy --migrate-state)", async () => {
      const local = await synthIn(depA, { ...config, stateBackend: { type: "local" } });
      await ctx.timings.time(`${tag}: deploy A (local state)`, () => depA.deploy(local));
      const localFile = path.join(cloneA, "terraform.registry.tfstate");
      assert(fs.existsSync(localFile), `no local state at ${localFile}`);
      c.sharedState.note(`copy A deployed with the default local state ${path.relative(cloneA, localFile)} (${depA.planSummaries.at(-1)})`);
      sA = await synthIn(depA, withPg());
      await ctx.timings.time(`${tag}: deploy A --migrate-state`, () => depA.deploy(sA!, ["--migrate-state"]));
      const rows = await db.psql("tfstate", "SELECT name || ' ' || length(data) FROM terraform_remote_state.states");
      assertMatch(rows, /^default \d+$/m, "state row in PostgreSQL");
      const serial = (JSON.parse(fs.readFileSync(localFile, "utf8")) as { serial: number }).serial;
      c.sharedState.note(`stateBackend: {type: pg} + cdktf deploy --migrate-state: terraform_remote_state.states holds "${rows.trim()}" (bytes); the local file (serial ${serial}) stays as a backup; plan after it empty`);
    });

    await c.sharedState.phase("copy B with the same config and A's material: cdktf diff and a saved plan are empty", async () => {
      const tarball = (await run("/bin/sh", ["-c", "tar -czf - assets/generated/registry | base64 -w0"], { cwd: cloneA, timeoutMs: 30_000 })).stdout;
      await run("/bin/sh", ["-c", RESTORE_MATERIAL], { cwd: cloneB, env: { ...process.env, REGISTRY_STACK_MATERIAL: tarball }, timeoutMs: 30_000 });
      c.sharedState.note(`material: A's assets/generated/registry as a base64 tarball (${tarball.length} chars, a CI secret) restored in B with \`${RESTORE_MATERIAL}\``);
      sB = await synthIn(depB, withPg());
      await depB.assertNoChanges(sB);
      c.sharedState.note(`copy B (other folder, same registry-stack.yml, same PG_CONN_STR): cdktf diff "No changes"; saved plan: ${depB.planSummaries.at(-1)}`);
    });

    await c.portable.phase("A's and B's cdk.tf.json: equal, no folder of either copy in them", async () => {
      assert(sA && sB, "no synthesized stacks to compare");
      const a = fs.readFileSync(sA.stackFile, "utf8");
      const b = fs.readFileSync(sB.stackFile, "utf8");
      for (const [text, name] of [[a, "A"], [b, "B"]] as const) {
        for (const root of [cloneA, cloneB, PROJECT_ROOT]) assert(!text.includes(root), `${name}'s cdk.tf.json contains the folder ${root}`);
      }
      assertEqual(a === b, true, "A's and B's cdk.tf.json are byte-identical");
      const workingDirs = [...new Set([...a.matchAll(/"working_dir": "([^"]*)"/g)].map((m) => m[1]))];
      assertEqual(workingDirs, ["../../.."], "provisioners' working_dir");
      c.portable.note(`byte-identical (${a.length} bytes); provisioners' working_dir ${JSON.stringify(workingDirs)}; client files under the configured ${base["clientConfigDirectory"]} (the user's choice); no path of ${path.basename(cloneA)}, ${path.basename(cloneB)} or the checkout`);
      const local = fs.readFileSync(path.join(cloneA, "cdktf.out", "stacks", "registry", "cdk.tf.json"), "utf8");
      assert(local === a, "A's output folder holds another stack than the pg one");
      c.portable.note("documented exception: with stateBackend local the default state path is absolute (<project>/terraform.registry.tfstate), so that rm -rf cdktf.out loses nothing");
    });
    c.portable.finish();

    const changed = withPg({ logLevel: "warn" });
    let sB2: SynthResult | undefined;
    await c.review.phase("the review job's commands in B with a change pending (logLevel: warn)", async () => {
      sB2 = await synthIn(depB, changed);
      const summaryFile = path.join(cloneB, "plan-summary.md");
      const command = `${PLAN_SUMMARY} --skip-provider-lock`;
      await ctx.timings.time(`${tag}: ${command}`, () => run("/bin/sh", ["-c", command], { cwd: cloneB, env: ctx.tools.env(sB2!.env), timeoutMs: DEPLOY_TIMEOUT_MS }));
      const summary = fs.readFileSync(summaryFile, "utf8");
      const plan = await savedPlan(sB2.stackDir, ctx.tools.env(sB2.env), "review");
      const counts = `Plan: ${plan.add} to add, ${plan.change} to change, ${plan.destroy} to destroy.`;
      assert(plan.changes.length > 0, "the change planned nothing");
      assert(summary.includes(`**${counts}**`), `summary lacks "${counts}":\n${clip(summary, 800)}`);
      for (const rc of plan.changes) assert(summary.includes(`\`${rc.address}\``), `summary lacks ${rc.address}`);
      c.review.note(`\`${command}\` in B: "${counts}", ${plan.changes.length} resource rows (= the saved plan: ${touched(plan).join(", ")}), terraform show text in <details>`);
      for (const file of WORKFLOWS) {
        const lines = workflowCommands(path.join(PROJECT_ROOT, file));
        for (const expected of ["npm ci", RESTORE_MATERIAL, PLAN_SUMMARY]) assert(lines.includes(expected), `${file} does not run \`${expected}\` (runs: ${lines.join(" ; ")})`);
      }
      c.review.note(`${WORKFLOWS.join(" and ")} run exactly \`npm ci\`, \`${RESTORE_MATERIAL}\` and \`${PLAN_SUMMARY}\` (the suite adds --skip-provider-lock: no registry here)`);
    });

    await c.sharedState.phase("the change deployed from B; A's plan with its old config would revert it; A with the same config plans nothing", async () => {
      assert(sA && sB2, "nothing synthesized");
      await ctx.timings.time(`${tag}: deploy B (logLevel warn)`, () => depB.deploy(sB2!));
      const stale = await savedPlan(sA.stackDir, ctx.tools.env(sA.env), "stale");
      assert(stale.changes.length > 0, "A's plan with the old config is empty: it does not see B's deploy");
      c.sharedState.note(`B deployed logLevel: warn; A's saved plan with its old config (logLevel info): ${describePlan(stale).split("\n")[0]} (${touched(stale).join(", ")}) — the state holds B's change`);
      const sA2 = await synthIn(depA, changed);
      await depA.assertNoChanges(sA2);
      sA = sA2;
      c.sharedState.note(`A with B's config: cdktf diff "No changes", ${depA.planSummaries.at(-1)}`);
    });
    c.sharedState.finish();

    await c.locking.phase("two deploys at once (A: logLevel error, B: logLevel debug): one refused by the lock", async () => {
      const sAx = await synthIn(depA, withPg({ logLevel: "error" }));
      const sBx = await synthIn(depB, withPg({ logLevel: "debug" }));
      const t0 = Date.now();
      const [ra, rb] = await ctx.timings.time(`${tag}: two deploys at once`, () => Promise.all([rawDeploy(ctx, sAx), rawDeploy(ctx, sBx)]));
      const results = [
        { name: "A", r: ra, s: sAx, dep: depA },
        { name: "B", r: rb, s: sBx, dep: depB },
      ];
      const refused = results.filter((x) => !x.r.ok);
      for (const x of results) say(tag, `deploy ${x.name}: ${x.r.ok ? "applied" : `failed: ${clip(lockLines(x.r.output) || x.r.output.slice(-800), 600)}`}`);
      assertEqual(refused.length, 1, "deploys refused (of two started together)");
      assertMatch(refused[0].r.output, LOCK_MESSAGE, `deploy ${refused[0].name}'s error`);
      const winner = results.find((x) => x.r.ok)!;
      c.locking.note(`started together (${((Date.now() - t0) / 1000).toFixed(0)} s): ${winner.name} applied, ${refused[0].name} refused: "${clip(lockLines(refused[0].r.output), 300)}"`);
      await winner.dep.assertNoChanges(winner.s);
      c.locking.note(`winner ${winner.name}'s saved plan afterwards: ${winner.dep.planSummaries.at(-1)}`);
      await assertStateMatchesEngine(ctx, winner.s, prefix, c.locking, "after the collision");

      // The refused change, deployed again but killed half-way.
      const loser = refused[0];
      await killedDeploy(ctx, loser.s, c.locking);
      let next = await ctx.timings.time(`${tag}: deploy after the kill`, () => rawDeploy(ctx, loser.s));
      if (!next.ok && LOCK_MESSAGE.test(next.output)) {
        // The README's step: the lock ID from the message, force-unlock in cdktf.out/stacks/registry.
        const id = /ID:\s+(\S+)/.exec(next.output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, ""))?.[1];
        assert(id, `lock error without an ID: ${clip(lockLines(next.output), 400)}`);
        await run("terraform", ["force-unlock", "-force", id], { cwd: loser.s.stackDir, env: ctx.tools.env(loser.s.env), timeoutMs: 60_000 });
        c.locking.note(`the lock stayed held: terraform force-unlock -force ${id} (README's step), then deploy again`);
        next = await rawDeploy(ctx, loser.s);
      } else if (next.ok) {
        c.locking.note("the lock was released by the kill (PostgreSQL drops a session's advisory lock with its connection): no force-unlock needed");
      }
      assert(next.ok, `the deploy after the kill failed:\n${clip(next.output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, ""), 2500)}`);
      await loser.dep.assertNoChanges(loser.s);
      c.locking.note(`the next deploy of ${loser.name} repaired it; saved plan afterwards: ${loser.dep.planSummaries.at(-1)}`);
      await assertStateMatchesEngine(ctx, loser.s, prefix, c.locking, "after the repair");
    });
    c.locking.finish();
    c.review.finish();
  } catch (err) {
    for (const check of all) check.abort(`scenario ${tag} failed: ${(err as Error).message}`);
  } finally {
    for (const dep of [depA, depB]) {
      try {
        await ctx.timings.time(`${dep.tag}: destroy`, () => dep.destroy());
        break; // one state: one teardown removes everything
      } catch (err) {
        say(tag, `destroy from ${dep.tag} failed: ${(err as Error).message}`);
      }
    }
    for (const clone of [cloneA, cloneB]) {
      for (const p of processesIn(clone)) {
        try {
          process.kill(p.pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      fs.rmSync(path.join(clone, "node_modules"), { force: true });
    }
    if (pg) await pg.stop().catch((err: Error) => say(tag, `postgres stop failed: ${err.message}`));
  }
}
