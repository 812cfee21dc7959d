/**
 * Tears the deployed stack down with Terraform itself, in the stack's synthesized directory
 * (`cdktf.out/stacks/<stack>`, where `cdktf deploy` ran it):
 *
 *   npm run teardown                 containers, networks, client files… go; the data volume (the
 *                                    pushed images) stays, in the state: the next deploy reuses it
 *   npm run teardown -- --all        everything, the data volume too (prevent_destroy is lifted
 *                                    for this one run through a Terraform override file)
 *
 * Options: --yes (no confirmation prompt), --dry-run (print the commands), --stack <name>
 * (default registry), --output <dir> (default cdktf.out), --stack-dir <dir> (instead of both).
 * `cdktf destroy` cannot do either while preventVolumeDestroy is on: it fails at plan.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

/** Where the registry keeps its data; a volume mounted there is "the data volume". */
export const DATA_PATH = "/var/lib/registry";
/** Terraform merges `*_override.tf.json` files into the configuration of their directory. */
export const OVERRIDE_FILE = "registry_stack_teardown_override.tf.json";

type Resources = Record<string, Record<string, Record<string, unknown>>>;
export interface SynthesizedStack {
  resource?: Resources;
}

export interface TeardownOptions {
  readonly all: boolean;
  readonly yes: boolean;
}

export interface TeardownPlan {
  /** Arguments after the terraform binary; undefined = nothing to do. */
  readonly destroyArgs?: string[];
  /** Content of OVERRIDE_FILE to write for the destroy (--all). */
  readonly override?: string;
  /** Addresses left in place (and in the state). */
  readonly kept: string[];
}

/**
 * The resources a teardown keeps: every docker_volume a container mounts at /var/lib/registry and
 * every resource with lifecycle.prevent_destroy (only the data volume has it).
 */
export function keptAddresses(stack: SynthesizedStack): string[] {
  const resources = stack.resource ?? {};
  const kept = new Set<string>();
  for (const [type, byId] of Object.entries(resources)) {
    for (const [id, body] of Object.entries(byId)) {
      const lifecycle = body.lifecycle as { prevent_destroy?: unknown } | undefined;
      if (lifecycle?.prevent_destroy === true) kept.add(`${type}.${id}`);
    }
  }
  for (const container of Object.values(resources.docker_container ?? {})) {
    const volumes = (container.volumes ?? []) as Array<{ container_path?: string; volume_name?: string }>;
    for (const v of volumes) {
      const ref = /^\$\{(docker_volume\.[A-Za-z0-9_-]+)\.name\}$/.exec(v.volume_name ?? "");
      if (v.container_path === DATA_PATH && ref) kept.add(ref[1]);
    }
  }
  return [...kept].sort();
}

/** Terraform override that lifts prevent_destroy wherever the stack sets it. */
export function preventDestroyOverride(stack: SynthesizedStack): string | undefined {
  const resource: Resources = {};
  for (const [type, byId] of Object.entries(stack.resource ?? {})) {
    for (const [id, body] of Object.entries(byId)) {
      const lifecycle = body.lifecycle as { prevent_destroy?: unknown } | undefined;
      if (lifecycle?.prevent_destroy === true) (resource[type] ??= {})[id] = { lifecycle: { prevent_destroy: false } };
    }
  }
  return Object.keys(resource).length === 0 ? undefined : JSON.stringify({ resource }, null, 2) + "\n";
}

/** What to run, from the addresses in the state (`terraform state list`) and the synthesized stack. */
export function planTeardown(stateAddresses: string[], stack: SynthesizedStack, options: TeardownOptions): TeardownPlan {
  const managed = stateAddresses.map((a) => a.trim()).filter((a) => a !== "" && !a.startsWith("data."));
  const approve = options.yes ? ["-auto-approve"] : [];
  if (managed.length === 0) return { kept: [] };
  if (options.all) {
    return { destroyArgs: ["destroy", "-input=false", ...approve], override: preventDestroyOverride(stack), kept: [] };
  }
  const keep = new Set(keptAddresses(stack));
  const targets = managed.filter((a) => !keep.has(a));
  const kept = managed.filter((a) => keep.has(a));
  if (targets.length === 0) return { kept };
  return { destroyArgs: ["destroy", "-input=false", ...approve, ...targets.map((t) => `-target=${t}`)], kept };
}

