import * as path from "path";
import { z } from "zod";
import { ConfigError } from "./config-error";
import * as rules from "./rules";

/** Two: a crash or restart of one instance is hidden by the other (issue 19). */
export const DEFAULT_REGISTRY_INSTANCES = 2;
/** Cores of bcrypt for all the verifier instances together (authVerifierCpus). */
export const DEFAULT_AUTH_VERIFIER_CPUS = 1;

/**
 * Logins the proxy sends to the verifier per minute from all addresses together, at bcrypt cost
 * 10 (loginVerificationsPerMinute): 4 a second, about a quarter of a core of bcrypt at ~64 ms each
 * on the benchmark's machine. Each cost step doubles bcrypt's work, so the default halves with it.
 */
const DEFAULT_LOGIN_VERIFICATIONS_AT_COST_10 = 240;
const MIN_DEFAULT_LOGIN_VERIFICATIONS = 15;

export function defaultLoginVerificationsPerMinute(bcryptCost: number): number {
  return Math.max(MIN_DEFAULT_LOGIN_VERIFICATIONS, Math.round(DEFAULT_LOGIN_VERIFICATIONS_AT_COST_10 * 2 ** (10 - bcryptCost)));
}

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
/** A field's documentation, read by the configuration reference (docs/configuration.md); `defaultText` where the default is computed. */
const doc = <T extends z.ZodType>(schema: T, description: string, defaultText?: string): T =>
  schema.meta(defaultText === undefined ? { description } : { description, defaultText });

/** A list whose length is checked before its entries, so a huge list fails at once. */
function boundedList<T extends z.ZodType>(element: T, max: number): z.ZodType<z.output<T>[], z.input<T>[]> {
  return z
    .array(z.unknown())
    .max(max, { error: (issue) => `has ${(issue.input as unknown[]).length} entries; at most ${max} are supported` })
    .pipe(z.array(element)) as unknown as z.ZodType<z.output<T>[], z.input<T>[]>;
}

const user = z.strictObject({
  name: doc(
    z
      .string()
      .regex(rules.USER_NAME, { error: rules.USER_NAME_HINT })
      .max(rules.MAX_USER_NAME_LENGTH, { error: `must be at most ${rules.MAX_USER_NAME_LENGTH} characters` }),
    "Login name: up to 128 characters without `:`, whitespace or control characters, not starting with `#` (distribution's htpasswd reader skips such lines); unique, with distinct `REGISTRY_PASSWORD_<NAME>` variables.",
  ),
  password: doc(
    z
      .string()
      .superRefine((password, ctx) => {
        const problem = rules.passwordProblem(password);
        if (problem === undefined) return;
        const remedy =
          password === "" ? "supply a password or leave it out to have one generated" : rules.passwordControlCharacterProblem(password) ? "use a password of printable characters" : "use a shorter password";
        ctx.addIssue({ code: "custom", message: `${problem}; ${remedy}` });
      })
      .optional(),
    "Password. Not in the config file: `REGISTRY_PASSWORD_<USER>` or `passwords.<user>` in the secrets file.",
    "a strong password is generated, kept in `<materialDirectory>/generated-passwords.yml`",
  ),
  role: doc(
    z.enum(rules.ROLES, { error: `must be one of ${rules.ROLES.map((r) => `'${r}'`).join(", ")}` }).default(DEFAULT_ROLE),
    "What the user may do, enforced by the proxy: `pull` (GET/HEAD), `push` (also POST/PUT/PATCH), `admin` (also DELETE, when `deleteEnabled`). Needs the proxy's login check.",
  ),
  repositories: doc(
    boundedList(z.string().regex(rules.REPOSITORY_SCOPE, { error: rules.REPOSITORY_SCOPE_HINT }), rules.MAX_REPOSITORY_SCOPES)
      .refine((list) => list.length > 0, { error: "is empty; list the repositories the user may use, or leave it out for all" })
      .optional(),
    "Repositories the user may use: names, or a name followed by `/*` for everything below it (`team-a/*`). The catalog shows the user only these.",
    "all repositories",
  ),
});

export const DEFAULT_MIRROR_TTL = "168h";
export const DEFAULT_MIRROR_BLOB_CACHE_MB = 2048;

