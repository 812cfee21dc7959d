import { DEFAULT_PROXY_TUNING, NginxConfInput, renderNginxConf } from "../../../renderers/nginx/nginx-conf";
import { Directive, all, blockOf, one, parseNginxConf, value } from "../nginx-conf-parser";
import { AUTH_CACHE, input, headers, WITH_AUTH_CACHE } from "./fixtures";

describe("renderNginxConf with mirrors", () => {
  const mirror = (name: string, listenPort: number, anonymousPull: boolean) => ({
    name,
    listenPort,
    upstream: { socketPath: `/run/registry-stack/mirror-${name}.sock` },
    mirrorOf: name === "hub" ? "docker.io" : "ghcr.io",
    pushTo: "store.example.test:5000",
    anonymousPull,
  });
  const conf = renderNginxConf({
    ...WITH_AUTH_CACHE,
    mirrors: [mirror("hub", 8500, true), mirror("ghcr", 8501, false)],
  });
  const http = blockOf(parseNginxConf(conf), "http");
  const serverOn = (port: number) => all(http, "server").find((d) => d.block && value(d.block, "listen") === `${port} ssl`)!.block!;
  const exactLocation = (server: Directive[], uri: string) => all(server, "location").find((d) => d.args.join(" ") === `= ${uri}`)?.block;

  test("serves each mirror from its own upstream socket on its own TLS port with the same names and certificate", () => {
    for (const [name, port] of [["hub", 8500], ["ghcr", 8501]] as const) {
      expect(one(http, "upstream", `mirror-${name}`).block).toEqual([
        { name: "server", args: [`unix:/run/registry-stack/mirror-${name}.sock`] },
        { name: "keepalive", args: ["32"] },
      ]);
      const server = serverOn(port);
      expect(value(server, "server_name")).toBe("store.example.test");
      expect(value(server, "ssl_certificate")).toBe("/c.crt");
      expect(value(blockOf(server, "location", "/v2/"), "proxy_pass")).toBe(`http://mirror-${name}`);
    }
    expect(value(blockOf(serverOn(8443), "location", "/v2/"), "proxy_pass")).toBe("http://docker-registry");
  });

  test("refuses everything but GET and HEAD on a mirror with 405 and a registry error saying where to push, before auth", () => {
    const v2 = blockOf(serverOn(8501), "location", "/v2/");
    const ifs = all(v2, "if");
    const readOnly = ifs.find((d) => d.args[0] === "($request_method")!;
    expect(readOnly.args).toEqual(["($request_method", "!~", "^(GET|HEAD)$)"]);
    expect(readOnly.block).toEqual([{ name: "rewrite", args: ["^", "/_registry_read_only", "last"] }]);
    expect(ifs.indexOf(readOnly)).toBeLessThan(ifs.findIndex((d) => d.args[0] === "($http_authorization"));
    const refusal = exactLocation(serverOn(8501), "/_registry_read_only")!;
    const [status, body] = one(refusal, "return").args;
    expect(status).toBe("405");
    expect(JSON.parse(body)).toEqual({
      errors: [{ code: "UNSUPPORTED", message: "this is a read-only pull-through cache of ghcr.io; push to the private registry store.example.test:5000 instead", detail: null }],
    });
    expect(exactLocation(serverOn(8443), "/_registry_read_only")).toBeUndefined();
  });

  test("asks the same verifier for a mirror with users, and nobody for an anonymous one", () => {
    expect(value(blockOf(serverOn(8501), "location", "/v2/"), "auth_request")).toBe("/_registry_auth");
    expect(exactLocation(serverOn(8501), "/_registry_auth")).toBeDefined();
    const anonymous = blockOf(serverOn(8500), "location", "/v2/");
    expect(all(anonymous, "auth_request")).toEqual([]);
    expect(exactLocation(serverOn(8500), "/_registry_auth")).toBeUndefined();
  });
});

