import { parse } from "yaml";
import { renderCollectorConfig, RegistryConfigInput, renderRegistryConfig } from "../../renderers/registry-config";

const BASE: RegistryConfigInput = {
  httpSecret: "fixture-secret: with 'quotes' & #hash",
  listen: { socketPath: "/run/registry-stack/registry.sock" },
  debugPort: 5001,
  drainTimeoutSeconds: 120,
  htpasswdPath: "/auth/htpasswd",
  realm: "Private Registry",
  deleteEnabled: false,
  logLevel: "info",
  storageRootDirectory: "/var/lib/registry",
};

function renderParsed(overrides: Partial<RegistryConfigInput> = {}) {
  return parse(renderRegistryConfig({ ...BASE, ...overrides }));
}

describe("renderRegistryConfig", () => {
  test("renders the full config behind a proxy with htpasswd auth", () => {
    expect(renderParsed()).toEqual({
      version: 0.1,
      log: { level: "info", fields: { service: "registry" } },
      storage: {
        filesystem: { rootdirectory: "/var/lib/registry" },
        delete: { enabled: false },
        cache: { blobdescriptor: "inmemory" },
        maintenance: { uploadpurging: { enabled: true, age: "168h", interval: "24h", dryrun: false } },
      },
      http: {
        net: "unix",
        addr: "/run/registry-stack/registry.sock",
        secret: "fixture-secret: with 'quotes' & #hash",
        draintimeout: "120s",
        headers: { "X-Content-Type-Options": ["nosniff"] },
        debug: { addr: "127.0.0.1:5001", prometheus: { enabled: true, path: "/metrics" } },
      },
      auth: { htpasswd: { realm: "Private Registry", path: "/auth/htpasswd" } },
      health: { storagedriver: { enabled: true, interval: "10s", threshold: 3 } },
    });
  });

  test("starts with an unquoted version 0.1 like the images' own config", () => {
    expect(renderRegistryConfig(BASE).split("\n")[0]).toBe("version: 0.1");
  });

  test("passes port, log level, storage root and delete flag through", () => {
    const config = renderParsed({
      listen: { port: 5443 },
      logLevel: "debug",
      storageRootDirectory: "/data",
      deleteEnabled: true,
    });
    expect(config.http.addr).toBe(":5443");
    expect(config.http).not.toHaveProperty("net");
    expect(config.log.level).toBe("debug");
    expect(config.storage.filesystem.rootdirectory).toBe("/data");
    expect(config.storage.delete).toEqual({ enabled: true });
  });

  test("uses in-memory storage without a storage root (a credential verifier)", () => {
    const config = renderParsed({ storageRootDirectory: undefined });
    expect(config.storage.inmemory).toEqual({});
    expect(config.storage).not.toHaveProperty("filesystem");
  });

  test("has no auth section without an htpasswd path", () => {
    const config = renderParsed({ htpasswdPath: undefined });
    expect(config).not.toHaveProperty("auth");
    expect(Object.keys(config)).toEqual(["version", "log", "storage", "http", "health"]);
  });

  test("terminates TLS 1.2+ itself when given a certificate", () => {
    const config = renderParsed({ tls: { certificatePath: "/certs/server.crt", keyPath: "/certs/server.key" } });
    expect(config.http.tls).toEqual({
      certificate: "/certs/server.crt",
      key: "/certs/server.key",
      minimumtls: "tls1.2",
    });
  });

  test("has no tls by default", () => {
    expect(renderParsed().http).not.toHaveProperty("tls");
  });

  test("binds the debug server (metrics, health) to the container's loopback only", () => {
    expect(renderParsed({ debugPort: 5099 }).http.debug).toEqual({
      addr: "127.0.0.1:5099",
      prometheus: { enabled: true, path: "/metrics" },
    });
  });

  test("the collector's hold state: a health check failing while the hold file exists, the debug server on every address", () => {
    const config = renderParsed({ listen: { host: "127.0.0.1", port: 5002 }, debugPort: 5001, debugOnAllAddresses: true, writeHoldFile: "/var/lib/x/write-hold" });
    expect(config.http.addr).toBe("127.0.0.1:5002");
    expect(config.http.debug.addr).toBe(":5001");
    expect(config.health).toEqual({ storagedriver: { enabled: true, interval: "10s", threshold: 3 }, file: [{ file: "/var/lib/x/write-hold", interval: "1s" }] });
  });

  test("listens on every address by default and has no file check", () => {
    const config = renderParsed({ listen: { port: 5000 } });
    expect(config.http.addr).toBe(":5000");
    expect(config.health.file).toBeUndefined();
  });

  test("is deterministic", () => {
    expect(renderRegistryConfig(BASE)).toBe(renderRegistryConfig({ ...BASE }));
  });

  test("keeps the in-memory blob-descriptor cache by default and drops it when the collector deletes blobs (distribution#4569)", () => {
    expect(renderParsed().storage.cache).toEqual({ blobdescriptor: "inmemory" });
    expect(renderParsed({ blobDescriptorCache: false }).storage.cache).toBeUndefined();
    expect(renderParsed({ blobDescriptorCache: false }).storage.filesystem).toEqual({ rootdirectory: "/var/lib/registry" });
  });
});