const mirror = z.strictObject({
  name: doc(z.string().regex(rules.MIRROR_NAME, { error: rules.MIRROR_NAME_HINT }), "Short name: container `<namePrefix>-mirror-<name>`, volume `<namePrefix>-mirror-<name>-data`."),
  upstream: doc(ruled(rules.upstreamProblem), "The registry as clients name it in image references: `docker.io`, `ghcr.io`, `quay.io`, `registry.k8s.io`, `host:port`."),
  upstreamUrl: doc(
    z
      .string()
      // No user:password@: the URL is in the mirror's entrypoint (plan and state), the credentials belong in username + the secrets.
      .refine((u) => /^https:\/\/[^\s/@]+\/?$/.test(u), { error: "must be an https:// URL without a path or credentials, e.g. https://registry-1.docker.io; an upstream login goes in username and REGISTRY_UPSTREAM_PASSWORD_<NAME>" })
      .optional(),
    "Where the mirror fetches from.",
    "`https://registry-1.docker.io` for docker.io, else `https://<upstream>`",
  ),
  upstreamCaFile: doc(nonEmptyPath.optional(), "CA certificate (PEM) the mirror trusts for the upstream instead of the image's public roots, for a private upstream.", "the registry image's CA bundle"),
  username: doc(
    z.string().min(1, { error: "must not be empty; leave it out for anonymous upstream pulls" }).optional(),
    "Upstream login; its password comes from `REGISTRY_UPSTREAM_PASSWORD_<NAME>` or `upstreamPasswords.<name>` in the secrets file.",
    "anonymous upstream pulls",
  ),
  password: doc(z.string().optional(), "Upstream password. Not in the config file: the variable or the secrets file named under `username`.", "none"),
  port: doc(port, "Host port of this mirror (a server of the proxy with the same TLS certificate)."),
  ttl: doc(ruled(rules.mirrorTtlProblem).default(DEFAULT_MIRROR_TTL), "How long cached content is kept after it was fetched from the upstream (distribution's `proxy.ttl`; pulls served from the cache do not extend it)."),
  blobCacheMb: doc(
    z
      .number()
      .int({ error: "must be a whole number of MiB" })
      .min(rules.MIN_MIRROR_BLOB_CACHE_MB, { error: `must be at least ${rules.MIN_MIRROR_BLOB_CACHE_MB} (MiB); make it larger than the largest layer pulled through the mirror` })
      .max(rules.MAX_MIRROR_BLOB_CACHE_MB, { error: `must be at most ${rules.MAX_MIRROR_BLOB_CACHE_MB} (MiB)` })
      .default(DEFAULT_MIRROR_BLOB_CACHE_MB),
    "Disk (MiB) for the proxy's cache of this mirror's blobs (volume `<namePrefix>-mirror-<name>-blob-cache`): concurrent first pulls of a blob wait for one upstream fetch there. The least recently used blobs go above it, unused ones after `ttl`. Make it larger than the largest layer. Needs the proxy's login check or `anonymousPull`.",
  ),
  maxSizeMb: doc(
    z
      .number({ error: "must be a number of MiB without a unit, e.g. 51200 for 50 GiB" })
      .int({ error: "must be a whole number of MiB" })
      .min(rules.MIN_MIRROR_MAX_SIZE_MB, { error: `must be at least ${rules.MIN_MIRROR_MAX_SIZE_MB} (MiB); make it larger than the largest image pulled through the mirror` })
      .max(rules.MAX_MIRROR_MAX_SIZE_MB, { error: `must be at most ${rules.MAX_MIRROR_MAX_SIZE_MB} (MiB)` })
      .optional(),
    "Size bound (MiB) of this mirror's data volume `<namePrefix>-mirror-<name>-data`: a container `<namePrefix>-mirror-<name>-size-bound` measures it every 30 s and, above the bound, deletes the least recently used blobs until it is at 90% of it, while the mirror keeps serving (a deleted blob is fetched from the upstream again). See docs/mirrors.md.",
    "no bound (`ttl` only)",
  ),
  anonymousPull: doc(z.boolean().default(false), "Pull without credentials (read-only anyway). Needed for Docker's `registry-mirrors`, which sends only Docker Hub credentials."),
  network: doc(
    z.string().regex(rules.DOCKER_OBJECT_NAME, { error: rules.DOCKER_OBJECT_NAME_HINT }).optional(),
    "Existing Docker network the mirror joins to reach the upstream (e.g. a private upstream's network).",
    "the stack's egress network `<namePrefix>-mirror-egress`",
  ),
});

export const tlsSchema = z.discriminatedUnion(
  "mode",
  [
    z.strictObject({
      mode: doc(z.literal("self-signed"), "A CA and a server certificate generated and kept under the material directory."),
      serverValidityDays: doc(z.number().int().min(31).max(825).optional(), "Validity of the server certificate in days; a deploy renews it 30 days before it expires.", "365"),
    }),
    z.strictObject({
      mode: doc(z.literal("files"), "Your own certificate, its key and the CA clients should trust."),
      certificateFile: doc(nonEmptyPath, "PEM certificate (leaf, optionally followed by intermediates)."),
      keyFile: doc(nonEmptyPath, "PEM private key of the certificate."),
      caFile: doc(nonEmptyPath, "PEM CA certificate the clients are given."),
    }),
    z.strictObject({ mode: doc(z.literal("none"), "Plain HTTP. Lab use only: clients must list the registry under `insecure-registries`.") }),
  ],
  { error: "must be one of 'self-signed', 'files', 'none'" },
);

