import { renderNginxConf } from "../../../renderers/nginx/nginx-conf";
import { all, blockOf, flatten, one, parseNginxConf, value } from "../nginx-conf-parser";
import { AUTH_CACHE, input, render, headers, PORTABLE_DIRECTIVES, stripMapEntries } from "./fixtures";

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

    test("lists every instance of the registry and the verifier, and retries what found an instance gone on another", () => {
      const sockets = (name: string, n: number) => Array.from({ length: n }, (_, i) => ({ socketPath: `/run/registry-stack/${name}-${i + 1}.sock` }));
      const { http } = render({ upstream: sockets("registry", 2), authCache: { ...AUTH_CACHE, verifier: sockets("auth", 3) } });
      const upstreams = Object.fromEntries(all(http, "upstream").map((u) => [u.args[0], all(u.block!, "server").map((s) => s.args.join(" "))]));
      expect(upstreams["docker-registry"]).toEqual(["unix:/run/registry-stack/registry-1.sock", "unix:/run/registry-stack/registry-2.sock"]);
      expect(upstreams["registry-auth"]).toEqual(["unix:/run/registry-stack/auth-1.sock", "unix:/run/registry-stack/auth-2.sock", "unix:/run/registry-stack/auth-3.sock"]);
      // Retries only on errors before an answer, and 502/503; never `non_idempotent`: a POST or
      // PATCH that reached an instance is never sent again.
      expect(all(http, "proxy_next_upstream").map((d) => d.args)).toEqual([["error", "timeout", "http_502", "http_503"]]);
      expect(value(http, "proxy_next_upstream_tries")).toBe("3");
    });

    test("keeps nginx's own retry policy with a single instance", () => {
      const { http, text } = render({ upstream: { socketPath: "/run/registry-stack/registry.sock" }, authCache: AUTH_CACHE });
      expect(all(http, "upstream").map((u) => all(u.block!, "server").length)).toEqual([1, 1, 2]);
      // Only the login check's hop to the proxy's own limiter retries (see auth-cache.test.ts).
      expect(text.replace(/location = \/_registry_auth {[^}]*}/, "")).not.toMatch(/proxy_next_upstream/);
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
