import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { ConfigError } from "../config/config-error";
import { systemFolderProblem } from "../config/rules";
import { RegistrySettings } from "../config/schema";
import { registryEndpoints, stackOwnedClientFiles } from "../renderers/registry-client-files";
import { REGISTRY_USER } from "../renderers/volume-ownership";
import { parseDaemonJson } from "../renderers/daemon-json";
import { parseRegistriesYaml } from "../renderers/registries-yaml";
import { STACK_FILE_MARKER } from "../renderers/registry-client-files";
import { Entropy } from "./entropy";
import { ensureHttpSecret } from "./http-secret";
import { MaterialStore } from "./material-store";
import { resolveRegistryUsers, ResolvedRegistryUsers } from "./registry-users";
import { ensureSelfSignedTls } from "./self-signed-tls";
import { loadTlsFiles } from "./tls-files";
import { TlsMaterial } from "./tls-material";

/** Everything the constructs need that comes from files or randomness, checked and computed. */
export interface PreparedMaterial {
  /** @default - none: `tls.mode: none` */
  readonly tls?: TlsMaterial;
  readonly users: ResolvedRegistryUsers;
  readonly httpSecret: string;
  /**
   * The material folder with every new or changed file staged, not written: call `commit()`
   * once nothing else can fail on the input.
   */
  readonly store: MaterialStore;
  /** Mirror name → the PEM of its `upstreamCaFile`, for mirrors that have one. */
  readonly upstreamCas: Readonly<Record<string, string>>;
}

/**
 * Reads, checks and computes all material before anything is written: the folders, the
 * existing daemon.json that will be merged, the TLS files or the self-signed CA and
 * certificate, the users' hashes and generated passwords, the registry's http.secret.
 * Throws one ConfigError per stage; on any error nothing has been written.
 */
export function prepareMaterial(settings: RegistrySettings, entropy: Entropy): PreparedMaterial {
  const problems = [
    ...folderProblems("materialDirectory", settings.materialDirectory, { mustBeWritable: true }),
    ...folderProblems("clientConfigDirectory", settings.clientConfigDirectory, { mustBeWritable: false }),
  ];
  problems.push(...storageHostPathProblems(settings));
  if (problems.length === 0) problems.push(...daemonJsonProblems(settings.clientConfigDirectory), ...foreignClientFileProblems(settings), ...registriesYamlProblems(settings));
  if (problems.length > 0) throw new ConfigError(problems, "folder settings");
  const upstreamCas = readUpstreamCas(settings);

  const identity = { hostnames: settings.hostnames, ipAddresses: settings.ipAddresses };
  const store = new MaterialStore(settings.materialDirectory, { deferWrites: true });
  const tls =
    settings.tls.mode === "files"
      ? loadTlsFiles(settings.tls, identity, entropy.now())
      : settings.tls.mode === "self-signed"
        ? ensureSelfSignedTls(store, identity, entropy, { serverValidityDays: settings.tls.serverValidityDays })
        : undefined;
  const users = resolveRegistryUsers(store, settings.users, { bcryptCost: settings.bcryptCost, entropy });
  const httpSecret = ensureHttpSecret(store, entropy);
  return { tls, users, httpSecret, store, upstreamCas };
}

/** A folder that is (or can be created as) a directory: no path component may be a file. */
function folderProblems(field: string, folder: string, { mustBeWritable }: { mustBeWritable: boolean }): string[] {
  for (let current = folder; ; current = path.dirname(current)) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(current);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code === "ENOENT" || code === "ENOTDIR") && path.dirname(current) !== current) continue;
      return [`${field}: "${folder}" cannot be checked (${code}); choose another folder`];
    }
    if (!stat.isDirectory()) {
      return current === folder
        ? [`${field}: "${folder}" is a file, not a folder; choose a folder (it is created if missing)`]
        : [`${field}: "${folder}" is inside "${current}", which is a file, not a folder; choose another path`];
    }
    if (mustBeWritable) {
      try {
        fs.accessSync(current, fs.constants.W_OK | fs.constants.X_OK);
      } catch {
        return [`${field}: "${current}" is not writable by this user; fix its permissions or choose another folder`];
      }
    }
    return [];
  }
}

/** What a folder may hold to be a registry store: distribution's own tree, and a fresh file system's lost+found. */
const STORE_LAYOUT: ReadonlyArray<readonly string[]> = [["docker", "lost+found"], ["registry"], ["v2"]];
const STORE_FIX =
  "use an empty folder, one that does not exist yet (Docker creates it at deploy and the volume owner gives it to the registry's user), or one that already holds a registry store (docker/registry/v2)";

/**
 * The volume-owner container runs `chown -R` on storageHostPath (as root, with CAP_CHOWN) while
 * its top folder is not the registry user's: a folder with anything else in it would lose its
 * owners. Checked only on this machine's engine (unix://): a remote engine's folders are not here.
 * System folders are refused by the schema, also through a symbolic link here.
 */
