import "cdktf/lib/testing/adapters/jest";
import { Container } from "@cdktf/provider-docker/lib/container";
import { Image } from "@cdktf/provider-docker/lib/image";
import { Network } from "@cdktf/provider-docker/lib/network";
import { Volume } from "@cdktf/provider-docker/lib/volume";
import { Testing } from "cdktf";
import { Construct } from "constructs";
import * as fs from "fs";
import { parse } from "yaml";
import { Registry, RegistryProps } from "../../constructs/registry";
import { MaterialStore } from "../../material/material-store";
import { tempDirectory } from "../fixtures/test-stack";

const HASH = "$2b$10$abcdefghijklmnopqrstuuBxHcWYQ6JZsBTZL6iEK/Xy1QySrwm7y";

function registry(scope: Construct, store: MaterialStore, overrides: Partial<RegistryProps> = {}): Registry {
  return new Registry(scope, "registry", {
    containerName: "r-registry",
    image: new Image(scope, "image", { name: "registry:3.0.0" }),
    httpSecret: "s".repeat(64),
    users: [{ name: "alice", hash: HASH }],
    deleteEnabled: false,
    logLevel: "info",
    storage: { volumeName: "r-data", preventDestroy: true },
    networks: [new Network(scope, "net", { name: "r-backend" })],
    secretFiles: store,
    restartPolicy: "unless-stopped",
    ...overrides,
  });
}

describe("Registry", () => {
  test("writes config.yml and htpasswd owner-only into the store and uploads them by source", () => {
    const store = new MaterialStore(tempDirectory());
    const synthesized = Testing.synthScope((scope) => void registry(scope, store));
    const config = parse(fs.readFileSync(store.path("r-registry.config.yml"), "utf8"));
    expect(config.auth.htpasswd).toEqual({ realm: "Registry", path: "/etc/registry-stack/htpasswd" });
    expect(config.storage.filesystem.rootdirectory).toBe("/var/lib/registry");
    expect(fs.readFileSync(store.path("r-registry.htpasswd"), "utf8")).toBe(`alice:${HASH}\n`);
    expect(fs.statSync(store.path("r-registry.htpasswd")).mode & 0o777).toBe(0o600);
    expect(synthesized).not.toContain(HASH);
    expect(synthesized).toHaveResourceWithProperties(Volume, { name: "r-data", lifecycle: { prevent_destroy: true } });
    expect(synthesized).toHaveResourceWithProperties(Container, { name: "r-registry", networks_advanced: [{ name: "${docker_network.net.name}", aliases: ["registry"] }] });
  });

  test("runs without auth and without storage as a credential-less in-memory instance", () => {
    const store = new MaterialStore(tempDirectory());
    const synthesized = Testing.synthScope((scope) => void registry(scope, store, { users: undefined, storage: { inMemory: true }, alias: "other" }));
    const config = parse(fs.readFileSync(store.path("r-registry.config.yml"), "utf8"));
    expect(config).not.toHaveProperty("auth");
    expect(config.storage.inmemory).toEqual({});
    expect(fs.existsSync(store.path("r-registry.htpasswd"))).toBe(false);
    expect(synthesized).not.toHaveResource(Volume);
    expect(synthesized).toHaveResourceWithProperties(Container, { networks_advanced: [{ name: "${docker_network.net.name}", aliases: ["other"] }] });
  });

  test("labels the container with a hash of its healthcheck, which changes with TLS", () => {
    const labelOf = (overrides: Partial<RegistryProps>) => {
      const json = JSON.parse(Testing.synthScope((scope) => void registry(scope, new MaterialStore(tempDirectory()), overrides)));
      const container = Object.values(json.resource.docker_container)[0] as { labels: Array<{ label: string; value: string }> };
      return container.labels.find((l) => l.label === "registry-stack.healthcheck")!.value;
    };
    const plain = labelOf({});
    expect(plain).toMatch(/^[0-9a-f]{16}$/);
    expect(labelOf({ tls: { certificateChainPem: "CERT", privateKeyPem: "KEY" } })).not.toBe(plain);
  });
});
