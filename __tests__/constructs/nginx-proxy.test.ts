import "cdktf/lib/testing/adapters/jest";
import { Container } from "@cdktf/provider-docker/lib/container";
import { Image } from "@cdktf/provider-docker/lib/image";
import { Network } from "@cdktf/provider-docker/lib/network";
import { Volume } from "@cdktf/provider-docker/lib/volume";
import { Testing } from "cdktf";
import { Construct } from "constructs";
import { NginxProxy, NginxProxyProps } from "../../constructs/nginx-proxy";
import { Registry } from "../../constructs/registry";
import { MaterialStore } from "../../material/material-store";
import { AccessRules } from "../../renderers/access-module";
import { tempDirectory } from "../fixtures/test-stack";

interface UploadJson {
  file: string;
  content?: string;
  permissions?: string;
  source?: string;
}

/** The proxy container, with the files its config-volume seeder uploads for it. */
type ProxyJson = { uploads: UploadJson[]; labels: unknown[] } & Record<string, unknown>;

function proxyJson(overrides: (scope: Construct, registry: Registry) => Partial<NginxProxyProps> = () => ({})): ProxyJson {
  const synthesized = Testing.synthScope((scope) => {
    const store = new MaterialStore(tempDirectory());
    const sockets = new Volume(scope, "sockets", { name: "r-sockets" });
    const registry = new Registry(scope, "registry", {
      containerName: "r",
      image: new Image(scope, "image", { name: "registry:3.1.1" }),
      httpSecret: "s",
      deleteEnabled: false,
      logLevel: "info",
      storage: { inMemory: true },
      endpoint: { socketVolume: sockets, socketName: "upstream.sock" },
      secretFiles: store,
      restartPolicy: "no",
      stopGraceSeconds: 120,
      memoryMb: 128,
    });
    new NginxProxy(scope, "proxy", {
      containerName: "p",
      image: "nginx:1.28.2-alpine",
      registry,
      socketVolume: sockets,
      edgeNetwork: new Network(scope, "edge", { name: "e" }),
      serverNames: ["store.example.test"],
      publish: { address: "127.0.0.1", port: 443 },
      secretFiles: store,
      restartPolicy: "no",
      stopGraceSeconds: 90,
      memoryMb: 256,
      ...overrides(scope, registry),
    });
  });
  expect(synthesized).toHaveResourceWithProperties(Container, { name: "p" });
  const json = JSON.parse(synthesized);
  const byPrefix = (prefix: string) => json.resource.docker_container[Object.keys(json.resource.docker_container).find((id) => id.startsWith(prefix))!];
  return { ...byPrefix("proxy_container_"), uploads: byPrefix("proxy_config_seeder_").upload };
}

const ACCESS: AccessRules = { users: [{ name: "ci", role: "pull" }], deleteEnabled: false, anonymousPull: false, tokenSeconds: 60 };

describe("NginxProxy", () => {
  test("reads the upstream socket from the registry construct and mounts the socket volume read-only", () => {
    const proxy = proxyJson();
    const conf = proxy.uploads.find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content!;
    expect(conf).toContain("server unix:/run/registry-stack/upstream.sock;");
    expect(proxy.volumes).toEqual([
      { volume_name: "${docker_volume.sockets.name}", container_path: "/run/registry-stack", read_only: true },
      { volume_name: expect.stringMatching(/^\$\{docker_volume\.proxy_config_volume_[0-9A-F]{8}\.name\}$/), container_path: "/etc/registry-stack", read_only: true },
    ]);
    expect(proxy.networks_advanced).toEqual([{ name: "${docker_network.edge.name}" }]);
    expect(conf).toContain("listen 8443;");
    expect(conf).toContain("listen 127.0.0.1:8081;");
  });

  test("uploads the certificate chain as content and the key by source", () => {
    const uploads = proxyJson(() => ({ tls: { certificateChainPem: "CHAIN", privateKeyPem: "KEY" } })).uploads;
    expect(uploads.find((u) => u.file === "/etc/registry-stack/tls/server.crt")!.content).toBe("CHAIN");
    const key = uploads.find((u) => u.file === "/etc/registry-stack/tls/server.key")!;
    expect(key.content).toBeUndefined();
    expect(key.source).toMatch(/^assets\/.*\/p\.server\.key$/);
  });

  test("is replaced with the verifier (emptying the login cache) but not with the registry", () => {
    expect(JSON.stringify(proxyJson().labels)).not.toContain("docker_container.registry");
    const labels = proxyJson((_scope, registry) => ({ authVerifier: { registry, cacheSeconds: 30, verificationsPerMinute: 30, access: ACCESS } })).labels;
    expect(labels).toContainEqual({ label: "registry-stack.auth-container", value: "${docker_container.registry_container_ADE921E6.id}" });
  });

  test("uploads the access module as content, so a role change replaces the proxy and shows in the diff", () => {
    const withRoles = (access: AccessRules) => proxyJson((_scope, registry) => ({ authVerifier: { registry, cacheSeconds: 30, verificationsPerMinute: 30, access } }));
    const module = withRoles(ACCESS).uploads.find((u) => u.file === "/etc/registry-stack/registry-access.js")!;
    expect(module.content).toContain('"role": "pull"');
    expect(module.permissions).toBe("0644");
    const conf = withRoles(ACCESS).uploads.find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content!;
    expect(conf).toContain("js_import registry_access from /etc/registry-stack/registry-access.js;");
    const changed = withRoles({ ...ACCESS, users: [{ name: "ci", role: "push" }] }).uploads.find((u) => u.file === "/etc/registry-stack/registry-access.js")!;
    expect(changed.content).not.toBe(module.content);
    expect(proxyJson().uploads.map((u) => u.file)).not.toContain("/etc/registry-stack/registry-access.js");
  });

  test("stops gracefully with SIGQUIT within the grace period and is memory-bounded", () => {
    expect(proxyJson()).toMatchObject({ stop_signal: "SIGQUIT", destroy_grace_seconds: 90, memory: 256, memory_swap: 512, lifecycle: { ignore_changes: ["ulimit"] } });
  });
});
