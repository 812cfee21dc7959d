import { DEFAULT_PROXY_TUNING, renderNginxConf } from "../../../renderers/nginx/nginx-conf";
import { all, blockOf, one, parseNginxConf, value } from "../nginx-conf-parser";
import { AUTH_CACHE, render, headers, WITH_AUTH_CACHE } from "./fixtures";

describe("renderNginxConf with an auth cache", () => {
  const conf = renderNginxConf(WITH_AUTH_CACHE);
  const parsed = parseNginxConf(conf);
  const http = blockOf(parsed, "http");
  const servers = all(http, "server").filter((d) => d.block);
  const v2 = blockOf(servers[0].block!, "location", "/v2/");
  const exactLocation = (uri: string) => all(servers[0].block!, "location").find((d) => d.args.join(" ") === `= ${uri}`)!.block!;

  test("checks every /v2/ request with an auth_request subrequest and strips credentials toward the registry", () => {
    expect(value(v2, "auth_request")).toBe("/_registry_auth");
    expect(value(v2, "auth_request_set")).toBe("$registry_auth_status $upstream_status");
    expect(all(v2, "error_page").map((d) => d.args.join(" "))).toEqual(["500 = @registry_auth_error", "401 /_registry_login_refused"]);
    expect(headers(v2)["Authorization"]).toBe("");
    expect(value(v2, "proxy_pass")).toBe("http://docker-registry");
    expect(one(http, "upstream", "docker-registry").block).toEqual([
      { name: "server", args: ["unix:/run/registry-stack/registry.sock"] },
      { name: "keepalive", args: ["32"] },
    ]);
  });

  test("answers requests without credentials itself, with the registry's challenge and error body", () => {
    const anonymousIf = all(v2, "if").find((d) => d.args[0] === "($http_authorization")!;
    expect(anonymousIf.args).toEqual(["($http_authorization", "=", "", ")"]);
    expect(anonymousIf.block).toEqual([{ name: "rewrite", args: ["^", "/_registry_anonymous", "last"] }]);
    const anonymous = exactLocation("/_registry_anonymous");
    const [status, body] = one(anonymous, "return").args;
    expect(status).toBe("401");
    expect(JSON.parse(body)).toEqual({ errors: [{ code: "UNAUTHORIZED", message: "authentication required", detail: null }] });
    expect(all(anonymous, "add_header").map((d) => d.args.join(" "))).toEqual([
      `WWW-Authenticate Basic realm="Registry" always`,
      "Docker-Distribution-Api-Version registry/2.0 always",
    ]);
    expect(all(anonymous, "internal")).toHaveLength(1);
  });

  test("limits verifications per client address in a loopback server in front of the verifier", () => {
    expect(all(http, "limit_req_zone")[0].args.join(" ")).toBe("$http_x_registry_client zone=registry_logins:1m rate=30r/m");
    const auth = exactLocation("/_registry_auth");
    expect(value(auth, "proxy_pass")).toBe("http://registry-login-limiter/v2/");
    // The limiter's own address twice: a connection a killed worker had accepted is tried again.
    expect(conf).toMatch(/upstream registry-login-limiter {\n\s+server 127\.0\.0\.1:8082 max_fails=0;\n\s+server 127\.0\.0\.1:8082 max_fails=0;\n\s+}/);
    expect(value(auth, "proxy_next_upstream")).toBe("error");
    expect(value(auth, "proxy_next_upstream_tries")).toBe("2");
    expect(headers(auth)["X-Registry-Client"]).toBe("$remote_addr");
    const limiter = servers.find((s) => value(s.block!, "listen") === "127.0.0.1:8082")!.block!;
    const location = blockOf(limiter, "location", "/");
    expect(all(location, "limit_req").map((d) => d.args.join(" "))).toEqual(["zone=registry_logins burst=30 nodelay", "zone=registry_verifications burst=20"]);
    expect(value(location, "limit_req_status")).toBe("429");
    expect(value(location, "proxy_pass")).toBe("http://registry-auth");
    expect(headers(location)["X-Registry-Client"]).toBe("");
  });

  test("limits verifications from all addresses together, queueing five seconds' worth before the 429s (issue 22)", () => {
    // GIVEN 240 a minute (the fixture) and 90 a minute
    const slow = render({ authCache: { ...AUTH_CACHE, totalVerificationsPerMinute: 90 } });
    for (const [rendered, rate, queued] of [
      [{ http, servers }, 240, 20],
      [slow, 90, 8],
    ] as const) {
      // THEN every request has the same key: one budget for all addresses
      const pool = all(rendered.http, "map").find((d) => d.args[1] === "$registry_verification_pool")!;
      expect(pool.block).toEqual([{ name: "default", args: ["all"] }]);
      expect(all(rendered.http, "limit_req_zone")[1].args.join(" ")).toBe(`$registry_verification_pool zone=registry_verifications:64k rate=${rate}r/m`);
      const limiter = blockOf(rendered.servers.find((s) => value(s.block!, "listen") === "127.0.0.1:8082")!.block!, "location", "/");
      // and logins above the rate wait (no nodelay) up to 5 s' worth, rounded up
      expect(all(limiter, "limit_req")[1].args).toEqual(["zone=registry_verifications", `burst=${queued}`]);
      // and the waits are not logged, the refusals are (error_log's level is warn)
      expect(value(limiter, "limit_req_log_level")).toBe("warn");
    }
  });

  test("takes the login limit's burst and its scope per address and user from the input (issue 20)", () => {
    // GIVEN a burst of 5 and a budget per address and user
    const access = { modulePath: "/etc/registry-stack/registry-access.js", anonymousPull: false, refusalListenPort: 8083, publicPort: 5000 };
    const limited = render({ authCache: { ...AUTH_CACHE, verificationBurst: 5, limitScope: "address-and-user", access } });
    // WHEN / THEN
    const limiter = limited.servers.find((s) => value(s.block!, "listen") === "127.0.0.1:8082")!.block!;
    expect(all(blockOf(limiter, "location", "/"), "limit_req")[0].args.join(" ")).toBe("zone=registry_logins burst=5 nodelay");
    const auth = all(limited.proxy, "location").find((d) => d.args.join(" ") === "= /_registry_auth")!.block!;
    // One argument (quoted): the address and the user name together are the limiter's key.
    expect(all(auth, "proxy_set_header").find((d) => d.args[0] === "X-Registry-Client")!.args).toEqual(["X-Registry-Client", "$remote_addr $registry_login_user"]);
    expect(all(limited.http, "js_set").map((d) => d.args.join(" "))).toContain("$registry_login_user registry_access.loginUser");
    // and without access control (no njs to read the user) it cannot be rendered
    expect(() => render({ authCache: { ...AUTH_CACHE, limitScope: "address-and-user" } })).toThrow(/needs access control/);
  });

  test("turns a limited verification into 429 with Retry-After and other verifier failures into 503", () => {
    const error = blockOf(servers[0].block!, "location", "@registry_auth_error");
    expect(all(error, "add_header").map((d) => d.args.join(" "))).toContain("Retry-After $registry_retry_after always");
    const limited = one(error, "if");
    expect(limited.args).toEqual(["($registry_auth_status", "=", "429)"]);
    expect(limited.block![0].args[0]).toBe("429");
    expect(JSON.parse(limited.block![0].args[1]).errors[0].code).toBe("TOOMANYREQUESTS");
    // Either budget refused it (this client's or all addresses'): the message names neither.
    expect(JSON.parse(limited.block![0].args[1]).errors[0].message).toBe("too many logins to verify; retry later");
    expect(one(error, "return").args[0]).toBe("503");
    const retryMap = all(http, "map").find((d) => d.args[0] === "$registry_auth_status")!;
    expect(retryMap.block).toEqual([
      { name: "429", args: ["60"] },
      { name: "default", args: [""] },
    ]);
  });

  test("answers a refused login with the registry's error body and keeps the verifier's challenge", () => {
    const refused = exactLocation("/_registry_login_refused");
    expect(one(refused, "return").args[0]).toBe("401");
    expect(JSON.parse(one(refused, "return").args[1]).errors[0].code).toBe("UNAUTHORIZED");
    expect(all(refused, "add_header").map((d) => d.args[0])).toEqual(["Docker-Distribution-Api-Version"]);
  });

  test("verifies a Bearer token of the anonymous-pull realm as the Basic credentials it carries", () => {
    const login = all(http, "map").find((d) => d.args[1] === "$registry_login")!;
    expect(login.args[0]).toBe("$http_authorization");
    expect(login.block).toEqual([
      { name: String.raw`~*^Bearer +(?<registry_token>\S+)$`, args: ["Basic $registry_token"] },
      { name: "default", args: ["$http_authorization"] },
    ]);
    expect(headers(exactLocation("/_registry_auth"))["Authorization"]).toBe("$registry_login");
  });

  test("caches only successful verifications, keyed on the whole Authorization header, for the given time", () => {
    const auth = conf.slice(conf.indexOf("location = /_registry_auth {"), conf.indexOf("}", conf.indexOf("location = /_registry_auth {")));
    expect(auth).toContain("internal;");
    expect(auth).toContain("proxy_pass http://registry-login-limiter/v2/;");
    expect(auth).toContain("proxy_method GET;");
    expect(auth).toContain("proxy_pass_request_body off;");
    expect(auth).toContain("proxy_cache_key $registry_login;");
    expect(auth).toContain("proxy_cache_valid 200 60s;");
    expect(auth).toContain("proxy_cache_valid any 0;");
    expect(auth).toContain("proxy_cache_lock on;");
    // An expiring login is asked again by one request; the others are not held at the lock. A
    // login verified before is not refused when the limiter refuses to verify it again.
    expect(auth).toContain("proxy_cache_use_stale updating http_429;");
    expect(conf).toContain("proxy_cache_path /tmp/nginx-auth-cache levels=1 keys_zone=registry_auth:1m max_size=16m inactive=60s use_temp_path=off;");
    expect(conf).toMatch(/upstream registry-auth {\n\s+server unix:\/run\/registry-stack\/auth.sock;/);
  });

  test("adds nothing of the kind without it", () => {
    const plain = renderNginxConf({ serverNames: ["x"], listenPort: 8443, upstream: { host: "registry", port: 5000 }, tuning: DEFAULT_PROXY_TUNING });
    expect(plain).not.toMatch(/auth_request|proxy_cache|registry-auth|Authorization|limit_req|_registry_anonymous/);
  });
});
