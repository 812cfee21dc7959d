import "cdktf/lib/testing/adapters/jest";
import { Container } from "@cdktf/provider-docker/lib/container";
import { Image } from "@cdktf/provider-docker/lib/image";
import { Network } from "@cdktf/provider-docker/lib/network";
import { Testing } from "cdktf";
import { Construct } from "constructs";
import { NginxProxy, NginxProxyProps } from "../../constructs/nginx-proxy";
import { Registry } from "../../constructs/registry";
import { MaterialStore } from "../../material/material-store";
import { tempDirectory } from "../fixtures/test-stack";

interface UploadJson {
  file: string;
  content?: string;
  source?: string;
}

function proxyJson(overrides: (scope: Construct, registry: Registry) => Partial<NginxProxyProps> = () => ({})): { upload: UploadJson[]; labels: unknown[] } {
  const synthesized = Testing.synthScope((scope) => {
    const store = new MaterialStore(tempDirectory());
    const backend = new Network(scope, "backend", { name: "b", internal: true });
    const registry = new Registry(scope, "registry", {
      containerName: "r",
      alias: "upstream-alias",
      image: new Image(scope, "image", { name: "registry:3.0.0" }),
      httpSecret: "s",
      deleteEnabled: false,
      logLevel: "info",
      storage: { inMemory: true },
      networks: [backend],
      secretFiles: store,
      restartPolicy: "no",
    });
    new NginxProxy(scope, "proxy", {
      containerName: "p",
      image: "nginx:1.28.0-alpine",
      registry,
      backendNetwork: backend,
      edgeNetwork: new Network(scope, "edge", { name: "e" }),
      serverNames: ["store.example.test"],
      publish: { address: "127.0.0.1", port: 443 },
      secretFiles: store,
      restartPolicy: "no",
      ...overrides(scope, registry),
    });
  });
  expect(synthesized).toHaveResourceWithProperties(Container, { name: "p" });
  const json = JSON.parse(synthesized);
  return json.resource.docker_container[Object.keys(json.resource.docker_container).find((id) => id.startsWith("proxy_"))!];
}

describe("NginxProxy", () => {
  test("reads the upstream alias and port from the registry construct", () => {
    const conf = proxyJson().upload.find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content!;
    expect(conf).toContain("server upstream-alias:5000;");
    expect(conf).toContain("listen 8443;");
    expect(conf).toContain("listen 127.0.0.1:8081;");
  });

  test("uploads the certificate chain as content and the key by source", () => {
    const uploads = proxyJson(() => ({ tls: { certificateChainPem: "CHAIN", privateKeyPem: "KEY" } })).upload;
    expect(uploads.find((u) => u.file === "/etc/registry-stack/tls/server.crt")!.content).toBe("CHAIN");
    const key = uploads.find((u) => u.file === "/etc/registry-stack/tls/server.key")!;
    expect(key.content).toBeUndefined();
    expect(key.source).toMatch(/^assets\/.*\/p\.server\.key$/);
  });

  test("is replaced with the registry (label on its container id) and with the verifier when there is one", () => {
    expect(proxyJson().labels).toContainEqual({ label: "registry-stack.upstream-container", value: "${docker_container.registry_container_ADE921E6.id}" });
    const labels = proxyJson((_scope, registry) => ({ authVerifier: { registry, cacheSeconds: 30 } })).labels;
    expect(labels).toContainEqual({ label: "registry-stack.auth-container", value: "${docker_container.registry_container_ADE921E6.id}" });
  });
});
