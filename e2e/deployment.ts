import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { Engine } from "./engine";
import { Check, say, Timings } from "./harness";
import { CommandError, run } from "./proc";
import { instanceOf } from "./stack-containers";
import { describePlan, initStack, Json, JsonObject, PlanSummary, savedPlan } from "./terraform-plan";
import { TerraformTools } from "./terraform-tools";

/**
 * The stack as a user runs it: a YAML config file (REGISTRY_STACK_CONFIG), passwords in
 * REGISTRY_PASSWORD_<USER>, `npx cdktf synth --output <dir>` from the project root, then
 * `cdktf deploy` of that folder through the real providers onto the suite's engine.
 */

export const PROJECT_ROOT = path.resolve(__dirname, "..");
const SYNTH_TIMEOUT_MS = 180_000;
const CDKTF_TIMEOUT_MS = 10 * 60_000;

export interface SynthResult {
  outDir: string;
  /** <outDir>/stacks/registry */
  stackDir: string;
  /** <outDir>/stacks/registry/cdk.tf.json */
  stackFile: string;
  configFile: string;
  /** The project folder cdktf ran in (PROJECT_ROOT, or a copy of the project). */
  projectRoot: string;
  /** What synth printed (stdout), e.g. where generated passwords are. */
  stdout: string;
  /** The environment synth ran with (config file, passwords): deploy and diff get the same. */
  env: NodeJS.ProcessEnv;
}

/** A user of the config: the password is passed through the environment, or generated when absent. */
export interface TestUser {
  name: string;
  password?: string;
}

/** Same rule as config/load-config.ts (documented in README). */
export function passwordEnvName(user: string): string {
  return `REGISTRY_PASSWORD_${user.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/**
 * Writes the config YAML (`<dir>/<configName>.yml`) and runs `npx cdktf synth --output <dir>/<name>`
 * in the project root.
 */
export async function synth(
  dir: string,
  name: string,
  config: JsonObject,
  users: TestUser[],
  configName = name,
  /** More variables for the synth, e.g. REGISTRY_UPSTREAM_PASSWORD_<MIRROR>. */
  extraEnv: Record<string, string> = {},
  /** The project folder to run cdktf in: a copy of the project (e2e/shared-state.ts) instead of this checkout. */
  projectRoot = PROJECT_ROOT,
): Promise<SynthResult> {
  const configFile = path.join(dir, `${configName}.yml`);
  fs.writeFileSync(configFile, `# e2e scenario config (${configName})\n${stringify(config)}`);
  // An empty secrets file: a developer's ./registry.secrets.yml must not leak into the test.
  const secretsFile = path.join(dir, "no-secrets.yml");
  if (!fs.existsSync(secretsFile)) fs.writeFileSync(secretsFile, "passwords: {}\n", { mode: 0o600 });

  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("REGISTRY_PASSWORD_") && !k.startsWith("REGISTRY_UPSTREAM_PASSWORD_") && k !== "REGISTRY_STACK_CONFIG" && k !== "REGISTRY_STACK_SECRETS") env[k] = v;
  }
  env.CHECKPOINT_DISABLE = "1";
  env.REGISTRY_STACK_CONFIG = configFile;
  env.REGISTRY_STACK_SECRETS = secretsFile;
  for (const u of users) if (u.password !== undefined) env[passwordEnvName(u.name)] = u.password;
  Object.assign(env, extraEnv);

  const outDir = path.join(dir, name);
  let stdout: string;
  try {
    ({ stdout } = await run("npx", ["cdktf", "synth", "--output", outDir], { cwd: projectRoot, env, timeoutMs: SYNTH_TIMEOUT_MS }));
  } catch (err) {
    if (err instanceof CommandError) throw new Error(`cdktf synth (${name}) failed:\n${err.stdout.slice(-3000)}\n${err.stderr.slice(-3000)}`);
    throw err;
  }
  const stackDir = path.join(outDir, "stacks", "registry");
  const stackFile = path.join(stackDir, "cdk.tf.json");
  if (!fs.existsSync(stackFile)) throw new Error(`cdktf synth (${name}) wrote no ${stackFile}`);
  return { outDir, stackDir, stackFile, configFile, projectRoot, stdout, env };
}