const httpUrl = z.string().refine((u) => /^https?:\/\/[^\s/]+/.test(u), { error: "must be an http:// or https:// URL" });
const required = z.string().min(1, { error: "must not be empty" });
export const stateBackendSchema = z.discriminatedUnion(
  "type",
  [
    z.strictObject({
      type: doc(z.literal("local"), "A state file on this machine."),
      path: doc(absolutePath.optional(), "Absolute path of the state file (absolute, so `rm -rf cdktf.out` loses nothing).", "`terraform.<stack id>.tfstate` in the project folder"),
    }),
    z.strictObject({
      type: doc(z.literal("s3"), "S3 or an S3-compatible store; credentials from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`."),
      bucket: doc(required, "Bucket."),
      key: doc(required, "Object key of the state."),
      region: doc(required, "Region."),
      endpoint: doc(httpUrl.optional(), "S3-compatible endpoint (MinIO, Ceph, …).", "AWS"),
      usePathStyle: doc(z.boolean().optional(), "Path-style addressing, as most S3-compatible stores need.", "false"),
    }),
    z.strictObject({
      type: doc(z.literal("pg"), "PostgreSQL; the connection string from `PG_CONN_STR`."),
      schemaName: doc(required.optional(), "Schema holding the state.", "terraform_remote_state"),
    }),
    z.strictObject({
      type: doc(z.literal("http"), "An HTTP state server; credentials from `TF_HTTP_USERNAME`/`TF_HTTP_PASSWORD`."),
      address: doc(httpUrl, "State URL."),
      lockAddress: doc(httpUrl.optional(), "Lock URL.", "no locking"),
      unlockAddress: doc(httpUrl.optional(), "Unlock URL.", "no locking"),
    }),
  ],
  { error: "must be one of 'local', 's3', 'pg', 'http'" },
);
const pattern = ruled(rules.extendedRegexProblem);
const retentionRule = z.strictObject({
  repositories: doc(pattern, "Repositories the rule applies to (POSIX extended regular expression, anchor it); the first matching rule wins, unmatched repositories are left alone."),
  keepNewest: doc(
    z.number().int().min(0, { error: "must be 0 or more tags" }).max(100000, { error: "must be at most 100000" }).optional(),
    "Keep this many tags, newest first by push time; older ones are deleted unless keepTags matches them. Not in cluster mode (the registry API on S3 gives no push time).",
    "no count limit (with keepTags set, every tag it does not match is deleted)",
  ),
  keepTags: doc(boundedList(pattern, rules.MAX_KEEP_TAG_PATTERNS).default([]), "Tags matching any of these are always kept, e.g. `^v[0-9]+\\.[0-9]+\\.[0-9]+$`, `^latest$`."),
  untaggedDays: doc(
    z.number().int().min(0, { error: "must be 0 (every untagged manifest) or more days" }).max(36500, { error: "must be at most 36500" }).optional(),
    "Delete manifests no tag points to once they were pushed at least this many days ago (0 = all). Children of a kept image index are never deleted. Not in cluster mode (the registry API on S3 lists no untagged manifests).",
    "untagged manifests are kept (except those whose tags this rule deletes)",
  ),
});
const retention = z.strictObject({
  schedule: doc(z.string().regex(rules.DAILY_TIME, { error: rules.DAILY_TIME_HINT }).default("03:00"), "Daily time (UTC, HH:MM) at which the maintenance container (in cluster mode: the collector service) runs retention and the garbage collector."),
  dryRun: doc(z.boolean().default(false), "Scheduled runs only report what they would delete."),
  writeSettleSeconds: doc(
    z.number().int().min(0, { error: "must be 0 or more seconds" }).max(60, { error: "must be at most 60; writes are refused that long" }).default(2),
    "Seconds between refusing writes and starting to delete, so that writes already past the proxy finish. In cluster mode 3 s are added: the proxies learn of the hold by polling the collector each second.",
  ),
  rules: doc(boundedList(retentionRule, rules.MAX_RETENTION_RULES), "Which tags and manifests are deleted; a rule with none of keepNewest, keepTags and untaggedDays keeps everything in its repositories."),
});
const replicas = (what: string) =>
  z
    .number()
    .int({ error: "must be a whole number" })
    .min(1, { error: `must be at least 1 ${what}` })
    .max(rules.MAX_REPLICAS, { error: `must be at most ${rules.MAX_REPLICAS}` });
