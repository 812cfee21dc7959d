import * as bcrypt from "bcryptjs";
import * as crypto from "crypto";
import * as YAML from "yaml";
import { Entropy } from "./entropy";
import { MaterialError } from "./material-error";
import { MaterialStore } from "./material-store";

export interface RegistryUser {
  readonly name: string;
  /** @default - a generated password, kept in generated-passwords.yml */
  readonly password?: string;
}

export interface RegistryUsersOptions {
  /** bcrypt cost (4–31). Every authenticated registry request pays it (distribution#3017). */
  readonly bcryptCost: number;
  readonly entropy: Entropy;
}

export interface ResolvedRegistryUsers {
  /** htpasswd entries, in the given order: `${name}:${hash}` per line. */
  readonly entries: Array<{ name: string; hash: string }>;
  /** Absolute path of the 0600 YAML file with generated passwords, if any were generated. */
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
 */
export function resolveRegistryUsers(
  store: MaterialStore,
  users: ReadonlyArray<RegistryUser>,
  options: RegistryUsersOptions,
): ResolvedRegistryUsers {
  validate(users, options.bcryptCost);
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
  if (generatedFor.length === 0) {
    // Stale generated passwords would be secrets without a purpose.
    store.remove(FILES.passwords);
    return { entries, generatedFor };
  }
  return { entries, generatedFor, generatedPasswordFile: store.write(FILES.passwords, renderPasswords(generated), 0o600) };
}

function validate(users: ReadonlyArray<RegistryUser>, cost: number): void {
  const problems: string[] = [];
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) {
    problems.push(`bcryptCost: ${cost} is not an integer from 4 to 31; use 10 (about 64 ms per authenticated request)`);
  }
  const seen = new Set<string>();
  users.forEach(({ name, password }, i) => {
    const field = `users[${i}]`;
    // htpasswd is "name:hash" per line.
    if (name === "" || /[:\s]/.test(name)) {
      problems.push(`${field}.name: "${name}" must be non-empty without ":" or whitespace; rename the user`);
    } else if (seen.has(name)) {
      problems.push(`${field}.name: "${name}" appears more than once; remove the duplicate`);
    }
    seen.add(name);
    if (password === "") {
      problems.push(`${field}.password (user "${name}"): is empty; set a password or omit it to have one generated`);
    } else if (password !== undefined && bcrypt.truncates(password)) {
      problems.push(
        `${field}.password (user "${name}"): is ${Buffer.byteLength(password)} bytes in UTF-8; bcrypt ignores everything after 72 bytes, use a shorter password`,
      );
    }
  });
  if (problems.length > 0) throw new MaterialError(problems);
}

function readGeneratedPasswords(store: MaterialStore): Record<string, unknown> {
  const text = store.read(FILES.passwords);
  if (text === undefined) return {};
  let parsed: unknown;
  try {
    parsed = YAML.parse(text);
  } catch {
    parsed = undefined;
  }
  if (parsed === null) return {};
  // Regenerating silently would lock out whoever uses these passwords: stop instead.
  if (typeof parsed !== "object" || parsed === undefined || Array.isArray(parsed)) {
    throw new MaterialError([
      `${store.path(FILES.passwords)}: is not a YAML map of user name to password; fix it, or delete it to generate new passwords`,
    ]);
  }
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

function renderPasswords(passwords: Map<string, string>): string {
  const document = new YAML.Document(passwords);
  document.commentBefore = " Generated registry passwords (user: password). Keep this file private.";
  return document.toString();
}
