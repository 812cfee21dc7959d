import { NginxConfInput } from "../../../renderers/nginx/nginx-conf";
import { Directive, all, blockOf, flatten, one, value } from "../nginx-conf-parser";
import { AUTH_CACHE, PORTABLE_DIRECTIVES, render, stripMapEntries } from "./fixtures";

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
      "proxy_cache_lock", "proxy_cache_lock_timeout", "proxy_cache_use_stale", "limit_req_zone", "limit_req", "limit_req_status", "limit_req_log_level", "rewrite", "text/html", "text/css", "text/javascript", "application/json"]);
    expect([...names].filter((n) => !known.has(n))).toEqual([]);
  });
});
