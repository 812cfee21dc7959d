import { Entropy } from "../material/entropy";

/**
 * Where Terraform keeps the stack's state. Credentials never go here: the s3 backend reads
 * `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, pg reads `PG_CONN_STR`, http reads
 * `TF_HTTP_USERNAME`/`TF_HTTP_PASSWORD` from the environment of `cdktf deploy`.
 */
export type StateBackend =
  | { readonly type: "local"; readonly path?: string }
  | {
      readonly type: "s3";
      readonly bucket: string;
      readonly key: string;
      readonly region: string;
      /** S3-compatible endpoint (MinIO, Ceph, …). @default - AWS */
      readonly endpoint?: string;
      /** Path-style addressing, as most S3-compatible stores need. @default false */
      readonly usePathStyle?: boolean;
    }
  | { readonly type: "pg"; readonly schemaName?: string }
  | { readonly type: "http"; readonly address: string; readonly lockAddress?: string; readonly unlockAddress?: string };

/** Where the TLS material comes from. Build it with the `Tls` factories. */
export type TlsSource =
  | { readonly mode: "self-signed"; readonly serverValidityDays?: number }
  | { readonly mode: "files"; readonly certificateFile: string; readonly keyFile: string; readonly caFile: string }
  | { readonly mode: "none" };

export const Tls = {
  /** A CA and a server certificate generated and kept under the material directory. */
  selfSigned: (options: { serverValidityDays?: number } = {}): TlsSource => ({ mode: "self-signed", ...options }),
  /** Your own certificate (leaf, optionally followed by intermediates), its key and the CA clients should trust. */
  fromFiles: (files: { certificateFile: string; keyFile: string; caFile: string }): TlsSource => ({ mode: "files", ...files }),
  /** Plain HTTP. Lab use only: clients must list the registry under `insecure-registries`. */
  none: (): TlsSource => ({ mode: "none" }),
};

export interface RegistryUserProps {
  /** Login name; no `:` and no whitespace. */
  readonly name: string;
  /**
   * Password; never put it in a committed config file.
   * @default - a strong password is generated, kept in `<materialDirectory>/generated-passwords.yml`
   */
  readonly password?: string;
  /**
   * What the user may do, enforced by the proxy: `pull` (GET/HEAD), `push` (also POST/PUT/PATCH),
   * `admin` (also DELETE, when `deleteEnabled`). Needs the proxy's login check.
   * @default "push"
   */
  readonly role?: "pull" | "push" | "admin";
  /**
   * Repositories the user may use: names, or a name followed by `/*` for everything below it
   * (`team-a/*`). The catalog shows the user only these.
   * @default - all repositories
   */
  readonly repositories?: string[];
}

/** A pull-through cache of one upstream registry, served by the proxy on its own port. */
export interface RegistryMirrorProps {
  /** Short name: container `<namePrefix>-mirror-<name>`, volume `<namePrefix>-mirror-<name>-data`. */
  readonly name: string;
  /** The registry as clients name it in image references: `docker.io`, `ghcr.io`, `quay.io`, `registry.k8s.io`, `host:port`. */
  readonly upstream: string;
  /**
   * Where the mirror fetches from.
   * @default "https://registry-1.docker.io" for docker.io, else "https://<upstream>"
   */
  readonly upstreamUrl?: string;
  /**
   * CA certificate (PEM) the mirror trusts for the upstream instead of the image's public roots, for a private upstream.
   * @default - the registry image's CA bundle
   */
  readonly upstreamCaFile?: string;
  /**
   * Upstream login; its password comes from `REGISTRY_UPSTREAM_PASSWORD_<NAME>` or `upstreamPasswords.<name>` in the secrets file.
   * @default - anonymous upstream pulls
   */
  readonly username?: string;
  /** Upstream password; never put it in a committed config file. @default - none */
  readonly password?: string;
  /** Host port of this mirror (a server of the proxy with the same TLS certificate). */
  readonly port: number;
  /**
   * How long cached content is kept after it was fetched from the upstream (distribution's `proxy.ttl`; pulls served from the cache do not extend it).
   * @default "168h"
   */
  readonly ttl?: string;
  /**
   * Disk (MiB) for the proxy's cache of this mirror's blobs, volume `<namePrefix>-mirror-<name>-blob-cache`: concurrent
   * first pulls of a blob wait for one upstream fetch there. The least recently used blobs go above it; unused ones
   * after `ttl`. Make it larger than the largest layer. Only with the proxy's login check (authCacheSeconds above 0)
   * or `anonymousPull`.
   * @default 2048
   */
  readonly blobCacheMb?: number;
  /**
   * Pull without credentials (read-only anyway). Needed for Docker's `registry-mirrors`, which sends only Docker Hub credentials.
   * @default false - the stack's users log in as for the private registry
   */
  readonly anonymousPull?: boolean;
  /**
   * Existing Docker network the mirror joins to reach the upstream (e.g. a private upstream's network).
   * @default - the stack's egress network `<namePrefix>-mirror-egress`
   */
  readonly network?: string;
}