const clusterSecret = (variable: string) =>
  doc(z.string().min(1, { error: `is empty; set ${variable}` }).optional(), `Not in the config file: \`${variable}\`.`, "none");
const cluster = z.strictObject({
  nodes: doc(
    boundedList(z.string().refine((a) => rules.isDnsName(a) || rules.isIpAddress(a), { error: "is neither a DNS name nor an IP address" }), rules.MAX_CLUSTER_NODES).refine(
      (list) => list.length > 0,
      { error: "is empty; list the address of every Swarm node clients may use (each runs a proxy)" },
    ),
    "Address (IP or DNS name) of every Swarm node clients may use: each node runs a proxy publishing `publicPort`. All go into the server certificate and the client files, with `hostnames` and `ipAddresses`.",
  ),
  registryReplicas: doc(replicas("replica").default(2), "Registry replicas (a replicated Swarm service on the shared S3 storage)."),
  verifierReplicas: doc(replicas("replica").default(2), "Login verifier replicas (they hold the htpasswd file; the proxies ask them and cache the answer)."),
  encryptedNetwork: doc(z.boolean().default(true), "Encrypt the overlay network between the nodes (Swarm's IPsec option `encrypted`)."),
  storage: doc(
    z.strictObject({
      endpoint: doc(httpUrl, "S3-compatible endpoint, `http(s)://host:port` (distribution's `regionendpoint`); reachable from every node."),
      bucket: doc(required, "Bucket holding the images; it must exist."),
      region: doc(required.default("us-east-1"), "Region."),
      forcePathStyle: doc(z.boolean().default(true), "Path-style addressing (`host/bucket/key`), which S3-compatible servers need with registry v3."),
      rootDirectory: doc(z.string().regex(/^\/[^\s]*$/, { error: "must start with / and contain no whitespace" }).optional(), "Prefix of every key the registry writes.", "the bucket's root"),
      accessKey: clusterSecret(rules.S3_ACCESS_KEY_ENV),
      secretKey: clusterSecret(rules.S3_SECRET_KEY_ENV),
    }),
    "Shared object storage of the registry replicas.",
  ),
  redis: doc(
    z.strictObject({
      addresses: doc(
        boundedList(ruled(rules.hostPortProblem), rules.MAX_REDIS_ADDRESSES).refine((list) => list.length > 0, { error: "is empty; list the Redis server as host:port" }),
        "Redis server(s), `host:port` (distribution's `redis.addrs`), reachable from every node.",
      ),
      db: doc(z.number().int().min(0, { error: "must be 0 or more" }).max(15, { error: "must be at most 15" }).default(0), "Redis database number."),
      password: clusterSecret(rules.REDIS_PASSWORD_ENV),
    }),
    "The shared blob-descriptor cache of the registry replicas.",
  ),
});

const memoryMb = z.number().int().min(32, { error: "must be at least 32 (MiB)" }).max(1048576, { error: "must be at most 1048576 (MiB)" });
const loginCheckNeeded = "Needs the proxy's login check (proxy: true and authCacheSeconds above 0).";

