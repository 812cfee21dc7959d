import "cdktf/lib/testing/adapters/jest";
import { Container } from "@cdktf/provider-docker/lib/container";
import { Image } from "@cdktf/provider-docker/lib/image";
import { Network } from "@cdktf/provider-docker/lib/network";
import { Volume } from "@cdktf/provider-docker/lib/volume";
import { Testing } from "cdktf";
import { Construct } from "constructs";
import * as fs from "fs";
import { parse } from "yaml";
import { REGISTRY_GID, REGISTRY_UID } from "../../constructs/container-defaults";
import { Registry, RegistryProps } from "../../constructs/registry";
import { MaterialStore } from "../../material/material-store";
import { tempDirectory } from "../fixtures/test-stack";

const HASH = "$2b$10$abcdefghijklmnopqrstuuBxHcWYQ6JZsBTZL6iEK/Xy1QySrwm7y";

function registryContainer(json: { resource: { docker_container: Record<string, Record<string, unknown>> } }): Record<string, unknown> {
  // Behind a proxy the name carries the instance's generation: r-registry-<10 hex>.
  return Object.values(json.resource.docker_container).find((c) => /^r-registry(-[0-9a-f]{10})?$/.test(String(c.name)))!;
}

function registry(scope: Construct, store: MaterialStore, overrides: Partial<RegistryProps> = {}): Registry {
  return new Registry(scope, "registry", {
    containerName: "r-registry",
    image: new Image(scope, "image", { name: "registry:3.1.1" }),
    httpSecret: "s".repeat(64),
    users: [{ name: "alice", hash: HASH }],
    deleteEnabled: false,
    logLevel: "info",
    storage: { volumeName: "r-data", preventDestroy: true },
    endpoint: { networks: [new Network(scope, "net", { name: "r-edge" })] },
    secretFiles: store,
    restartPolicy: "unless-stopped",
    stopGraceSeconds: 120,
    memoryMb: 1024,
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
    expect(synthesized).not.toHaveResourceWithProperties(Volume, { name: "r-data" });
    expect(synthesized).toHaveResourceWithProperties(Container, { networks_advanced: [{ name: "${docker_network.net.name}", aliases: ["other"] }] });
  });

  test("listens on a unix socket in the shared volume and has no network behind a proxy", () => {
    const store = new MaterialStore(tempDirectory());
    const synthesized = Testing.synthScope((scope) => {
      const sockets = new Volume(scope, "sockets", { name: "r-sockets" });
      registry(scope, store, { endpoint: { socketVolume: sockets, socketName: "registry.sock" } });
    });
    const config = parse(fs.readFileSync(store.path("r-registry.config.yml"), "utf8"));
    const container = registryContainer(JSON.parse(synthesized));
    const generation = /^r-registry-([0-9a-f]{10})$/.exec(String(container.name))![1];
    const socket = `/run/registry-stack/registry-${generation}.sock`;
    expect(config.http).toMatchObject({ net: "unix", addr: socket, draintimeout: "120s" });
    expect(config.http.debug.addr).toBe("127.0.0.1:5001");
    expect(container.network_mode).toBe("none");
    expect(container).not.toHaveProperty("networks_advanced");
    expect(container).not.toHaveProperty("ports");
    expect(container.volumes).toContainEqual({ volume_name: "${docker_volume.sockets.name}", container_path: "/run/registry-stack" });
    expect(container.entrypoint).toEqual([
      "/bin/sh",
      "-c",
      `rm -f ${socket} && (for i in $(seq 200); do if [ -S ${socket} ]; then exec chmod 0666 ${socket}; fi; sleep 0.05; done) & exec registry serve /etc/registry-stack/config.yml`,
    ]);
    expect(container.labels).toEqual([
      { label: "registry-stack.service", value: "r-registry" },
      { label: "registry-stack.socket", value: `registry-${generation}.sock` },
      { label: "registry-stack.instance", value: "1" },
    ]);
    expect(container.healthcheck).toMatchObject({ test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:5001/debug/health"] });
  });

  test("runs several instances of one generation, each on its own socket, sharing config, storage and owner", () => {
    const json = JSON.parse(
      Testing.synthScope((scope) => {
        const sockets = new Volume(scope, "sockets", { name: "r-sockets" });
        registry(scope, new MaterialStore(tempDirectory()), { endpoint: { socketVolume: sockets, socketName: "registry.sock" }, instances: 3 });
      }),
    );
    const containers = Object.values(json.resource.docker_container as Record<string, Record<string, unknown>>).filter((c) => /^r-registry-[0-9a-f]{10}(-\d)?$/.test(String(c.name)));
    const first = registryContainer(json);
    const generation = /^r-registry-([0-9a-f]{10})$/.exec(String(first.name))![1];
    expect(containers.map((c) => c.name).sort()).toEqual([`r-registry-${generation}`, `r-registry-${generation}-2`, `r-registry-${generation}-3`]);
    for (const c of containers) {
      const number = /-(\d)$/.exec(String(c.name))?.[1] ?? "1";
      const socket = `/run/registry-stack/registry-${generation}${number === "1" ? "" : `-${number}`}.sock`;
      // config.yml names the first socket; each instance's environment names its own.
      expect(c.env).toEqual(["OTEL_TRACES_EXPORTER=none", `REGISTRY_HTTP_ADDR=${socket}`]);
      expect(c.entrypoint).toEqual(["/bin/sh", "-c", expect.stringContaining(`exec chmod 0666 ${socket};`)]);
      expect(c.labels).toContainEqual({ label: "registry-stack.instance", value: number });
      expect(c.volumes).toEqual(first.volumes);
      expect(c.depends_on).toEqual(first.depends_on);
      expect(c.lifecycle).toMatchObject({ create_before_destroy: true });
    }
    // One config volume and one owner run for the generation.
    expect(Object.values(json.resource.docker_container as Record<string, Record<string, unknown>>).filter((c) => String(c.name).endsWith("-volume-owner"))).toHaveLength(1);
  });

  test("fails when several instances are asked of a registry that publishes a port", () => {
    expect(() => Testing.synthScope((scope) => void registry(scope, new MaterialStore(tempDirectory()), { instances: 2 }))).toThrow(/several instances need a socket endpoint/);
  });

  test("behind a proxy, a new instance beside the old one at every change: name and socket from everything that replaces it", () => {
    const instance = (overrides: Partial<RegistryProps>) => {
      const json = JSON.parse(
        Testing.synthScope((scope) => {
          const sockets = new Volume(scope, "sockets", { name: "r-sockets" });
          registry(scope, new MaterialStore(tempDirectory()), { endpoint: { socketVolume: sockets, socketName: "registry.sock" }, ...overrides });
        }),
      );
      return registryContainer(json);
    };
    const base = instance({});
    expect(base.lifecycle).toMatchObject({ create_before_destroy: true });
    expect(instance({}).name).toBe(base.name);
    for (const change of [{ logLevel: "debug" as const }, { memoryMb: 512 }, { users: [{ name: "a", hash: `$2b$10$${"x".repeat(53)}` }] }, { deleteEnabled: true }, { instances: 2 }]) {
      expect(instance(change).name).not.toBe(base.name);
    }
    // Without a proxy (published port) the name stays and the container is replaced in place.
    const direct = registryContainer(JSON.parse(Testing.synthScope((scope) => void registry(scope, new MaterialStore(tempDirectory()), {}))));
    expect(direct.name).toBe("r-registry");
    expect(direct.lifecycle).not.toHaveProperty("create_before_destroy");
  });

  test("stops gracefully, is memory-bounded and ignores engine-default drift", () => {
    const json = JSON.parse(Testing.synthScope((scope) => void registry(scope, new MaterialStore(tempDirectory()), { stopGraceSeconds: 45, memoryMb: 300 })));
    const container = registryContainer(json);
    // memory_swap declared as the engine reports it (2 x memory), or every plan sets it back to null.
    expect(container).toMatchObject({ destroy_grace_seconds: 45, memory: 300, memory_swap: 600, lifecycle: { ignore_changes: ["ulimit"] } });
  });

  test("runs as REGISTRY_USER after a one-shot root container gave it the data, socket directory and config files", () => {
    const json = JSON.parse(
      Testing.synthScope((scope) => {
        const sockets = new Volume(scope, "sockets", { name: "r-sockets" });
        registry(scope, new MaterialStore(tempDirectory()), { endpoint: { socketVolume: sockets, socketName: "registry.sock" } });
      }),
    );
    const container = registryContainer(json);
    expect(container.user).toBe(`${REGISTRY_UID}:${REGISTRY_GID}`);
    expect(REGISTRY_UID).not.toBe(0);
    const [ownerKey, owner] = Object.entries(json.resource.docker_container as Record<string, Record<string, unknown>>).find(([, c]) => c.name === `${container.name}-volume-owner`)!;
    expect(container.depends_on).toContain(`docker_container.${ownerKey}`);
    expect(owner).toMatchObject({
      user: "0:0",
      attach: true,
      must_run: false,
      restart: "no",
      network_mode: "none",
      read_only: true,
      capabilities: { drop: ["ALL"], add: ["CAP_CHOWN", "CAP_DAC_READ_SEARCH"] },
      security_opts: ["no-new-privileges:true"],
      lifecycle: { postcondition: [{ condition: "${self.exit_code == 0}" }] },
    });
    // The same volumes at the same paths, all writable here; the config volume too (its secret files are 0600 root).
    const configVolume = (container.volumes as Array<Record<string, unknown>>).find((v) => v.container_path === "/etc/registry-stack")!;
    expect(owner.volumes).toEqual([
      { volume_name: "${docker_volume.registry_data_B845E19E.name}", container_path: "/var/lib/registry", read_only: false },
      { volume_name: "${docker_volume.sockets.name}", container_path: "/run/registry-stack", read_only: false },
      { volume_name: configVolume.volume_name, container_path: "/etc/registry-stack", read_only: false },
    ]);
    const script = (owner.entrypoint as string[])[2];
    expect(owner.entrypoint).toEqual(["/bin/sh", "-c", script]);
    expect(script).toContain(`owner=${REGISTRY_UID}:${REGISTRY_GID}`);
    expect(script).toContain('\nown_store /var/lib/registry "docker"\nown_store /run/registry-stack ""\n');
    // Re-uploaded by a re-created seeder into the same volume: changed in full at every run.
    expect(script).toContain("for dir in /etc/registry-stack; do\n  chown -R -h \"$owner\" \"$dir\"");
    // The seeder's files must be in the config volume before they are chowned.
    expect(owner.depends_on).toEqual([expect.stringMatching(/^docker_container\.registry_config_seeder_/)]);
  });

  test("prepares a host folder the same way when the data is one", () => {
    const json = JSON.parse(Testing.synthScope((scope) => void registry(scope, new MaterialStore(tempDirectory()), { storage: { hostPath: "/srv/registry" } })));
    const owner = Object.values(json.resource.docker_container as Record<string, Record<string, unknown>>).find((c) => c.name === "r-registry-volume-owner")!;
    expect(owner.volumes).toContainEqual({ host_path: "/srv/registry", container_path: "/var/lib/registry", read_only: false });
  });
});
