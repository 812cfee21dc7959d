import { DEFAULT_PROXY_TUNING, renderNginxConf } from "../../../renderers/nginx/nginx-conf";
import { all, blockOf, one, parseNginxConf, value } from "../nginx-conf-parser";
import { AUTH_CACHE } from "./fixtures";

describe("renderNginxConf with a write hold", () => {
  const withHold = (authCache: boolean) => {
    const conf = renderNginxConf({
      serverNames: ["store.example.test"],
      listenPort: 8443,
      upstream: { socketPath: "/run/registry-stack/registry.sock" },
      tls: { certificatePath: "/c.crt", keyPath: "/c.key" },
      authCache: authCache
        ? AUTH_CACHE
        : undefined,
      writeHold: { flagFile: "/run/registry-stack-maintenance/write-hold", retryAfterSeconds: 10 },
      tuning: DEFAULT_PROXY_TUNING,
    });
    const http = blockOf(parseNginxConf(conf), "http");
    const server = all(http, "server").filter((d) => d.block)[0].block!;
    return { http, server, v2: blockOf(server, "location", "/v2/"), held: all(server, "location").find((d) => d.args.join(" ") === "= /_registry_write_held")!.block! };
  };

  test("marks POST, PUT, PATCH and DELETE (every method but GET, HEAD, OPTIONS) as writes", () => {
    expect(one(withHold(false).http, "map", "$request_method").block).toEqual([
      { name: "GET", args: ["0"] },
      { name: "HEAD", args: ["0"] },
      { name: "OPTIONS", args: ["0"] },
      { name: "default", args: ["1"] },
    ]);
  });

  test("sends a write to the held location while the flag file exists, after the anonymous check", () => {
    const { v2, server } = withHold(true);
    // The flag file is tested in the server (an `if` with `set` inside a location would replace its
    // configuration when it matches, which breaks try_files there); the location only acts on it.
    const flagSet = server.findIndex((d) => d.name === "set" && d.args[0] === "$registry_hold_write");
    expect(server[flagSet].args).toEqual(["$registry_hold_write", "$registry_write_request"]);
    expect(server[flagSet + 1]).toEqual({ name: "if", args: ["(!-f", "/run/registry-stack-maintenance/write-hold)"], block: [{ name: "set", args: ["$registry_hold_write", "0"] }] });
    const names = v2.map((d) => `${d.name} ${d.args[0] ?? ""}`.trim());
    const anonymous = names.indexOf("if ($http_authorization");
    const hold = names.indexOf("if ($registry_hold_write)");
    expect(anonymous).toBeGreaterThanOrEqual(0);
    expect(hold).toBeGreaterThan(anonymous);
    expect(v2[hold]).toEqual({ name: "if", args: ["($registry_hold_write)"], block: [{ name: "rewrite", args: ["^", "/_registry_write_held", "last"] }] });
  });

  test("answers a held write 503 UNAVAILABLE in the registry's error format with Retry-After", () => {
    const { held } = withHold(false);
    const [status, body] = one(held, "return").args;
    expect(status).toBe("503");
    expect(JSON.parse(body).errors[0].code).toBe("UNAVAILABLE");
    expect(all(held, "add_header").map((d) => d.args.join(" "))).toEqual(["Retry-After 10 always", "Docker-Distribution-Api-Version registry/2.0 always"]);
    expect(value(held, "default_type")).toBe("application/json");
    expect(all(held, "internal")).toHaveLength(1);
  });

  test("holds nothing without the option", () => {
    expect(renderNginxConf({ serverNames: ["a"], listenPort: 1, upstream: { socketPath: "/s" }, tuning: DEFAULT_PROXY_TUNING })).not.toMatch(/registry_hold_write|write_held/);
  });
});
