import * as path from "path";
import { z } from "zod";
import { ConfigError } from "./config-error";
import { RegistryStackProps } from "./registry-stack-props";
import * as rules from "./rules";

/** The embedded default: one user who may do everything, deleting included (when deleteEnabled). */
export const DEFAULT_USERS = [{ name: "admin", role: "admin" as const }];
export const DEFAULT_ROLE: rules.Role = "push";

const port = z.number().int().min(1, { error: "must be a port number from 1 to 65535" }).max(65535, { error: "must be a port number from 1 to 65535" });
/** A string checked by a rule from rules.ts that returns what is wrong, or undefined. */
const ruled = (problemOf: (value: string) => string | undefined) =>
  z.string().superRefine((value, ctx) => {
    const message = problemOf(value);
    if (message !== undefined) ctx.addIssue({ code: "custom", message, input: value });
  });
const image = ruled(rules.imageReferenceProblem);
const absolutePath = z.string().refine((p) => path.isAbsolute(p), { error: "must be an absolute path" });
const nonEmptyPath = z.string().min(1, { error: "must not be empty" });

/** A list whose length is checked before its entries, so a huge list fails at once. */
function boundedList<T extends z.ZodType>(element: T, max: number) {
  return z
    .array(z.unknown())
    .max(max, { error: (issue) => `has ${(issue.input as unknown[]).length} entries; at most ${max} are supported` })
    .pipe(z.array(element));
}

const user = z.strictObject({
  name: z
    .string()
    .regex(rules.USER_NAME, { error: rules.USER_NAME_HINT })
    .max(rules.MAX_USER_NAME_LENGTH, { error: `must be at most ${rules.MAX_USER_NAME_LENGTH} characters` }),
  password: z
    .string()
    .superRefine((password, ctx) => {
      const problem = rules.passwordProblem(password);
      if (problem === undefined) return;
      const remedy =
        password === "" ? "supply a password or leave it out to have one generated" : rules.passwordControlCharacterProblem(password) ? "use a password of printable characters" : "use a shorter password";
      ctx.addIssue({ code: "custom", message: `${problem}; ${remedy}` });
    })
    .optional(),
  role: z.enum(rules.ROLES, { error: `must be one of ${rules.ROLES.map((r) => `'${r}'`).join(", ")}` }).default(DEFAULT_ROLE),
  repositories: boundedList(z.string().regex(rules.REPOSITORY_SCOPE, { error: rules.REPOSITORY_SCOPE_HINT }), rules.MAX_REPOSITORY_SCOPES)
    .refine((list) => list.length > 0, { error: "is empty; list the repositories the user may use, or leave it out for all" })
    .optional(),
});

export const DEFAULT_MIRROR_TTL = "168h";
export const DEFAULT_MIRROR_BLOB_CACHE_MB = 2048;

const mirror = z.strictObject({
  name: z.string().regex(rules.MIRROR_NAME, { error: rules.MIRROR_NAME_HINT }),
  upstream: ruled(rules.upstreamProblem),
  upstreamUrl: z
    .string()
    .refine((u) => /^https:\/\/[^\s/]+\/?$/.test(u), { error: "must be an https:// URL without a path, e.g. https://registry-1.docker.io" })
    .optional(),
  upstreamCaFile: nonEmptyPath.optional(),
  username: z.string().min(1, { error: "must not be empty; leave it out for anonymous upstream pulls" }).optional(),
  password: z.string().optional(),
  port: z.number().int().min(1, { error: "must be a port number from 1 to 65535" }).max(65535, { error: "must be a port number from 1 to 65535" }),
  ttl: ruled(rules.mirrorTtlProblem).default(DEFAULT_MIRROR_TTL),
  blobCacheMb: z
    .number()
    .int({ error: "must be a whole number of MiB" })
    .min(rules.MIN_MIRROR_BLOB_CACHE_MB, { error: `must be at least ${rules.MIN_MIRROR_BLOB_CACHE_MB} (MiB); make it larger than the largest layer pulled through the mirror` })
    .max(rules.MAX_MIRROR_BLOB_CACHE_MB, { error: `must be at most ${rules.MAX_MIRROR_BLOB_CACHE_MB} (MiB)` })
    .default(DEFAULT_MIRROR_BLOB_CACHE_MB),
  anonymousPull: z.boolean().default(false),
  network: z.string().regex(rules.DOCKER_OBJECT_NAME, { error: rules.DOCKER_OBJECT_NAME_HINT }).optional(),
});

