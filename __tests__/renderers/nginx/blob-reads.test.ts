import { DEFAULT_PROXY_TUNING, renderNginxConf } from "../../../renderers/nginx/nginx-conf";
import { Directive, all, blockOf, parseNginxConf, value } from "../nginx-conf-parser";
import { AUTH_CACHE, headers } from "./fixtures";

describe("renderNginxConf with blob reads from storage", () => {
  const authCache = AUTH_CACHE;
  const conf = renderNginxConf({
    serverNames: ["store.example.test"],
    listenPort: 8443,
    upstream: { socketPath: "/run/registry-stack/registry.sock" },
    tls: { certificatePath: "/c.crt", keyPath: "/c.key" },
    authCache,
    blobReads: { storageRoot: "/var/lib/registry" },
    writeHold: { flagFile: "/run/registry-stack-maintenance/write-hold", retryAfterSeconds: 10 },
    tuning: DEFAULT_PROXY_TUNING,
  });
  const parsed = parseNginxConf(conf);
  const http = blockOf(parsed, "http");
  const server = all(http, "server").filter((d) => d.block)[0].block!;
  const blobLocation = all(server, "location").find((d) => d.args[0] === "~")!;
  const blob = blobLocation.block!;
  const fallback = blockOf(server, "location", "@registry_blob");
  const v2 = blockOf(server, "location", "/v2/");
  const hex = "0123456789abcdef".repeat(4);
  /** The map's regex, run as JavaScript (the pattern uses nothing where PCRE and JS differ). */
  const mapped = (variable: string, uri: string): string | undefined => {
    const map = all(http, "map").find((d) => d.args[1] === variable)!;
    for (const entry of map.block!) {
      if (!entry.name.startsWith("~")) continue;
      const m = new RegExp(entry.name.slice(1)).exec(uri);
      if (m) return entry.args[0].replace(/\$(\d)/g, (_, n: string) => m[Number(n)]);
    }
    return undefined;
  };

  test("names the link file and the data file from the raw request line, for valid repository names only", () => {
    expect(mapped("$registry_blob_link", `/v2/library/alpine/blobs/sha256:${hex}`)).toBe(
      `/var/lib/registry/docker/registry/v2/repositories/library/alpine/_layers/sha256/${hex}/link`,
    );
    expect(mapped("$registry_blob_data", `/v2/a.b_c__d--e/f/blobs/sha256:${hex}`)).toBe(`/blobs/sha256/01/${hex}/data`);
    expect(mapped("$registry_blob_digest", `/v2/x/blobs/sha256:${hex}`)).toBe(`sha256:${hex}`);
    for (const uri of [
      `/v2/../secrets/blobs/sha256:${hex}`,
      `/v2/a/../b/blobs/sha256:${hex}`,
      `/v2/a%2Fb/blobs/sha256:${hex}`,
      `/v2/Upper/blobs/sha256:${hex}`,
      `/v2/a//b/blobs/sha256:${hex}`,
      `/v2/a/blobs/sha256:${hex}?x=1`,
      `/v2/a/blobs/sha256:${hex.slice(1)}`,
      `/v2/a/blobs/sha512:${hex}${hex}`,
      `/v2/a/blobs/uploads/`,
    ]) {
      expect([uri, mapped("$registry_blob_link", uri)]).toEqual([uri, undefined]);
    }
  });

  test("checks the link file in the server context, where `if` with `set` leaves try_files working", () => {
    expect(server.filter((d) => d.name === "set" || d.name === "if").map((d) => [d.name, d.args.join(" ")])).toEqual([
      ["set", "$registry_hold_write $registry_write_request"],
      ["if", "(!-f /run/registry-stack-maintenance/write-hold)"],
      ["set", "$registry_blob_linked "],
      ["if", "(-f $registry_blob_link)"],
    ]);
    expect(all(server, "if")[1].block).toEqual([{ name: "set", args: ["$registry_blob_linked", "1"] }]);
    // Inside the blob location only `if`s that leave it (return, rewrite … last): try_files keeps working.
    for (const d of all(blob, "if")) expect(d.block!.every((x) => x.name === "return" || (x.name === "rewrite" && x.args[2] === "last"))).toBe(true);
  });

  test("serves a file only for GET/HEAD without Range or conditional headers, when the link exists", () => {
    const plain = all(http, "map").find((d) => d.args[1] === "$registry_blob_plain")!;
    expect(plain.args[0]).toBe("$request_method$http_range$http_if_match$http_if_none_match$http_if_modified_since$http_if_unmodified_since$http_if_range");
    expect(plain.block).toEqual([
      { name: "GET", args: ["1"] },
      { name: "HEAD", args: ["1"] },
      { name: "default", args: [""] },
    ]);
    const file = all(http, "map").find((d) => d.args[1] === "$registry_blob_file")!;
    expect(file.args[0]).toBe("$registry_blob_plain$registry_blob_linked");
    expect(file.block).toEqual([
      { name: "11", args: ["$registry_blob_data"] },
      { name: "default", args: [""] },
    ]);
    expect(value(blob, "root")).toBe("/var/lib/registry/docker/registry/v2");
    expect(value(blob, "try_files")).toBe("$registry_blob_file @registry_blob");
  });

  test("logs in exactly like /v2/ before any file is looked at", () => {
    expect(blobLocation.args).toEqual(["~", "^/v2/.+/blobs/sha256:[0-9a-f]{64}$"]);
    const args = (location: Directive[], name: string) => all(location, name).map((d) => d.args.join(" "));
    for (const name of ["auth_request", "auth_request_set", "error_page"]) expect(args(blob, name)).toEqual(args(v2, name));
    // including the maintenance write hold (a DELETE of a blob is a write)
    expect(all(blob, "if").map((d) => d.block)).toEqual(all(v2, "if").map((d) => d.block));
    expect(all(blob, "if").map((d) => d.args.join(" "))).toContain("($registry_hold_write)");
  });

  test("answers with the registry's headers: digest, quoted ETag, a year's Cache-Control, nosniff, no Last-Modified", () => {
    expect(all(blob, "add_header").map((d) => d.args.join(" "))).toEqual([
      "Docker-Content-Digest $registry_blob_digest",
      'Etag "$registry_blob_digest"',
      "Cache-Control max-age=31536000",
      "X-Content-Type-Options nosniff",
      "Last-Modified ",
      "Docker-Distribution-Api-Version $docker_distribution_api_version always",
    ]);
    expect(value(blob, "etag")).toBe("off");
    expect(value(blob, "output_buffers")).toBe(DEFAULT_PROXY_TUNING.blobOutputBuffers);
    expect(value(blob, "default_type")).toBe("application/octet-stream");
  });

  test("keeps every check of /v2/ (login, and any access decision added there later) in the blob location and its fallback", () => {
    const key = (d: Directive) => JSON.stringify(d);
    const isProxying = (d: Directive) => d.name.startsWith("proxy_") || d.name === "add_header";
    // Everything /v2/ decides before its content phase is in the blob location too…
    expect(v2.filter((d) => !isProxying(d)).map(key)).toEqual(blob.filter((d) => v2.some((x) => key(x) === key(d)) && !isProxying(d)).map(key));
    // …and the fallback proxies exactly as /v2/ does (same target, headers, buffering).
    expect(fallback.filter((d) => d.name.startsWith("proxy_")).map(key)).toEqual(v2.filter((d) => d.name.startsWith("proxy_")).map(key));
  });

  test("hands everything else to the registry, without the client's credentials", () => {
    expect(value(fallback, "proxy_pass")).toBe("http://docker-registry");
    expect(headers(fallback)["Authorization"]).toBe("");
    expect(headers(fallback)["Host"]).toBe("$http_host");
  });

  test("serves the private registry's blobs only: a mirror's server passes everything to its registry", () => {
    const mirror = { name: "hub", listenPort: 8500, upstream: { socketPath: "/run/registry-stack/mirror-hub.sock" }, mirrorOf: "docker.io", pushTo: "store.example.test:5000", anonymousPull: true };
    const withMirror = parseNginxConf(
      renderNginxConf({ serverNames: ["x"], listenPort: 8443, upstream: { socketPath: "/r.sock" }, authCache, blobReads: { storageRoot: "/var/lib/registry" }, mirrors: [mirror], tuning: DEFAULT_PROXY_TUNING }),
    );
    const [privateServer, mirrorServer] = all(blockOf(withMirror, "http"), "server").filter((d) => d.block);
    expect(all(privateServer.block!, "location").some((d) => d.args[0] === "~")).toBe(true);
    expect(all(mirrorServer.block!, "location").some((d) => d.args[0] === "~" || d.args[0] === "@registry_blob")).toBe(false);
    expect(all(mirrorServer.block!, "set")).toEqual([]);
  });

  test("adds nothing of the kind without it", () => {
    const without = renderNginxConf({ serverNames: ["x"], listenPort: 8443, upstream: { host: "registry", port: 5000 }, authCache, tuning: DEFAULT_PROXY_TUNING });
    expect(without).not.toMatch(/registry_blob|try_files|root /);
  });
});
