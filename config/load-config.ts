import * as fs from "fs";
import * as path from "path";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { ConfigError } from "./config-error";
import { RegistryStackProps } from "./registry-stack-props";
import { MAX_INPUT_FILE_BYTES, passwordEnvName, passwordProblem, upstreamPasswordEnvName } from "./rules";
import { DEFAULT_USERS } from "./schema";

export { passwordEnvName } from "./rules";

export const CONFIG_FILE_ENV = "REGISTRY_STACK_CONFIG";
export const SECRETS_FILE_ENV = "REGISTRY_STACK_SECRETS";
export const DEFAULT_CONFIG_FILE = "registry-stack.yml";
export const DEFAULT_SECRETS_FILE = "registry.secrets.yml";

const secretsSchema = z.strictObject({
  passwords: z.record(z.string(), z.string()).default({}),
  upstreamPasswords: z.record(z.string(), z.string()).default({}),
});

export interface LoadedConfig {
  /** Stack props from the config file, with passwords from the environment or the secrets file. */
  readonly props: RegistryStackProps;
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
 * No message quotes the secrets file's text.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): LoadedConfig {
  const configFile = locate(env[CONFIG_FILE_ENV], DEFAULT_CONFIG_FILE, CONFIG_FILE_ENV, cwd);
  const raw = configFile ? readYamlObject(configFile, { secret: false }) : {};
  const source = configFile ? `configuration in ${configFile}` : "embedded default configuration";

  const problems: string[] = [];
  const warnings: string[] = [];
  const users = raw.users === undefined ? DEFAULT_USERS : Array.isArray(raw.users) ? (raw.users as unknown[]) : undefined;
  const nameOf = (u: unknown): string => String((u as { name?: unknown } | null)?.name);
  users?.forEach((u, i) => {
    if (u && typeof u === "object" && "password" in u)
      problems.push(`users[${i}].password: passwords do not belong in the config file; set ${passwordEnvName(nameOf(u))} or use the secrets file`);
  });

  const secretsFile = locate(env[SECRETS_FILE_ENV], DEFAULT_SECRETS_FILE, SECRETS_FILE_ENV, cwd);
  let filePasswords: Record<string, string> = {};
  let fileUpstreamPasswords: Record<string, string> = {};
  if (secretsFile) {
    const mode = fs.statSync(secretsFile).mode & 0o777;
    if ((mode & 0o077) !== 0)
      warnings.push(`${secretsFile} is accessible by group or others (mode ${mode.toString(8).padStart(4, "0")}); restrict it: chmod 600 ${secretsFile}`);
    const parsed = secretsSchema.safeParse(readYamlObject(secretsFile, { secret: true }));
    // Issue paths and codes only: zod's messages never carry the value, but keep it that way.
    if (parsed.success) ({ passwords: filePasswords, upstreamPasswords: fileUpstreamPasswords } = parsed.data);
    else
      problems.push(
        `${secretsFile}: expected "passwords:" mapping user names to passwords (${parsed.error.issues.map((i) => i.path.join(".") || i.code).join(", ")}); "upstreamPasswords:" maps mirror names to upstream passwords`,
      );
  }
  const userNames = new Set((users ?? []).map(nameOf));
  for (const name of Object.keys(filePasswords)) {
    if (!userNames.has(name)) problems.push(`${secretsFile}: passwords.${name} names no configured user; fix the name or remove the entry`);
  }

  const passwordOf = (name: string): string | undefined => {
    const envName = passwordEnvName(name);
    const fromEnv = env[envName];
    if (fromEnv !== undefined) {
      const problem = passwordProblem(fromEnv);
      if (problem) problems.push(`${envName}: the password for user "${name}" ${problem}; set another password or unset the variable`);
      return fromEnv;
    }
    const fromFile = Object.prototype.hasOwnProperty.call(filePasswords, name) ? filePasswords[name] : undefined;
    if (fromFile !== undefined) {
      const problem = passwordProblem(fromFile);
      if (problem) problems.push(`${secretsFile}: passwords.${name} ${problem}; set another password or remove the entry to have one generated`);
    }
    return fromFile;
  };
  const withPasswords = (u: unknown): unknown => {
    if (!u || typeof u !== "object") return u;
    const password = passwordOf(nameOf(u));
    return password === undefined ? u : { ...u, password };
  };
  const mirrors = Array.isArray(raw.mirrors) ? (raw.mirrors as unknown[]) : undefined;
  mirrors?.forEach((m, i) => {
    if (m && typeof m === "object" && "password" in m)
      problems.push(`mirrors[${i}].password: passwords do not belong in the config file; set ${upstreamPasswordEnvName(nameOf(m))} or upstreamPasswords in the secrets file`);
  });
  const mirrorNames = new Set((mirrors ?? []).map(nameOf));
  for (const name of Object.keys(fileUpstreamPasswords)) {
    if (!mirrorNames.has(name)) problems.push(`${secretsFile}: upstreamPasswords.${name} names no configured mirror; fix the name or remove the entry`);
  }
  // Checked by the schema (username and password both or neither), which names the variable.
  const withUpstreamPassword = (m: unknown): unknown => {
    if (!m || typeof m !== "object") return m;
    const name = nameOf(m);
    const envName = upstreamPasswordEnvName(name);
    const password = env[envName] ?? (Object.prototype.hasOwnProperty.call(fileUpstreamPasswords, name) ? fileUpstreamPasswords[name] : undefined);
    return password === undefined ? m : { ...m, password };
  };
  const props = {
    ...raw,
    ...(users ? { users: users.map(withPasswords) } : {}),
    ...(mirrors ? { mirrors: mirrors.map(withUpstreamPassword) } : {}),
  };
  if (problems.length > 0) throw new ConfigError(problems, source);
  return { props: props as RegistryStackProps, source, warnings };
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
 * Parses a YAML file into a mapping. yaml's default messages and warnings print a code frame of
 * the offending line (on stderr, for warnings): for the secrets file that is the password, so
 * errors name the position and the parser's code only, and warnings are silenced.
 */
function readYamlObject(file: string, { secret }: { secret: boolean }): Record<string, unknown> {
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