describe("renderNginxConf with a mirror blob cache", () => {
  const authCache = AUTH_CACHE;
  const cached = (name: string, listenPort: number, anonymousPull: boolean) => ({
    name,
    listenPort,
    upstream: { socketPath: `/run/registry-stack/mirror-${name}.sock` },
    mirrorOf: "docker.io",
    pushTo: "store.example.test:5000",
    anonymousPull,
    blobCache: { directory: `/var/cache/registry-stack/mirror-${name}`, maxSizeMb: 2048, validSeconds: 86400 },
  });
  const parse = (overrides: Partial<NginxConfInput>) => blockOf(parseNginxConf(renderNginxConf(input({ serverNames: ["store.example.test"], ...overrides }))), "http");
  const http = parse({ authCache, mirrors: [cached("hub", 8500, true), cached("my-ghcr", 8501, false)] });
  const serverOn = (port: number) => all(http, "server").find((d) => d.block && value(d.block, "listen") === `${port} ssl`)!.block!;
  const blobOf = (server: Directive[]) => all(server, "location").find((d) => d.args[0] === "~")?.block;
  /** What a map gives for a source value (its regex entries run as JavaScript). */
  const mapped = (variable: string, source: string): string | undefined => {
    const map = all(http, "map").find((d) => d.args[1] === variable)!;
    for (const entry of map.block!) {
      if (entry.name === "default") continue;
      if (entry.name.startsWith("~") ? new RegExp(entry.name.slice(1)).test(source) : entry.name === source) return entry.args[0];
    }
    return map.block!.find((e) => e.name === "default")?.args[0];
  };

  test("keeps each mirror's blobs in a zone of its own on its volume, bounded in size and time, temp files beside them", () => {
    expect(all(http, "proxy_cache_path").map((d) => d.args.join(" ")).filter((a) => a.includes("mirror"))).toEqual([
      "/var/cache/registry-stack/mirror-hub levels=1:2 keys_zone=registry_mirror_hub:2m max_size=2048m inactive=86400s use_temp_path=off",
      "/var/cache/registry-stack/mirror-my-ghcr levels=1:2 keys_zone=registry_mirror_my_ghcr:2m max_size=2048m inactive=86400s use_temp_path=off",
    ]);
  });

  test("caches plain GETs of a digest only: HEAD, ranges, conditional requests and URLs the digest map does not read pass", () => {
    const source = all(http, "map").find((d) => d.args[1] === "$registry_mirror_blob_get")!.args[0];
    expect(source).toBe("$request_method$http_range$http_if_match$http_if_none_match$http_if_modified_since$http_if_unmodified_since$http_if_range:$registry_blob_digest");
    const digest = `sha256:${"ab".repeat(32)}`;
    expect(mapped("$registry_mirror_blob_get", `GET:${digest}`)).toBe("1");
    for (const other of [`HEAD:${digest}`, `GETbytes=0-9:${digest}`, `GET"x":${digest}`, "GET:"]) expect([other, mapped("$registry_mirror_blob_get", other)]).toEqual([other, ""]);
    expect(mapped("$registry_mirror_hub", "1")).toBe("registry_mirror_hub");
    expect(mapped("$registry_mirror_hub", "")).toBe("off");
  });

  test("checks the login exactly like the mirror's /v2/ before the cache is looked at", () => {
    for (const port of [8500, 8501]) {
      const v2 = blockOf(serverOn(port), "location", "/v2/");
      const blob = blobOf(serverOn(port))!;
      const key = (d: Directive) => JSON.stringify(d);
      const isCaching = (d: Directive) => d.name.startsWith("proxy_cache") || d.name === "proxy_ignore_headers";
      expect(blob.filter((d) => !isCaching(d)).map(key)).toEqual(v2.map(key));
    }
    expect(value(blobOf(serverOn(8501))!, "auth_request")).toBe("/_registry_auth");
    expect(headers(blobOf(serverOn(8501))!)["Authorization"]).toBe("");
  });

  test("locks a blob for one fetch, long enough for large layers, caches only 200s for the ttl, serves the cached copy while it is refreshed", () => {
    const blob = blobOf(serverOn(8500))!;
    expect(value(blob, "proxy_cache")).toBe("$registry_mirror_hub");
    expect(value(blob, "proxy_cache_key")).toBe("$registry_blob_digest");
    expect(all(blob, "proxy_cache_valid").map((d) => d.args)).toEqual([["200", "86400s"]]);
    expect(value(blob, "proxy_ignore_headers")).toBe("Cache-Control Expires Set-Cookie Vary X-Accel-Expires");
    expect(value(blob, "proxy_cache_lock")).toBe("on");
    for (const name of ["proxy_cache_lock_timeout", "proxy_cache_lock_age"]) expect(parseInt(value(blob, name)!, 10)).toBeGreaterThanOrEqual(DEFAULT_PROXY_TUNING.readTimeoutSeconds);
    expect(value(blob, "proxy_cache_use_stale")).toBe("updating");
    expect(value(blob, "proxy_buffering")).toBe("on");
  });

  test("buffers cached downloads even when the tuning turns response buffering off", () => {
    const unbuffered = parse({ authCache, tuning: { ...DEFAULT_PROXY_TUNING, responseBuffering: false }, mirrors: [cached("hub", 8500, true)] });
    const server = all(unbuffered, "server").find((d) => d.block && value(d.block, "listen") === "8500 ssl")!.block!;
    expect(all(blobOf(server)!, "proxy_buffering").map((d) => d.args)).toEqual([["on"]]);
    expect(value(blockOf(server, "location", "/v2/"), "proxy_buffering")).toBe("off");
  });

  test("fails for a mirror with users when the registry, not nginx, checks the logins", () => {
    expect(() => renderNginxConf(input({ mirrors: [cached("ghcr", 8501, false)] }))).toThrow("mirror ghcr: a blob cache needs nginx to check the logins");
    expect(() => renderNginxConf(input({ mirrors: [cached("hub", 8500, true)] }))).not.toThrow();
  });

  test("adds no cache, zone or map for a mirror without it", () => {
    const { blobCache: _none, ...plain } = cached("hub", 8500, true);
    const text = renderNginxConf(input({ authCache, mirrors: [plain] }));
    expect(text).not.toMatch(/proxy_cache \$|registry_mirror|blob_digest/);
  });
});