const tls = z.discriminatedUnion(
  "mode",
  [
    z.strictObject({ mode: z.literal("self-signed"), serverValidityDays: z.number().int().min(31).max(825).optional() }),
    z.strictObject({ mode: z.literal("files"), certificateFile: nonEmptyPath, keyFile: nonEmptyPath, caFile: nonEmptyPath }),
    z.strictObject({ mode: z.literal("none") }),
  ],
  { error: "must be one of 'self-signed', 'files', 'none'" },
);

const httpUrl = z.string().refine((u) => /^https?:\/\/[^\s/]+/.test(u), { error: "must be an http:// or https:// URL" });
const stateBackend = z.discriminatedUnion(
  "type",
  [
    z.strictObject({ type: z.literal("local"), path: absolutePath.optional() }),
    z.strictObject({
      type: z.literal("s3"),
      bucket: z.string().min(1, { error: "must not be empty" }),
      key: z.string().min(1, { error: "must not be empty" }),
      region: z.string().min(1, { error: "must not be empty" }),
      endpoint: httpUrl.optional(),
      usePathStyle: z.boolean().optional(),
    }),
    z.strictObject({ type: z.literal("pg"), schemaName: z.string().min(1, { error: "must not be empty" }).optional() }),
    z.strictObject({ type: z.literal("http"), address: httpUrl, lockAddress: httpUrl.optional(), unlockAddress: httpUrl.optional() }),
  ],
  { error: "must be one of 'local', 's3', 'pg', 'http'" },
);
const pattern = ruled(rules.extendedRegexProblem);
const retentionRule = z.strictObject({
  repositories: pattern,
  keepNewest: z.number().int().min(0, { error: "must be 0 or more tags" }).max(100000, { error: "must be at most 100000" }).optional(),
  keepTags: boundedList(pattern, rules.MAX_KEEP_TAG_PATTERNS).default([]),
  untaggedDays: z.number().int().min(0, { error: "must be 0 (every untagged manifest) or more days" }).max(36500, { error: "must be at most 36500" }).optional(),
});
const retention = z.strictObject({
  schedule: z.string().regex(rules.DAILY_TIME, { error: rules.DAILY_TIME_HINT }).default("03:00"),
  dryRun: z.boolean().default(false),
  writeSettleSeconds: z.number().int().min(0, { error: "must be 0 or more seconds" }).max(60, { error: "must be at most 60; writes are refused that long" }).default(2),
  rules: boundedList(retentionRule, rules.MAX_RETENTION_RULES),
});
const memoryMb = z.number().int().min(32, { error: "must be at least 32 (MiB)" }).max(1048576, { error: "must be at most 1048576 (MiB)" });

