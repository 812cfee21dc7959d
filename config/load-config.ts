import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { z } from "zod";
import { ConfigError } from "./config-error";
import { RegistryStackProps } from "./registry-stack-props";
import { DEFAULT_USERS } from "./schema";

export const CONFIG_FILE_ENV = "REGISTRY_STACK_CONFIG";
export const SECRETS_FILE_ENV = "REGISTRY_STACK_SECRETS";
export const DEFAULT_CONFIG_FILE = "registry-stack.yml";
export const DEFAULT_SECRETS_FILE = "registry.secrets.yml";

/** `alice` → `REGISTRY_PASSWORD_ALICE`, `ci.bot-1` → `REGISTRY_PASSWORD_CI_BOT_1`. */
export function passwordEnvName(user: string): string {
  return `REGISTRY_PASSWORD_${user.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

const secretsSchema = z.strictObject({ passwords: z.record(z.string(), z.string()).default({}) });

export interface LoadedConfig {
  /** Stack props from the config file, with passwords from the environment or the secrets file. */
  readonly props: RegistryStackProps;
  /** Where the props came from, for messages. */
  readonly source: string;
}

/**
 * Reads the config file (`$REGISTRY_STACK_CONFIG`, else ./registry-stack.yml, else the embedded default: no file)
 * and the passwords (`REGISTRY_PASSWORD_<USER>` variables win over the secrets file,
 * `$REGISTRY_STACK_SECRETS` else ./registry.secrets.yml). Structure is validated later by the stack, with all problems at once.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): LoadedConfig {
  const configFile = locate(env[CONFIG_FILE_ENV], DEFAULT_CONFIG_FILE, CONFIG_FILE_ENV, cwd);
  const raw = configFile ? readYamlObject(configFile) : {};
  const source = configFile ? `configuration in ${configFile}` : "embedded default configuration";

  const problems: string[] = [];
  const users = raw.users === undefined ? DEFAULT_USERS : Array.isArray(raw.users) ? (raw.users as unknown[]) : undefined;
  users?.forEach((u, i) => {
    if (u && typeof u === "object" && "password" in u)
      problems.push(`users[${i}].password: passwords do not belong in the config file; set ${passwordEnvName(String((u as { name?: unknown }).name ?? "user"))} or use the secrets file`);
  });

  const secretsFile = locate(env[SECRETS_FILE_ENV], DEFAULT_SECRETS_FILE, SECRETS_FILE_ENV, cwd);
  let filePasswords: Record<string, string> = {};
  if (secretsFile) {
    const parsed = secretsSchema.safeParse(readYamlObject(secretsFile));
    if (parsed.success) filePasswords = parsed.data.passwords;
    else problems.push(`${secretsFile}: expected "passwords:" mapping user names to passwords (${parsed.error.issues.map((i) => i.path.join(".") || i.message).join(", ")})`);
  }
  const userNames = new Set((users ?? []).map((u) => String((u as { name?: unknown })?.name)));
  for (const name of Object.keys(filePasswords)) {
    if (!userNames.has(name)) problems.push(`${secretsFile}: passwords.${name} names no configured user; fix the name or remove the entry`);
  }
  if (problems.length > 0) throw new ConfigError(problems, source);

  const withPasswords = (u: unknown): unknown => {
    if (!u || typeof u !== "object") return u;
    const name = String((u as { name?: unknown }).name);
    const password = env[passwordEnvName(name)] ?? filePasswords[name];
    return password === undefined ? u : { ...u, password };
  };
  const props = users ? { ...raw, users: users.map(withPasswords) } : raw;
  return { props: props as RegistryStackProps, source };
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

function readYamlObject(file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError([`${file}: not valid YAML: ${(e as Error).message}`]);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new ConfigError([`${file}: must be a YAML mapping of settings (see README.md)`]);
  return value as Record<string, unknown>;
}
