import { AUTH_CACHE, render } from "./fixtures";

describe("renderNginxConf: upstreams found through Docker's DNS (cluster mode)", () => {
  const registry = { serviceName: "registry-registry", port: 5000 };
  const verifier = { serviceName: "registry-auth", port: 5000 };

  test("resolves the registry per request: resolver 127.0.0.11 valid=5s and a variable in proxy_pass, no upstream block", () => {
    const { text, http } = render({ upstream: registry });
    expect(http.filter((d) => d.name === "resolver").map((d) => d.args)).toEqual([["127.0.0.11", "valid=5s", "ipv6=off"]]);
    expect(text).toMatch(/map \$host \$docker_registry_address \{\n\s+default registry-registry:5000;\n\s+\}/);
    expect(text).not.toContain("upstream docker-registry");
    expect(text).toContain("proxy_pass http://$docker_registry_address;");
  });

  test("resolves the verifier the same way, and the access decision names the registry's variable", () => {
    const { text } = render({
      upstream: registry,
      authCache: { ...AUTH_CACHE, verifier, access: { modulePath: "/etc/registry-stack/registry-access.js", anonymousPull: false, refusalListenPort: 8083, publicPort: 443 } },
    });
    expect(text).toContain("proxy_pass http://$registry_auth_address;");
    expect(text).not.toContain("upstream registry-auth");
    expect(text).toMatch(/map \$registry_access \$registry_upstream \{\n\s+allow \$docker_registry_address;\n\s+default registry-refusal;/);
  });

  test("without service names there is no resolver (single host unchanged)", () => {
    const { text, http } = render({ upstream: { socketPath: "/run/registry-stack/registry.sock" }, authCache: AUTH_CACHE });
    expect(http.some((d) => d.name === "resolver")).toBe(false);
    expect(text).toContain("upstream docker-registry {");
    expect(text).toContain("proxy_pass http://docker-registry;");
  });
});
