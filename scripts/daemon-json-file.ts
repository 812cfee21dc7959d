/**
 * Adds or removes the registry stack's entries in a Docker daemon.json, keeping everything else.
 * Terraform runs it from the `local-exec` provisioners of the client config's `terraform_data`
 * (constructs/client-config.ts): `add` when the resource is created, `remove` when it is
 * destroyed — also before a replacement, so entries of an earlier deploy (an old port) go first.
 *
 *   REGISTRY_STACK_DAEMON_JSON='{"daemon_json":"/etc/docker/daemon.json","owner":"registry/client",
 *     "insecure_registries":["localhost:5000"]}' node -r ts-node/register/transpile-only scripts/daemon-json-file.ts add
 *
 * What the stack wrote is recorded in `<daemon.json>.registry-stack` next to the file (see
 * renderers/daemon-json.ts). Files are replaced atomically (temp file + rename, mode kept); an
 * unparsable daemon.json or ledger is refused, naming it, and nothing is written.
 */
import * as fs from "fs";
import * as path from "path";
import { readIfExists, writeAtomically } from "./client-file-io";
import { DaemonJsonLedger, EMPTY_LEDGER, parseLedger, reconcileDaemonJson, renderLedger } from "../renderers/daemon-json";

export const CHANGE_VARIABLE = "REGISTRY_STACK_DAEMON_JSON";
export const LEDGER_SUFFIX = ".registry-stack";

/** The `input` of the terraform_data resource (snake_case: it is Terraform data). */
export interface DaemonJsonChange {
  /** Absolute path of daemon.json. */
  readonly daemon_json: string;
  readonly owner: string;
  readonly insecure_registries: readonly string[];
  /** Docker Hub mirrors; absent in the state of resources created before mirrors existed. */
  readonly registry_mirrors?: readonly string[];
}

export type Action = "add" | "remove";

export interface Outcome {
  /** What happened to daemon.json. */
  readonly daemonJson: "written" | "deleted" | "unchanged";
  readonly ledgerFile: string;
}

export function ledgerPath(daemonJson: string): string {
  return daemonJson + LEDGER_SUFFIX;
}

/** Applies one change to the file system. Reads everything and validates before writing anything. */
export function applyChange(action: Action, change: DaemonJsonChange): Outcome {
  const file = change.daemon_json;
  if (!path.isAbsolute(file)) throw new Error(`${CHANGE_VARIABLE}: daemon_json must be an absolute path, got ${JSON.stringify(file)}`);
  const ledgerFile = ledgerPath(file);
  const existing = readIfExists(file);
  const ledgerText = readIfExists(ledgerFile);
  const ledger: DaemonJsonLedger = ledgerText === undefined ? EMPTY_LEDGER : parseLedger(ledgerText, ledgerFile);
  const claim = action === "add" ? { insecureRegistries: change.insecure_registries, registryMirrors: change.registry_mirrors ?? [] } : undefined;
  const result = reconcileDaemonJson(existing, ledger, change.owner, claim, file);

  // daemon.json first, the ledger second: after a crash in between, the ledger under-reports
  // what the stack inserted, so a later remove may leave an entry but never removes a foreign one.
  let outcome: Outcome["daemonJson"] = "unchanged";
  if (result.changed) {
    if (result.daemonJson === undefined) {
      fs.rmSync(file, { force: true });
      outcome = "deleted";
    } else {
      writeAtomically(file, result.daemonJson);
      outcome = "written";
    }
  }
  if (result.ledger === undefined) fs.rmSync(ledgerFile, { force: true });
  else writeAtomically(ledgerFile, renderLedger(result.ledger));
  return { daemonJson: outcome, ledgerFile };
}

/** Parses and checks the JSON Terraform passes in the environment. */
export function parseChange(text: string | undefined): DaemonJsonChange {
  if (text === undefined || text === "") throw new Error(`${CHANGE_VARIABLE} is not set; Terraform's local-exec provisioner passes it`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`${CHANGE_VARIABLE} is not valid JSON (${(error as Error).message})`);
  }
  const c = parsed as Record<string, unknown>;
  const ok =
    typeof c === "object" &&
    c !== null &&
    typeof c.daemon_json === "string" &&
    typeof c.owner === "string" &&
    c.owner !== "" &&
    Array.isArray(c.insecure_registries) &&
    c.insecure_registries.every((e) => typeof e === "string") &&
    (c.registry_mirrors === undefined || (Array.isArray(c.registry_mirrors) && c.registry_mirrors.every((e) => typeof e === "string")));
  if (!ok)
    throw new Error(
      `${CHANGE_VARIABLE} must be {"daemon_json": string, "owner": string, "insecure_registries": string[], "registry_mirrors"?: string[]}, got ${text}`,
    );
  return c as unknown as DaemonJsonChange;
}

function main(argv: string[]): number {
  const action = argv[0];
  if (action !== "add" && action !== "remove") {
    process.stderr.write(`usage: ${CHANGE_VARIABLE}='{...}' daemon-json-file.ts add|remove\n`);
    return 2;
  }
  try {
    const change = parseChange(process.env[CHANGE_VARIABLE]);
    const outcome = applyChange(action, change);
    const entries = change.insecure_registries.join(", ") || "none";
    const mirrors = change.registry_mirrors?.length ? `; registry-mirrors: ${change.registry_mirrors.join(", ")}` : "";
    process.stdout.write(`daemon.json ${action} (${change.owner}; insecure-registries: ${entries}${mirrors}): ${change.daemon_json} ${outcome.daemonJson}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`daemon-json-file: ${(error as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