describe("renderCollectorConfig", () => {
  test("gives registry garbage-collect the same filesystem storage and nothing else", () => {
    expect(parse(renderCollectorConfig("/var/lib/registry"))).toEqual({
      version: 0.1,
      log: { level: "warn", fields: { service: "garbage-collect" } },
      storage: { filesystem: { rootdirectory: "/var/lib/registry" } },
    });
  });
});

describe("renderRegistryConfig as a pull-through cache", () => {
  test("adds distribution's proxy section, with the upstream login only when there is one", () => {
    const pullThrough = { remoteUrl: "https://registry-1.docker.io", username: "hub", password: "p: w'#", ttl: "72h" };
    expect(renderParsed({ deleteEnabled: true, pullThrough }).proxy).toEqual({ remoteurl: "https://registry-1.docker.io", username: "hub", password: "p: w'#", ttl: "72h" });
    expect(renderParsed({ deleteEnabled: true, pullThrough: { remoteUrl: "https://ghcr.io", ttl: "168h" } }).proxy).toEqual({ remoteurl: "https://ghcr.io", ttl: "168h" });
    expect(renderParsed()).not.toHaveProperty("proxy");
  });

  test("refuses a cache without delete: its TTL expiry could not delete anything", () => {
    expect(() => renderRegistryConfig({ ...BASE, pullThrough: { remoteUrl: "https://ghcr.io", ttl: "1h" } })).toThrow("needs deleteEnabled");
  });

  test("shares S3-compatible storage (path-style, plain HTTP endpoint) and a Redis cache (redis.addrs), purging off", () => {
    const config = renderParsed({
      storageRootDirectory: undefined,
      s3: { endpoint: "http://s3.internal:7070", bucket: "registry", region: "us-east-1", forcePathStyle: true, accessKey: "AK", secretKey: "SK" },
      redis: { addresses: ["redis.internal:6379"], password: "RP", db: 2 },
      uploadPurging: false,
    });
    expect(config.storage).toEqual({
      s3: { regionendpoint: "http://s3.internal:7070", region: "us-east-1", bucket: "registry", forcepathstyle: true, secure: false, accesskey: "AK", secretkey: "SK" },
      redirect: { disable: true },
      delete: { enabled: false },
      cache: { blobdescriptor: "redis" },
      maintenance: { uploadpurging: { enabled: false, age: "168h", interval: "24h", dryrun: false } },
    });
    expect(config.redis).toEqual({ addrs: ["redis.internal:6379"], password: "RP", db: 2 });
  });

  test("an https endpoint is used with TLS and a root directory is passed on", () => {
    const config = renderParsed({ s3: { endpoint: "https://s3.example.test", bucket: "b", region: "eu-1", forcePathStyle: false, accessKey: "a", secretKey: "s", rootDirectory: "/reg" } });
    expect(config.storage.s3).toMatchObject({ secure: true, forcepathstyle: false, rootdirectory: "/reg" });
    expect(config.redis).toBeUndefined();
  });
});

describe("renderRegistryConfig, read-only (a mirror's offline mode)", () => {
  test("turns on storage.maintenance.readonly and off upload purging, with no proxy section", () => {
    const config = renderParsed({ deleteEnabled: true, readOnly: true });
    expect(config.storage.maintenance).toEqual({ uploadpurging: { enabled: false }, readonly: { enabled: true } });
    expect(config.proxy).toBeUndefined();
    expect(config.http.secret).toBe(BASE.httpSecret);
  });

  test("fails when a pull-through cache is also read-only", () => {
    expect(() => renderRegistryConfig({ ...BASE, deleteEnabled: true, readOnly: true, pullThrough: { remoteUrl: "https://ghcr.io", ttl: "1h" } })).toThrow("cannot be read-only");
  });
});