interface Args extends TeardownOptions {
  dryRun: boolean;
  stackDir: string;
}

export function parseArgs(argv: string[], cwd = process.cwd()): Args {
  let stack = "registry";
  let output = "cdktf.out";
  let stackDir: string | undefined;
  const flags = { all: false, yes: false, dryRun: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--all") flags.all = true;
    else if (arg === "--yes") flags.yes = true;
    else if (arg === "--dry-run") flags.dryRun = true;
    else if (arg === "--stack") stack = value();
    else if (arg === "--output") output = value();
    else if (arg === "--stack-dir") stackDir = value();
    else throw new Error(`unknown argument ${arg}; use --all, --yes, --dry-run, --stack <name>, --output <dir> or --stack-dir <dir>`);
  }
  return { ...flags, stackDir: path.resolve(cwd, stackDir ?? path.join(output, "stacks", stack)) };
}

function terraform(stackDir: string, args: string[], capture: boolean): string {
  const binary = process.env.TERRAFORM_BINARY_NAME || "terraform";
  const result = spawnSync(binary, args, { cwd: stackDir, stdio: capture ? ["inherit", "pipe", "inherit"] : "inherit", encoding: "utf8" });
  if (result.error) throw new Error(`${binary} ${args[0]}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${binary} ${args.join(" ")} failed (exit ${result.status})`);
  return capture ? result.stdout : "";
}

function main(argv: string[]): number {
  try {
    const args = parseArgs(argv);
    const file = path.join(args.stackDir, "cdk.tf.json");
    if (!fs.existsSync(file)) {
      throw new Error(`${file} not found: run \`npx cdktf synth\` first, with the configuration and environment of the last deploy`);
    }
    const stack = JSON.parse(fs.readFileSync(file, "utf8")) as SynthesizedStack;
    const leftover = path.join(args.stackDir, OVERRIDE_FILE);
    if (fs.existsSync(leftover)) {
      // Left by an interrupted --all: it would let any later destroy delete the data volume.
      fs.rmSync(leftover);
      console.error(`teardown: removed ${leftover}, left over from an interrupted run`);
    }
    terraform(args.stackDir, ["init", "-input=false"], true);
    const plan = planTeardown(terraform(args.stackDir, ["state", "list"], true).split("\n"), stack, args);
    if (plan.destroyArgs === undefined) {
      console.log(plan.kept.length > 0 ? `Nothing to remove; kept: ${plan.kept.join(", ")}` : "Nothing deployed (the state is empty).");
      return 0;
    }
    const command = `terraform ${plan.destroyArgs.join(" ")}`;
    if (args.dryRun) {
      if (plan.override) console.log(`# ${path.join(args.stackDir, OVERRIDE_FILE)} for this run:\n${plan.override}`);
      console.log(`(cd ${args.stackDir} && ${command})`);
      return 0;
    }
    const overrideFile = path.join(args.stackDir, OVERRIDE_FILE);
    if (plan.override) fs.writeFileSync(overrideFile, plan.override);
    // Ctrl-C reaches terraform too, which stops cleanly; this process stays to remove the override.
    process.on("SIGINT", () => undefined);
    try {
      terraform(args.stackDir, plan.destroyArgs, false);
    } finally {
      fs.rmSync(overrideFile, { force: true });
    }
    if (plan.kept.length > 0) console.log(`Kept (still in the state; the next deploy reuses it): ${plan.kept.join(", ")}`);
    return 0;
  } catch (error) {
    console.error(`teardown: ${(error as Error).message}`);
    return 1;
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