/**
 * A scenario's first deployment: synth, then `cdktf deploy`. When it fails, `checks` are aborted
 * with the reason and undefined is returned: the scenario has nothing left to check.
 */
export async function synthAndDeploy(
  timings: Timings,
  dep: Deployment,
  checks: readonly Check[],
  synthesize: () => Promise<SynthResult>,
): Promise<SynthResult | undefined> {
  const result = await timings.time(`${dep.tag}: synth`, synthesize);
  try {
    await timings.time(`${dep.tag}: cdktf deploy`, () => dep.deploy(result));
  } catch (err) {
    for (const check of checks) check.abort(`deployment failed: ${(err as Error).message}`);
    return undefined;
  }
  return result;
}

/**
 * Terraform's diagnostics in cdktf's output: each `Error:` line and the lines after it (cdktf
 * strips the box, so the resource and a postcondition's message have no mark of their own).
 */
function terraformErrors(output: string): string {
  const lines = output.split("\n");
  const starts = lines.flatMap((line, i) => (/\bError:/.test(line) ? [i] : []));
  if (starts.length === 0) return "(no Error: lines in cdktf's output)";
  return starts.map((i) => lines.slice(i, i + 14).join("\n")).join("\n").slice(0, 3000);
}

/**
 * The stack's one-shot containers that exited non-zero (reload checks, volume owners), with the
 * end of their logs: what a failed postcondition points to, gone once the scenario tears down.
 */
async function failedOneShots(engine: Engine, stackFile: string): Promise<string> {
  const stack = JSON.parse(fs.readFileSync(stackFile, "utf8")) as { resource?: { docker_container?: Record<string, { name?: string; attach?: boolean }> } };
  const names = Object.values(stack.resource?.docker_container ?? {}).filter((c) => c.attach === true && typeof c.name === "string").map((c) => c.name as string);
  const reports: string[] = [];
  for (const name of names) {
    const state = await engine.docker(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name]).then((r) => r.stdout.trim(), () => "");
    const [status, code] = state.split(" ");
    if (status !== "exited" || code === "0") continue;
    const logs = await engine.docker(["logs", "--tail", "20", name]).then((r) => `${r.stdout}${r.stderr}`.trim(), (err: Error) => err.message);
    // The container it prepared or checked (the proxy, a registry instance): its own account.
    const served = name.replace(/-(reload-check|volume-owner)$/, "");
    const servedLog = await engine.docker(["logs", "--tail", "200", served]).then(
      (r) => `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => /registry-stack|\[(emerg|alert|crit|error)\]|level=(error|fatal)/.test(l)).slice(-15).join("\n"),
      (err: Error) => err.message,
    );
    reports.push(`${name} exited ${code}:\n${logs}\n  ${served}'s log (registry-stack lines and errors):\n${servedLog}`);
  }
  return reports.length === 0 ? "(no one-shot container exited non-zero)" : reports.join("\n");
}