/** Schema of the stack's props; the config file has the same shape (without passwords and entropy). */
export const registryStackPropsSchema = z
  .strictObject({
    namePrefix: z
      .string()
      .regex(rules.DOCKER_OBJECT_NAME, { error: rules.DOCKER_OBJECT_NAME_HINT })
      .max(rules.MAX_NAME_PREFIX_LENGTH, { error: `must be at most ${rules.MAX_NAME_PREFIX_LENGTH} characters` })
      .default("registry"),
    dockerHost: ruled(rules.dockerHostProblem).default("unix:///var/run/docker.sock"),
    dockerCertPath: nonEmptyPath.optional(),
    dockerSshOptions: boundedList(z.string(), rules.MAX_SSH_OPTIONS).default([]),
    registryImage: image.default("registry:3.1.1"),
    proxyImage: image.default("nginx:1.28.2-alpine"),
    hostnames: boundedList(z.string().refine(rules.isDnsName, { error: rules.DNS_NAME_HINT }), rules.MAX_HOSTNAMES).default([]),
    ipAddresses: boundedList(z.string().refine(rules.isIpAddress, { error: rules.IP_HINT }), rules.MAX_IP_ADDRESSES).default([]),
    publicPort: port.default(5000),
    publishAddress: z.string().refine(rules.isIpAddress, { error: rules.IP_HINT }).default("0.0.0.0"),
    proxy: z.boolean().default(true),
    httpRedirectPort: port.optional(),
    tls: tls.default({ mode: "self-signed" }),
    users: boundedList(user, rules.MAX_USERS).default(DEFAULT_USERS),
    bcryptCost: z
      .number()
      .int()
      .min(rules.MIN_BCRYPT_COST, { error: `must be at least ${rules.MIN_BCRYPT_COST} (10 or more recommended)` })
      .max(rules.MAX_BCRYPT_COST, { error: `must be at most ${rules.MAX_BCRYPT_COST}; every authenticated request pays this cost` })
      .default(10),
    authCacheSeconds: z
      .number()
      .int()
      .min(0, { error: "must be 0 (off) or more seconds" })
      .max(3600, { error: "must be at most 3600; a cached login is trusted that long" })
      .optional(),
    serveBlobsFromStorage: z.boolean().optional(),
    deleteEnabled: z.boolean().optional(),
    ui: z.boolean().optional(),
    anonymousPull: z.boolean().default(false),
    volumeName: z.string().regex(rules.DOCKER_OBJECT_NAME, { error: rules.DOCKER_OBJECT_NAME_HINT }).optional(),
    preventVolumeDestroy: z.boolean().default(true),
    storageHostPath: absolutePath
      .superRefine((folder, ctx) => {
        const problem = path.isAbsolute(folder) ? rules.systemFolderProblem(folder) : undefined;
        if (problem !== undefined)
          ctx.addIssue({ code: "custom", input: folder, message: `${problem}: the registry's volume owner would chown everything in it to the registry's user; use a folder of its own, e.g. /srv/registry` });
      })
      .optional(),
    debugPort: port.optional(),
    logLevel: z.enum(["error", "warn", "info", "debug"]).default("info"),
    restartPolicy: z.enum(["no", "on-failure", "always", "unless-stopped"]).default("unless-stopped"),
    clientConfigDirectory: nonEmptyPath.default("client-config"),
    k3sRegistriesFile: nonEmptyPath.optional(),
    materialDirectory: nonEmptyPath.optional(),
    projectDirectory: absolutePath.optional(),
    stateBackend: stateBackend.default({ type: "local" }),
    stopGraceSeconds: z.number().int().min(0, { error: "must be 0 or more seconds" }).max(3600, { error: "must be at most 3600" }).default(120),
    registryMemoryMb: memoryMb.default(1024),
    proxyMemoryMb: memoryMb.default(256),
    authVerifierMemoryMb: memoryMb.default(128),
    failedLoginsPerMinute: z.number().int().min(1, { error: "must be at least 1" }).max(6000, { error: "must be at most 6000" }).default(30),
    failedLoginsBurst: z.number().int().min(0, { error: "must be 0 (no burst: the rate alone) or more" }).max(6000, { error: "must be at most 6000" }).optional(),
    failedLoginsScope: z.enum(rules.LOGIN_LIMIT_SCOPES, { error: `must be one of ${rules.LOGIN_LIMIT_SCOPES.map((s) => `'${s}'`).join(", ")}` }).default("address"),
    mirrors: boundedList(mirror, rules.MAX_MIRRORS).default([]),
    retention: retention.optional(),
  })
  .superRefine((props, ctx) => {
    const problem = (field: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path: field, message, input: valueAt(props, field) });
    const names = new Set<string>();
    const envNames = new Map<string, number>();
    props.users.forEach((u, i) => {
      if (names.has(u.name)) problem(["users", i, "name"], "is listed twice; each user needs a unique name");
      else {
        const envName = rules.passwordEnvName(u.name);
        const first = envNames.get(envName);
        if (first !== undefined)
          problem(["users", i, "name"], `reads its password from ${envName}, as users[${first}] "${props.users[first].name}" does; rename one of them`);
        else envNames.set(envName, i);
      }
      names.add(u.name);
    });
    if (props.users.length === 0) problem(["users"], "is empty; list at least one user (a registry without users accepts no login)");
    if (props.dockerHost.startsWith("tcp://") && !props.dockerCertPath)
      problem(["dockerCertPath"], "is required with a tcp:// dockerHost: a Docker Engine on TCP without TLS gives root on the host to anyone who can reach it");
    if (props.httpRedirectPort !== undefined && (!props.proxy || props.tls.mode === "none"))
      problem(["httpRedirectPort"], "needs proxy: true and TLS (tls.mode other than 'none'); remove it");
    if (props.httpRedirectPort !== undefined && props.httpRedirectPort === props.publicPort)
      problem(["httpRedirectPort"], "is also publicPort; pick another port");
    if (props.authCacheSeconds !== undefined && props.authCacheSeconds > 0 && !props.proxy) problem(["authCacheSeconds"], "needs proxy: true (the proxy does the caching); set it to 0 or enable the proxy");
    if (props.serveBlobsFromStorage === true && !props.proxy) problem(["serveBlobsFromStorage"], "needs proxy: true (nginx reads the blobs); remove it or enable the proxy");
    else if (props.serveBlobsFromStorage === true && props.authCacheSeconds === 0)
      problem(["serveBlobsFromStorage"], "needs the auth cache (authCacheSeconds > 0): without it the registry checks logins and nginx would hand out blobs unchecked; remove it or raise authCacheSeconds");
    if (props.storageHostPath !== undefined && props.volumeName !== undefined)
      problem(["storageHostPath"], "and volumeName are both set; choose a host folder or a named volume");
    if (props.ui === true && !props.proxy) problem(["ui"], "needs proxy: true (the proxy serves the page); remove it or enable the proxy");
    // The proxy decides each request after its own login check; without it the registry sees only htpasswd.
    const proxyChecksLogins = props.proxy && (props.authCacheSeconds ?? DEFAULT_AUTH_CACHE_SECONDS) > 0;
    if (!proxyChecksLogins) {
      const why = "needs the proxy's login check (proxy: true and authCacheSeconds above 0), which enforces roles";
      props.users.forEach((u, i) => {
        // Without it every user may do everything: only settings that promise less are refused.
        if (u.role === "pull") problem(["users", i, "role"], `${why}; remove it (every user may push) or enable the login check`);
        if (u.repositories !== undefined) problem(["users", i, "repositories"], `${why}; remove it or enable the login check`);
      });
      if (props.anonymousPull) problem(["anonymousPull"], `${why}; remove it or enable the login check`);
      // There is no limiter at all without it: a setting of the limiter would promise one.
      if (props.failedLoginsBurst !== undefined) problem(["failedLoginsBurst"], "needs the proxy's login check (proxy: true and authCacheSeconds above 0), which has the login limit; remove it or enable the login check");
      if (props.failedLoginsScope !== "address") problem(["failedLoginsScope"], "needs the proxy's login check (proxy: true and authCacheSeconds above 0), which has the login limit; remove it or enable the login check");
    }
    if (props.debugPort === REGISTRY_LISTEN_PORT) problem(["debugPort"], "is the registry's own port; pick another");
    mirrorProblems(props, problem);
    if (props.retention !== undefined) {
      if (props.retention.rules.length === 0) problem(["retention", "rules"], "is empty; add a rule (repositories plus keepNewest, keepTags or untaggedDays) or remove retention");
      if (props.deleteEnabled === false)
        problem(["deleteEnabled"], "is false, but retention deletes tags and manifests and turns the delete API on; remove deleteEnabled or retention");
      if (!props.proxy) problem(["retention"], "needs proxy: true: the proxy holds writes while the garbage collector runs; enable the proxy or remove retention");
    }
  });

