/**
 * The stack's share of a Docker daemon.json, as pure functions (no I/O): the file's text and a
 * ledger of what the stack wrote go in, the new text and ledger come out. scripts/daemon-json-file.ts
 * does the reading and writing when Terraform creates or destroys the client config.
 *
 * dockerd refuses unknown keys in daemon.json, so what the stack wrote cannot be marked inside the
 * file: the ledger, kept next to it, records it instead. Only entries the ledger says the stack
 * inserted are ever removed; an entry that was there before (a foreign entry) stays, even when the
 * stack also needs it.
 */

import { z } from "zod";
import { parseJsonLedger } from "./json-ledger";

const INSECURE_KEY = "insecure-registries";
const MIRRORS_KEY = "registry-mirrors";
/** The list keys the stack manages; every other key of daemon.json belongs to the engine's admin. */
const KEYS = [INSECURE_KEY, MIRRORS_KEY] as const;
type ManagedKey = (typeof KEYS)[number];

/** What one owner (a ClientConfig construct, by construct path) needs in daemon.json. */
export interface DaemonJsonClaim {
  /** Registries ("host:port") the daemon should reach without TLS verification. */
  readonly insecureRegistries: readonly string[];
  /**
   * Docker Hub mirrors ("https://host:port"), tried before Docker Hub for docker.io images only.
   * @default []
   */
  readonly registryMirrors?: readonly string[];
}

/** What the stack wrote into one list key of the file. */
export interface KeyLedger {
  /** Owner → the entries it needs. */
  readonly owners: Readonly<Record<string, readonly string[]>>;
  /** Entries the stack inserted (they were absent before); removed when no owner needs them any more. */
  readonly added: readonly string[];
  /** The stack created the key: it goes again when it is empty and unowned. */
  readonly createdKey: boolean;
}

/**
 * What the stack (all owners sharing one daemon.json) wrote into the file. The top level is
 * the "insecure-registries" key (the ledger's original format), `registryMirrors` the other.
 */
export interface DaemonJsonLedger extends KeyLedger {
  /** The stack created daemon.json: it is deleted when it is `{}` and unowned. */
  readonly createdFile: boolean;
  /** "registry-mirrors", when an owner needs any. @default - none */
  readonly registryMirrors?: KeyLedger;
}

export const EMPTY_LEDGER: DaemonJsonLedger = { owners: {}, added: [], createdKey: false, createdFile: false };
const EMPTY_KEY_LEDGER: KeyLedger = { owners: {}, added: [], createdKey: false };

export interface DaemonJsonResult {
  /** New file content; undefined = delete the file (the stack created it and nothing is left). */
  readonly daemonJson: string | undefined;
  /** New ledger; undefined = delete the ledger (no owner left). */
  readonly ledger: DaemonJsonLedger | undefined;
  /** False when the file content is unchanged (no write needed). */
  readonly changed: boolean;
}

/**
 * Sets `owner`'s entries to `claim` or drops the owner (undefined), and updates the file: new
 * entries are appended, entries the stack inserted and nobody needs any more are removed,
 * every other key and entry is kept in its order.
 *
 * @param existing the daemon.json text, undefined when there is no file
 * @param ledger the ledger, EMPTY_LEDGER when there is none
 */
export function reconcileDaemonJson(
  existing: string | undefined,
  ledger: DaemonJsonLedger,
  owner: string,
  claim: DaemonJsonClaim | undefined,
  sourceName = "daemon.json",
): DaemonJsonResult {
  const config = existing === undefined ? {} : parseDaemonJson(existing, sourceName);
  const claimed: Record<ManagedKey, readonly string[] | undefined> = {
    [INSECURE_KEY]: claim?.insecureRegistries,
    [MIRRORS_KEY]: claim === undefined ? undefined : (claim.registryMirrors ?? []),
  };
  const ledgers: Record<ManagedKey, KeyLedger> = { [INSECURE_KEY]: ledger, [MIRRORS_KEY]: ledger.registryMirrors ?? EMPTY_KEY_LEDGER };
  let keyChanged = false;
  const after = {} as Record<ManagedKey, KeyLedger>;
  for (const key of KEYS) {
    const result = reconcileKey(config, key, ledgers[key], owner, claimed[key]);
    after[key] = result.ledger;
    keyChanged = keyChanged || result.changed;
  }

  const empty = Object.keys(config).length === 0;
  const createdFile = existing === undefined ? !empty : ledger.createdFile;
  let daemonJson: string | undefined;
  if (empty && (createdFile || existing === undefined)) daemonJson = undefined;
  else daemonJson = keyChanged ? JSON.stringify(config, null, 2) + "\n" : existing;

  const noOwner = KEYS.every((key) => Object.keys(after[key].owners).length === 0);
  const mirrors = after[MIRRORS_KEY];
  const mirrorsUsed = Object.keys(mirrors.owners).length > 0 || mirrors.added.length > 0 || mirrors.createdKey;
  return {
    daemonJson,
    ledger: noOwner ? undefined : { ...after[INSECURE_KEY], createdFile, ...(mirrorsUsed ? { registryMirrors: mirrors } : {}) },
    changed: daemonJson !== existing,
  };
}

