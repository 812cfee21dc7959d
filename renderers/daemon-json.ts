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

const KEY = "insecure-registries";

/** What one owner (a ClientConfig construct, by construct path) needs in daemon.json. */
export interface DaemonJsonClaim {
  /** Stable identity of the writer, e.g. "registry/client". */
  readonly owner: string;
  /** Registries ("host:port") the daemon should reach without TLS verification. */
  readonly insecureRegistries: readonly string[];
}

/** What the stack (all owners sharing one daemon.json) wrote into the file. */
export interface DaemonJsonLedger {
  /** Owner → the insecure-registries entries it needs. */
  readonly owners: Readonly<Record<string, readonly string[]>>;
  /** Entries the stack inserted (they were absent before); removed when no owner needs them any more. */
  readonly added: readonly string[];
  /** The stack created the "insecure-registries" key: it goes again when it is empty and unowned. */
  readonly createdKey: boolean;
  /** The stack created daemon.json: it is deleted when it is `{}` and unowned. */
  readonly createdFile: boolean;
}

export const EMPTY_LEDGER: DaemonJsonLedger = { owners: {}, added: [], createdKey: false, createdFile: false };

export interface DaemonJsonResult {
  /** New file content; undefined = delete the file (the stack created it and nothing is left). */
  readonly daemonJson: string | undefined;
  /** New ledger; undefined = delete the ledger (no owner left). */
  readonly ledger: DaemonJsonLedger | undefined;
  /** False when the file content is unchanged (no write needed). */
  readonly changed: boolean;
}

/**
 * Sets `owner`'s entries to `insecureRegistries` (a claim) or drops the owner (undefined), and
 * updates the file: new entries are appended, entries the stack inserted and nobody needs any
 * more are removed, every other key and entry is kept in its order.
 *
 * @param existing the daemon.json text, undefined when there is no file
 * @param ledger the ledger, EMPTY_LEDGER when there is none
 */
export function reconcileDaemonJson(
  existing: string | undefined,
  ledger: DaemonJsonLedger,
  owner: string,
  insecureRegistries: readonly string[] | undefined,
  sourceName = "daemon.json",
): DaemonJsonResult {
  const config = existing === undefined ? {} : parseDaemonJson(existing, sourceName);
  const hadKey = Object.prototype.hasOwnProperty.call(config, KEY);
  const current = hadKey ? (config[KEY] as string[]) : [];

  // An owner that needs nothing is not recorded: it has nothing to remove later.
  const owners: Record<string, readonly string[]> = { ...ledger.owners };
  delete owners[owner];
  if (insecureRegistries !== undefined && insecureRegistries.length > 0) owners[owner] = unique(insecureRegistries);
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
    config[KEY] = merged;
  } else if (hadKey && !createdKey) {
    config[KEY] = merged; // the user's key: kept, even empty
  } else {
    delete config[KEY];
    createdKey = false;
  }

  const keyChanged = hadKey !== KEY in config || JSON.stringify(current) !== JSON.stringify(merged);
  const empty = Object.keys(config).length === 0;
  const createdFile = existing === undefined ? !empty : ledger.createdFile;
  let daemonJson: string | undefined;
  if (empty && (createdFile || existing === undefined)) daemonJson = undefined;
  else daemonJson = keyChanged ? JSON.stringify(config, null, 2) + "\n" : existing;

  const noOwner = Object.keys(owners).length === 0;
  return {
    daemonJson,
    ledger: noOwner ? undefined : { owners: sortKeys(owners), added, createdKey, createdFile },
    changed: daemonJson !== existing,
  };
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
  if (KEY in config) {
    const value = config[KEY];
    if (!Array.isArray(value) || !value.every((entry) => typeof entry === "string")) {
      throw new Error(`${sourceName}: "${KEY}" must be an array of strings, got ${JSON.stringify(value)}; fix it by hand, then run again`);
    }
  }
  return config;
}

/** Parses a ledger file's text; throws a message naming `sourceName`. */
export function parseLedger(text: string, sourceName: string): DaemonJsonLedger {
  const fail = (why: string) =>
    new Error(`${sourceName}: ${why}; it records what the registry stack wrote into daemon.json: fix it, or remove it to forget those entries`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw fail(`not valid JSON (${(error as Error).message})`);
  }
  const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw fail("not a JSON object");
  const l = parsed as Record<string, unknown>;
  const owners = l.owners;
  if (typeof owners !== "object" || owners === null || Array.isArray(owners) || !Object.values(owners).every(isStrings)) {
    throw fail('"owners" must map owner names to arrays of strings');
  }
  if (!isStrings(l.added)) throw fail('"added" must be an array of strings');
  if (typeof l.createdKey !== "boolean" || typeof l.createdFile !== "boolean") throw fail('"createdKey" and "createdFile" must be booleans');
  return { owners: owners as Record<string, string[]>, added: l.added, createdKey: l.createdKey, createdFile: l.createdFile };
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