type Problem = (field: (string | number)[], message: string) => void;

function mirrorProblems(props: { mirrors: z.output<typeof mirror>[]; proxy: boolean; tls: { mode: string }; publicPort: number; httpRedirectPort?: number }, problem: Problem): void {
  if (props.mirrors.length > 0 && (!props.proxy || props.tls.mode === "none"))
    problem(["mirrors"], "need proxy: true and TLS (tls.mode other than 'none'): mirrors are served by the proxy; remove them or enable both");
  const taken = new Map<number, string>([[props.publicPort, "publicPort"]]);
  if (props.httpRedirectPort !== undefined) taken.set(props.httpRedirectPort, "httpRedirectPort");
  const names = new Set<string>();
  const upstreams = new Map<string, number>();
  props.mirrors.forEach((m, i) => {
    if (names.has(m.name)) problem(["mirrors", i, "name"], "is listed twice; each mirror needs a unique name");
    names.add(m.name);
    const otherPort = taken.get(m.port);
    if (otherPort !== undefined) problem(["mirrors", i, "port"], `is also ${otherPort}; every mirror needs its own port`);
    else taken.set(m.port, `mirrors[${i}].port`);
    const first = upstreams.get(m.upstream);
    if (first !== undefined) problem(["mirrors", i, "upstream"], `is already mirrored by mirrors[${first}]; clients can use one mirror per upstream`);
    else upstreams.set(m.upstream, i);
    const variable = rules.upstreamPasswordEnvName(m.name);
    if (m.username !== undefined && m.password === undefined)
      problem(["mirrors", i, "password"], `is required with username "${m.username}"; set ${variable} or upstreamPasswords.${m.name} in the secrets file`);
    if (m.username === undefined && m.password !== undefined)
      problem(["mirrors", i, "username"], `is required: a password for the upstream is set (${variable} or the secrets file) but no username`);
    if (m.password !== undefined) {
      const passwordProblem = m.password === "" ? "is empty" : rules.passwordControlCharacterProblem(m.password);
      if (passwordProblem) problem(["mirrors", i, "password"], `${passwordProblem}; set another password in ${variable} or the secrets file`);
    }
  });
}