function storageHostPathProblems(settings: RegistrySettings): string[] {
  const folder = settings.storageHostPath;
  if (folder === undefined || !settings.dockerHost.startsWith("unix://")) return [];
  const field = `storageHostPath: "${folder}"`;
  let real: string;
  try {
    real = fs.realpathSync(folder);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return [];
    return code === "ENOTDIR" ? [`${field} is inside a file, not a folder; choose another path`] : [`${field} cannot be checked (${code}); make it readable by this user, or ${STORE_FIX}`];
  }
  const system = real === path.resolve(folder) ? undefined : systemFolderProblem(real);
  if (system !== undefined) return [`${field} is a link to "${real}", which ${system}: the volume owner would chown everything in it to ${REGISTRY_USER}; use a folder of its own`];
  if (!fs.statSync(real).isDirectory()) return [`${field} is a file, not a folder; ${STORE_FIX}`];
  const foreign: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (error) {
      foreign.push(`${path.relative(real, dir) || "."} (unreadable: ${(error as NodeJS.ErrnoException).code})`);
      return;
    }
    for (const entry of entries) {
      const relative = path.relative(real, path.join(dir, entry.name));
      if (!STORE_LAYOUT[depth].includes(entry.name) || !entry.isDirectory()) foreign.push(relative);
      else if (depth + 1 < STORE_LAYOUT.length && entry.name !== "lost+found") walk(path.join(dir, entry.name), depth + 1);
    }
  };
  walk(real, 0);
  if (foreign.length === 0) return [];
  const shown = foreign.slice(0, 3).map((name) => `"${name}"`).join(", ");
  return [
    `${field} holds other files than a registry store (${foreign.length === 1 ? shown : `${foreign.length} entries, e.g. ${shown}`}); the volume owner would chown everything in it to ${REGISTRY_USER}: ${STORE_FIX}`,
  ];
}

/** The daemon.json that deploy will merge into must parse now, not after material was written. */
function daemonJsonProblems(clientDirectory: string): string[] {
  const file = path.join(clientDirectory, "daemon.json");
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EISDIR") return [`clientConfigDirectory: ${file} is a folder; the stack merges into a daemon.json file there: move the folder away`];
    return code === "ENOENT" ? [] : [`clientConfigDirectory: ${file} cannot be read (${code}); fix its permissions or remove it`];
  }
  try {
    parseDaemonJson(text, file);
    return [];
  } catch (error) {
    return [`clientConfigDirectory: ${(error as Error).message}`];
  }
}

/** Client files the stack owns must be absent or its own: a file the user wrote is never overwritten. */
function foreignClientFileProblems(settings: RegistrySettings): string[] {
  if (settings.tls.mode === "none") return [];
  const endpoints = registryEndpoints(settings.hostnames, settings.ipAddresses, settings.publicPort);
  const files = stackOwnedClientFiles(settings.clientConfigDirectory, endpoints, settings.mirrors.map((m) => m.upstream));
  return files.flatMap((file) => {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return code === "ENOENT" || code === "ENOTDIR" ? [] : [`clientConfigDirectory: ${file} cannot be read (${code}); fix its permissions or remove it`];
    }
    return text.startsWith(STACK_FILE_MARKER)
      ? []
      : [`clientConfigDirectory: ${file} exists and was not written by registry-stack; move it away (merge its settings by hand afterwards) or choose another clientConfigDirectory`];
  });
}

/** Each mirror's upstreamCaFile must be a readable PEM certificate. */
function readUpstreamCas(settings: RegistrySettings): Record<string, string> {
  const problems: string[] = [];
  const cas: Record<string, string> = {};
  settings.mirrors.forEach((mirror, i) => {
    if (mirror.upstreamCaFile === undefined) return;
    const field = `mirrors[${i}].upstreamCaFile`;
    let pem: string;
    try {
      pem = fs.readFileSync(mirror.upstreamCaFile, "utf8");
    } catch (error) {
      problems.push(`${field}: ${mirror.upstreamCaFile} cannot be read (${(error as NodeJS.ErrnoException).code}); fix the path`);
      return;
    }
    try {
      new crypto.X509Certificate(pem);
      cas[mirror.name] = pem;
    } catch {
      problems.push(`${field}: ${mirror.upstreamCaFile} is not a PEM certificate; give the upstream's CA certificate (-----BEGIN CERTIFICATE-----)`);
    }
  });
  if (problems.length > 0) throw new ConfigError(problems, "mirror settings");
  return cas;
}

/** The registries.yaml deploy will merge into must parse now (TLS modes only: without TLS nothing is merged). */
function registriesYamlProblems(settings: RegistrySettings): string[] {
  if (settings.tls.mode === "none") return [];
  let text: string;
  try {
    text = fs.readFileSync(settings.k3sRegistriesFile, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EISDIR")
      return [`k3sRegistriesFile: ${settings.k3sRegistriesFile} is a folder; point k3sRegistriesFile at the file inside, e.g. ${path.join(settings.k3sRegistriesFile, "registries.yaml")}`];
    return code === "ENOENT" || code === "ENOTDIR" ? [] : [`k3sRegistriesFile: ${settings.k3sRegistriesFile} cannot be read (${code}); fix its permissions or remove it`];
  }
  try {
    parseRegistriesYaml(text, settings.k3sRegistriesFile);
    return [];
  } catch (error) {
    return [`k3sRegistriesFile: ${(error as Error).message}`];
  }
}
