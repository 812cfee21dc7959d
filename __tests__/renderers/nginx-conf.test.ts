import { DEFAULT_PROXY_TUNING, NginxConfInput, renderNginxConf } from "../../renderers/nginx/nginx-conf";
import { Directive, all, blockOf, flatten, one, parseNginxConf, value } from "./nginx-conf-parser";

const TLS = { certificatePath: "/etc/nginx/tls/server.crt", keyPath: "/etc/nginx/tls/server.key" };
/** nginx checks the logins itself, asking the verifier on its socket (the default topology). */
const AUTH_CACHE = { verifier: { socketPath: "/run/registry-stack/auth.sock" }, cacheSeconds: 60, realm: "Registry", verificationsPerMinute: 30, limiterListenPort: 8082 };

function input(overrides: Partial<NginxConfInput> = {}): NginxConfInput {
  return {
    serverNames: ["registry.example.test", "localhost"],
    listenPort: 8443,
    upstream: { host: "registry", port: 5000 },
    tls: TLS,
    tuning: DEFAULT_PROXY_TUNING,
    ...overrides,
  };
}

function render(overrides: Partial<NginxConfInput> = {}) {
  const text = renderNginxConf(input(overrides));
  const main = parseNginxConf(text);
  const http = blockOf(main, "http");
  const servers = all(http, "server").filter((d) => d.block);
  const proxy = servers[0].block!;
  const v2 = blockOf(proxy, "location", "/v2/");
  return { text, main, http, servers, proxy, v2 };
}

function headers(location: Directive[]): Record<string, string> {
  return Object.fromEntries(all(location, "proxy_set_header").map((d) => [d.args[0], d.args.slice(1).join(" ")]));
}

// Directives of nginx core, http core, log, upstream, map, rewrite, proxy, headers and ssl:
// all present in the official alpine image and in Debian bookworm's nginx/nginx-light.
const PORTABLE_DIRECTIVES = new Set([
  "worker_processes", "pid", "error_log", "events", "worker_connections", "http", "server_tokens",
  "default_type", "access_log", "sendfile", "tcp_nopush", "keepalive_timeout", "client_body_temp_path",
  "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path", "map", "upstream", "server",
  "keepalive", "listen", "server_name", "ssl_certificate", "ssl_certificate_key", "ssl_protocols", "ssl_ciphers",
  "ssl_prefer_server_ciphers", "ssl_session_cache", "ssl_session_timeout", "ssl_session_tickets",
  "client_max_body_size", "chunked_transfer_encoding", "client_body_buffer_size", "location", "if", "return",
  "proxy_pass", "proxy_http_version", "proxy_set_header", "proxy_read_timeout", "proxy_send_timeout",
  "proxy_request_buffering", "proxy_buffering", "proxy_buffer_size", "proxy_buffers", "proxy_busy_buffers_size",
  "proxy_max_temp_file_size", "add_header", "log_format", "set", "root", "try_files", "types", "etag", "output_buffers",
]);

