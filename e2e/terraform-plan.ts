import * as fs from "fs";
import * as path from "path";
import { run } from "./proc";

/**
 * Saved plans, read the way a reviewer would: `terraform plan -out`, then `terraform show -json`
 * of that file. Every resource change that is not a no-op is listed with the attribute paths that
 * differ, so a drifting read-back (capabilities, memory_swap, engine defaults…) names itself.
 */

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface ResourceChange {
  /** e.g. docker_container.proxy_container_1A2B3C4D */
  readonly address: string;
  /** Terraform's actions: ["update"], ["delete", "create"], ["create", "delete"], ["create"], ["delete"] */
  readonly actions: string[];
  /** Attribute paths whose planned value differs from the state (or is unknown until apply). */
  readonly paths: string[];
  /** Attribute paths that force the replacement (Terraform's replace_paths). */
  readonly replacePaths: string[];
}

export interface PlanSummary {
  readonly add: number;
  readonly change: number;
  readonly destroy: number;
  /** Every change that is not a no-op (or a read). */
  readonly changes: ResourceChange[];
}

const PLAN_TIMEOUT_MS = 5 * 60_000;

function differingPaths(before: Json | undefined, after: Json | undefined, unknown: Json | undefined, prefix: string, out: string[]): void {
  if (unknown === true) {
    out.push(`${prefix || "."} (known after apply)`);
    return;
  }
  const isObject = (v: Json | undefined): v is JsonObject | Json[] => typeof v === "object" && v !== null;
  if (isObject(before) && isObject(after) && Array.isArray(before) === Array.isArray(after)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    for (const key of keys) {
      const child = (v: Json | undefined) => (isObject(v) ? (v as Record<string, Json>)[key] : undefined);
      differingPaths(child(before), child(after), child(unknown), prefix ? `${prefix}.${key}` : key, out);
    }
    return;
  }
  if (JSON.stringify(before ?? null) !== JSON.stringify(after ?? null)) {
    out.push(`${prefix || "."}: ${JSON.stringify(before ?? null)} → ${JSON.stringify(after ?? null)}`);
  }
}

/** The changes of `terraform show -json <plan>` (pure: exported for the self-contained parts of the suite). */
export function summarizePlan(planJson: JsonObject): PlanSummary {
  const changes: ResourceChange[] = [];
  let add = 0;
  let change = 0;
  let destroy = 0;
  for (const rc of (planJson["resource_changes"] ?? []) as JsonObject[]) {
    const c = rc["change"] as JsonObject;
    const actions = (c["actions"] as string[]) ?? [];
    if (actions.length === 1 && (actions[0] === "no-op" || actions[0] === "read")) continue;
    if (actions.includes("create")) add++;
    if (actions.includes("delete")) destroy++;
    if (actions.includes("update")) change++;
    const paths: string[] = [];
    differingPaths(c["before"], c["after"], c["after_unknown"], "", paths);
    const replacePaths = ((c["replace_paths"] ?? []) as Json[][]).map((p) => p.join("."));
    changes.push({ address: String(rc["address"]), actions, paths, replacePaths });
  }
  return { add, change, destroy, changes };
}

export function describePlan(plan: PlanSummary): string {
  const head = `Plan: ${plan.add} to add, ${plan.change} to change, ${plan.destroy} to destroy`;
  const lines = plan.changes.map((c) => {
    // A replacement's new object is mostly "known after apply": what forces it says more.
    if (c.replacePaths.length > 0) return `  ${c.actions.join("/")} ${c.address} (replaced for ${c.replacePaths.join(", ")})`;
    return `  ${c.actions.join("/")} ${c.address}: ${c.paths.slice(0, 12).join("; ")}${c.paths.length > 12 ? "; …" : ""}`;
  });
  return [head, ...lines].join("\n");
}

/**
 * `terraform plan -out` in an initialized stack folder, then `terraform show -json` of the file.
 * `env` carries the suite's CLI config (TF_CLI_CONFIG_FILE) and what the backend needs.
 */
export async function savedPlan(stackDir: string, env: NodeJS.ProcessEnv, name = "e2e"): Promise<PlanSummary> {
  const planFile = path.join(stackDir, `${name}.tfplan`);
  await run("terraform", ["plan", "-input=false", "-lock-timeout=120s", `-out=${planFile}`], { cwd: stackDir, env, timeoutMs: PLAN_TIMEOUT_MS });
  // To a file: a plan with uploads as content is larger than what run() keeps of stdout.
  const jsonFile = `${planFile}.json`;
  await run("/bin/sh", ["-c", 'terraform show -json "$1" > "$2"', "sh", planFile, jsonFile], { cwd: stackDir, env, timeoutMs: PLAN_TIMEOUT_MS });
  const plan = JSON.parse(fs.readFileSync(jsonFile, "utf8")) as JsonObject;
  fs.rmSync(planFile, { force: true });
  fs.rmSync(jsonFile, { force: true });
  return summarizePlan(plan);
}

/** `terraform init` for a freshly synthesized stack folder (what cdktf deploy does first). */
export async function initStack(stackDir: string, env: NodeJS.ProcessEnv): Promise<void> {
  await run("terraform", ["init", "-input=false"], { cwd: stackDir, env, timeoutMs: PLAN_TIMEOUT_MS });
}

/** Addresses a plan replaces or updates, with their Terraform actions, sorted: for asserting expected sets. */
export function touched(plan: PlanSummary): string[] {
  return plan.changes.map((c) => `${c.actions.join("/")} ${c.address}`).sort();
}