/**
 * On with the proxy: the registry runs a full bcrypt compare on every request with credentials
 * (distribution#3017), which made an authenticated pull about 4× slower than anonymous at cost 10;
 * with the cache it is on par (docs/benchmarks.md). Users changes flush it (the proxy is replaced).
 */
export const DEFAULT_AUTH_CACHE_SECONDS = 60;

/** Port the registry listens on inside its container. */
export const REGISTRY_LISTEN_PORT = 5000;

type ParsedProps = z.output<typeof registryStackPropsSchema>;

/** Where a docker.io mirror fetches from: Docker Hub's registry API host, not the docker.io name. */
export const DOCKER_HUB_URL = "https://registry-1.docker.io";

/** A mirror with every default applied. */
export interface MirrorSettings extends Omit<z.output<typeof mirror>, "upstreamUrl"> {
  /** @default DOCKER_HUB_URL for docker.io, https://<upstream> otherwise */
  readonly upstreamUrl: string;
}

/** Props with every default applied. */
export interface RegistrySettings
  extends Omit<
    ParsedProps,
    "hostnames" | "ipAddresses" | "volumeName" | "materialDirectory" | "authCacheSeconds" | "projectDirectory" | "ui" | "deleteEnabled" | "mirrors" | "serveBlobsFromStorage" | "k3sRegistriesFile"
  > {
  readonly k3sRegistriesFile: string;
  readonly mirrors: MirrorSettings[];
  readonly projectDirectory: string;
  /** On when set, else on exactly when retention is configured. */
  readonly deleteEnabled: boolean;
  readonly authCacheSeconds: number;
  /** Whether the proxy serves the web UI. */
  readonly ui: boolean;
  readonly serveBlobsFromStorage: boolean;
  readonly hostnames: string[];
  readonly ipAddresses: string[];
  readonly volumeName: string;
  readonly materialDirectory: string;
}

