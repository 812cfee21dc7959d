import { stringify } from "yaml";

/** Input for distribution's config.yml; callers validate the values. */
export interface RegistryConfigInput {
  /** Seconds in-flight requests get to finish after SIGTERM (`http.draintimeout`). */
  readonly drainTimeoutSeconds: number;
  /** Signs upload state; must be identical on every replica or uploads break behind a balancer. */
  readonly httpSecret: string;
  /**
   * Where the registry listens: a TCP port inside its container (it terminates TLS itself),
   * or a unix socket that only the proxy can reach (the registry then has no network at all).
   */
  readonly listen: { readonly port: number; /** @default - every address */ readonly host?: string } | { readonly socketPath: string };
  /**
   * Path of the htpasswd file inside the container.
   * @default - no auth section (authentication is left to the proxy)
   */
  readonly htpasswdPath?: string;
  /** Basic-auth realm announced in WWW-Authenticate. */
  readonly realm: string;
  /** Allows DELETE of manifests and blobs (the registry answers 405 otherwise). */
  readonly deleteEnabled: boolean;
  readonly logLevel: "error" | "warn" | "info" | "debug";
  /**
   * Root of the filesystem storage driver, e.g. /var/lib/registry.
   * @default - in-memory storage, for an instance that only verifies credentials
   */
  readonly storageRootDirectory?: string;
  /**
   * Certificate and key paths inside the container when the registry terminates TLS itself.
   * @default - plain HTTP (a proxy terminates TLS)
   */
  readonly tls?: { readonly certificatePath: string; readonly keyPath: string };
  /**
   * Port of the debug server (/metrics, /debug/health) on the container's loopback only:
   * the healthcheck probes it, nothing outside the container can reach it.
   */
  readonly debugPort: number;
  /**
   * Serve the debug server on every address instead: the collector's, whose health other
   * containers poll (see writeHoldFile).
   * @default false
   */
  readonly debugOnAllAddresses?: boolean;
  /**
   * /debug/health answers 503 while this file exists (distribution's `health.file` check, every
   * second): the cluster's write hold, which each node's proxy polls.
   * @default - no file check
   */
  readonly writeHoldFile?: string;
  /**
   * Run as a pull-through cache of this upstream (distribution's proxy mode): pulls of missing
   * content are fetched from `remoteUrl` and kept for `ttl` (a Go duration such as "168h").
   * The scheduler expires content through the storage delete API, so `deleteEnabled` must be
   * true for the TTL to bound anything (registry/storage/linkedblobstore.go refuses otherwise).
   * @default - a registry of its own content
   */
  readonly pullThrough?: { readonly remoteUrl: string; readonly username?: string; readonly password?: string; readonly ttl: string };
  /**
   * distribution's in-memory blob-descriptor cache. Off when something else deletes blobs (the
   * garbage collector): the cache would still answer "exists" for a deleted layer, so a later push
   * skips uploading it and the image is broken (distribution#4569).
   * @default true
   */
  readonly blobDescriptorCache?: boolean;
  /**
   * Serve the storage read-only (`storage.maintenance.readonly`): writes are refused, reads
   * served as usual, no upload purging (it would delete from storage). A mirror's offline mode.
   * @default false
   */
  readonly readOnly?: boolean;
  /**
   * S3-compatible object storage instead of the filesystem, shared by every replica.
   * @default - `storageRootDirectory` (or in-memory storage)
   */
  readonly s3?: S3Storage;
  /**
   * Keep the blob-descriptor cache in Redis, shared by every replica (an in-memory cache per
   * replica would answer for blobs another replica deleted). distribution v3 reads `redis.addrs`;
   * 2.x's `redis.addr` is ignored there and ends in a panic (distribution#4486).
   * @default - the in-memory cache (or none, see blobDescriptorCache)
   */
  readonly redis?: RedisCache;
  /**
   * Purge abandoned uploads (older than a week, once a day). With several replicas on one storage
   * exactly one should do it (distribution#4074).
   * @default true
   */
  readonly uploadPurging?: boolean;
}

export interface S3Storage {
  /** `http(s)://host:port` of an S3-compatible server (`regionendpoint`). */
  readonly endpoint: string;
  readonly bucket: string;
  readonly region: string;
  /** Path-style addressing (`host/bucket/key`); S3-compatible servers need it with v3. */
  readonly forcePathStyle: boolean;
  readonly accessKey: string;
  readonly secretKey: string;
  /** @default - the bucket's root */
  readonly rootDirectory?: string;
}