describe("renderNginxConf with a supervised mirror's mode files", () => {
  const modeFiles = { statusPath: "/run/registry-stack/mirror-hub-0123456789.sock.status", offlineFlagPath: "/run/registry-stack/mirror-hub-0123456789.sock.offline-flag" };
  const conf = renderNginxConf({
    ...WITH_AUTH_CACHE,
    mirrors: [
      { name: "hub", listenPort: 8500, upstream: { socketPath: "/run/registry-stack/mirror-hub-0123456789.sock" }, mirrorOf: "docker.io", pushTo: "store.example.test:5000", anonymousPull: true, modeFiles },
      { name: "ghcr", listenPort: 8501, upstream: { socketPath: "/run/registry-stack/mirror-ghcr.sock" }, mirrorOf: "ghcr.io", pushTo: "store.example.test:5000", anonymousPull: true },
      { name: "quay", listenPort: 8502, upstream: { socketPath: "/run/registry-stack/mirror-quay.sock" }, mirrorOf: "quay.io", pushTo: "store.example.test:5000", anonymousPull: false, modeFiles },
    ],
  });
  const http = blockOf(parseNginxConf(conf), "http");
  const serverOn = (port: number) => all(http, "server").find((d) => d.block && value(d.block, "listen") === `${port} ssl`)!.block!;
  const locationOf = (server: Directive[], ...args: string[]) => all(server, "location").find((d) => d.args.join(" ") === args.join(" "))?.block;

  test("serves the mirror's status file anonymously at /registry-stack/mirror-status, uncached", () => {
    const status = locationOf(serverOn(8500), "=", "/registry-stack/mirror-status")!;
    expect(value(status, "alias")).toBe(modeFiles.statusPath);
    expect(value(status, "default_type")).toBe("application/json");
    expect(all(status, "auth_request")).toEqual([]);
    expect(all(status, "add_header").map((d) => d.args)).toEqual([["Cache-Control", "no-store", "always"]]);
    expect(locationOf(serverOn(8501), "=", "/registry-stack/mirror-status")).toBeUndefined();
  });

  test("manifest requests of an anonymous mirror: the same checks and upstream as /v2/, a 404 said to be offline only while the flag file exists", () => {
    const server = serverOn(8500);
    const manifests = locationOf(server, "~", "^/v2/.+/manifests/[^/]+$")!;
    const v2 = blockOf(server, "location", "/v2/");
    expect(value(manifests, "proxy_pass")).toBe("http://mirror-hub");
    expect(all(manifests, "if").map((d) => d.args)).toEqual(all(v2, "if").map((d) => d.args));
    expect(value(manifests, "proxy_intercept_errors")).toBe("on");
    expect(one(manifests, "error_page").args).toEqual(["404", "=", "@mirror_hub_not_cached"]);
    const notCached = locationOf(server, "@mirror_hub_not_cached")!;
    const offline = one(notCached, "if");
    expect(offline.args).toEqual(["(-f", `${modeFiles.offlineFlagPath})`]);
    const [offlineStatus, offlineBody] = one(offline.block!, "return").args;
    expect(offlineStatus).toBe("404");
    expect(JSON.parse(offlineBody)).toEqual({
      errors: [{ code: "MANIFEST_UNKNOWN", message: "not cached by this mirror, and its upstream docker.io is unreachable (see /registry-stack/mirror-status)", detail: null }],
    });
    const [status, body] = all(notCached, "return")[0].args;
    expect(status).toBe("404");
    expect(JSON.parse(body).errors[0]).toEqual({ code: "MANIFEST_UNKNOWN", message: "manifest unknown", detail: null });
    expect(locationOf(serverOn(8501), "~", "^/v2/.+/manifests/[^/]+$")).toBeUndefined();
  });

  test("a mirror whose logins nginx checks keeps distribution's 404 (the login check's error pages would take the mirror's 500s)", () => {
    expect(locationOf(serverOn(8502), "~", "^/v2/.+/manifests/[^/]+$")).toBeUndefined();
    expect(locationOf(serverOn(8502), "=", "/registry-stack/mirror-status")).toBeDefined();
  });
});
