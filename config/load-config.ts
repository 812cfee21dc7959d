import * as fs from "fs";
import * as path from "path";
import { Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { ConfigError } from "./config-error";
import { closestName, MAX_INPUT_FILE_BYTES, passwordEnvName, passwordProblem, REDIS_PASSWORD_ENV, S3_ACCESS_KEY_ENV, S3_SECRET_KEY_ENV, upstreamPasswordEnvName } from "./rules";
import { DEFAULT_USERS, RegistryStackConfig } from "./schema";

export { passwordEnvName } from "./rules";

export const CONFIG_FILE_ENV = "REGISTRY_STACK_CONFIG";
export const SECRETS_FILE_ENV = "REGISTRY_STACK_SECRETS";
export const DEFAULT_CONFIG_FILE = "registry-stack.yml";
export const DEFAULT_SECRETS_FILE = "registry.secrets.yml";

export interface LoadedConfig {
  /** Stack props from the config file, with passwords from the environment or the secrets file. */
  readonly props: RegistryStackConfig;
  /** Where the props came from, for messages. */
  readonly source: string;
  /** Things the user should fix that do not stop the synth (e.g. a secrets file others can read). */
  readonly warnings: string[];
}

/**
 * Reads the config file (`$REGISTRY_STACK_CONFIG`, else ./registry-stack.yml, else the embedded default: no file)
 * and the passwords (`REGISTRY_PASSWORD_<USER>` variables win over the secrets file,
 * `$REGISTRY_STACK_SECRETS` else ./registry.secrets.yml). Passwords are checked here, where the
 * message can name their variable or file; the structure is validated by the stack, all problems at once.
 * No message or warning quotes the secrets file's text (values, or keys that name nothing
 * configured) or a variable's value. Warnings: a password in both places with different values, a
 * password variable that names no configured user or mirror.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): LoadedConfig {
  const configFile = locate(env[CONFIG_FILE_ENV], DEFAULT_CONFIG_FILE, CONFIG_FILE_ENV, cwd);
  const raw = configFile ? readYamlObject(configFile) : {};
  const source = configFile ? `configuration in ${configFile}` : "embedded default configuration";

  const problems: string[] = [];
  const warnings: string[] = [];
  const users = raw.users === undefined ? DEFAULT_USERS : Array.isArray(raw.users) ? (raw.users as unknown[]) : undefined;
  const mirrors = Array.isArray(raw.mirrors) ? (raw.mirrors as unknown[]) : undefined;
  const nameOf = (u: unknown): string => String((u as { name?: unknown } | null)?.name);
  users?.forEach((u, i) => {
    if (u && typeof u === "object" && "password" in u)
      problems.push(`users[${i}].password: passwords do not belong in the config file; set ${passwordEnvName(nameOf(u))} or use the secrets file`);
  });
  mirrors?.forEach((m, i) => {
    if (m && typeof m === "object" && "password" in m)
      problems.push(`mirrors[${i}].password: passwords do not belong in the config file; set ${upstreamPasswordEnvName(nameOf(m))} or upstreamPasswords in the secrets file`);
    // Checked here, without quoting the value: user:password@ in the URL would be a password.
    const url = (m as { upstreamUrl?: unknown } | null)?.upstreamUrl;
    if (typeof url === "string" && url.includes("@"))
      problems.push(`mirrors[${i}].upstreamUrl: credentials do not belong in the URL (it is shown in plans); set username and ${upstreamPasswordEnvName(nameOf(m))} or upstreamPasswords in the secrets file`);
  });
  const userNames = new Set((users ?? []).map(nameOf));
  const mirrorNames = new Set((mirrors ?? []).map(nameOf));

  const secretsFile = locate(env[SECRETS_FILE_ENV], DEFAULT_SECRETS_FILE, SECRETS_FILE_ENV, cwd);
  let filePasswords: Record<string, string> = {};
  let fileUpstreamPasswords: Record<string, string> = {};
  if (secretsFile) {
    const mode = fs.statSync(secretsFile).mode & 0o777;
    if ((mode & 0o077) !== 0)
      warnings.push(`${secretsFile} is accessible by group or others (mode ${mode.toString(8).padStart(4, "0")}); restrict it: chmod 600 ${secretsFile}`);
    const secrets = readSecretsFile(secretsFile, { passwords: userNames, upstreamPasswords: mirrorNames });
    problems.push(...secrets.problems);
    ({ passwords: filePasswords, upstreamPasswords: fileUpstreamPasswords } = secrets);
  }

  const passwordOf = (name: string): string | undefined => {
    const envName = passwordEnvName(name);
    const fromEnv = env[envName];
    const fromFile = own(filePasswords, name);
    if (fromEnv !== undefined) {
      const problem = passwordProblem(fromEnv);
      if (problem) problems.push(`${envName}: the password for user "${name}" ${problem}; set another password or unset the variable`);
      if (fromFile !== undefined && fromFile !== fromEnv)
        warnings.push(`user "${name}" has a password in ${envName} and another in ${secretsFile} (passwords.${name}); ${envName} is used, the secrets file's is ignored`);
      return fromEnv;
    }
    return fromFile;
  };
  const withPasswords = (u: unknown): unknown => {
    if (!u || typeof u !== "object") return u;
    const password = passwordOf(nameOf(u));
    return password === undefined ? u : { ...u, password };
  };
  // Checked by the schema (username and password both or neither), which names the variable.
  const withUpstreamPassword = (m: unknown): unknown => {
    if (!m || typeof m !== "object") return m;
    const name = nameOf(m);
    const envName = upstreamPasswordEnvName(name);
    const fromFile = own(fileUpstreamPasswords, name);
    if (env[envName] !== undefined && fromFile !== undefined && fromFile !== env[envName])
      warnings.push(`mirror "${name}" has an upstream password in ${envName} and another in ${secretsFile} (upstreamPasswords.${name}); ${envName} is used, the secrets file's is ignored`);
    const password = env[envName] ?? fromFile;
    return password === undefined ? m : { ...m, password };
  };
  if (users) {
    const hasPassword = (name: string) => env[passwordEnvName(name)] !== undefined || own(filePasswords, name) !== undefined;
    warnings.push(...strayVariableWarnings(env, "REGISTRY_PASSWORD_", userNames, passwordEnvName, "user", (user) => (hasPassword(user) ? "" : ", which has no password set and gets a generated one")));
  }
  if (mirrors) warnings.push(...strayVariableWarnings(env, "REGISTRY_UPSTREAM_PASSWORD_", mirrorNames, upstreamPasswordEnvName, "mirror", () => ""));
  const cluster = raw.cluster !== undefined ? withClusterSecrets(raw.cluster, env, problems) : undefined;
  const props = {
    ...raw,
    ...(users ? { users: users.map(withPasswords) } : {}),
    ...(mirrors ? { mirrors: mirrors.map(withUpstreamPassword) } : {}),
    ...(cluster !== undefined ? { cluster } : {}),
  };
  if (problems.length > 0) throw new ConfigError(problems, source);
  // Its shape is checked by the stack against the schema, all problems at once.
  return { props: props as RegistryStackConfig, source, warnings };
}

/**
 * Cluster mode's S3 keys and Redis password come from the environment only: refused in the
 * config file (named, never quoted), filled in from their variables.
 */
function withClusterSecrets(section: unknown, env: NodeJS.ProcessEnv, problems: string[]): unknown {
  if (!section || typeof section !== "object") return section;
  const fill = (sub: "storage" | "redis", key: string, variable: string, into: Record<string, unknown>) => {
    const node = (section as Record<string, unknown>)[sub];
    if (!node || typeof node !== "object") return;
    if (key in node) problems.push(`cluster.${sub}.${key}: secrets do not belong in the config file; set ${variable}`);
    const value = env[variable];
    if (value !== undefined) (into[sub] as Record<string, unknown>)[key] = value;
  };
  const copy: Record<string, unknown> = { ...(section as Record<string, unknown>) };
  for (const sub of ["storage", "redis"] as const) {
    const node = copy[sub];
    if (node && typeof node === "object" && !Array.isArray(node)) copy[sub] = { ...(node as Record<string, unknown>) };
  }
  fill("storage", "accessKey", S3_ACCESS_KEY_ENV, copy);
  fill("storage", "secretKey", S3_SECRET_KEY_ENV, copy);
  fill("redis", "password", REDIS_PASSWORD_ENV, copy);
  return copy;
}

/** Own properties only, so a user named "constructor" does not find Object.prototype's. */
function own(record: Record<string, string>, key: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
}

/**
 * `REGISTRY_PASSWORD_ALCIE` for user `alice` would be ignored without a word while a password is
 * generated: warn, naming the variable (never its value) and the closest configured name.
 */
function strayVariableWarnings(
  env: NodeJS.ProcessEnv,
  prefix: string,
  names: ReadonlySet<string>,
  envNameOf: (name: string) => string,
  what: string,
  consequence: (closest: string) => string,
): string[] {
  const byVariable = new Map([...names].map((name) => [envNameOf(name), name]));
  return Object.keys(env)
    .filter((variable) => variable.startsWith(prefix) && !byVariable.has(variable) && env[variable] !== undefined)
    .sort()
    .map((variable) => {
      const closestVariable = closestName(variable.slice(prefix.length), [...byVariable.keys()].map((v) => v.slice(prefix.length)));
      const closest = closestVariable === undefined ? undefined : byVariable.get(`${prefix}${closestVariable}`);
      const hint = closest === undefined ? "" : `; did you mean ${envNameOf(closest)} (${what} "${closest}"${consequence(closest)})?`;
      return `${variable} is set but names no configured ${what}, so it is ignored${hint}`;
    });
}

type SecretSection = "passwords" | "upstreamPasswords";
const SECTION_OF: Record<SecretSection, { what: string; users: boolean }> = {
  passwords: { what: "user", users: true },
  upstreamPasswords: { what: "mirror", users: false },
};

interface SecretsFileContent {
  readonly passwords: Record<string, string>;
  readonly upstreamPasswords: Record<string, string>;
  readonly problems: string[];
}

/**
 * Reads the secrets file from YAML's syntax tree, so that every problem can name the position
 * and a configured name, but never a value, nor a key that names nothing configured: a line with a
 * missing colon or space (`{admin:Pw}`, `bob Pw`) puts the password into the key.
 */
function readSecretsFile(file: string, names: Record<SecretSection, ReadonlySet<string>>): SecretsFileContent {
  const { document, lineCounter } = parseYamlFile(file, { secret: true });
  const content: SecretsFileContent = { passwords: {}, upstreamPasswords: {}, problems: [] };
  const problem = (message: string) => content.problems.push(`${file}: ${message}`);
  const at = (node: unknown): string => {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    if (!range) return "";
    const { line, col } = lineCounter.linePos(range[0]);
    return `line ${line}, column ${col}`;
  };
  const root = resolveAlias(document.contents, document);
  if (root === null || (isScalar(root) && root.value === null)) return content;
  if (!isMap(root)) {
    problem('must be a YAML mapping with "passwords:" (user name: password) and "upstreamPasswords:" (mirror name: password); see README.md');
    return content;
  }
  for (const pair of root.items) {
    const key = keyName(pair.key);
    if (key === "passwords" || key === "upstreamPasswords") {
      readSection(key, pair.value);
      continue;
    }
    // Not shown: a mistyped line at the top level can be a password.
    problem(
      key !== undefined && names.passwords.has(key)
        ? `${at(pair.key)}: "${key}" is a user: indent it under passwords:`
        : `${at(pair.key ?? pair.value)}: a top-level key other than passwords: and upstreamPasswords: (not shown: it may hold a password); user passwords go under passwords:, mirrors' upstream passwords under upstreamPasswords:`,
    );
  }
  return content;

  function readSection(section: SecretSection, node: unknown): void {
    const { what, users } = SECTION_OF[section];
    const map = resolveAlias(node, document);
    if (map === null || (isScalar(map) && map.value === null)) return;
    if (!isMap(map)) {
      problem(`${section}: must be a mapping of ${what} name to password (\`name: password\`, one per line); see README.md`);
      return;
    }
    const configured = names[section];
    for (const item of map.items) {
      const name = keyName(item.key);
      if (name === undefined || !configured.has(name)) {
        problem(`${section}, ${at(item.key ?? item.value)}: ${unknownKeyHint(name, configured, what)}`);
        continue;
      }
      // The name is a configured one: it may be shown, the value never.
      const value = resolveAlias(item.value, document);
      const js = isScalar(value) ? value.value : value;
      const field = `${section}.${name}`;
      const generate = users ? " or remove the entry to have one generated" : "";
      if (typeof js === "string") {
        content[section][name] = js;
        if (!users) continue; // upstream passwords: the schema checks them, naming the variable too
        const bad = passwordProblem(js);
        if (bad === undefined) continue;
        const fix = /[\r\n]/.test(js) ? `write the password on the key's line, quoted (a block scalar such as \`${name}: |\` keeps a line break at its end)` : `set another password${generate}`;
        problem(`${field} ${bad}; ${fix}`);
      } else if (js === null || js === undefined) {
        problem(`${field} has no value; write \`${name}: <password>\` with a space after the colon${users ? ", or remove the entry to have one generated" : ""}`);
      } else if (typeof js === "number" || typeof js === "boolean" || typeof js === "bigint") {
        problem(`${field} is read by YAML as a ${typeof js === "boolean" ? "boolean" : "number"}, not text; quote it: ${name}: "<password>"`);
      } else {
        problem(`${field} is a ${isSeq(js) ? "list" : "mapping"}, not a password; write the password as a quoted string: ${name}: "<password>"`);
      }
    }
  }
}

/** Why a key names nothing configured, without quoting it (it may be a password). */
function unknownKeyHint(name: string | undefined, configured: ReadonlySet<string>, what: string): string {
  const notShown = "(not shown: a mistyped entry can hold a password)";
  if (name === undefined) return `an entry whose key is not a ${what} name ${notShown}; write \`name: password\`, one per line`;
  const glued = /^([^:\s]+)[:\s]/.exec(name)?.[1];
  if (glued !== undefined && configured.has(glued))
    return `the entry of ${what} "${glued}" has a key with ':' or a space in it ${notShown}: a colon without a space after it, or a missing colon; write \`${glued}: <password>\``;
  const closest = closestName(name, configured);
  return `an entry names no configured ${what} ${notShown}; ${closest === undefined ? "" : `did you mean "${closest}"? `}fix the name or remove the entry`;
}

function keyName(node: unknown): string | undefined {
  if (!isScalar(node)) return undefined;
  return typeof node.value === "string" || typeof node.value === "number" ? String(node.value) : undefined;
}

function resolveAlias(node: unknown, document: Document): unknown {
  return isAlias(node) ? node.resolve(document) : node;
}

function locate(fromEnv: string | undefined, fallback: string, envName: string, cwd: string): string | undefined {
  if (fromEnv) {
    const file = path.resolve(cwd, fromEnv);
    if (!fs.existsSync(file)) throw new ConfigError([`${envName}: file ${file} does not exist; fix the path or unset ${envName}`]);
    return file;
  }
  const file = path.resolve(cwd, fallback);
  return fs.existsSync(file) ? file : undefined;
}

/**
 * Parses a YAML file. yaml's default messages and warnings print a code frame of the offending
 * line (on stderr, for warnings): for the secrets file that is the password, so errors name the
 * position and the parser's code only, and warnings are silenced.
 */
function parseYamlFile(file: string, { secret }: { secret: boolean }): { document: Document; lineCounter: LineCounter } {
  let text: string;
  try {
    const size = fs.statSync(file).size;
    if (size > MAX_INPUT_FILE_BYTES)
      throw new ConfigError([`${file}: is ${size} bytes; files over ${MAX_INPUT_FILE_BYTES} bytes are refused (lists are limited, see README.md)`]);
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError([`${file}: cannot be read (${(error as NodeJS.ErrnoException).code ?? "error"}); fix the path or its permissions`]);
  }
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { prettyErrors: false, logLevel: "error", lineCounter, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new ConfigError(
      document.errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        const what = secret ? error.code : `${error.code}: ${error.message}`;
        return `${file}: not valid YAML (${what}) at line ${line}, column ${col}; fix the file`;
      }),
      secret ? "secrets file" : "configuration file",
    );
  }
  if (secret) {
    // Aliases are resolved by hand there; bound their expansion the same way.
    try {
      document.toJS({ maxAliasCount: 100 });
    } catch {
      throw new ConfigError([`${file}: its YAML aliases expand too far; write the values out`], "secrets file");
    }
  }
  return { document, lineCounter };
}

/** Parses the config file into a mapping. */
function readYamlObject(file: string): Record<string, unknown> {
  const { document } = parseYamlFile(file, { secret: false });
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: 100 });
  } catch {
    throw new ConfigError([`${file}: its YAML aliases expand too far; write the values out`]);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new ConfigError([`${file}: must be a YAML mapping of settings (see README.md)`]);
  return value as Record<string, unknown>;
}