describe("renderNginxConf", () => {
  describe("main context", () => {
    test("runs from /tmp, logs to stderr and has no user directive", () => {
      const { main } = render();
      expect(main.filter((d) => !d.block).map((d) => `${d.name} ${d.args.join(" ")}`)).toEqual([
        "worker_processes auto",
        "pid /tmp/nginx.pid",
        "error_log stderr warn",
      ]);
      expect(main.map((d) => d.name)).toEqual(["worker_processes", "pid", "error_log", "events", "http"]);
      expect(value(blockOf(main, "events"), "worker_connections")).toBe("1024");
    });

    test("includes no files and uses only portable directives", () => {
      const { main } = render({ httpRedirect: { listenPort: 8080, publicPort: 443 } });
      const withoutMapEntries = flatten(main.map(stripMapEntries));
      expect(withoutMapEntries.filter((d) => d.name === "include" || d.name === "load_module")).toEqual([]);
      expect(withoutMapEntries.map((d) => d.name).filter((name) => !PORTABLE_DIRECTIVES.has(name))).toEqual([]);
    });
  });

  describe("http block", () => {
    test("hides the version, logs to stdout and keeps every temp path directly in /tmp", () => {
      const { http } = render();
      expect(value(http, "server_tokens")).toBe("off");
      expect(value(http, "access_log")).toBe("/dev/stdout registry_stack");
      // combined plus who answered, so a blob read from storage (upstream=-) is told from a proxied one
      expect(one(http, "log_format").args[1]).toMatch(/^\$remote_addr - \$remote_user \[\$time_local\] "\$request" \$status .* upstream=\$upstream_addr$/);
      const temp = http.filter((d) => d.name.endsWith("_temp_path"));
      expect(temp.map((d) => [d.name, d.args.join(" ")])).toEqual([
        ["client_body_temp_path", "/tmp/nginx-client-body"],
        ["proxy_temp_path", "/tmp/nginx-proxy"],
        ["fastcgi_temp_path", "/tmp/nginx-fastcgi"],
        ["uwsgi_temp_path", "/tmp/nginx-uwsgi"],
        ["scgi_temp_path", "/tmp/nginx-scgi"],
      ]);
    });

    test("maps a missing upstream API version header to registry/2.0", () => {
      const { http } = render();
      const map = one(http, "map");
      expect(map.args).toEqual(["$upstream_http_docker_distribution_api_version", "$docker_distribution_api_version"]);
      expect(map.block).toEqual([{ name: "", args: ["registry/2.0"] }]);
    });

    test("points the upstream at the registry with keepalive connections", () => {
      const { http, v2 } = render({ upstream: { host: "registry-alias", port: 5001 } });
      const upstream = one(http, "upstream");
      expect(upstream.block).toEqual([
        { name: "server", args: ["registry-alias:5001"] },
        { name: "keepalive", args: ["32"] },
      ]);
      expect(value(v2, "proxy_pass")).toBe(`http://${upstream.args[0]}`);
    });
  });

  describe("registry server", () => {
    test("accepts unlimited, chunked request bodies", () => {
      const { proxy } = render();
      expect(value(proxy, "client_max_body_size")).toBe("0");
      expect(value(proxy, "chunked_transfer_encoding")).toBe("on");
      expect(value(proxy, "server_name")).toBe("registry.example.test localhost");
    });

    test("passes the headers the registry needs to build its URLs", () => {
      const { v2 } = render();
      expect(headers(v2)).toEqual({
        Connection: "",
        Host: "$http_host",
        "X-Real-IP": "$remote_addr",
        "X-Forwarded-For": "$proxy_add_x_forwarded_for",
        "X-Forwarded-Proto": "$scheme",
      });
      expect(value(v2, "proxy_http_version")).toBe("1.1");
    });

    test("adds the API version header always, so 401s carry it too", () => {
      const { v2 } = render();
      expect(one(v2, "add_header").args).toEqual([
        "Docker-Distribution-Api-Version",
        "$docker_distribution_api_version",
        "always",
      ]);
    });

    test("rejects docker 1.3-1.5 clients with 404 before proxying", () => {
      const { v2 } = render();
      const guard = one(v2, "if");
      expect(guard.args).toEqual(["($http_user_agent", "~", String.raw`^(docker\/1\.(3|4|5(?!\.[0-9]-dev))|Go ).*$`, ")"]);
      expect(guard.block).toEqual([{ name: "return", args: ["404"] }]);
      expect(v2[0]).toBe(guard);
    });

    test("answers /healthz anonymously and 404 for everything outside /v2/", () => {
      const { proxy } = render();
      expect(all(proxy, "location").map((d) => d.args.join(" "))).toEqual(["/v2/", "= /healthz", "/"]);
      expect(blockOf(proxy, "location", "=")).toEqual([
        { name: "access_log", args: ["off"] },
        { name: "default_type", args: ["text/plain"] },
        { name: "return", args: ["200", "ok\\n"] },
      ]);
      expect(blockOf(proxy, "location", "/")).toEqual([{ name: "return", args: ["404"] }]);
    });
  });

  describe("TLS", () => {
    test("terminates TLS 1.2/1.3 with the given certificate", () => {
      const { proxy } = render();
      expect(value(proxy, "listen")).toBe("8443 ssl");
      expect(value(proxy, "ssl_certificate")).toBe(TLS.certificatePath);
      expect(value(proxy, "ssl_certificate_key")).toBe(TLS.keyPath);
      expect(value(proxy, "ssl_protocols")).toBe("TLSv1.2 TLSv1.3");
      expect(value(proxy, "ssl_prefer_server_ciphers")).toBe("off");
      expect(value(proxy, "ssl_session_cache")).toBe("shared:SSL:10m");
      expect(value(proxy, "ssl_session_tickets")).toBe("off");
    });

    test("offers only forward-secret AEAD suites for TLS 1.2", () => {
      const ciphers = value(render().proxy, "ssl_ciphers").split(":");
      expect(ciphers.length).toBeGreaterThan(0);
      for (const cipher of ciphers) {
        expect(cipher).toMatch(/^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
      }
    });

    test("listens without ssl and has no ssl directives in plain HTTP mode", () => {
      const { main, proxy } = render({ tls: undefined });
      expect(value(proxy, "listen")).toBe("8443");
      expect(flatten(main).filter((d) => d.name.startsWith("ssl_"))).toEqual([]);
    });
  });

  describe("HTTP redirect server", () => {
    test("is absent by default", () => {
      expect(render().servers).toHaveLength(1);
    });

    test("redirects a configured name to itself over https, without a port on 443", () => {
      const { servers } = render({ httpRedirect: { listenPort: 8080, publicPort: 443 } });
      expect(servers).toHaveLength(3);
      expect(servers[1].block).toEqual([
        { name: "listen", args: ["8080"] },
        { name: "server_name", args: ["registry.example.test", "localhost"] },
        { name: "return", args: ["301", "https://$host$request_uri"] },
      ]);
    });

    test("sends any other Host to the first configured name, never to the client's", () => {
      const { servers } = render({ httpRedirect: { listenPort: 8080, publicPort: 5443 } });
      expect(servers[2].block).toEqual([
        { name: "listen", args: ["8080", "default_server"] },
        { name: "server_name", args: ["_"] },
        { name: "return", args: ["301", "https://registry.example.test:5443$request_uri"] },
      ]);
      expect(value(servers[1].block!, "return")).toBe("301 https://$host:5443$request_uri");
    });

    test("brackets an IPv6 first name in the redirect target", () => {
      const { servers } = render({ serverNames: ["::1"], httpRedirect: { listenPort: 8080, publicPort: 443 } });
      expect(value(servers[2].block!, "return")).toBe("301 https://[::1]$request_uri");
    });
  });

  describe("health server", () => {
    test("is absent by default", () => {
      expect(render({ httpRedirect: { listenPort: 8080, publicPort: 443 } }).servers).toHaveLength(3);
    });

    test("answers only /healthz over plain HTTP on loopback", () => {
      const { servers } = render({ healthListenPort: 8081, httpRedirect: { listenPort: 8080, publicPort: 443 } });
      expect(servers).toHaveLength(4);
      const health = servers[3].block!;
      expect(health.filter((d) => !d.block)).toEqual([{ name: "listen", args: ["127.0.0.1:8081"] }]);
      expect(all(health, "location").map((d) => d.args.join(" "))).toEqual(["= /healthz", "/"]);
      expect(value(blockOf(health, "location", "="), "return")).toBe("200 ok\\n");
      expect(blockOf(health, "location", "/")).toEqual([{ name: "return", args: ["404"] }]);
    });
  });

  describe("tuning", () => {
    test("defaults stream uploads and buffer downloads in memory", () => {
      const { v2 } = render();
      expect(value(v2, "proxy_request_buffering")).toBe("off");
      expect(value(v2, "proxy_buffering")).toBe("on");
      expect(value(v2, "proxy_buffer_size")).toBe("64k");
      expect(value(v2, "proxy_buffers")).toBe("16 256k");
      expect(value(v2, "proxy_max_temp_file_size")).toBe("0");
      expect(value(v2, "proxy_read_timeout")).toBe("900s");
      expect(value(v2, "proxy_send_timeout")).toBe("900s");
      expect(all(v2, "proxy_busy_buffers_size")).toEqual([]);
      expect(all(render().proxy, "client_body_buffer_size").map((d) => d.args)).toEqual([["128k"]]);
    });

    test("writes every knob as given", () => {
      const { http, proxy, v2 } = render({
        tuning: {
          requestBuffering: true,
          responseBuffering: false,
          proxyBufferSize: "128k",
          proxyBuffers: "4 2m",
          maxTempFileSize: "1024m",
          readTimeoutSeconds: 120,
          sendTimeoutSeconds: 60,
          proxyBusyBuffersSize: "4m",
          clientBodyBufferSize: "1m",
          upstreamKeepalive: 8,
        },
      });
      expect(value(v2, "proxy_request_buffering")).toBe("on");
      expect(value(v2, "proxy_buffering")).toBe("off");
      expect(value(v2, "proxy_buffer_size")).toBe("128k");
      expect(value(v2, "proxy_buffers")).toBe("4 2m");
      expect(value(v2, "proxy_max_temp_file_size")).toBe("1024m");
      expect(value(v2, "proxy_read_timeout")).toBe("120s");
      expect(value(v2, "proxy_send_timeout")).toBe("60s");
      expect(value(v2, "proxy_busy_buffers_size")).toBe("4m");
      expect(value(proxy, "client_body_buffer_size")).toBe("1m");
      expect(value(blockOf(http, "upstream"), "keepalive")).toBe("8");
    });
  });

  test("ends with a newline and is deterministic", () => {
    const first = renderNginxConf(input());
    expect(first.endsWith("}\n")).toBe(true);
    expect(renderNginxConf(input())).toBe(first);
  });
});

describe("parseNginxConf (test helper)", () => {
  test("fails when a directive lacks its semicolon or a brace is unbalanced", () => {
    expect(() => parseNginxConf("http { server_tokens off }")).toThrow("missing ; after server_tokens off");
    expect(() => parseNginxConf("http { server_tokens off;")).toThrow("missing }");
    expect(() => parseNginxConf("}")).toThrow("unexpected }");
  });
});

function stripMapEntries(d: Directive): Directive {
  if (d.name === "map") return { ...d, block: [] };
  return d.block ? { ...d, block: d.block.map(stripMapEntries) } : d;
}

describe("renderNginxConf with an auth cache", () => {
  const conf = renderNginxConf({
    serverNames: ["store.example.test"],
    listenPort: 8443,
    upstream: { socketPath: "/run/registry-stack/registry.sock" },
    tls: { certificatePath: "/c.crt", keyPath: "/c.key" },
    authCache: AUTH_CACHE,
    tuning: DEFAULT_PROXY_TUNING,
  });
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
    expect(value(http, "limit_req_zone")).toBe("$http_x_registry_client zone=registry_logins:1m rate=30r/m");
    const auth = exactLocation("/_registry_auth");
    expect(value(auth, "proxy_pass")).toBe("http://127.0.0.1:8082/v2/");
    expect(headers(auth)["X-Registry-Client"]).toBe("$remote_addr");
    const limiter = servers.find((s) => value(s.block!, "listen") === "127.0.0.1:8082")!.block!;
    const location = blockOf(limiter, "location", "/");
    expect(value(location, "limit_req")).toBe("zone=registry_logins burst=30 nodelay");
    expect(value(location, "limit_req_status")).toBe("429");
    expect(value(location, "proxy_pass")).toBe("http://registry-auth");
    expect(headers(location)["X-Registry-Client"]).toBe("");
  });

  test("takes the login limit's burst and its scope per address and user from the input (issue 20)", () => {
    // GIVEN a burst of 5 and a budget per address and user
    const access = { modulePath: "/etc/registry-stack/registry-access.js", anonymousPull: false, refusalListenPort: 8083, publicPort: 5000 };
    const limited = render({ authCache: { ...AUTH_CACHE, verificationBurst: 5, limitScope: "address-and-user", access } });
    // WHEN / THEN
    const limiter = limited.servers.find((s) => value(s.block!, "listen") === "127.0.0.1:8082")!.block!;
    expect(value(blockOf(limiter, "location", "/"), "limit_req")).toBe("zone=registry_logins burst=5 nodelay");
    const auth = all(limited.proxy, "location").find((d) => d.args.join(" ") === "= /_registry_auth")!.block!;
    // One argument (quoted): the address and the user name together are the limiter's key.
    expect(all(auth, "proxy_set_header").find((d) => d.args[0] === "X-Registry-Client")!.args).toEqual(["X-Registry-Client", "$remote_addr $registry_login_user"]);
    expect(all(limited.http, "js_set").map((d) => d.args.join(" "))).toContain("$registry_login_user registry_access.loginUser");
    const error = blockOf(limited.proxy, "location", "@registry_auth_error");
    expect(JSON.parse(one(error, "if").block![0].args[1]).errors[0].message).toBe("too many logins to verify from this address for this user; retry later");
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
    expect(auth).toContain("proxy_pass http://127.0.0.1:8082/v2/;");
    expect(auth).toContain("proxy_method GET;");
    expect(auth).toContain("proxy_pass_request_body off;");
    expect(auth).toContain("proxy_cache_key $registry_login;");
    expect(auth).toContain("proxy_cache_valid 200 60s;");
    expect(auth).toContain("proxy_cache_valid any 0;");
    expect(auth).toContain("proxy_cache_lock on;");
    expect(conf).toContain("proxy_cache_path /tmp/nginx-auth-cache levels=1 keys_zone=registry_auth:1m max_size=16m inactive=60s use_temp_path=off;");
    expect(conf).toMatch(/upstream registry-auth {\n\s+server unix:\/run\/registry-stack\/auth.sock;/);
  });

  test("adds nothing of the kind without it", () => {
    const plain = renderNginxConf({ serverNames: ["x"], listenPort: 8443, upstream: { host: "registry", port: 5000 }, tuning: DEFAULT_PROXY_TUNING });
    expect(plain).not.toMatch(/auth_request|proxy_cache|registry-auth|Authorization|limit_req|_registry_anonymous/);
  });
});