/**
 * Which tags and manifests of the repositories a rule matches are deleted. Patterns are POSIX
 * extended regular expressions (`grep -E`): anchor them (`^v[0-9]+$`). A rule with none of
 * keepNewest, keepTags and untaggedDays keeps everything in its repositories.
 */
export interface RetentionRuleProps {
  /** Repositories the rule applies to; the first matching rule wins, unmatched repositories are left alone. */
  readonly repositories: string;
  /**
   * Keep this many tags, newest first by push time; older ones are deleted unless keepTags matches them.
   * @default - no count limit (with keepTags set, every tag it does not match is deleted)
   */
  readonly keepNewest?: number;
  /**
   * Tags matching any of these are always kept, e.g. ["^v[0-9]+\\.[0-9]+\\.[0-9]+$", "^latest$"].
   * @default []
   */
  readonly keepTags?: string[];
  /**
   * Delete manifests no tag points to once they were pushed at least this many days ago (0 = all).
   * Children of a kept image index are never deleted.
   * @default - untagged manifests are kept (except those whose tags this rule deletes)
   */
  readonly untaggedDays?: number;
}

export interface RetentionProps {
  /**
   * Daily time (UTC, HH:MM) at which the maintenance container runs retention and the garbage collector.
   * @default "03:00"
   */
  readonly schedule?: string;
  /**
   * Scheduled runs only report what they would delete.
   * @default false
   */
  readonly dryRun?: boolean;
  /**
   * Seconds between refusing writes and starting to delete, so that writes already past the proxy finish.
   * @default 2
   */
  readonly writeSettleSeconds?: number;
  readonly rules: RetentionRuleProps[];
}