/** Schema of the stack's props; the config file has the same shape (without passwords and entropy). */
export const registryStackPropsSchema = z
  .strictObject({
    namePrefix: doc(
      z
        .string()
        .regex(rules.DOCKER_OBJECT_NAME, { error: rules.DOCKER_OBJECT_NAME_HINT })
        .max(rules.MAX_NAME_PREFIX_LENGTH, { error: `must be at most ${rules.MAX_NAME_PREFIX_LENGTH} characters` })
        .default("registry"),
      "Prefix of every Docker object name (containers, networks, volumes).",
    ),
    dockerHost: doc(ruled(rules.dockerHostProblem).default("unix:///var/run/docker.sock"), "Docker Engine to deploy to: `unix://…`, `ssh://user@host` or `tcp://host:2376` (TCP requires `dockerCertPath`)."),
    dockerCertPath: doc(nonEmptyPath.optional(), "Folder with ca.pem, cert.pem and key.pem for a `tcp://` engine with TLS.", "none"),
    dockerSshOptions: doc(boundedList(z.string(), rules.MAX_SSH_OPTIONS).default([]), "Extra ssh options for an `ssh://` engine, e.g. `[\"-o\", \"StrictHostKeyChecking=yes\"]`."),
    registryImage: doc(image.default("registry:3.1.1"), "Registry image, pinned to a tag or digest (`latest` is refused; pin `registry:3.1.1@sha256:…` for immutability). Registry 2.8.x and 3.x images both work."),
    proxyImage: doc(image.default("nginx:1.28.2-alpine"), "Nginx image for the proxy, pinned to a tag or digest."),
    hostnames: doc(
      boundedList(z.string().refine(rules.isDnsName, { error: rules.DNS_NAME_HINT }), rules.MAX_HOSTNAMES).default([]),
      "DNS names clients use to reach the registry; all go into the server certificate.",
      "`[\"localhost\"]` when `ipAddresses` is also empty",
    ),
    ipAddresses: doc(
      boundedList(z.string().refine(rules.isIpAddress, { error: rules.IP_HINT }), rules.MAX_IP_ADDRESSES).default([]),
      "IP addresses clients use to reach the registry; all go into the server certificate.",
      "`[\"127.0.0.1\"]` when `hostnames` is also empty",
    ),
    publicPort: doc(port.default(5000), "Port clients use (`host:port/image`). 443 lets clients omit the port."),
    publishAddress: doc(z.string().refine(rules.isIpAddress, { error: rules.IP_HINT }).default("0.0.0.0"), "Host address the public port is published on."),
    proxy: doc(z.boolean().default(true), "Put Nginx in front (TLS termination, login check, roles, large uploads). With `false` the registry publishes its own port."),
    httpRedirectPort: doc(port.optional(), "Also publish a plain-HTTP port on the proxy that redirects to HTTPS. Needs the proxy and TLS.", "no redirect port"),
    tls: doc(tlsSchema.default({ mode: "self-signed" }), "TLS material: `mode` self-signed, files or none (see the rows below)."),
    users: doc(boundedList(user, rules.MAX_USERS).default(DEFAULT_USERS), "Registry users (htpasswd) and their roles."),
    bcryptCost: doc(
      z
        .number()
        .int()
        .min(rules.MIN_BCRYPT_COST, { error: `must be at least ${rules.MIN_BCRYPT_COST} (10 or more recommended)` })
        .max(rules.MAX_BCRYPT_COST, { error: `must be at most ${rules.MAX_BCRYPT_COST}; every authenticated request pays this cost` })
        .default(10),
      "bcrypt cost of the stored password hashes.",
    ),
    authCacheSeconds: doc(
      z
        .number()
        .int()
        .min(0, { error: "must be 0 (off) or more seconds" })
        .max(3600, { error: "must be at most 3600; a cached login is trusted that long" })
        .optional(),
      "The proxy checks credentials (with a separate verifier holding the htpasswd file) and trusts a successful login this many seconds (0 = off: the registry checks every request's bcrypt hash, ~64 ms at cost 10). Needs the proxy.",
      "60 with the proxy, 0 without",
    ),
    serveBlobsFromStorage: doc(
      z.boolean().optional(),
      "Nginx answers plain blob downloads itself from the data volume mounted read-only, after the same login check and only when the repository links the digest, as the registry would. The registry then does not log or count those downloads; nginx's access log does (`upstream=-`). Needs the proxy and the auth cache.",
      "true with the proxy and the auth cache on one host, else false",
    ),
    deleteEnabled: doc(z.boolean().optional(), "Allow `DELETE` of manifests and blobs. Retention turns it on; `false` together with retention is refused.", "true with retention, false without"),
    ui: doc(z.boolean().optional(), "Serve the web page (browse repositories and tags, copy pull commands, delete tags) at `https://<host:port>/ui/`. Needs the proxy.", "true with the proxy on one host, false without or in cluster mode"),
    anonymousPull: doc(z.boolean().default(false), `Anyone may pull without logging in; pushing still needs a user with push. ${loginCheckNeeded}`),
    volumeName: doc(z.string().regex(rules.DOCKER_OBJECT_NAME, { error: rules.DOCKER_OBJECT_NAME_HINT }).optional(), "Named Docker volume holding the images (`/var/lib/registry`).", "`<namePrefix>-data`"),
    preventVolumeDestroy: doc(z.boolean().default(true), "Keep the data volume when the stack is destroyed (Terraform `prevent_destroy`)."),
    storageHostPath: doc(
      absolutePath
        .superRefine((folder, ctx) => {
          const problem = path.isAbsolute(folder) ? rules.systemFolderProblem(folder) : undefined;
          if (problem !== undefined)
            ctx.addIssue({ code: "custom", input: folder, message: `${problem}: the registry's volume owner would chown everything in it to the registry's user; use a folder of its own, e.g. /srv/registry` });
        })
        .optional(),
      "Store images in this absolute host folder instead of a named volume. Everything in it is made owned by 65532:65532 (the registry's user), so system folders (`/`, `/etc`, `/var/lib/docker`, …, also through a link) are refused, and with a local engine a folder holding anything but a registry store (`docker/registry/v2`) is refused. A missing folder is created.",
      "a named volume",
    ),
    debugPort: doc(port.optional(), "Port of the registry's debug server (/metrics, /debug/health) on the container's loopback only; the healthcheck uses it.", "5001"),
    logLevel: doc(z.enum(["error", "warn", "info", "debug"]).default("info"), "Registry log level."),
    restartPolicy: doc(z.enum(["no", "on-failure", "always", "unless-stopped"]).default("unless-stopped"), "Docker restart policy of the containers."),
    clientConfigDirectory: doc(nonEmptyPath.default("client-config"), "Where the client files (certs.d/…/ca.crt, daemon.json, …) are written. Point it at /etc/docker to configure this host."),
    k3sRegistriesFile: doc(
      nonEmptyPath.optional(),
      "The k3s/RKE2 registries.yaml the stack merges its `mirrors` and `configs` entries into, keeping the file's other entries. A file, not a folder.",
      "`<clientConfigDirectory>/k3s/registries.yaml`",
    ),
    materialDirectory: doc(nonEmptyPath.optional(), "Where generated keys, certificates, secrets and passwords are kept (owner-only, gitignored).", "`assets/generated/<stack id>`"),
    projectDirectory: doc(absolutePath.optional(), "Folder relative paths and the local state file are resolved against.", "the current directory"),
    stateBackend: doc(stateBackendSchema.default({ type: "local" }), "Terraform state location: `type` local, s3, pg or http (see the rows below); credentials only from the environment."),
    stopGraceSeconds: doc(
      z.number().int().min(0, { error: "must be 0 or more seconds" }).max(3600, { error: "must be at most 3600" }).default(120),
      "Seconds a replaced or destroyed container gets to finish transfers in flight before it is killed.",
    ),
    registryInstances: doc(
      z.number().int().min(1, { error: "must be at least 1" }).max(rules.MAX_REGISTRY_INSTANCES, { error: `must be at most ${rules.MAX_REGISTRY_INSTANCES}` }).optional(),
      "Instances of the registry and of the login verifier behind the proxy, each on its own unix socket and sharing the data volume and `http.secret`; nginx retries a request that found an instance gone on another (GET, HEAD and PUT whose body it holds; never POST or PATCH once sent), so one instance crashing or restarting loses no request. 1 turns this off. Needs the proxy.",
      `${DEFAULT_REGISTRY_INSTANCES} with the proxy, 1 without`,
    ),
    registryMemoryMb: doc(memoryMb.default(1024), "Memory limit of the registry container, in MiB."),
    proxyMemoryMb: doc(memoryMb.default(256), "Memory limit of the proxy container, in MiB."),
    authVerifierMemoryMb: doc(memoryMb.default(128), "Memory limit of the login verifier container, in MiB."),
    authVerifierCpus: doc(
      z.number().min(0.1, { error: "must be at least 0.1 (cores)" }).max(256, { error: "must be at most 256 (cores)" }).optional(),
      "Cores the login verifier's instances may use together for bcrypt (Docker's `--cpus`, split between the instances); they also run at an eighth of the default CPU weight. A password-guessing flood from many addresses then cannot take every core for bcrypt; new logins wait behind the flood's (docs/benchmarks.md measures what valid users still see).",
      `${DEFAULT_AUTH_VERIFIER_CPUS} on one host; not available in cluster mode`,
    ),
    failedLoginsPerMinute: doc(
      z.number().int().min(1, { error: "must be at least 1" }).max(6000, { error: "must be at most 6000" }).default(30),
      `Logins the proxy sends to the verifier per minute and budget (wrong passwords, and a credential's first login per authCacheSeconds); more get 429 with Retry-After and no bcrypt work. ${loginCheckNeeded}`,
    ),
    failedLoginsBurst: doc(
      z.number().int().min(0, { error: "must be 0 (no burst: the rate alone) or more" }).max(6000, { error: "must be at most 6000" }).optional(),
      "Logins a budget may spend at once above the rate before the 429s start (nginx `burst`). 0: one login per 60/rate seconds.",
      "failedLoginsPerMinute",
    ),
    loginVerificationsPerMinute: doc(
      z.number().int().min(1, { error: "must be at least 1" }).max(60000, { error: "must be at most 60000" }).optional(),
      `Logins the proxy sends to the verifier per minute from all addresses together (per proxy in cluster mode), besides each budget's failedLoginsPerMinute: a password-guessing flood spread over many addresses then costs at most this much bcrypt. Logins above the rate wait in a queue of up to ${rules.VERIFICATION_QUEUE_SECONDS} seconds' worth, and beyond it get 429 with Retry-After and no bcrypt work; a credential the proxy verified before keeps working meanwhile (its cached answer is used past authCacheSeconds while the limiter refuses to check it again). ${loginCheckNeeded}`,
      `${DEFAULT_LOGIN_VERIFICATIONS_AT_COST_10} at bcryptCost 10, halved for each step above and doubled for each below (at least ${MIN_DEFAULT_LOGIN_VERIFICATIONS})`,
    ),
    failedLoginsScope: doc(
      z.enum(rules.LOGIN_LIMIT_SCOPES, { error: `must be one of ${rules.LOGIN_LIMIT_SCOPES.map((s) => `'${s}'`).join(", ")}` }).default("address"),
      "What one budget covers: `address` (one client address; users behind one NAT share it) or `address-and-user` (one address and configured user name; names nobody configured share one budget per address).",
    ),
    mirrors: doc(boundedList(mirror, rules.MAX_MIRRORS).default([]), "Pull-through caches of other registries, each on its own port behind the same proxy, TLS and users. Pushes to a mirror are refused."),
    retention: doc(retention.optional(), "Tag retention and garbage collection on a schedule. Nothing is ever deleted unless this is set.", "no retention, no garbage collection"),
    cluster: doc(
      cluster.optional(),
      "Deploy to a Docker Swarm instead of one engine (`dockerHost` is a manager): replicated registries on S3-compatible storage with a Redis cache, a proxy on every node. See docs/cluster.md.",
      "one Docker Engine",
    ),
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
      const limiterNeeds = "needs the proxy's login check (proxy: true and authCacheSeconds above 0), which has the login limit; remove it or enable the login check";
      if (props.failedLoginsBurst !== undefined) problem(["failedLoginsBurst"], limiterNeeds);
      if (props.loginVerificationsPerMinute !== undefined) problem(["loginVerificationsPerMinute"], limiterNeeds);
      if (props.failedLoginsScope !== "address") problem(["failedLoginsScope"], limiterNeeds);
    }
    if (props.registryInstances !== undefined && props.registryInstances > 1 && !props.proxy)
      problem(["registryInstances"], "needs proxy: true (the proxy spreads requests over the instances); set it to 1 or enable the proxy");
    if (props.debugPort === REGISTRY_LISTEN_PORT) problem(["debugPort"], "is the registry's own port; pick another");
    mirrorProblems(props, problem);
    if (props.cluster !== undefined) clusterProblems(props, problem);
    if (props.retention !== undefined) {
      if (props.retention.rules.length === 0) problem(["retention", "rules"], "is empty; add a rule (repositories plus keepNewest, keepTags or untaggedDays) or remove retention");
      if (props.deleteEnabled === false)
        problem(["deleteEnabled"], "is false, but retention deletes tags and manifests and turns the delete API on; remove deleteEnabled or retention");
      if (!props.proxy) problem(["retention"], "needs proxy: true: the proxy holds writes while the garbage collector runs; enable the proxy or remove retention");
    }
  });

