import { DEFAULT_PROXY_TUNING, renderNginxConf } from "../../../renderers/nginx/nginx-conf";
import { all, blockOf, one, parseNginxConf, value } from "../nginx-conf-parser";
import { AUTH_CACHE, headers } from "./fixtures";

describe("renderNginxConf with access control", () => {
  const render = (anonymousPull: boolean) => {
    const conf = renderNginxConf({
      serverNames: ["store.example.test"],
      listenPort: 8443,
      upstream: { socketPath: "/run/registry-stack/registry.sock" },
      tls: { certificatePath: "/c.crt", keyPath: "/c.key" },
      authCache: {
        verifier: { socketPath: "/run/registry-stack/auth.sock" },
        cacheSeconds: 60,
        realm: "Registry",
        verificationsPerMinute: 30,
        totalVerificationsPerMinute: 240,
        limiterListenPort: 8082,
        access: { modulePath: "/etc/registry-stack/registry-access.js", anonymousPull, refusalListenPort: 8083, publicPort: 5000 },
      },
      tuning: DEFAULT_PROXY_TUNING,
    });
    const parsed = parseNginxConf(conf);
    const http = blockOf(parsed, "http");
    const servers = all(http, "server").filter((d) => d.block);
    const location = (args: string) => all(servers[0].block!, "location").find((d) => d.args.join(" ") === args)?.block;
    return { conf, parsed, http, servers, location };
  };

  test("loads njs by the path both the official image and Debian use, and imports the generated module", () => {
    const { parsed, http } = render(false);
    expect(parsed[0]).toEqual({ name: "load_module", args: ["/usr/lib/nginx/modules/ngx_http_js_module.so"] });
    expect(value(http, "js_import")).toBe("registry_access from /etc/registry-stack/registry-access.js");
    expect(value(http, "js_set")).toBe("$registry_access registry_access.access");
  });

  test("decides in the content phase: proxy_pass goes to the registry or the refusal server, with the raw target", () => {
    const { http, location } = render(false);
    const v2 = location("/v2/")!;
    expect(value(v2, "auth_request")).toBe("/_registry_auth");
    expect(value(v2, "proxy_pass")).toBe("http://$registry_upstream$request_uri");
    expect(headers(v2)["X-Registry-Stack-Refusal"]).toBe("$registry_refusal");
    const upstreamMap = all(http, "map").find((d) => d.args[1] === "$registry_upstream")!;
    expect(upstreamMap.block).toEqual([
      { name: "allow", args: ["docker-registry"] },
      { name: "default", args: ["registry-refusal"] },
    ]);
    expect(one(http, "upstream", "registry-refusal").block![0]).toEqual({ name: "server", args: ["127.0.0.1:8083"] });
  });

  test("answers refusals the way registries do: 403 DENIED, or 401 with the token challenge for anonymous requests", () => {
    const { servers } = render(true);
    const refusal = servers.find((s) => value(s.block!, "listen") === "127.0.0.1:8083")!.block!;
    const root = blockOf(refusal, "location", "/");
    const [status, body] = one(root, "return").args;
    expect(status).toBe("403");
    // A detail keeps docker from reading a bare "denied" code, which its push retries (~50 s).
    expect(JSON.parse(body)).toEqual({ errors: [{ code: "DENIED", message: "requested access to the resource is denied", detail: "not allowed by the role or repositories of this user" }] });
    const login = one(root, "if");
    expect(login.args).toEqual(["($http_x_registry_stack_refusal", "=", "login)"]);
    expect(value(login.block!, "add_header")).toBe('WWW-Authenticate Bearer realm="$registry_token_realm",service="registry-stack" always');
    expect(one(login.block!, "return").args[0]).toBe("401");
    expect(JSON.parse(one(login.block!, "return").args[1]).errors[0]).toMatchObject({ code: "UNAUTHORIZED", detail: "anonymous clients may only pull; log in" });
  });

  test("builds the token realm from the configured names and public port only, never from the client's Host or X-Forwarded-Proto (issue 20)", () => {
    // GIVEN two names on port 5000, and one name on 443 (where clients send Host without a port)
    const realmMap = (serverNames: string[], publicPort: number) => {
      const conf = renderNginxConf({
        serverNames,
        listenPort: 8443,
        upstream: { socketPath: "/run/registry-stack/registry.sock" },
        tls: { certificatePath: "/c.crt", keyPath: "/c.key" },
        authCache: { ...AUTH_CACHE, access: { modulePath: "/etc/registry-stack/registry-access.js", anonymousPull: true, refusalListenPort: 8083, publicPort } },
        tuning: DEFAULT_PROXY_TUNING,
      });
      expect(conf).not.toMatch(/realm="\$http_|\$http_x_forwarded_proto/);
      const map = all(blockOf(parseNginxConf(conf), "http"), "map").find((d) => d.args[1] === "$registry_token_realm")!;
      expect(map.args[0]).toBe("$http_host");
      return map.block!.map((d) => [d.name, ...d.args]);
    };
    // WHEN / THEN: a Host that is not configured gets the first configured name
    expect(realmMap(["store.example.test", "::1"], 5000)).toEqual([
      ["store.example.test:5000", "https://store.example.test:5000/registry-stack/token"],
      ["[::1]:5000", "https://[::1]:5000/registry-stack/token"],
      ["default", "https://store.example.test:5000/registry-stack/token"],
    ]);
    expect(realmMap(["store.example.test"], 443)).toEqual([
      ["store.example.test:443", "https://store.example.test:443/registry-stack/token"],
      ["store.example.test", "https://store.example.test/registry-stack/token"],
      ["default", "https://store.example.test/registry-stack/token"],
    ]);
  });

  test("serves a blob from storage only when the decision allows it; otherwise the fallback asks the decision again", () => {
    const conf = renderNginxConf({
      serverNames: ["store.example.test"],
      listenPort: 8443,
      upstream: { socketPath: "/run/registry-stack/registry.sock" },
      authCache: {
        verifier: { socketPath: "/run/registry-stack/auth.sock" },
        cacheSeconds: 60,
        realm: "Registry",
        verificationsPerMinute: 30,
        totalVerificationsPerMinute: 240,
        limiterListenPort: 8082,
        access: { modulePath: "/etc/registry-stack/registry-access.js", anonymousPull: false, refusalListenPort: 8083, publicPort: 5000 },
      },
      blobReads: { storageRoot: "/var/lib/registry" },
      tuning: DEFAULT_PROXY_TUNING,
    });
    const http = blockOf(parseNginxConf(conf), "http");
    const file = all(http, "map").find((d) => d.args[1] === "$registry_blob_file")!;
    expect(file.args[0]).toBe("$registry_blob_plain$registry_blob_linked$registry_access");
    expect(file.block).toEqual([
      { name: "11allow", args: ["$registry_blob_data"] },
      { name: "default", args: [""] },
    ]);
    const server = all(http, "server").find((d) => d.block)!.block!;
    const fallback = all(server, "location").find((d) => d.args.join(" ") === "@registry_blob")!.block!;
    expect(value(fallback, "proxy_pass")).toBe("http://$registry_upstream$request_uri");
    expect(headers(fallback)["X-Registry-Stack-Refusal"]).toBe("$registry_refusal");
  });

  test("filters only the catalog location through njs", () => {
    const { location, conf } = render(false);
    const catalog = location("= /v2/_catalog")!;
    expect(value(catalog, "proxy_pass")).toBe("http://$registry_catalog_upstream$request_uri");
    expect(value(catalog, "js_body_filter")).toBe("registry_access.catalogBody");
    expect(value(catalog, "js_header_filter")).toBe("registry_access.catalogHeaders");
    expect(conf.match(/js_body_filter/g)).toHaveLength(1);
  });

  test("serves /registry-stack/me behind the same login check and limit as /v2/", () => {
    const { location } = render(false);
    const me = location("= /registry-stack/me")!;
    expect(value(me, "auth_request")).toBe("/_registry_auth");
    expect(all(me, "error_page").map((d) => d.args.join(" "))).toEqual(["500 = @registry_auth_error", "401 /_registry_login_refused"]);
    expect(one(me, "if").block).toEqual([{ name: "rewrite", args: ["^", "/_registry_anonymous", "last"] }]);
    expect(value(me, "js_content")).toBe("registry_access.me");
  });

  test("without anonymous pull there is no token realm and requests without credentials get the Basic 401", () => {
    const { location, conf } = render(false);
    expect(location("= /registry-stack/token")).toBeUndefined();
    expect(one(location("/v2/")!, "if", "($registry_anonymous)").block).toEqual([{ name: "rewrite", args: ["^", "/_registry_anonymous", "last"] }]);
    expect(conf).not.toContain("_registry_anonymous_pull");
  });

  test("with anonymous pull, requests without credentials go to the decision and docker gets a token realm", () => {
    const { location } = render(true);
    expect(one(location("/v2/")!, "if", "($registry_anonymous)").block).toEqual([{ name: "rewrite", args: ["^", "/_registry_anonymous_pull", "last"] }]);
    const anonymous = location("= /_registry_anonymous_pull")!;
    expect(all(anonymous, "internal")).toHaveLength(1);
    expect(value(anonymous, "proxy_pass")).toBe("http://$registry_upstream$request_uri");
    const token = location("= /registry-stack/token")!;
    expect(value(token, "auth_request")).toBe("/_registry_auth");
    expect(value(token, "js_content")).toBe("registry_access.token");
    expect(one(token, "if").block).toEqual([{ name: "rewrite", args: ["^", "/_registry_anonymous_token", "last"] }]);
  });
});
