import "cdktf/lib/testing/adapters/jest";
import { Container } from "@cdktf/provider-docker/lib/container";
import { Image } from "@cdktf/provider-docker/lib/image";
import { Network } from "@cdktf/provider-docker/lib/network";
import { Volume } from "@cdktf/provider-docker/lib/volume";
import { Testing } from "cdktf";
import { createHash } from "crypto";
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
type ProxyJson = { uploads: UploadJson[]; labels: unknown[]; reloadCheck: Record<string, unknown>; seeder: Record<string, unknown>; registryName: string } & Record<string, unknown>;

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
  const seeder = byPrefix("proxy_config_seeder_");
  return { ...byPrefix("proxy_container_"), uploads: seeder.upload, seeder, reloadCheck: byPrefix("proxy_reload-check_"), registryName: byPrefix("registry_container_").name };
}

const ACCESS: AccessRules = { users: [{ name: "ci", role: "pull" }], deleteEnabled: false, anonymousPull: false, tokenSeconds: 60 };

describe("NginxProxy", () => {
  test("reads the upstream socket from the registry construct and mounts the socket volume read-only", () => {
    const proxy = proxyJson();
    const conf = proxy.uploads.find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content!;
    // The registry instance's own socket: upstream-<generation>.sock, the generation also in its name.
    const generation = /^r-([0-9a-f]{10})$/.exec(proxy.registryName)![1];
    expect(conf).toContain(`server unix:/run/registry-stack/upstream-${generation}.sock;`);
    expect(proxy.volumes).toEqual([
      { volume_name: "${docker_volume.sockets.name}", container_path: "/run/registry-stack", read_only: true },
      { volume_name: expect.stringMatching(/^\$\{docker_volume\.proxy_config_volume_[0-9A-F]{8}\.name\}$/), container_path: "/etc/registry-stack", read_only: true },
      { volume_name: expect.stringMatching(/^\$\{docker_volume\.proxy_status_[0-9A-F]{8}\.name\}$/), container_path: "/run/registry-stack-proxy" },
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
    // nginx reads them from the supervisor's verified copy, never from the volume being uploaded into.
    const conf = uploads.find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content!;
    expect(conf).toContain("ssl_certificate /tmp/registry-stack/served/tls/server.crt;");
    expect(conf).toContain("ssl_certificate_key /tmp/registry-stack/served/tls/server.key;");
    expect(conf).not.toContain("/etc/registry-stack");
  });

  test("fails the deploy quoting what a one-shot container printed", () => {
    const proxy = proxyJson();
    expect(proxy.reloadCheck.logs).toBe(true);
    expect((proxy.reloadCheck.lifecycle as { postcondition: unknown }).postcondition).toEqual([
      {
        condition: "${self.exit_code == 0}",
        error_message: 'the proxy p did not load its new configuration. It printed: ${self.container_logs == null ? "(not captured)" : trimspace(self.container_logs)}',
      },
    ]);
  });

  test("refers to no registry instance, so a new instance changes only the uploaded files (a reload)", () => {
    const proxy = proxyJson((_scope, registry) => ({ authVerifier: { registry, cacheSeconds: 30, verificationsPerMinute: 30, totalVerificationsPerMinute: 240, access: ACCESS } }));
    const { uploads, seeder, reloadCheck, registryName, ...container } = proxy;
    expect(registryName).toMatch(/^r-[0-9a-f]{10}$/);
    expect(JSON.stringify(container)).not.toMatch(/docker_container\.registry|r-[0-9a-f]{10}/);
    expect(seeder.depends_on).toContainEqual(expect.stringMatching(/^docker_container\.registry_container_/));
    expect(uploads.length).toBeGreaterThan(0);
    expect(reloadCheck.depends_on).toEqual(expect.arrayContaining([expect.stringMatching(/^docker_container\.proxy_container_/), expect.stringMatching(/^docker_container\.registry_container_/)]));
  });

  test("keeps its config in one volume, runs nginx under the reloading supervisor and names each configuration", () => {
    const proxy = proxyJson();
    const volumes = JSON.stringify(proxy.volumes);
    expect(volumes).toContain("proxy_config_volume_");
    expect((proxy.entrypoint as string[]).slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    expect((proxy.entrypoint as string[])[2]).toContain('kill -HUP "$nginx_pid"');
    const generation = proxy.uploads.find((u) => u.file === "/etc/registry-stack/generation")!.content!.split("\n")[0];
    expect(generation).toMatch(/^[0-9a-f]{12}$/);
    const conf = proxy.uploads.find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content!;
    // The marker lists every other file with its checksum (sha256sum -c format), nginx.conf included.
    const sums = proxy.uploads.find((u) => u.file === "/etc/registry-stack/generation")!.content!.split("\n").slice(1).filter(Boolean);
    expect(sums).toContain(`${createHash("sha256").update(conf).digest("hex")}  nginx.conf`);
    expect(sums.map((l) => l.split("  ")[1]).sort()).toEqual(proxy.uploads.map((u) => u.file.replace("/etc/registry-stack/", "")).filter((f) => f !== "generation").sort());
    expect(conf).toContain(`location = /registry-stack/generation {`);
    expect(conf).toContain(`return 200 "${generation}";`);
    expect((proxy.reloadCheck.entrypoint as string[])[2]).toContain(`= '${generation}'`);
    expect(proxy.reloadCheck).toMatchObject({ attach: true, must_run: false, network_mode: "none", lifecycle: { postcondition: [{ condition: "${self.exit_code == 0}" }] } });
    // Another configuration, another generation.
    const other = proxyJson(() => ({ serverNames: ["other.example.test"] }));
    expect(other.uploads.find((u) => u.file === "/etc/registry-stack/generation")!.content!.split("\n")[0]).not.toBe(generation);
  });

  test("keys cached logins on the users and rules in force, so a change asks the verifier again", () => {
    const keyOf = (access: AccessRules) => {
      const proxy = proxyJson((_scope, registry) => ({ authVerifier: { registry, cacheSeconds: 30, verificationsPerMinute: 30, totalVerificationsPerMinute: 240, access } }));
      return /proxy_cache_key "([0-9a-f]{12}):\$registry_login";/.exec(proxy.uploads.find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content!)![1];
    };
    expect(keyOf(ACCESS)).not.toBe(keyOf({ ...ACCESS, users: [{ name: "ci", role: "push" }] }));
  });

  test("uploads the access module as content, so a role change shows in the diff", () => {
    const withRoles = (access: AccessRules) => proxyJson((_scope, registry) => ({ authVerifier: { registry, cacheSeconds: 30, verificationsPerMinute: 30, totalVerificationsPerMinute: 240, access } }));
    const module = withRoles(ACCESS).uploads.find((u) => u.file === "/etc/registry-stack/registry-access.js")!;
    expect(module.content).toContain('"role": "pull"');
    expect(module.permissions).toBe("0644");
    const conf = withRoles(ACCESS).uploads.find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content!;
    expect(conf).toContain("js_import registry_access from /tmp/registry-stack/served/registry-access.js;");
    const changed = withRoles({ ...ACCESS, users: [{ name: "ci", role: "push" }] }).uploads.find((u) => u.file === "/etc/registry-stack/registry-access.js")!;
    expect(changed.content).not.toBe(module.content);
    expect(proxyJson().uploads.map((u) => u.file)).not.toContain("/etc/registry-stack/registry-access.js");
  });

  test("stops gracefully with SIGQUIT within the grace period and is memory-bounded", () => {
    expect(proxyJson()).toMatchObject({ stop_signal: "SIGQUIT", destroy_grace_seconds: 90, memory: 256, memory_swap: 512, lifecycle: { ignore_changes: ["ulimit"] } });
  });
});