type Problem = (field: (string | number)[], message: string) => void;

/** What cluster mode does not have (yet), and the secrets it needs. */
function clusterProblems(props: z.output<typeof registryStackPropsSchema>, problem: Problem): void {
  const notInCluster = (field: string, why: string) => problem([field], `is not available in cluster mode: ${why}; remove it or the cluster section`);
  if (!props.proxy) notInCluster("proxy", "the proxy on every node is the cluster's entry point and login check");
  if (props.authCacheSeconds === 0) notInCluster("authCacheSeconds", "0 would have every registry replica hold the htpasswd file; the proxies check logins with the verifier service");
  if (props.mirrors.length > 0) notInCluster("mirrors", "pull-through caches run on one engine only");
  // The collector plans through the registry API on S3: it lists tags, but neither push times nor untagged manifests.
  props.retention?.rules.forEach((rule, i) => {
    const notPlanned = (field: string, why: string) => problem(["retention", "rules", i, field], `is not available in cluster mode: ${why}; use keepTags (docs/cluster.md, Retention)`);
    if (rule.keepNewest !== undefined) notPlanned("keepNewest", "the registry API on S3 gives no push time to order tags by");
    if (rule.untaggedDays !== undefined) notPlanned("untaggedDays", "the registry API on S3 lists no untagged manifests");
  });
  if (props.ui === true) notInCluster("ui", "the web page is served by the single-host proxy only");
  if (props.serveBlobsFromStorage === true) notInCluster("serveBlobsFromStorage", "blobs are in S3, not on a volume the proxy could read");
  if (props.httpRedirectPort !== undefined) notInCluster("httpRedirectPort", "the proxies publish only publicPort");
  if (props.storageHostPath !== undefined) notInCluster("storageHostPath", "the replicas share cluster.storage (S3)");
  if (props.volumeName !== undefined) notInCluster("volumeName", "the replicas share cluster.storage (S3)");
  if (props.authVerifierCpus !== undefined) notInCluster("authVerifierCpus", "Swarm services have no CPU weight to pair the limit with");
  const storage = props.cluster!.storage;
  if (storage.accessKey === undefined) problem(["cluster", "storage", "accessKey"], `is required; set ${rules.S3_ACCESS_KEY_ENV}`);
  if (storage.secretKey === undefined) problem(["cluster", "storage", "secretKey"], `is required; set ${rules.S3_SECRET_KEY_ENV}`);
}

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