/** Validates props (all problems at once) and applies the documented defaults. */
export function resolveSettings(props: Omit<RegistryStackProps, "entropy">, stackId: string, source?: string): RegistrySettings {
  const result = registryStackPropsSchema.safeParse(props, { reportInput: true });
  if (!result.success) throw new ConfigError(result.error.issues.map(describeIssue), source);
  const parsed = result.data;
  const noAddresses = parsed.hostnames.length === 0 && parsed.ipAddresses.length === 0;
  const projectDirectory = parsed.projectDirectory ?? process.cwd();
  const inProject = (file: string) => path.resolve(projectDirectory, file);
  const authCacheSeconds = parsed.authCacheSeconds ?? (parsed.proxy ? DEFAULT_AUTH_CACHE_SECONDS : 0);
  return {
    ...parsed,
    hostnames: noAddresses ? ["localhost"] : parsed.hostnames,
    ipAddresses: noAddresses ? ["127.0.0.1"] : parsed.ipAddresses,
    volumeName: parsed.volumeName ?? `${parsed.namePrefix}-data`,
    deleteEnabled: parsed.deleteEnabled ?? parsed.retention !== undefined,
    authCacheSeconds,
    ui: parsed.ui ?? parsed.proxy,
    serveBlobsFromStorage: parsed.serveBlobsFromStorage ?? (parsed.proxy && authCacheSeconds > 0),
    tls:
      parsed.tls.mode === "files"
        ? { ...parsed.tls, certificateFile: inProject(parsed.tls.certificateFile), keyFile: inProject(parsed.tls.keyFile), caFile: inProject(parsed.tls.caFile) }
        : parsed.tls,
    clientConfigDirectory: inProject(parsed.clientConfigDirectory),
    k3sRegistriesFile: inProject(parsed.k3sRegistriesFile ?? path.join(parsed.clientConfigDirectory, "k3s", "registries.yaml")),
    // Terraform runs the provider in cdktf.out/stacks/<stack>/, where a relative path would miss.
    dockerCertPath: parsed.dockerCertPath === undefined ? undefined : inProject(parsed.dockerCertPath),
    mirrors: parsed.mirrors.map((m) => ({
      ...m,
      upstreamUrl: (m.upstreamUrl ?? (m.upstream === "docker.io" ? DOCKER_HUB_URL : `https://${m.upstream}`)).replace(/\/$/, ""),
      upstreamCaFile: m.upstreamCaFile === undefined ? undefined : inProject(m.upstreamCaFile),
    })),
    materialDirectory: inProject(parsed.materialDirectory ?? path.join("assets", "generated", stackId)),
    projectDirectory,
  };
}

function valueAt(root: unknown, field: (string | number)[]): unknown {
  return field.reduce<unknown>((node, key) => (node as Record<string | number, unknown> | undefined)?.[key], root);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(/^\./, "") || "(root)";
  const secret = issue.path.includes("password");
  const value = "input" in issue ? issue.input : undefined;
  const input = !secret && (typeof value === "string" || typeof value === "number") ? `${JSON.stringify(value)} ` : "";
  if (issue.code === "unrecognized_keys") return `${field || "(root)"}: unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(", ")}; check the spelling against the configuration reference in README.md`;
  if (issue.code === "invalid_type" && issue.input === undefined) return `${field}: is required`;
  return `${field}: ${input}${issue.message}`;
}