describe("renderNginxConf with the web UI", () => {
  const withUi = (overrides: Partial<NginxConfInput> = {}) => render({ ui: { directory: "/etc/registry-stack/ui" }, ...overrides });
  const location = (server: Directive[], args: string) => all(server, "location").find((d) => d.args.join(" ") === args)?.block;
  const authCache = AUTH_CACHE;

  test("serves the files under /ui/ with JavaScript and HTML types and redirects / and /ui there, relatively", () => {
    const { proxy } = withUi();
    expect(location(proxy, "= /")).toEqual([
      { name: "absolute_redirect", args: ["off"] },
      { name: "return", args: ["302", "/ui/"] },
    ]);
    expect(value(location(proxy, "= /ui")!, "return")).toBe("301 /ui/");
    const ui = location(proxy, "/ui/")!;
    expect(value(ui, "alias")).toBe("/etc/registry-stack/ui/");
    expect(value(ui, "index")).toBe("index.html");
    expect(blockOf(ui, "types").map((d) => `${d.name} ${d.args.join(" ")}`)).toEqual(["text/html html", "text/css css", "text/javascript js", "application/json json"]);
    expect(all(proxy, "location").map((d) => d.args.join(" "))).toEqual(["/v2/", "= /healthz", "/", "= /", "= /ui", "/ui/"]);
  });

  test("sends a strict CSP without inline code, no framing and no referrer on every UI answer", () => {
    const ui = location(withUi().proxy, "/ui/")!;
    const added = Object.fromEntries(all(ui, "add_header").map((d) => [d.args[0], d.args.slice(1)]));
    const csp = added["Content-Security-Policy"][0].split("; ");
    expect(csp).toEqual(expect.arrayContaining(["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'"]));
    expect(csp.join(" ")).not.toMatch(/unsafe|https?:|\*/);
    expect(added["X-Frame-Options"]).toEqual(["DENY", "always"]);
    expect(added["Referrer-Policy"]).toEqual(["no-referrer", "always"]);
    expect(added["X-Content-Type-Options"]).toEqual(["nosniff", "always"]);
    expect(Object.values(added).every((args) => args[args.length - 1] === "always")).toBe(true);
  });

  test("leaves the registry's Basic challenge out only for requests with the UI's header (registry-side auth)", () => {
    const { http, v2 } = withUi();
    expect(one(http, "map", "$http_x_registry_ui").args).toEqual(["$http_x_registry_ui", "$registry_challenge"]);
    expect(one(http, "map", "$http_x_registry_ui").block).toEqual([
      { name: "", args: ["$upstream_http_www_authenticate"] },
      { name: "default", args: [""] },
    ]);
    expect(value(v2, "proxy_hide_header")).toBe("WWW-Authenticate");
    expect(all(v2, "add_header").map((d) => d.args.join(" "))).toContain("WWW-Authenticate $registry_challenge always");
  });

  test("leaves it out in the verifier's answer and in nginx's own 401 with the auth cache", () => {
    const { http, servers, proxy, v2 } = withUi({ authCache });
    const maps = all(http, "map").filter((d) => d.args[0] === "$http_x_registry_ui");
    expect(maps.map((d) => d.args[1])).toEqual(["$registry_challenge", "$registry_anonymous_challenge"]);
    expect(maps[1].block).toEqual([
      { name: "", args: ['Basic realm="Registry"'] },
      { name: "default", args: [""] },
    ]);
    const limiter = blockOf(servers[1].block!, "location", "/");
    expect(value(limiter, "proxy_hide_header")).toBe("WWW-Authenticate");
    expect(all(limiter, "add_header").map((d) => d.args.join(" "))).toEqual(["WWW-Authenticate $registry_challenge always"]);
    const anonymous = location(proxy, "= /_registry_anonymous")!;
    expect(all(anonymous, "add_header")[0].args).toEqual(["WWW-Authenticate", "$registry_anonymous_challenge", "always"]);
    // The data registry behind the auth cache has no auth: nothing to hide in /v2/.
    expect(all(v2, "proxy_hide_header")).toEqual([]);
  });

  test("is absent, with / answering 404 and the challenge untouched, without the UI", () => {
    const { http, proxy, v2, text } = render({ authCache });
    expect(all(proxy, "location").map((d) => d.args.join(" "))).not.toContain("/ui/");
    expect(all(http, "map").filter((d) => d.args[0] === "$http_x_registry_ui")).toEqual([]);
    expect(all(v2, "proxy_hide_header")).toEqual([]);
    expect(text).toContain(`add_header WWW-Authenticate 'Basic realm="Registry"' always;`);
  });

  test("uses only directives nginx-light and the official image have", () => {
    const { main } = withUi({ authCache });
    const names = new Set(flatten(main.map(stripMapEntries)).map((d) => d.name));
    const known = new Set([...PORTABLE_DIRECTIVES, "alias", "index", "types", "absolute_redirect", "proxy_hide_header", "internal", "auth_request", "auth_request_set",
      "error_page", "proxy_method", "proxy_pass_request_body", "proxy_cache_path", "proxy_cache", "proxy_cache_key", "proxy_cache_valid", "proxy_ignore_headers",
      "proxy_cache_lock", "proxy_cache_lock_timeout", "limit_req_zone", "limit_req", "limit_req_status", "rewrite", "text/html", "text/css", "text/javascript", "application/json"]);
    expect([...names].filter((n) => !known.has(n))).toEqual([]);
  });
});

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
    serverNames: ["store.example.test"],
    listenPort: 8443,
    upstream: { socketPath: "/run/registry-stack/registry.sock" },
    tls: { certificatePath: "/c.crt", keyPath: "/c.key" },
    authCache: AUTH_CACHE,
    tuning: DEFAULT_PROXY_TUNING,
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