/** One list key of `config` (changed in place) brought to what the owners need. */
function reconcileKey(
  config: Record<string, unknown>,
  key: ManagedKey,
  ledger: KeyLedger,
  owner: string,
  entries: readonly string[] | undefined,
): { ledger: KeyLedger; changed: boolean } {
  const hadKey = Object.prototype.hasOwnProperty.call(config, key);
  const current = hadKey ? (config[key] as string[]) : [];

  // An owner that needs nothing is not recorded: it has nothing to remove later.
  const owners: Record<string, readonly string[]> = { ...ledger.owners };
  delete owners[owner];
  if (entries !== undefined && entries.length > 0) owners[owner] = unique(entries);
  const needed = new Set(Object.values(owners).flat());

  // Inserted by the stack and needed by nobody: removed. Foreign entries always stay, in place.
  const inserted = new Set(ledger.added);
  const kept = current.filter((entry) => needed.has(entry) || !inserted.has(entry));
  const missing = [...needed].filter((entry) => !kept.includes(entry));
  const added = [...ledger.added.filter((entry) => needed.has(entry)), ...missing.filter((entry) => !inserted.has(entry))];
  const merged = [...kept, ...missing];

  let createdKey = ledger.createdKey;
  if (merged.length > 0) {
    createdKey = createdKey || !hadKey;
    config[key] = merged;
  } else if (hadKey && !createdKey) {
    config[key] = merged; // the user's key: kept, even empty
  } else {
    delete config[key];
    createdKey = false;
  }
  const changed = hadKey !== key in config || JSON.stringify(current) !== JSON.stringify(merged);
  return { ledger: { owners: sortKeys(owners), added, createdKey }, changed };
}

/**
 * Parses daemon.json text as dockerd would accept it (empty or whitespace-only = {}, a UTF-8
 * BOM is allowed) and checks the key the stack manages. Throws a message naming `sourceName`.
 */
export function parseDaemonJson(text: string, sourceName = "daemon.json"): Record<string, unknown> {
  const body = text.replace(/^\uFEFF/, "");
  if (body.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    throw new Error(
      `${sourceName} is not valid JSON (${(error as Error).message}); dockerd would refuse to start with it: ` +
        "fix or remove the file, then run again",
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(
      `${sourceName} is not a JSON object (got ${Array.isArray(parsed) ? "an array" : JSON.stringify(parsed)}); ` +
        "daemon.json must be an object like {}: fix or remove the file, then run again",
    );
  }
  const config = parsed as Record<string, unknown>;
  for (const key of KEYS) {
    if (!(key in config)) continue;
    const value = config[key];
    if (!Array.isArray(value) || !value.every((entry) => typeof entry === "string")) {
      throw new Error(`${sourceName}: "${key}" must be an array of strings, got ${JSON.stringify(value)}; fix it by hand, then run again`);
    }
  }
  return config;
}

const entriesSchema = z.array(z.string());
const keyLedgerSchema = z.object({ owners: z.record(z.string(), entriesSchema), added: entriesSchema, createdKey: z.boolean() });
const ledgerSchema: z.ZodType<DaemonJsonLedger> = keyLedgerSchema.extend({
  createdFile: z.boolean(),
  // Absent in ledgers written before mirrors existed.
  registryMirrors: keyLedgerSchema.optional(),
});

/** Parses a ledger file's text; throws a message naming `sourceName` and the wrong field. */
export function parseLedger(text: string, sourceName: string): DaemonJsonLedger {
  return parseJsonLedger(text, ledgerSchema, sourceName, "daemon.json");
}

export function renderLedger(ledger: DaemonJsonLedger): string {
  return JSON.stringify(ledger, null, 2) + "\n";
}

function unique(entries: readonly string[]): string[] {
  return [...new Set(entries)];
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}
