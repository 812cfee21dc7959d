import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

/**
 * `npm run plan-summary`: what a review job runs on a change request (docs/examples/*-diff.yml).
 * `npx cdktf diff` against the shared state (printed to the job log), then a saved plan of the
 * synthesized stack (`terraform plan -out` + `terraform show -json`) rendered as Markdown for a
 * pull-request comment or merge-request note. The e2e suite (check 73) runs the same command.
 *
 *   npm run plan-summary -- [--out plan-summary.md] [--stack registry] [--skip-provider-lock]
 *
 * `--skip-provider-lock` only where the Terraform registry is out of reach (providers from a
 * filesystem mirror); with registry access leave it out.
 */

export const SUMMARY_MARKER = "<!-- registry-stack-plan-summary -->";
/** GitHub refuses comments over 65,536 characters; GitLab notes allow 1,000,000. */
const MAX_SUMMARY_CHARS = 60_000;

export interface PlanSummaryArgs {
  readonly out: string;
  readonly stack: string;
  readonly skipProviderLock: boolean;
}

export function parseArgs(argv: string[]): PlanSummaryArgs {
  let out = "plan-summary.md";
  let stack = "registry";
  let skipProviderLock = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--skip-provider-lock") skipProviderLock = true;
    else if (arg === "--out" && argv[i + 1]) out = argv[++i];
    else if (arg === "--stack" && argv[i + 1]) stack = argv[++i];
    else throw new Error(`plan-summary: unknown argument ${JSON.stringify(arg)} (use --out <file>, --stack <name>, --skip-provider-lock)`);
  }
  return { out, stack, skipProviderLock };
}

interface PlanJson {
  resource_changes?: Array<{ address: string; change: { actions: string[] } }>;
}

/** Terraform's action list as a reviewer reads it. */
function actionName(actions: string[]): string {
  if (actions.length === 2) return actions[0] === "create" ? "replace (create before destroy)" : "replace";
  return actions[0] ?? "?";
}

/**
 * The Markdown posted on the change request: the counts, one row per resource that changes, and
 * Terraform's own text of the plan (cut to fit a comment). Pure, for the unit tests.
 */
export function renderPlanSummary(plan: PlanJson, planText: string, stack: string): string {
  const changes = (plan.resource_changes ?? []).filter((rc) => !rc.change.actions.every((a) => a === "no-op" || a === "read"));
  const count = (action: string) => changes.filter((rc) => rc.change.actions.includes(action)).length;
  const head = [SUMMARY_MARKER, `### registry-stack: plan of stack \`${stack}\` against the shared state`, ""];
  if (changes.length === 0) return [...head, "**No changes.** The deployed stack already matches this change.", ""].join("\n");
  const rows = changes.map((rc) => `| ${actionName(rc.change.actions)} | \`${rc.address}\` |`);
  const text = planText.length > MAX_SUMMARY_CHARS ? `${planText.slice(0, MAX_SUMMARY_CHARS)}\n… (cut; the job log has the whole plan)` : planText;
  return [
    ...head,
    `**Plan: ${count("create")} to add, ${count("update")} to change, ${count("delete")} to destroy.**`,
    "",
    "| action | resource |",
    "|---|---|",
    ...rows,
    "",
    "<details><summary>terraform show</summary>",
    "",
    "```text",
    text.replace(/```/g, "` ` `"),
    "```",
    "</details>",
    "",
  ].join("\n");
}

function runOrFail(command: string, args: string[], cwd: string, capture: boolean): string {
  const result = spawnSync(command, args, { cwd, encoding: "utf8", stdio: capture ? ["ignore", "pipe", "inherit"] : "inherit", maxBuffer: 256 * 1024 * 1024 });
  if (result.error) throw new Error(`${command} ${args.join(" ")}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} (in ${cwd}) exited with ${result.status}`);
  return capture ? result.stdout : "";
}

export function main(argv: string[], cwd = process.cwd()): number {
  const args = parseArgs(argv);
  // The diff reviewers know (and the job log shows); it also synthesizes and runs terraform init.
  runOrFail("npx", ["cdktf", "diff", args.stack, "--no-color", ...(args.skipProviderLock ? ["--skip-provider-lock"] : [])], cwd, false);
  const stackDir = path.join(cwd, "cdktf.out", "stacks", args.stack);
  const planFile = "plan-summary.tfplan";
  try {
    runOrFail("terraform", ["plan", "-input=false", "-lock-timeout=300s", "-no-color", `-out=${planFile}`], stackDir, true);
    const plan = JSON.parse(runOrFail("terraform", ["show", "-json", planFile], stackDir, true)) as PlanJson;
    const text = runOrFail("terraform", ["show", "-no-color", planFile], stackDir, true);
    const summary = renderPlanSummary(plan, text, args.stack);
    fs.writeFileSync(path.resolve(cwd, args.out), summary);
    process.stdout.write(`${summary}\nwritten to ${args.out}\n`);
  } finally {
    fs.rmSync(path.join(stackDir, planFile), { force: true });
  }
  return 0;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}