describe("renderNginxConf with /metrics", () => {
  const conf = (authCache: boolean) => {
    const text = renderNginxConf({
      serverNames: ["store.example.test"],
      listenPort: 8443,
      upstream: { socketPath: "/run/registry-stack/registry.sock" },
      tls: { certificatePath: "/c.crt", keyPath: "/c.key" },
      authCache: authCache
        ? AUTH_CACHE
        : undefined,
      metricsFile: "/run/registry-stack-maintenance/metrics.prom",
      tuning: DEFAULT_PROXY_TUNING,
    });
    const server = all(blockOf(parseNginxConf(text), "http"), "server").filter((d) => d.block)[0].block!;
    const location = (args: string) => all(server, "location").find((d) => d.args.join(" ") === args)?.block;
    return { metrics: location("= /metrics")!, metricsAuth: location("= /_registry_metrics_auth"), v2: blockOf(server, "location", "/v2/") };
  };

  test("serves the file to users the verifier accepts, exactly as /v2/ checks them (auth cache)", () => {
    const { metrics, metricsAuth, v2 } = conf(true);
    expect(value(metrics, "alias")).toBe("/run/registry-stack-maintenance/metrics.prom");
    expect(value(metrics, "default_type")).toBe("text/plain; version=0.0.4");
    expect(value(metrics, "auth_request")).toBe("/_registry_auth");
    const authOf = (location: Directive[]) =>
      location.filter((d) => ["auth_request", "auth_request_set", "error_page"].includes(d.name) || (d.name === "if" && d.args[0] === "($http_authorization"));
    expect(authOf(metrics)).toEqual(authOf(v2));
    expect(metricsAuth).toBeUndefined();
  });

  test("asks the data registry (which holds htpasswd) without the auth cache, never the file without credentials", () => {
    const { metrics, metricsAuth } = conf(false);
    expect(value(metrics, "auth_request")).toBe("/_registry_metrics_auth");
    expect(all(metrics, "if")).toEqual([]);
    expect(value(metricsAuth!, "proxy_pass")).toBe("http://docker-registry/v2/");
    expect(value(metricsAuth!, "proxy_method")).toBe("GET");
    expect(value(metricsAuth!, "proxy_pass_request_body")).toBe("off");
    expect(all(metricsAuth!, "internal")).toHaveLength(1);
  });

  test("serves the file only to admins with access control: the decision picks the file after the login check, others get 403 DENIED (issue 20)", () => {
    // GIVEN the proxy's login check with access control
    const text = renderNginxConf({
      serverNames: ["store.example.test"],
      listenPort: 8443,
      upstream: { socketPath: "/run/registry-stack/registry.sock" },
      tls: { certificatePath: "/c.crt", keyPath: "/c.key" },
      authCache: { ...AUTH_CACHE, access: { modulePath: "/etc/registry-stack/registry-access.js", anonymousPull: false, refusalListenPort: 8083, publicPort: 5000 } },
      metricsFile: "/run/registry-stack-maintenance/metrics.prom",
      tuning: DEFAULT_PROXY_TUNING,
    });
    // WHEN
    const http = blockOf(parseNginxConf(text), "http");
    const server = all(http, "server").filter((d) => d.block)[0].block!;
    const location = (args: string) => all(server, "location").find((d) => d.args.join(" ") === args)?.block;
    const metrics = location("= /metrics")!;
    // THEN the login check runs first (auth_request), then try_files reads the decision
    expect(value(metrics, "auth_request")).toBe("/_registry_auth");
    expect(all(metrics, "alias")).toEqual([]);
    expect(value(metrics, "root")).toBe("/run/registry-stack-maintenance");
    expect(value(metrics, "try_files")).toBe("$registry_metrics_file @registry_metrics_denied");
    expect(all(http, "js_set").map((d) => d.args.join(" "))).toContain("$registry_metrics_access registry_access.metrics");
    expect(all(http, "map").find((d) => d.args.join(" ") === "$registry_metrics_access $registry_metrics_file")!.block).toEqual([
      { name: "allow", args: ["/metrics.prom"] },
      { name: "default", args: [""] },
    ]);
    const denied = location("@registry_metrics_denied")!;
    const [status, body] = one(denied, "return").args;
    expect(status).toBe("403");
    expect(JSON.parse(body).errors[0]).toMatchObject({ code: "DENIED", detail: "metrics are for users with the admin role" });
  });

  test("has no /metrics without the option", () => {
    expect(renderNginxConf({ serverNames: ["a"], listenPort: 1, upstream: { socketPath: "/s" }, tuning: DEFAULT_PROXY_TUNING })).not.toMatch(/metrics/);
  });
});
