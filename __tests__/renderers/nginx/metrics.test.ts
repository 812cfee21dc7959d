import { DEFAULT_PROXY_TUNING, renderNginxConf } from "../../../renderers/nginx/nginx-conf";
import { Directive, all, blockOf, one, parseNginxConf, value } from "../nginx-conf-parser";
import { AUTH_CACHE } from "./fixtures";

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