export interface RegistryStackProps {
  /**
   * Prefix of every Docker object name (containers, networks, volume).
   * @default "registry"
   */
  readonly namePrefix?: string;
  /**
   * Docker Engine to deploy to: `unix://…`, `ssh://user@host` or `tcp://host:2376` (TCP requires `dockerCertPath`).
   * @default "unix:///var/run/docker.sock"
   */
  readonly dockerHost?: string;
  /**
   * Folder with ca.pem, cert.pem and key.pem for a `tcp://` engine with TLS.
   * @default - none
   */
  readonly dockerCertPath?: string;
  /**
   * Extra ssh options for an `ssh://` engine, e.g. ["-o", "StrictHostKeyChecking=yes"].
   * @default []
   */
  readonly dockerSshOptions?: string[];
  /**
   * Registry image, pinned to a tag or digest. Registry 2.8.x and 3.x images both work.
   * @default "registry:3.1.1"
   */
  readonly registryImage?: string;
  /**
   * Nginx image for the proxy, pinned to a tag or digest.
   * @default "nginx:1.28.2-alpine"
   */
  readonly proxyImage?: string;
  /**
   * DNS names clients use to reach the registry; all go into the server certificate.
   * @default ["localhost"] (when `ipAddresses` is also empty)
   */
  readonly hostnames?: string[];
  /**
   * IP addresses clients use to reach the registry; all go into the server certificate.
   * @default ["127.0.0.1"] (when `hostnames` is also empty)
   */
  readonly ipAddresses?: string[];
  /**
   * Port clients use (`host:port/image`). 443 lets clients omit the port.
   * @default 5000
   */
  readonly publicPort?: number;
  /**
   * Host address the public port is published on.
   * @default "0.0.0.0"
   */
  readonly publishAddress?: string;
  /**
   * Put Nginx in front (TLS termination, large-upload settings). With `false` the registry publishes its own port.
   * @default true
   */
  readonly proxy?: boolean;
  /**
   * Also publish a plain-HTTP port on the proxy that redirects to HTTPS. Needs the proxy and TLS.
   * @default - no redirect port
   */
  readonly httpRedirectPort?: number;
  /**
   * TLS material.
   * @default Tls.selfSigned()
   */
  readonly tls?: TlsSource;
  /**
   * Registry users (htpasswd) and their roles.
   * @default [{ name: "admin", role: "admin" }] (password generated)
   */
  readonly users?: RegistryUserProps[];
  /**
   * bcrypt cost of the stored password hashes.
   * @default 10
   */
  readonly bcryptCost?: number;
  /**
   * Let the proxy check credentials and trust a successful login for this many seconds
   * (0 = off). The registry checks every request's bcrypt hash otherwise (~64 ms at cost 10).
   * With it on, a separate verifier registry holds the htpasswd file, the data registry runs
   * without auth on the internal network, and a deploy that changes users flushes the cache.
   * Needs the proxy. See docs/benchmarks.md.
   * @default 60 with the proxy, 0 without
   */
  readonly authCacheSeconds?: number;
  /**
   * Nginx answers plain blob downloads (GET/HEAD without Range or conditional headers) itself,
   * from the data volume or `storageHostPath` mounted read-only into the proxy, after the same
   * login check — and only when the repository's link file for the digest exists, exactly as the
   * registry would. Everything else still goes to the registry. Trade-offs: the proxy container can
   * read every repository's blobs, and the registry no longer sees (logs, counts in its metrics,
   * notifies about) those downloads; nginx's access log does (`upstream=-`). Needs the proxy and the
   * auth cache. Files are read in 2 × 128k pieces (256 KiB per download in flight), chosen with
   * `npm run bench -- --explore=tls`. See docs/benchmarks.md and docs/benchmarks-explore.md.
   * @default true with the proxy and the auth cache, else false
   */
  readonly serveBlobsFromStorage?: boolean;
  /**
   * Allow `DELETE` of manifests and blobs. Retention turns it on; `false` together with retention is refused.
   * @default - true with retention, false without
   */
  readonly deleteEnabled?: boolean;
  /**
   * Serve the web UI (browse repositories and tags, copy pull commands, delete tags) at
   * `https://<host:port>/ui/`, with `/` redirecting there. Needs the proxy.
   * @default true with the proxy, false without
   */
  readonly ui?: boolean;
  /**
   * Anyone may pull without logging in (pushing still needs a user with push). The proxy then
   * challenges clients with a token realm of its own so that `docker pull` works logged out
   * and `docker login` + push still works. Needs the proxy's login check.
   * @default false
   */
  readonly anonymousPull?: boolean;
  /**
   * Named Docker volume holding the images (`/var/lib/registry`).
   * @default "<namePrefix>-data"
   */
  readonly volumeName?: string;
  /**
   * Keep the data volume when the stack is destroyed (Terraform `prevent_destroy`).
   * @default true
   */
  readonly preventVolumeDestroy?: boolean;
  /**
   * Store images in this absolute host folder instead of a named volume.
   * @default - a named volume
   */
  readonly storageHostPath?: string;
  /**
   * Serve /metrics and /debug on this container port (never published; reach it from the backend network).
   * @default - debug server off
   */
  readonly debugPort?: number;
  /**
   * Registry log level.
   * @default "info"
   */
  readonly logLevel?: "error" | "warn" | "info" | "debug";
  /**
   * Docker restart policy of both containers.
   * @default "unless-stopped"
   */
  readonly restartPolicy?: "no" | "on-failure" | "always" | "unless-stopped";
  /**
   * Where the client files (certs.d/…/ca.crt, daemon.json) are written. Point it at /etc/docker to configure this host.
   * @default "client-config"
   */
  readonly clientConfigDirectory?: string;
  /**
   * The k3s/RKE2 registries.yaml the stack merges its `mirrors` and `configs` entries into (with TLS), keeping the file's other entries.
   * @default "<clientConfigDirectory>/k3s/registries.yaml"
   */
  readonly k3sRegistriesFile?: string;
  /**
   * Where generated keys, certificates, secrets and passwords are kept (owner-only, gitignored).
   * @default "assets/generated/<stack id>"
   */
  readonly materialDirectory?: string;
  /**
   * Terraform state location.
   * @default { type: "local" }: `terraform.<stack id>.tfstate` in the project folder (absolute path)
   */
  readonly stateBackend?: StateBackend;
  /**
   * Folder relative paths and the local state file are resolved against.
   * @default - the current directory (cdktf runs the app in the project folder)
   */
  readonly projectDirectory?: string;
  /**
   * Seconds a container gets to finish in-flight pushes and pulls when it is replaced or
   * destroyed (nginx gets SIGQUIT, its graceful stop) before it is killed.
   * @default 120
   */
  readonly stopGraceSeconds?: number;
  /**
   * Memory limit of the registry container, in MiB.
   * @default 1024
   */
  readonly registryMemoryMb?: number;
  /**
   * Memory limit of the proxy container, in MiB.
   * @default 256
   */
  readonly proxyMemoryMb?: number;
  /**
   * Memory limit of the login verifier container, in MiB.
   * @default 128
   */
  readonly authVerifierMemoryMb?: number;
  /**
   * Logins the proxy sends to the verifier per minute and budget (see `failedLoginsScope`): wrong
   * user or password, and a credential's first login per `authCacheSeconds`; more get 429 with
   * Retry-After and no bcrypt work. Bounds online guessing and bcrypt CPU load. Needs the
   * proxy's login check (there is no limiter without it).
   * @default 30
   */
  readonly failedLoginsPerMinute?: number;
  /**
   * Logins a budget may spend at once above the rate before the 429s start (nginx `burst`),
   * refilled at `failedLoginsPerMinute`. 0: no burst, one login per 60/rate seconds.
   * @default - failedLoginsPerMinute
   */
  readonly failedLoginsBurst?: number;
  /**
   * What one budget covers. "address": one client address (users behind one NAT address share
   * it, and one of them typing a wrong password in a loop locks out the others for a minute).
   * "address-and-user": one client address and configured user name (names nobody configured
   * share one budget per address); one address may then try `failedLoginsPerMinute` passwords
   * per minute for every user.
   * @default "address"
   */
  readonly failedLoginsScope?: "address" | "address-and-user";
  /**
   * Pull-through caches of public (or private) registries; each gets its own registry container,
   * volume and port, behind the same proxy, TLS and users. Pushes to a mirror are refused.
   * @default []
   */
  readonly mirrors?: RegistryMirrorProps[];
  /**
   * Tag retention and garbage collection on a schedule, by a maintenance container on the same
   * engine. Nothing is ever deleted unless this is set.
   * @default - no retention, no garbage collection
   */
  readonly retention?: RetentionProps;
  /**
   * Randomness and clock. Tests inject fixed material.
   * @default - the system's CSPRNG, Node's RSA key generation and clock
   */
  readonly entropy?: Entropy;
}