/** What the config file and the stack's props hold (passwords included, defaults optional). */
export type RegistryStackConfig = z.input<typeof registryStackPropsSchema>;
export type TlsSource = z.input<typeof tlsSchema>;
export type StateBackend = z.output<typeof stateBackendSchema>;
/** The `cluster` section with every default applied. */
export type ClusterSettings = z.output<typeof cluster>;

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
    "hostnames" | "ipAddresses" | "volumeName" | "materialDirectory" | "authCacheSeconds" | "projectDirectory" | "ui" | "deleteEnabled" | "mirrors" | "serveBlobsFromStorage" | "k3sRegistriesFile" | "registryInstances" | "loginVerificationsPerMinute"
  > {
  /** Logins sent to the verifier per minute from all addresses together. */
  readonly loginVerificationsPerMinute: number;
  /** Registry and verifier instances behind the proxy; 1 without it. */
  readonly registryInstances: number;
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
export function resolveSettings(props: RegistryStackConfig, stackId: string, source?: string): RegistrySettings {
  const result = registryStackPropsSchema.safeParse(props, { reportInput: true });
  if (!result.success) throw new ConfigError(result.error.issues.map(describeIssue), source);
  const parsed = result.data;
  const nodes = parsed.cluster?.nodes ?? [];
  const hostnames = unique([...parsed.hostnames, ...nodes.filter((n) => !rules.isIpAddress(n))]);
  const ipAddresses = unique([...parsed.ipAddresses, ...nodes.filter((n) => rules.isIpAddress(n))]);
  const noAddresses = hostnames.length === 0 && ipAddresses.length === 0;
  const single = parsed.cluster === undefined;
  const projectDirectory = parsed.projectDirectory ?? process.cwd();
  const inProject = (file: string) => path.resolve(projectDirectory, file);
  const authCacheSeconds = parsed.authCacheSeconds ?? (parsed.proxy ? DEFAULT_AUTH_CACHE_SECONDS : 0);
  return {
    ...parsed,
    hostnames: noAddresses ? ["localhost"] : hostnames,
    ipAddresses: noAddresses ? ["127.0.0.1"] : ipAddresses,
    volumeName: parsed.volumeName ?? `${parsed.namePrefix}-data`,
    deleteEnabled: parsed.deleteEnabled ?? parsed.retention !== undefined,
    authCacheSeconds,
    ui: parsed.ui ?? (parsed.proxy && single),
    serveBlobsFromStorage: parsed.serveBlobsFromStorage ?? (parsed.proxy && authCacheSeconds > 0 && single),
    registryInstances: parsed.registryInstances ?? (parsed.proxy ? DEFAULT_REGISTRY_INSTANCES : 1),
    loginVerificationsPerMinute: parsed.loginVerificationsPerMinute ?? defaultLoginVerificationsPerMinute(parsed.bcryptCost),
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

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

function valueAt(root: unknown, field: (string | number)[]): unknown {
  return field.reduce<unknown>((node, key) => (node as Record<string | number, unknown> | undefined)?.[key], root);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(/^\./, "") || "(root)";
  const secret = issue.path.some((p) => p === "password" || p === "accessKey" || p === "secretKey");
  const value = "input" in issue ? issue.input : undefined;
  const input = !secret && (typeof value === "string" || typeof value === "number") ? `${JSON.stringify(value)} ` : "";
  if (issue.code === "unrecognized_keys") return `${field || "(root)"}: unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(", ")}; check the spelling against the configuration reference in docs/configuration.md`;
  if (issue.code === "invalid_type" && issue.input === undefined) return `${field}: is required`;
  return `${field}: ${input}${issue.message}`;
}
