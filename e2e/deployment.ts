import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { Engine } from "./engine";
import { Check, say, Timings } from "./harness";
import { CommandError, run } from "./proc";
import { Json, JsonObject, realize, Realization } from "./realizer";

/**
 * The stack as a user runs it: a YAML config file (REGISTRY_STACK_CONFIG), passwords in
 * REGISTRY_PASSWORD_<USER>, `npx cdktf synth --output <dir>` from the project root, then the
 * synthesized cdk.tf.json realized on the private engine (stand-in for `cdktf deploy`).
 */

export const PROJECT_ROOT = path.resolve(__dirname, "..");
const SYNTH_TIMEOUT_MS = 180_000;

export interface SynthResult {
  outDir: string;
  /** <outDir>/stacks/registry */
  stackDir: string;
  /** <outDir>/stacks/registry/cdk.tf.json */
  stackFile: string;
  configFile: string;
  /** What synth printed (stdout), e.g. where generated passwords are. */
  stdout: string;
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
    ({ stdout } = await run("npx", ["cdktf", "synth", "--output", outDir], { cwd: PROJECT_ROOT, env, timeoutMs: SYNTH_TIMEOUT_MS }));
  } catch (err) {
    if (err instanceof CommandError) throw new Error(`cdktf synth (${name}) failed:\n${err.stdout.slice(-3000)}\n${err.stderr.slice(-3000)}`);
    throw err;
  }
  const stackDir = path.join(outDir, "stacks", "registry");
  const stackFile = path.join(stackDir, "cdk.tf.json");
  if (!fs.existsSync(stackFile)) throw new Error(`cdktf synth (${name}) wrote no ${stackFile}`);
  return { outDir, stackDir, stackFile, configFile, stdout };
}

/**
 * A scenario's first deployment: synth, then realize. When realizing fails, `checks` are aborted
 * with the reason and undefined is returned: the scenario has nothing left to check.
 */
export async function synthAndRealize(
  timings: Timings,
  dep: Deployment,
  tag: string,
  checks: readonly Check[],
  synthesize: () => Promise<SynthResult>,
): Promise<SynthResult | undefined> {
  const result = await timings.time(`${tag}: synth`, synthesize);
  try {
    await timings.time(`${tag}: realize`, () => dep.deploy(result));
  } catch (err) {
    for (const check of checks) check.abort(`deployment failed: ${(err as Error).message}`);
    return undefined;
  }
  return result;
}

/** One deployed stack on the engine; redeploy = destroy({keepVolumes}) + realize the new synth. */
export class Deployment {
  private current?: Realization;
  private synthResult?: SynthResult;

  constructor(
    readonly engine: Engine,
    readonly tag: string,
  ) {}

  get realization(): Realization {
    if (!this.current) throw new Error(`${this.tag}: not deployed`);
    return this.current;
  }

  get synthesized(): SynthResult {
    if (!this.synthResult) throw new Error(`${this.tag}: not deployed`);
    return this.synthResult;
  }

  async deploy(s: SynthResult): Promise<Realization> {
    if (this.current) throw new Error(`${this.tag}: already deployed; use redeploy`);
    this.current = await realize(s.stackFile, { api: this.engine.api, log: (l) => say(this.tag, `  realize: ${l}`) });
    this.synthResult = s;
    return this.current;
  }

  /** Containers and networks go, the data volume stays; then the new synth is realized. */
  async redeploy(s: SynthResult): Promise<Realization> {
    const old = this.current;
    this.current = undefined;
    await old?.destroy({ keepVolumes: true });
    return this.deploy(s);
  }

  /** Removes everything, volumes included. Idempotent. */
  async destroy(): Promise<void> {
    const old = this.current;
    this.current = undefined;
    await old?.destroy({ keepVolumes: false });
  }

  /** Engine ID of a container of this deployment, by container name. */
  async containerId(name: string): Promise<string> {
    const info = await this.engine.api.call<{ Id: string }>({ method: "GET", path: `/containers/${encodeURIComponent(name)}/json` });
    return info.Id;
  }

  async containerExists(name: string): Promise<boolean> {
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