/** cdktf's output without its progress lines and terminal sequences. */
function cdktfOutput(text: string): string {
  return text
    .replace(/\x1b\[[0-9;]*[A-Za-z]/g, "")
    .split("\n")
    .filter((line) => line.trim() !== "" && !/Stacks? (deploying|done|waiting)/.test(line))
    .join("\n");
}

export interface SuiteTarget {
  readonly engine: Engine;
  readonly tools: TerraformTools;
}

/**
 * One stack deployed with the real CLI: `cdktf deploy` (of the folder `synth` wrote), then
 * `cdktf diff` and a saved plan that must both be empty; `teardown` is the stack's own
 * `npm run teardown`. The state is a local file in the scenario's folder; the provider talks to
 * the suite's engine (`dockerHost`).
 */
export class Deployment {
  private deployed?: SynthResult;
  private outputs: Record<string, string> = {};
  /** The plan summaries printed after each deploy, for the scenario's evidence. */
  readonly planSummaries: string[] = [];

  constructor(
    readonly target: SuiteTarget,
    readonly tag: string,
    /** The scenario's folder: config files, synth output folders and the state live here. */
    readonly dir: string,
    /**
     * Where cdktf runs: this checkout, or a copy of the project (two clones sharing one state).
     * @default PROJECT_ROOT
     */
    readonly projectRoot: string = PROJECT_ROOT,
  ) {}

  get engine(): Engine {
    return this.target.engine;
  }

  get stateFile(): string {
    return path.join(this.dir, "terraform.registry.tfstate");
  }

  get synthesized(): SynthResult {
    if (!this.deployed) throw new Error(`${this.tag}: not deployed`);
    return this.deployed;
  }

  /** A stack output of the last deploy (cdktf's --outputs-file). */
  output(name: string): string {
    const value = this.outputs[name];
    if (value === undefined) throw new Error(`${this.tag}: no output ${name} (have ${Object.keys(this.outputs).join(", ")})`);
    return value;
  }

  /**
   * `synth` into `<dir>/<name>` with this deployment's engine and state file added to the config
   * (a `stateBackend` in `config` replaces the state file: e.g. `{type: "pg"}` with PG_CONN_STR in `extraEnv`).
   */
  synth(name: string, config: JsonObject, users: TestUser[], configName = name, extraEnv: Record<string, string> = {}): Promise<SynthResult> {
    const placed: JsonObject = { dockerHost: this.engine.dockerHost, stateBackend: { type: "local", path: this.stateFile }, ...config };
    return synth(this.dir, name, placed, users, configName, extraEnv, this.projectRoot);
  }

  private env(s: SynthResult): NodeJS.ProcessEnv {
    return this.target.tools.env(s.env);
  }

  private async cdktf(s: SynthResult, args: string[]): Promise<string> {
    try {
      const { stdout } = await run("npx", ["cdktf", ...args, "--output", s.outDir, "--skip-provider-lock", "--no-color"], {
        cwd: s.projectRoot,
        env: this.env(s),
        timeoutMs: CDKTF_TIMEOUT_MS,
      });
      return stdout;
    } catch (err) {
      if (err instanceof CommandError) {
        const output = cdktfOutput(err.stdout);
        // Terraform's error blocks first: a report clipped in the middle still shows the cause.
        const oneShots = await failedOneShots(this.engine, s.stackFile).catch((e: Error) => `(could not inspect the one-shot containers: ${e.message})`);
        throw new Error(`cdktf ${args[0]} (${this.tag}) failed:\n${terraformErrors(output)}\n--- one-shot containers:\n${oneShots}\n--- output's end:\n${output.slice(-4000)}\n${err.stderr.slice(-2000)}`);
      }
      throw err;
    }
  }

  /**
   * The plan a deploy of `s` would apply, from a saved plan (terraform init + plan -out in the
   * synthesized folder): for asserting which resources a change replaces or updates.
   */
  async plan(s: SynthResult): Promise<PlanSummary> {
    await initStack(s.stackDir, this.env(s));
    return savedPlan(s.stackDir, this.env(s), "change");
  }

  /**
   * `cdktf deploy` of what `synth` wrote, then the proof that nothing is left to do: `cdktf diff`
   * (synthesizing again from the same inputs) says "No changes" and a saved plan has only no-ops;
   * otherwise it fails naming every resource and attribute that would change. `extraArgs`, e.g.
   * `--migrate-state` after a change of `stateBackend`. `proveEmpty: false` skips the proof (the
   * bench, which measures the stack and leaves proving it to the e2e suite).
   */
  async deploy(s: SynthResult, extraArgs: string[] = [], options: { proveEmpty?: boolean } = {}): Promise<void> {
    const outputsFile = path.join(s.outDir, "outputs.json");
    await this.cdktf(s, ["deploy", "--skip-synth", "--auto-approve", "--outputs-file", outputsFile, ...extraArgs]);
    this.deployed = s;
    const all = JSON.parse(fs.readFileSync(outputsFile, "utf8")) as Record<string, Record<string, string>>;
    this.outputs = all["registry"] ?? {};
    if (options.proveEmpty !== false) await this.assertNoChanges(s);
  }

  /** `cdktf diff` and a saved plan right after a deploy: both must be empty. */
  async assertNoChanges(s: SynthResult): Promise<void> {
    const diff = await this.cdktf(s, ["diff"]);
    const plan = await savedPlan(s.stackDir, this.env(s));
    const summary = describePlan(plan);
    this.planSummaries.push(summary.split("\n")[0]);
    say(this.tag, `plan after deploy (${path.basename(s.outDir)}): ${summary}`);
    if (plan.changes.length > 0) throw new Error(`the plan after the deploy is not empty:\n${summary}`);
    if (!/No changes/.test(diff)) throw new Error(`cdktf diff after the deploy is not empty:\n${cdktfOutput(diff).slice(-3000)}`);
  }

  /**
   * The stack's own teardown in the last deployed folder: `npm run teardown -- --yes` keeps the
   * data volume (in state), `all` removes it too. Idempotent.
   */
  async teardown(options: { all: boolean }): Promise<void> {
    const s = this.deployed;
    if (!s) return;
    const args = ["ts-node", "--transpile-only", "scripts/teardown.ts", "--yes", "--stack-dir", s.stackDir, ...(options.all ? ["--all"] : [])];
    await run("npx", args, { cwd: s.projectRoot, env: this.env(s), timeoutMs: CDKTF_TIMEOUT_MS });
    if (options.all) this.deployed = undefined;
  }

  /** Removes everything, volumes included. Idempotent. */
  async destroy(): Promise<void> {
    await this.teardown({ all: true });
  }

  /** Engine ID of the running container of a service (see instanceOf). */
  async containerId(service: string): Promise<string> {
    const name = await instanceOf(this.engine, service);
    const info = await this.engine.api.call<{ Id: string }>({ method: "GET", path: `/containers/${encodeURIComponent(name)}/json` });
    return info.Id;
  }

  async containerExists(service: string): Promise<boolean> {
    const name = await instanceOf(this.engine, service);
    return (await this.engine.api.find(`/containers/${encodeURIComponent(name)}/json`)) !== undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading a synthesized stack

export function readStack(s: SynthResult): JsonObject {
  return JSON.parse(fs.readFileSync(s.stackFile, "utf8")) as JsonObject;
}

export interface UploadRef {
  /** "docker_container.<id> <file in container>" */
  key: string;
  source?: string;
  sourceHash?: string;
  /** sha256 of inline content (content uploads) */
  contentSha256?: string;
}

/** Every container upload of the stack: source/source_hash or a hash of its inline content. */
export function uploads(doc: JsonObject): UploadRef[] {
  const containers = ((doc["resource"] as JsonObject | undefined)?.["docker_container"] ?? {}) as JsonObject;
  const out: UploadRef[] = [];
  for (const [id, body] of Object.entries(containers)) {
    const list = ((body as JsonObject)["upload"] ?? []) as Json[];
    for (const u of (Array.isArray(list) ? list : [list]) as JsonObject[]) {
      const content = typeof u["content"] === "string" ? (u["content"] as string) : undefined;
      out.push({
        key: `docker_container.${id} ${String(u["file"])}`,
        source: typeof u["source"] === "string" ? (u["source"] as string) : undefined,
        sourceHash: typeof u["source_hash"] === "string" ? (u["source_hash"] as string) : undefined,
        contentSha256: content !== undefined ? crypto.createHash("sha256").update(content).digest("hex") : undefined,
      });
    }
  }
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

/** Relative path → sha256 of every file below dir. */
export function treeHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}