export interface RedisCache {
  /** `host:port` values. */
  readonly addresses: string[];
  /** @default - no AUTH */
  readonly password?: string;
  readonly db: number;
}

function storageDriver(input: RegistryConfigInput): Record<string, unknown> {
  if (input.s3) {
    const s3 = input.s3;
    return {
      s3: {
        regionendpoint: s3.endpoint,
        region: s3.region,
        bucket: s3.bucket,
        forcepathstyle: s3.forcePathStyle,
        secure: s3.endpoint.startsWith("https://"),
        accesskey: s3.accessKey,
        secretkey: s3.secretKey,
        ...(s3.rootDirectory !== undefined ? { rootdirectory: s3.rootDirectory } : {}),
      },
      // Blob downloads would otherwise answer 307 to a presigned URL of the S3 endpoint, which
      // clients then need to reach (and the proxy's login check would not cover); streamed
      // through the registry instead.
      redirect: { disable: true },
    };
  }
  return input.storageRootDirectory !== undefined ? { filesystem: { rootdirectory: input.storageRootDirectory } } : { inmemory: {} };
}

function blobDescriptorCache(input: RegistryConfigInput): Record<string, unknown> {
  if (input.redis) return { cache: { blobdescriptor: "redis" } };
  return input.blobDescriptorCache === false ? {} : { cache: { blobdescriptor: "inmemory" } };
}

export function renderRegistryConfig(input: RegistryConfigInput): string {
  if (input.pullThrough && input.readOnly) throw new Error("a pull-through cache cannot be read-only: it stores what it fetches");
  if (input.pullThrough && !input.deleteEnabled) throw new Error("a pull-through cache needs deleteEnabled: its TTL expiry deletes through the storage API");
  const listen = "socketPath" in input.listen ? { net: "unix", addr: input.listen.socketPath } : { addr: `${input.listen.host ?? ""}:${input.listen.port}` };
  const http: Record<string, unknown> = {
    ...listen,
    secret: input.httpSecret,
    draintimeout: `${input.drainTimeoutSeconds}s`,
    headers: { "X-Content-Type-Options": ["nosniff"] },
  };
  if (input.tls) {
    http.tls = {
      certificate: input.tls.certificatePath,
      key: input.tls.keyPath,
      minimumtls: "tls1.2",
    };
  }
  http.debug = {
    addr: `${input.debugOnAllAddresses ? "" : "127.0.0.1"}:${input.debugPort}`,
    prometheus: { enabled: true, path: "/metrics" },
  };

  const config: Record<string, unknown> = {
    // Unquoted 0.1 as in the config shipped with the 2.x and 3.x images.
    version: 0.1,
    log: { level: input.logLevel, fields: { service: "registry" } },
    storage: {
      ...storageDriver(input),
      delete: { enabled: input.deleteEnabled },
      ...blobDescriptorCache(input),
      maintenance: input.readOnly
        ? { uploadpurging: { enabled: false }, readonly: { enabled: true } }
        : { uploadpurging: { enabled: input.uploadPurging ?? true, age: "168h", interval: "24h", dryrun: false } },
    },
    http,
  };
  if (input.pullThrough) {
    const { remoteUrl, username, password, ttl } = input.pullThrough;
    config.proxy = { remoteurl: remoteUrl, ...(username !== undefined ? { username, password } : {}), ttl };
  }
  if (input.redis) {
    const { addresses, password, db } = input.redis;
    config.redis = { addrs: addresses, ...(password !== undefined ? { password } : {}), db };
  }
  if (input.htpasswdPath !== undefined) {
    config.auth = { htpasswd: { realm: input.realm, path: input.htpasswdPath } };
  }
  config.health = {
    storagedriver: { enabled: true, interval: "10s", threshold: 3 },
    ...(input.writeHoldFile !== undefined ? { file: [{ file: input.writeHoldFile, interval: "1s" }] } : {}),
  };

  return stringify(config);
}

/**
 * The configuration `registry garbage-collect` reads: only the storage of the serving registry
 * (the collector opens no listener and needs no secret).
 */
export function renderCollectorConfig(storageRootDirectory: string): string {
  return stringify({
    version: 0.1,
    log: { level: "warn", fields: { service: "garbage-collect" } },
    storage: { filesystem: { rootdirectory: storageRootDirectory } },
  });
}
