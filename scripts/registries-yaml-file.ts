/**
 * Adds or removes the registry stack's entries in a k3s/RKE2 registries.yaml, keeping everything
 * else, like scripts/daemon-json-file.ts does for daemon.json. Terraform runs it from the
 * `local-exec` provisioners of the client config's `terraform_data`: `add` on create, `remove`
 * on destroy (also before a replacement).
 *
 *   REGISTRY_STACK_REGISTRIES_YAML='{"file":"/etc/rancher/k3s/registries.yaml","owner":"registry/client",
 *     "mirrors":{"docker.io":{"endpoint":["https://store.example.test:5001"]}},"configs":{…}}' \
 *     node -r ts-node/register/transpile-only scripts/registries-yaml-file.ts add
 *
 * What the stack wrote is recorded in `<file>.registry-stack` next to it. Unparsable files are
 * refused, naming them, and nothing is written.
 */
import * as fs from "fs";
import * as path from "path";
import {
  EMPTY_REGISTRIES_LEDGER,
  parseRegistriesLedger,
  reconcileRegistriesYaml,
  RegistriesYamlClaim,
  renderRegistriesLedger,
} from "../renderers/registries-yaml";
import { readIfExists, writeAtomically } from "./client-file-io";

export const REGISTRIES_CHANGE_VARIABLE = "REGISTRY_STACK_REGISTRIES_YAML";

/** The `input` of the terraform_data resource. */
export interface RegistriesYamlChange extends RegistriesYamlClaim {
  /** Absolute path of registries.yaml. */
  readonly file: string;
  readonly owner: string;
}

export function applyRegistriesChange(action: "add" | "remove", change: RegistriesYamlChange): "written" | "deleted" | "unchanged" {
  if (!path.isAbsolute(change.file)) throw new Error(`${REGISTRIES_CHANGE_VARIABLE}: file must be an absolute path, got ${JSON.stringify(change.file)}`);
  const ledgerFile = change.file + ".registry-stack";
  const existing = readIfExists(change.file);
  const ledgerText = readIfExists(ledgerFile);
  const ledger = ledgerText === undefined ? EMPTY_REGISTRIES_LEDGER : parseRegistriesLedger(ledgerText, ledgerFile);
  const claim = action === "add" ? { mirrors: change.mirrors, configs: change.configs } : undefined;
  const result = reconcileRegistriesYaml(existing, ledger, change.owner, claim, change.file);
  // The file first, the ledger second: after a crash in between the ledger under-reports, so a
  // later remove may leave an entry behind but never removes a foreign one.
  let outcome: "written" | "deleted" | "unchanged" = "unchanged";
  if (result.changed) {
    if (result.text === undefined) {
      fs.rmSync(change.file, { force: true });
      outcome = "deleted";
    } else {
      writeAtomically(change.file, result.text);
      outcome = "written";
    }
  }
  if (result.ledger === undefined) fs.rmSync(ledgerFile, { force: true });
  else writeAtomically(ledgerFile, renderRegistriesLedger(result.ledger));
  return outcome;
}

export function parseRegistriesChange(text: string | undefined): RegistriesYamlChange {
  if (text === undefined || text === "") throw new Error(`${REGISTRIES_CHANGE_VARIABLE} is not set; Terraform's local-exec provisioner passes it`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`${REGISTRIES_CHANGE_VARIABLE} is not valid JSON (${(error as Error).message})`);
  }
  const c = parsed as Record<string, unknown>;
  const isMapping = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isMapping(c) || typeof c.file !== "string" || typeof c.owner !== "string" || c.owner === "" || !isMapping(c.mirrors) || !isMapping(c.configs))
    throw new Error(`${REGISTRIES_CHANGE_VARIABLE} must be {"file": string, "owner": string, "mirrors": {...}, "configs": {...}}, got ${text}`);
  return c as unknown as RegistriesYamlChange;
}

function main(argv: string[]): number {
  const action = argv[0];
  if (action !== "add" && action !== "remove") {
    process.stderr.write(`usage: ${REGISTRIES_CHANGE_VARIABLE}='{...}' registries-yaml-file.ts add|remove\n`);
    return 2;
  }
  try {
    const change = parseRegistriesChange(process.env[REGISTRIES_CHANGE_VARIABLE]);
    const outcome = applyRegistriesChange(action, change);
    const keys = (section: "mirrors" | "configs") => Object.keys(change[section]).join(", ") || "none";
    process.stdout.write(`registries.yaml ${action} (${change.owner}; mirrors: ${keys("mirrors")}; configs: ${keys("configs")}): ${change.file} ${outcome}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`registries-yaml-file: ${(error as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
