import * as bcrypt from "bcryptjs";
import * as crypto from "crypto";
import * as YAML from "yaml";
import { Entropy } from "./entropy";
import { ConfigError } from "../config/config-error";
import { MaterialStore } from "./material-store";

export interface RegistryUser {
  readonly name: string;
  /** @default - a generated password, kept in generated-passwords.yml */
  readonly password?: string;
}

export interface RegistryUsersOptions {
  /** bcrypt cost, validated by the config schema. Every authenticated registry request pays it (distribution#3017). */
  readonly bcryptCost: number;
  readonly entropy: Entropy;
}

export interface ResolvedRegistryUsers {
  /** htpasswd entries, in the given order: `${name}:${hash}` per line. */
  readonly entries: Array<{ name: string; hash: string }>;
  /** Absolute path of the 0600 YAML file with generated passwords, if it has any. */
  readonly generatedPasswordFile?: string;
  /** Users whose password was generated. */
  readonly generatedFor: string[];
}

const FILES = { state: "users.json", key: "fingerprint.key", passwords: "generated-passwords.yml" };
const GENERATED_PASSWORD_BYTES = 24;

interface StoredHash {
  readonly hash: string;
  readonly fingerprint: string;
}

/**
 * bcrypt hashes for the registry's htpasswd file that stay byte-identical across synths
 * while users and passwords are unchanged (a new salt would change the uploaded file and
 * replace the container).
 *
 * Trade-off: to know a password is unchanged without re-running bcrypt, users.json keeps
 * an HMAC-SHA256 of name + password under a random key (fingerprint.key). Anyone who can
 * read both files can test password guesses fast, without bcrypt's cost. They sit beside
 * the CA key and generated passwords, all 0600, so such a reader already has the keys to
 * the registry; the HMAC adds no new exposure there and must never leave the store.
 *
 * generated-passwords.yml only grows: a synth never deletes a generated password, also not
 * when its user now has a password from the environment or the secrets file, or is removed
 * (it may be the only copy of a deployed password). Delete an entry by hand to retire it.
 * Users are validated by the config schema (names, uniqueness, password length) before this runs.
 */
export function resolveRegistryUsers(
  store: MaterialStore,
  users: ReadonlyArray<RegistryUser>,
  options: RegistryUsersOptions,
): ResolvedRegistryUsers {
  const previousPasswords = readGeneratedPasswords(store);
  const previousHashes = readState(store);
  const fingerprintKey = ensureFingerprintKey(store, options.entropy);

  const generated = new Map<string, string>();
  const state = new Map<string, StoredHash>();
  const entries = users.map(({ name, password }) => {
    const effective = password ?? reusablePassword(own(previousPasswords, name)) ?? newPassword(options.entropy);
    if (password === undefined) generated.set(name, effective);

    const fingerprint = crypto.createHmac("sha256", fingerprintKey).update(`${name}\0${effective}`).digest("hex");
    const previous = own(previousHashes, name);
    const hash =
      isStoredHash(previous) && previous.fingerprint === fingerprint && hasCost(previous.hash, options.bcryptCost)
        ? previous.hash
        : bcrypt.hashSync(effective, salt(options.bcryptCost, options.entropy));
    state.set(name, { hash, fingerprint });
    return { name, hash };
  });

  store.write(FILES.state, `${JSON.stringify(Object.fromEntries(state), null, 2)}\n`, 0o600);
  const generatedFor = [...generated.keys()];
  // Previous entries keep their place; a user's (re)generated password replaces its own entry only.
  const allGenerated = new Map<string, unknown>(Object.entries(previousPasswords));
  for (const [name, password] of generated) allGenerated.set(name, password);
  if (allGenerated.size === 0) return { entries, generatedFor };
  return { entries, generatedFor, generatedPasswordFile: store.write(FILES.passwords, renderPasswords(allGenerated), 0o600) };
}

function readGeneratedPasswords(store: MaterialStore): Record<string, unknown> {
  const text = store.read(FILES.passwords);
  if (text === undefined) return {};
  let parsed: unknown;
  try {
    // Silent, without code frames: the text is passwords.
    parsed = YAML.parse(text, { logLevel: "error", prettyErrors: false });
  } catch {
    parsed = undefined;
  }
  if (parsed === null) return {};
  // Regenerating silently would lock out whoever uses these passwords: stop instead.
  if (typeof parsed !== "object" || parsed === undefined || Array.isArray(parsed)) {
    throw new ConfigError(
      [`${store.path(FILES.passwords)}: is not a YAML map of user name to password; fix it, or delete it to generate new passwords`],
      `material in ${store.directory}`,
    );
  }
  // A number, boolean or empty entry (hand-edited, or a password YAML reads as a number) would be
  // replaced by a new password and the deployed one lost: stop and say which entry.
  const problems = Object.entries(parsed as Record<string, unknown>).flatMap(([name, value]) => {
    if (typeof value === "string" && value !== "") return [];
    const what = value === null || value === "" ? "has no password" : Array.isArray(value) ? "is a list, not a password" : typeof value === "object" ? "is a mapping, not a password" : `is a ${typeof value}, not a string`;
    const fix =
      typeof value === "number" || typeof value === "boolean"
        ? `quote the password (${JSON.stringify(name)}: "…") so YAML reads it as text`
        : "write the password back as a quoted string";
    return [`${store.path(FILES.passwords)}: entry ${JSON.stringify(name)} ${what}; ${fix}, or delete the entry to have a new password generated (clients using the old one must then log in again)`];
  });
  if (problems.length > 0) throw new ConfigError(problems, `material in ${store.directory}`);
  return parsed as Record<string, unknown>;
}

function readState(store: MaterialStore): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(store.read(FILES.state) ?? "{}");
    // A broken cache only costs a re-hash (and one container replacement).
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function isStoredHash(value: unknown): value is StoredHash {
  return typeof value === "object" && value !== null && typeof (value as StoredHash).fingerprint === "string";
}

/** Own properties only, so a user named "constructor" does not find Object.prototype's. */
function own(record: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
}

function ensureFingerprintKey(store: MaterialStore, entropy: Entropy): Buffer {
  const stored = store.read(FILES.key)?.trim();
  if (stored !== undefined && /^[0-9a-f]{64}$/.test(stored)) return Buffer.from(stored, "hex");
  const key = entropy.randomBytes(32);
  store.write(FILES.key, key.toString("hex"), 0o600);
  return key;
}

function reusablePassword(stored: unknown): string | undefined {
  return typeof stored === "string" && stored !== "" && !bcrypt.truncates(stored) ? stored : undefined;
}

function newPassword(entropy: Entropy): string {
  return entropy.randomBytes(GENERATED_PASSWORD_BYTES).toString("base64url");
}

function hasCost(hash: unknown, cost: number): boolean {
  return typeof hash === "string" && /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash) && bcrypt.getRounds(hash) === cost;
}

function salt(cost: number, entropy: Entropy): string {
  return `$2b$${String(cost).padStart(2, "0")}$${bcrypt.encodeBase64(entropy.randomBytes(16), 16)}`;
}

function renderPasswords(passwords: Map<string, unknown>): string {
  const document = new YAML.Document(passwords);
  document.commentBefore = " Generated registry passwords (user: password). Keep this file private.";
  return document.toString();
}
