import "cdktf/lib/testing/adapters/jest";
import { MIRROR_PROBE, mirrorHealthCommand, renderMirrorSupervisor } from "../../renderers/mirror-supervisor";
import { terraformLiteral } from "../../constructs/container-defaults";
import { Container } from "@cdktf/provider-docker/lib/container";
import { Volume } from "@cdktf/provider-docker/lib/volume";
import { File } from "@cdktf/provider-local/lib/file";
import { Testing } from "cdktf";
import * as fs from "fs";
import * as path from "path";
import { Tls } from "../../config/registry-stack-props";
import { MAINTENANCE_SCRIPT } from "../../renderers/maintenance-settings";
import { ConfigError } from "../../config/config-error";
import * as YAML from "yaml";
import { issueTestCertificate } from "../fixtures/test-pki";
import { buildStack, resourceOf, synthJson, tempDirectory, TEST_CLIENT_DIRECTORY, uploadsOf } from "../fixtures/test-stack";

const THREE_USERS = {
  hostnames: ["store.example.test"],
  ipAddresses: ["192.0.2.10"],
  publicPort: 443,
  users: [{ name: "alice", password: "alice-password-1" }, { name: "bob", password: "bob-password-22" }, { name: "ci-bot" }],
};

const SECRET_PATTERNS = [/PRIVATE KEY/, /\$2[aby]\$\d\d\$/, /alice-password-1/, /bob-password-22/];

describe("RegistryStack, proxy + self-signed TLS (default topology)", () => {
  const stack = buildStack(THREE_USERS);
  const synthesized = Testing.synth(stack);
  const json = synthJson(stack);

  test("gives the registry and the verifier no network and no port: only the proxy reaches their sockets", () => {
    expect(json.resource.docker_network).toEqual({ "edge-network": { name: "registry-edge" } });
    expect(synthesized).toHaveResourceWithProperties(Volume, { name: "registry-sockets" });
    for (const id of ["registry_container", "auth-verifier_container"]) {
      const container = resourceOf(json, "docker_container", id);
      expect(container.network_mode).toBe("none");
      expect(container.networks_advanced).toBeUndefined();
      expect(container.ports).toBeUndefined();
      expect(container.privileged).toBeUndefined();
      expect(container.volumes).toContainEqual({ volume_name: "${docker_volume.socket-volume.name}", container_path: "/run/registry-stack" });
    }
  });

  test("runs the registry with its generated config, OTEL off, a healthcheck, limits and the data volume", () => {
    const registry = resourceOf(json, "docker_container", "registry_container");
    const socket = `/run/registry-stack/${String(registry.name).replace(/^registry-registry-/, "registry-")}.sock`;
    expect(synthesized).toHaveResourceWithProperties(Container, {
      name: expect.stringMatching(/^registry-registry-[0-9a-f]{10}$/),
      entrypoint: ["/bin/sh", "-c", `rm -f ${socket} && (for i in $(seq 200); do if [ -S ${socket} ]; then exec chmod 0666 ${socket}; fi; sleep 0.05; done) & exec registry serve /etc/registry-stack/config.yml`],
      env: ["OTEL_TRACES_EXPORTER=none", `REGISTRY_HTTP_ADDR=${socket}`],
      restart: "unless-stopped",
      volumes: [
        { volume_name: expect.stringMatching(/^\$\{docker_volume\.registry_data_[0-9A-F]{8}\.name\}$/), container_path: "/var/lib/registry" },
        { volume_name: "${docker_volume.socket-volume.name}", container_path: "/run/registry-stack" },
        { volume_name: expect.stringMatching(/^\$\{docker_volume\.registry_config_volume_[0-9A-F]{8}\.name\}$/), container_path: "/etc/registry-stack", read_only: true },
      ],
      read_only: true,
      tmpfs: { "/tmp": "rw,noexec,nosuid,nodev,size=64m" },
      capabilities: { drop: ["ALL"] },
      security_opts: ["no-new-privileges:true"],
      memory: 1024,
      memory_swap: 2048,
      destroy_grace_seconds: 120,
      lifecycle: { ignore_changes: ["ulimit"], create_before_destroy: true },
    });
    expect((registry.healthcheck as { test: string[] }).test).toEqual(["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:5001/debug/health"]);
    expect(resourceOf(json, "docker_container", "auth-verifier_container").memory).toBe(128);
  });

  test("puts every user's role and repositories into the proxy's access module; a role change only reloads the proxy", () => {
    const upload = (j: ReturnType<typeof synthJson>, file: string) => uploadsOf(j, "proxy").find((u) => u.file === file)!.content!;
    const module = upload(json, "/etc/registry-stack/registry-access.js");
    const rules = JSON.parse(/^var RULES = ([\s\S]*?);\n/m.exec(module)![1]);
    expect(rules).toEqual({
      users: { alice: { role: "push", repositories: null }, bob: { role: "push", repositories: null }, "ci-bot": { role: "push", repositories: null } },
      deleteEnabled: false,
      anonymousPull: false,
      tokenSeconds: 60,
    });
    // GIVEN the same material folder, WHEN ci-bot becomes a scoped pull user
    const material = tempDirectory();
    const before = synthJson(buildStack({ ...THREE_USERS, materialDirectory: material }));
    const changed = synthJson(
      buildStack({ ...THREE_USERS, materialDirectory: material, users: [...THREE_USERS.users.slice(0, 2), { name: "ci-bot", role: "pull", repositories: ["ci/*"] }] }),
    );
    // THEN the access module differs, and nginx.conf only in its generation and login-cache key
    // (cached logins ask the verifier again); the proxy container and the registries stay
    expect(JSON.parse(/^var RULES = ([\s\S]*?);\n/m.exec(upload(changed, "/etc/registry-stack/registry-access.js"))![1]).users["ci-bot"]).toEqual({ role: "pull", repositories: ["ci/*"] });
    const anonymized = (j: ReturnType<typeof synthJson>) =>
      upload(j, "/etc/registry-stack/nginx.conf").replace(/proxy_cache_key "[0-9a-f]{12}:/, "proxy_cache_key \"KEY:").replace(/return 200 "[0-9a-f]{12}";/, 'return 200 "GEN";');
    expect(anonymized(changed)).toBe(anonymized(before));
    expect(upload(changed, "/etc/registry-stack/nginx.conf")).not.toBe(upload(before, "/etc/registry-stack/nginx.conf"));
    const configVolume = (j: ReturnType<typeof synthJson>) => resourceOf(j, "docker_volume", "proxy_config_volume").name;
    expect(configVolume(changed)).toBe(configVolume(before));
    for (const id of ["proxy_container", "registry_container", "auth-verifier_container"]) {
      expect(resourceOf(changed, "docker_container", id)).toEqual(resourceOf(before, "docker_container", id));
    }
  });

  test("declares what the engine reads back: CAP_-prefixed capabilities, memory_swap beside every memory limit", () => {
    const containers = Object.entries(json.resource.docker_container as Record<string, { capabilities?: { add?: string[]; drop?: string[] }; memory?: number; memory_swap?: number }>);
    expect(containers.length).toBeGreaterThan(3);
    for (const [id, c] of containers) {
      for (const cap of [...(c.capabilities?.add ?? []), ...(c.capabilities?.drop ?? [])]) expect(`${id}: ${cap}`).toMatch(/: (ALL|CAP_[A-Z_]+)$/);
      if (c.memory !== undefined) expect(`${id}: ${c.memory_swap}`).toBe(`${id}: ${2 * c.memory}`);
    }
    expect(containers.some(([, c]) => (c.capabilities?.add ?? []).includes("CAP_SETUID"))).toBe(true);
  });

  test("pins the provider versions the e2e suite deploys with", () => {
    expect(json.terraform.required_providers).toEqual({
      docker: { source: "kreuzwerker/docker", version: "4.6.0" },
      local: { source: "hashicorp/local", version: "2.9.0" },
    });
  });

  test("protects the data volume from destroy", () => {
    expect(synthesized).toHaveResourceWithProperties(Volume, { name: "registry-data", lifecycle: { prevent_destroy: true } });
  });

  test("uploads secret files by source and hash, never as content", () => {
        expect(uploadsOf(json, "registry").map((u) => u.file)).toEqual(["/etc/registry-stack/config.yml"]);
    expect(uploadsOf(json, "auth-verifier").map((u) => u.file)).toEqual(["/etc/registry-stack/config.yml", "/etc/registry-stack/htpasswd"]);
    const proxyKey = uploadsOf(json, "proxy").find((u) => u.file.endsWith(".key"));
    for (const upload of [...uploadsOf(json, "registry"), ...uploadsOf(json, "auth-verifier"), proxyKey!]) {
      expect(upload).toEqual({ file: upload.file, source: expect.stringMatching(/^assets\//), source_hash: expect.stringMatching(/^[0-9A-F]{32}$/), permissions: "0600" });
    }
  });

  test("passes the published port to the token realm and the login limit's burst and scope to nginx (issue 20)", () => {
    // GIVEN anonymous pull on port 5443 with a burst of 7 per address and user
    const tuned = synthJson(buildStack({ ...THREE_USERS, publicPort: 5443, anonymousPull: true, failedLoginsBurst: 7, failedLoginsScope: "address-and-user" }));
    // WHEN
    const conf = uploadsOf(tuned, "proxy").find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content;
    // THEN
    expect(conf).toContain('"store.example.test:5443" "https://store.example.test:5443/registry-stack/token";');
    expect(conf).toContain('"192.0.2.10:5443" "https://192.0.2.10:5443/registry-stack/token";');
    expect(conf).not.toContain("$http_x_forwarded_proto://");
    expect(conf).toContain("burst=7 nodelay;");
    expect(conf).toContain('proxy_set_header X-Registry-Client "$remote_addr $registry_login_user";');
    // and the defaults are unchanged: a burst of failedLoginsPerMinute, per client address
    const defaults = uploadsOf(json, "proxy").find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content;
    expect(defaults).toContain("limit_req zone=registry_logins burst=30 nodelay;");
    expect(defaults).toContain("proxy_set_header X-Registry-Client $remote_addr;");
  });

  test("verifies logins through the proxy's auth cache by default, kept in a tmpfs", () => {
    const proxy = resourceOf(json, "docker_container", "proxy_container");
    expect(proxy.tmpfs).toEqual({ "/tmp": "rw,noexec,nosuid,nodev,size=64m", "/tmp/nginx-auth-cache": "rw,noexec,nosuid,size=16m,mode=0700" });
    const conf = uploadsOf(json, "proxy").find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content;
    expect(conf).toContain("proxy_cache_valid 200 60s;");
  });

  test("publishes only the proxy, on the public port, on the edge network, stopping gracefully", () => {
    expect(synthesized).toHaveResourceWithProperties(Container, {
      name: "registry-proxy",
      ports: [{ internal: 8443, external: 443, ip: "0.0.0.0" }],
      networks_advanced: [{ name: "${docker_network.edge-network.name}" }],
      volumes: [
        { volume_name: "${docker_volume.socket-volume.name}", container_path: "/run/registry-stack", read_only: true },
        { volume_name: expect.stringMatching(/^\$\{docker_volume\.proxy_config_volume_[0-9A-F]{8}\.name\}$/), container_path: "/etc/registry-stack", read_only: true },
        { volume_name: expect.stringMatching(/^\$\{docker_volume\.proxy_status_[0-9A-F]{8}\.name\}$/), container_path: "/run/registry-stack-proxy" },
        // serveBlobsFromStorage (default with the auth cache): the registry's data, read-only, where the registry has it
        { volume_name: "${docker_volume.registry_data_B845E19E.name}", container_path: "/var/lib/registry", read_only: true },
      ],
      read_only: true,
      stop_signal: "SIGQUIT",
      destroy_grace_seconds: 120,
      memory: 256,
    });
  });

  test("does not replace the proxy when a registry instance is replaced: no reference to one", () => {
    const proxy = resourceOf(json, "docker_container", "proxy_container");
    expect(JSON.stringify(proxy)).not.toMatch(/docker_container\.(registry|auth-verifier)|registry-registry-|registry-auth-/);
  });

  test("proxies to the registry's socket with TLS on the listener", () => {
    const conf = uploadsOf(json, "proxy").find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content;
    const registry = resourceOf(json, "docker_container", "registry_container");
    expect(conf).toContain(`server unix:/run/registry-stack/${String(registry.name).replace(/^registry-registry-/, "registry-")}.sock;`);
    expect(conf).toContain("listen 8443 ssl;");
    expect(conf).toContain("server_name store.example.test 192.0.2.10;");
  });

  test("writes certs.d for every host:port (bare host too on 443) and claims no insecure registry in daemon.json", () => {
    for (const endpoint of ["store.example.test", "store.example.test:443", "192.0.2.10", "192.0.2.10:443"]) {
      expect(synthesized).toHaveResourceWithProperties(File, {
        filename: path.join(TEST_CLIENT_DIRECTORY, "certs.d", endpoint, "ca.crt"),
        content: expect.stringContaining("BEGIN CERTIFICATE"),
        file_permission: "0644",
      });
    }
    expect(resourceOf(json, "terraform_data", "client_daemon-json").input).toEqual({
      daemon_json: path.join(TEST_CLIENT_DIRECTORY, "daemon.json"),
      owner: "registry/client",
      insecure_registries: [],
    });
  });

  test("outputs the URL, login and curl commands and the client folder", () => {
    expect(json.output.registry_url.value).toBe("https://store.example.test");
    expect(json.output.docker_login_command.value).toBe("docker login store.example.test -u alice");
    expect(json.output.catalog_command.value).toBe(
      `curl --cacert ${TEST_CLIENT_DIRECTORY}/certs.d/store.example.test/ca.crt -u alice https://store.example.test/v2/_catalog`,
    );
    expect(json.output.tags_command.value).toContain("/v2/<name>/tags/list");
    expect(json.output.client_config_directory.value).toBe(TEST_CLIENT_DIRECTORY);
  });

  test("contains no password, bcrypt hash, private key or http.secret", () => {
    for (const pattern of SECRET_PATTERNS) expect(synthesized).not.toMatch(pattern);
    const secret = fs.readFileSync(path.join(stack.settings.materialDirectory, "http-secret"), "utf8").trim();
    expect(synthesized).not.toContain(secret);
  });

  test("matches the snapshot", () => {
    expect(synthesized).toMatchSnapshot();
  });
});

describe("RegistryStack, direct TLS (no proxy)", () => {
  const stack = buildStack({ ...THREE_USERS, proxy: false, publicPort: 5000, publishAddress: "127.0.0.1" });
  const synthesized = Testing.synth(stack);
  const json = synthJson(stack);

  test("publishes the registry itself with TLS material and no proxy container", () => {
    const registry = resourceOf(json, "docker_container", "registry_container");
    expect(registry.ports).toEqual([{ internal: 5000, external: 5000, ip: "127.0.0.1" }]);
    expect(Object.keys(json.resource.docker_container)).toEqual([
      expect.stringMatching(/^registry_config_seeder_/),
      expect.stringMatching(/^registry_container_/),
      expect.stringMatching(/^registry_volume-owner_container_/),
    ]);
    const files = uploadsOf(json, "registry").map((u) => u.file);
    expect(files).toEqual(["/etc/registry-stack/config.yml", "/etc/registry-stack/htpasswd", "/etc/registry-stack/tls/server.crt", "/etc/registry-stack/tls/server.key"]);
    expect((registry.healthcheck as { test: string[] }).test).toContain("http://127.0.0.1:5001/debug/health");
    expect(registry.networks_advanced).toEqual([{ name: "${docker_network.edge-network.name}", aliases: ["registry"] }]);
    expect(json.resource.docker_volume).not.toHaveProperty("socket-volume");
  });

  test("contains no secret", () => {
    for (const pattern of SECRET_PATTERNS) expect(synthesized).not.toMatch(pattern);
  });

  test("matches the snapshot", () => {
    expect(synthesized).toMatchSnapshot();
  });
});

describe("RegistryStack, plain HTTP lab mode", () => {
  const stack = buildStack({ tls: Tls.none(), users: [{ name: "lab", password: "lab-password" }], publishAddress: "127.0.0.1" });
  const synthesized = Testing.synth(stack);
  const json = synthJson(stack);

  test("lists every endpoint as an insecure registry and writes no CA", () => {
    const daemon = resourceOf(json, "terraform_data", "client_daemon-json");
    expect(daemon.input).toMatchObject({ insecure_registries: ["localhost:5000", "127.0.0.1:5000"] });
    expect(daemon.triggers_replace).toEqual(daemon.input);
    expect(json.resource.local_file).toBeUndefined();
    expect(json.output.registry_url.value).toBe("http://localhost:5000");
  });

  test("serves plain HTTP on the proxy", () => {
    const uploads = uploadsOf(json, "proxy");
    // nginx.conf, its generation, the access module and the web UI's files; no certificate or key.
    expect(uploads.map((u) => u.file).filter((f) => !f.startsWith("/etc/registry-stack/ui/")).sort()).toEqual([
      "/etc/registry-stack/generation",
      "/etc/registry-stack/nginx.conf",
      "/etc/registry-stack/registry-access.js",
    ]);
    const conf = uploads.find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content;
    expect(conf).toContain("listen 8443;");
    expect(conf).not.toContain("ssl_certificate");
  });

  test("matches the snapshot", () => {
    expect(synthesized).toMatchSnapshot();
  });
});

describe("RegistryStack with the proxy's auth cache", () => {
  const stack = buildStack({ ...THREE_USERS, authCacheSeconds: 120 });
  const synthesized = Testing.synth(stack);
  const json = synthJson(stack);
  
  test("gives the htpasswd file to a verifier registry with in-memory storage, not to the data registry", () => {
    expect(uploadsOf(json, "registry").map((u) => u.file)).toEqual(["/etc/registry-stack/config.yml"]);
    expect(uploadsOf(json, "auth-verifier").map((u) => u.file)).toEqual(["/etc/registry-stack/config.yml", "/etc/registry-stack/htpasswd"]);
    const verifier = resourceOf(json, "docker_container", "auth-verifier_container");
    expect(verifier.volumes).toEqual([
      { volume_name: "${docker_volume.socket-volume.name}", container_path: "/run/registry-stack" },
      { volume_name: expect.stringMatching(/^\$\{docker_volume\.auth-verifier_config_volume_/), container_path: "/etc/registry-stack", read_only: true },
    ]);
    expect(verifier.ports).toBeUndefined();
    expect(verifier.network_mode).toBe("none");
    expect(synthesized).toHaveResourceWithProperties(Container, { name: expect.stringMatching(/^registry-auth-[0-9a-f]{10}$/) });
  });

  test("makes nginx verify through the verifier, with cache keys that change with the users", () => {
    const conf = uploadsOf(json, "proxy").find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content;
    const verifier = String(resourceOf(json, "docker_container", "auth-verifier_container").name);
    expect(conf).toContain(`server unix:/run/registry-stack/${verifier.replace(/^registry-auth-/, "auth-")}.sock;`);
    expect(conf).toContain("rate=30r/m;");
    expect(conf).toContain("proxy_cache_valid 200 120s;");
    const key = (j: ReturnType<typeof synthJson>) => /proxy_cache_key "([0-9a-f]{12}):/.exec(uploadsOf(j, "proxy").find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content!)![1];
    const material = tempDirectory();
    const props = { ...THREE_USERS, authCacheSeconds: 120, materialDirectory: material };
    const before = synthJson(buildStack(props));
    expect(key(synthJson(buildStack(props)))).toBe(key(before));
    expect(key(synthJson(buildStack({ ...props, users: [{ name: "alice", password: "another-password-1" }, ...THREE_USERS.users.slice(1)] })))).not.toBe(key(before));
  });

  test("shares one image resource between both registries and leaks no secret", () => {
    expect(Object.keys(json.resource.docker_image).sort()).toEqual([expect.stringMatching(/^proxy_image_/), "registry-image"]);
    for (const pattern of SECRET_PATTERNS) expect(synthesized).not.toMatch(pattern);
  });

  test("can be turned off: the data registry then checks htpasswd itself", () => {
    const json = synthJson(buildStack({ ...THREE_USERS, authCacheSeconds: 0 }));
    expect(Object.keys(json.resource.docker_container).some((id) => id.startsWith("auth-verifier"))).toBe(false);
    const uploads = uploadsOf(json, "registry");
    expect(uploads.map((u) => u.file)).toEqual(["/etc/registry-stack/config.yml", "/etc/registry-stack/htpasswd"]);
    expect(resourceOf(json, "docker_container", "proxy_container").tmpfs).toEqual({ "/tmp": "rw,noexec,nosuid,nodev,size=64m" });
  });

  test("fails when asked for without the proxy", () => {
    expect(() => buildStack({ authCacheSeconds: 60, proxy: false })).toThrow(/authCacheSeconds: 60 needs proxy: true/);
  });
});

describe("RegistryStack web UI", () => {
  const uiUploads = (json: ReturnType<typeof synthJson>) => uploadsOf(json, "proxy").filter((u) => u.file.startsWith("/etc/registry-stack/ui/"));

  test("is served by the proxy by default: files uploaded as content, nginx routes /ui/", () => {
    const json = synthJson(buildStack({ deleteEnabled: true }));
    const uploads = uiUploads(json);
    expect(uploads.map((u) => u.file.replace("/etc/registry-stack/ui/", ""))).toEqual(
      expect.arrayContaining(["index.html", "style.css", "app.js", "access.js", "format.js", "registry-client.js", "settings.json"]),
    );
    expect(uploads.every((u) => u.permissions === "0644" && typeof u.content === "string" && u.source === undefined)).toBe(true);
    expect(JSON.parse(uploads.find((u) => u.file.endsWith("/settings.json"))!.content)).toEqual({ deleteEnabled: true, requestHeader: "X-Registry-UI" });
    const conf = uploadsOf(json, "proxy").find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content;
    expect(conf).toContain("location /ui/ {");
    expect(conf).toContain("alias /tmp/registry-stack/served/ui/;");
  });

  test("escapes the scripts' template literals, which Terraform would interpolate", () => {
    const app = uiUploads(synthJson(buildStack())).find((u) => u.file.endsWith("/app.js"))!.content;
    expect(app).toContain("$${");
    expect(app).not.toMatch(/(^|[^$])\$\{/);
  });

  test("can be turned off: no files, / and /ui/ answer 404", () => {
    const json = synthJson(buildStack({ ui: false }));
    expect(uiUploads(json)).toEqual([]);
    const conf = uploadsOf(json, "proxy").find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content;
    expect(conf).not.toContain("/ui/");
    expect(conf).not.toContain("x_registry_ui");
  });

  test("is off without the proxy, and asking for it there fails", () => {
    expect(buildStack({ proxy: false }).settings.ui).toBe(false);
    expect(() => buildStack({ proxy: false, ui: true })).toThrow(/ui: needs proxy: true \(the proxy serves the page\); remove it or enable the proxy/);
  });
});

describe("RegistryStack with retention", () => {
  const retention = { schedule: "04:15", writeSettleSeconds: 5, rules: [{ repositories: "^team/", keepNewest: 3, keepTags: ["^v[0-9]+$", "it's"] }] };
  const stack = buildStack({ ...THREE_USERS, retention });
  const json = synthJson(stack);
  const maintenance = resourceOf(json, "docker_container", "maintenance_container");
  const seeder = resourceOf(json, "docker_container", "maintenance_config_seeder");
  const uploads = seeder.upload as Array<Record<string, string>>;
  const fileOf = (c: Record<string, unknown>, file: string) => (c.upload as Array<Record<string, string>>).find((u) => u.file === file)!.content;

  test("runs the job in a container of the registry image, in the registry's network namespace, on the registry's data and its own state volume", () => {
    expect(maintenance.image).toBe("${docker_image.registry-image.image_id}");
    // The registry's namespace: loopback only (the registry has no network), for its debug server's metrics.
    expect(maintenance.network_mode).toMatch(/^container:\$\{docker_container\.registry_container_[0-9A-F]{8}\.id\}$/);
    expect(maintenance.entrypoint).toEqual(["/bin/sh", "/etc/registry-stack/maintenance.sh", "schedule"]);
    expect(maintenance.volumes).toEqual([
      { volume_name: "${docker_volume.registry_data_B845E19E.name}", container_path: "/var/lib/registry" },
      { volume_name: "${docker_volume.maintenance_state_69EC1C01.name}", container_path: "/var/lib/registry-stack-maintenance" },
      { volume_name: expect.stringMatching(/^\$\{docker_volume\.maintenance_config_volume_[0-9A-F]{8}\.name\}$/), container_path: "/etc/registry-stack", read_only: true },
    ]);
    expect(maintenance.read_only).toBe(true);
    expect(maintenance.user).toBe("65532:65532");
    const owner = resourceOf(json, "docker_container", "maintenance_volume-owner_container");
    expect(owner).toMatchObject({ name: "registry-maintenance-volume-owner", attach: true, must_run: false, user: "0:0" });
    expect(owner.volumes).toEqual([{ volume_name: "${docker_volume.maintenance_state_69EC1C01.name}", container_path: "/var/lib/registry-stack-maintenance", read_only: false }]);
    expect(maintenance.depends_on).toContainEqual(expect.stringMatching(/^docker_container\.maintenance_volume-owner_container_/));
    expect(maintenance.upload).toBeUndefined();
    expect(maintenance.capabilities).toEqual({ drop: ["ALL"] });
    expect(maintenance.destroy_grace_seconds).toBe(120);
    expect(uploads.map((u) => [u.file, u.permissions])).toEqual([
      ["/etc/registry-stack/maintenance.sh", "0755"],
      ["/etc/registry-stack/maintenance.env", "0644"],
      ["/etc/registry-stack/collector.yml", "0644"],
    ]);
  });

  test("uploads the job script as Terraform must read it: every ${ and %{ escaped", () => {
    const content = fileOf(seeder, "/etc/registry-stack/maintenance.sh");
    expect(content).not.toMatch(/(^|[^$])\$\{/);
    expect(content.replace(/\$\$\{/g, "${").replace(/%%\{/g, "%{")).toBe(MAINTENANCE_SCRIPT);
  });

  test("writes the rules and schedule for the job, quoted for sh", () => {
    const settings = fileOf(seeder, "/etc/registry-stack/maintenance.env");
    expect(settings).toContain("SCHEDULE='04:15'\n");
    expect(settings).toContain("SETTLE_SECONDS='5'\n");
    expect(settings).toContain("DRY_RUN='false'\n");
    expect(settings).toContain("RULE_1_KEEP_NEWEST='3'\n");
    expect(settings).toContain("REGISTRY_METRICS_URL='http://127.0.0.1:5001/metrics'\n");
    expect(settings).toContain("RULE_1_UNTAGGED_DAYS=''\n");
    expect(settings).toContain("RULE_1_KEEP_TAGS='^v[0-9]+$\nit'\\''s'\n");
    expect(fileOf(seeder, "/etc/registry-stack/collector.yml")).toContain("rootdirectory: /var/lib/registry");
  });

  test("turns the delete API on and the blob-descriptor cache off in the registry", () => {
    expect(stack.settings.deleteEnabled).toBe(true);
    const config = fs.readFileSync(path.join(stack.settings.materialDirectory, "registry-registry.config.yml"), "utf8");
    expect(config).toMatch(/delete:\n\s+enabled: true/);
    expect(config).not.toMatch(/blobdescriptor/);
  });

  test("lets the proxy see the write hold through the state volume, read-only", () => {
    const proxy = resourceOf(json, "docker_container", "proxy_container");
    expect(proxy.volumes).toContainEqual({ volume_name: "${docker_volume.maintenance_state_69EC1C01.name}", container_path: "/run/registry-stack-maintenance", read_only: true });
    expect(fileOf(resourceOf(json, "docker_container", "proxy_config_seeder"), "/etc/registry-stack/nginx.conf")).toContain("if (!-f /run/registry-stack-maintenance/write-hold)");
    // /metrics: the file, for admins only (the access decision picks it after the login check).
    const conf = fileOf(resourceOf(json, "docker_container", "proxy_config_seeder"), "/etc/registry-stack/nginx.conf");
    expect(conf).toContain("root /run/registry-stack-maintenance;");
    expect(conf).toContain("try_files $registry_metrics_file @registry_metrics_denied;");
  });

  test("declares nothing of it without retention, and keeps the cache", () => {
    const plain = buildStack(THREE_USERS);
    const plainJson = synthJson(plain);
    expect(Object.keys(plainJson.resource.docker_container).some((id) => id.startsWith("maintenance"))).toBe(false);
    expect(plain.settings.deleteEnabled).toBe(false);
    expect(fs.readFileSync(path.join(plain.settings.materialDirectory, "registry-registry.config.yml"), "utf8")).toMatch(/blobdescriptor: inmemory/);
  });
});

describe("RegistryStack registry instances", () => {
  const serviceInstances = (j: ReturnType<typeof synthJson>, service: string) =>
    Object.values(j.resource.docker_container as Record<string, Record<string, unknown>>).filter((c) => (c.labels as Array<{ label: string; value: string }> | undefined)?.some((l) => l.label === "registry-stack.service" && l.value === service));
  const socketsOf = (containers: Array<Record<string, unknown>>) =>
    containers.map((c) => `/run/registry-stack/${(c.labels as Array<{ label: string; value: string }>).find((l) => l.label === "registry-stack.socket")!.value}`).sort();
  const nginxConf = (j: ReturnType<typeof synthJson>) => uploadsOf(j, "proxy").find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content!;
  const upstreamServers = (conf: string, name: string) => [...new RegExp(`upstream ${name} \\{([^}]*)\\}`).exec(conf)![1].matchAll(/server unix:(\S+);/g)].map((m) => m[1]).sort();

  test("runs two registry and two verifier instances by default, each socket in the proxy's upstream, with retries", () => {
    const j = synthJson(buildStack(THREE_USERS));
    const conf = nginxConf(j);
    for (const [service, upstream] of [["registry-registry", "docker-registry"], ["registry-auth", "registry-auth"]]) {
      const instances = serviceInstances(j, service);
      expect(instances).toHaveLength(2);
      expect(new Set(socketsOf(instances)).size).toBe(2);
      expect(upstreamServers(conf, upstream)).toEqual(socketsOf(instances));
    }
    expect(conf).toContain("proxy_next_upstream error timeout http_502 http_503;");
    expect(conf).toContain("proxy_next_upstream_tries 2;");
    // The proxy waits for every instance before it loads a configuration pointing at them.
    const seeder = resourceOf(j, "docker_container", "proxy_config_seeder");
    const ids = Object.entries(j.resource.docker_container as Record<string, Record<string, unknown>>)
      .filter(([, c]) => serviceInstances(j, "registry-registry").includes(c) || serviceInstances(j, "registry-auth").includes(c))
      .map(([id]) => `docker_container.${id}`);
    expect(seeder.depends_on).toEqual(expect.arrayContaining(ids));
  });

  test("gives the verifier instances a low CPU weight and authVerifierCpus between them; the registry and the proxy keep the engine's defaults", () => {
    const j = synthJson(buildStack(THREE_USERS));
    expect(serviceInstances(j, "registry-auth").map((c) => [c.cpu_shares, c.cpus])).toEqual([
      [128, "0.5"],
      [128, "0.5"],
    ]);
    expect(serviceInstances(j, "registry-registry").map((c) => [c.cpu_shares, c.cpus])).toEqual([
      [undefined, undefined],
      [undefined, undefined],
    ]);
    const proxy = resourceOf(j, "docker_container", "proxy_container");
    expect([proxy.cpu_shares, proxy.cpus]).toEqual([undefined, undefined]);
    const threeCores = synthJson(buildStack({ ...THREE_USERS, authVerifierCpus: 3 }));
    expect(serviceInstances(threeCores, "registry-auth").map((c) => c.cpus)).toEqual(["1.5", "1.5"]);
    const one = synthJson(buildStack({ ...THREE_USERS, registryInstances: 1 }));
    expect(serviceInstances(one, "registry-auth").map((c) => c.cpus)).toEqual(["1.0"]);
  });

  test("runs one of each with registryInstances: 1, and without the proxy", () => {
    const single = synthJson(buildStack({ ...THREE_USERS, registryInstances: 1 }));
    expect(serviceInstances(single, "registry-registry")).toHaveLength(1);
    expect(serviceInstances(single, "registry-auth")).toHaveLength(1);
    expect(nginxConf(single)).not.toContain("proxy_next_upstream error timeout http_502 http_503;");
    const direct = buildStack({ ...THREE_USERS, proxy: false, users: [{ name: "alice", password: "alice-password-1" }] });
    expect(direct.settings.registryInstances).toBe(1);
    expect(Object.values(synthJson(direct).resource.docker_container as Record<string, Record<string, unknown>>).filter((c) => c.name === "registry-registry")).toHaveLength(1);
  });

  test("keeps the blob-descriptor cache only where no instance can delete behind another's back", () => {
    const cacheOf = (props: Record<string, unknown>) => {
      const stack = buildStack({ ...THREE_USERS, ...props });
      return /blobdescriptor: inmemory/.test(fs.readFileSync(path.join(stack.settings.materialDirectory, "registry-registry.config.yml"), "utf8"));
    };
    expect(cacheOf({})).toBe(true);
    expect(cacheOf({ deleteEnabled: true })).toBe(false);
    expect(cacheOf({ deleteEnabled: true, registryInstances: 1 })).toBe(true);
  });

  test("fails when several instances are asked without the proxy", () => {
    expect(() => buildStack({ ...THREE_USERS, proxy: false, registryInstances: 2 })).toThrow(/registryInstances: 2 needs proxy: true/);
  });
});

describe("RegistryStack options", () => {
  test("uses a host folder instead of a volume when asked, and lets the volume be destroyable", () => {
    const json = synthJson(buildStack({ storageHostPath: "/srv/registry" }));
    expect(Object.keys(json.resource.docker_volume)).toEqual([
      expect.stringMatching(/^auth-verifier_config_volume_/),
      expect.stringMatching(/^proxy_config_volume_/),
      expect.stringMatching(/^proxy_status_/),
      expect.stringMatching(/^registry_config_volume_/),
      "socket-volume",
    ]);
    expect(resourceOf(json, "docker_container", "registry_container").volumes).toEqual([
      { host_path: "/srv/registry", container_path: "/var/lib/registry" },
      { volume_name: "${docker_volume.socket-volume.name}", container_path: "/run/registry-stack" },
      { volume_name: expect.stringMatching(/^\$\{docker_volume\.registry_config_volume_/), container_path: "/etc/registry-stack", read_only: true },
    ]);
    expect(Testing.synth(buildStack({ preventVolumeDestroy: false }))).toHaveResourceWithProperties(Volume, { lifecycle: { prevent_destroy: false } });
  });

  test("configures a remote engine over ssh or tcp+tls", () => {
    expect(synthJson(buildStack({ dockerHost: "ssh://deploy@store.example.test", dockerSshOptions: ["-o", "StrictHostKeyChecking=yes"] })).provider.docker).toEqual([
      { host: "ssh://deploy@store.example.test", ssh_opts: ["-o", "StrictHostKeyChecking=yes"] },
    ]);
    expect(synthJson(buildStack({ dockerHost: "tcp://store.example.test:2376", dockerCertPath: "/etc/docker-client" })).provider.docker).toEqual([
      { host: "tcp://store.example.test:2376", cert_path: "/etc/docker-client" },
    ]);
    const projectDirectory = tempDirectory();
    expect(synthJson(buildStack({ projectDirectory, dockerHost: "tcp://store.example.test:2376", dockerCertPath: "certs/engine" })).provider.docker).toEqual([
      { host: "tcp://store.example.test:2376", cert_path: path.join(projectDirectory, "certs/engine") },
    ]);
  });

  test("publishes an HTTP redirect port on the proxy when asked", () => {
    const proxy = resourceOf(synthJson(buildStack({ httpRedirectPort: 8080 })), "docker_container", "proxy_container");
    expect(proxy.ports).toEqual([
      { internal: 8443, external: 5000, ip: "0.0.0.0" },
      { internal: 8080, external: 8080, ip: "0.0.0.0" },
    ]);
  });

  test("does not depend on an existing daemon.json (merged at apply, not at synth)", () => {
    const props = { clientConfigDirectory: tempDirectory(), materialDirectory: tempDirectory(), tls: Tls.none() };
    const before = Testing.synth(buildStack(props));
    fs.writeFileSync(path.join(props.clientConfigDirectory, "daemon.json"), JSON.stringify({ "log-driver": "journald", "insecure-registries": ["other:5000"] }));
    expect(Testing.synth(buildStack(props))).toBe(before);
  });
});

describe("RegistryStack determinism and idempotence", () => {
  test("two synths with the same inputs and material folder are byte-identical", () => {
    const materialDirectory = tempDirectory();
    const first = Testing.synth(buildStack({ ...THREE_USERS, materialDirectory }));
    const second = Testing.synth(buildStack({ ...THREE_USERS, materialDirectory }));
    expect(second).toBe(first);
  });

  test("changing one password makes a new verifier instance (htpasswd and socket) and leaves the registry", () => {
    const materialDirectory = tempDirectory();
    const before = synthJson(buildStack({ ...THREE_USERS, materialDirectory }));
    const users = [{ name: "alice", password: "a-new-password" }, ...THREE_USERS.users.slice(1)];
    const after = synthJson(buildStack({ ...THREE_USERS, users, materialDirectory }));
    const uploads = (json: typeof before) => uploadsOf(json, "auth-verifier");
    expect(uploads(after)[1].source_hash).not.toEqual(uploads(before)[1].source_hash);
    expect(resourceOf(after, "docker_container", "auth-verifier_container").name).not.toEqual(resourceOf(before, "docker_container", "auth-verifier_container").name);
    expect(resourceOf(after, "docker_container", "registry_container")).toEqual(resourceOf(before, "docker_container", "registry_container"));
    expect(resourceOf(after, "docker_container", "proxy_container")).toEqual(resourceOf(before, "docker_container", "proxy_container"));
  });
});

describe("RegistryStack on bad input", () => {
  test("fails when props are invalid, naming every field, and writes nothing", () => {
    const materialDirectory = path.join(tempDirectory(), "material");
    expect(() => buildStack({ materialDirectory, hostnames: ["store_01"], users: [{ name: "a:b" }] })).toThrow(ConfigError);
    expect(() => buildStack({ materialDirectory, hostnames: ["store_01"], users: [{ name: "a:b" }] })).toThrow(/hostnames\[0\][\s\S]*users\[0\]\.name/);
    expect(fs.existsSync(materialDirectory)).toBe(false);
  });

  test("fails when TLS files are missing, and writes nothing", () => {
    const materialDirectory = path.join(tempDirectory(), "material");
    const tls = Tls.fromFiles({ certificateFile: "/nonexistent/server.crt", keyFile: "/nonexistent/server.key", caFile: "/nonexistent/ca.crt" });
    expect(() => buildStack({ materialDirectory, tls })).toThrow(ConfigError);
    expect(() => buildStack({ materialDirectory, tls })).toThrow(/tls\.certificateFile "\/nonexistent\/server.crt"/);
    expect(fs.existsSync(materialDirectory)).toBe(false);
  });

  test("fails when an existing daemon.json is not JSON", () => {
    const clientDirectory = tempDirectory();
    fs.writeFileSync(path.join(clientDirectory, "daemon.json"), "{ not json");
    expect(() => buildStack({ clientConfigDirectory: clientDirectory })).toThrow(/daemon\.json/);
  });
});

describe("RegistryStack full synth", () => {
  test("copies secret files into the output with owner-only permissions and no secret in cdk.tf.json", () => {
    const outdir = Testing.fullSynth(buildStack(THREE_USERS));
    const stackDir = path.join(outdir, "stacks", "registry");
    const assets: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else assets.push(full);
      }
    };
    walk(path.join(stackDir, "assets"));
    expect(assets.map((a) => path.basename(a)).sort()).toEqual(["registry-auth.config.yml", "registry-auth.htpasswd", "registry-proxy.server.key", "registry-registry.config.yml"]);
    for (const asset of assets) expect({ asset, mode: fs.statSync(asset).mode & 0o777 }).toEqual({ asset, mode: 0o600 });
    const tfJson = fs.readFileSync(path.join(stackDir, "cdk.tf.json"), "utf8");
    for (const pattern of SECRET_PATTERNS) expect(tfJson).not.toMatch(pattern);
  });
});

describe("RegistryStack with mirrors", () => {
  const UPSTREAM_SECRET = "hub-upstream-secret-9";
  const materialDirectory = tempDirectory();
  const caFile = path.join(tempDirectory(), "upstream-ca.crt");
  fs.writeFileSync(
    caFile,
    issueTestCertificate({ commonName: "upstream CA", keyIndex: 0, isCa: true, notBefore: new Date("2026-01-01"), notAfter: new Date("2036-01-01") }).certPem,
  );
  const stack = buildStack({
    materialDirectory,
    hostnames: ["store.example.test"],
    ipAddresses: [],
    publicPort: 5000,
    users: [{ name: "alice", password: "alice-password-1" }],
    mirrors: [
      { name: "hub", upstream: "docker.io", port: 5001, username: "hubuser", password: UPSTREAM_SECRET, anonymousPull: true, ttl: "72h" },
      { name: "ghcr", upstream: "ghcr.io", port: 5002, upstreamCaFile: caFile, network: "upstream-net" },
    ],
  });
  const synthesized = Testing.synth(stack);
  const json = synthJson(stack);
  const container = (id: string) => resourceOf(json, "docker_container", `${id}_container`);
  const uploadsOfMirror = (id: string) => uploadsOf(json, id);

  test("runs each mirror as its own registry on a socket, with its own volume and only its egress network", () => {
    const hub = container("mirror-hub");
    expect(hub.name).toMatch(/^registry-mirror-hub-[0-9a-f]{10}$/);
    const socket = `/run/registry-stack/${String(hub.name).replace(/^registry-/, "")}.sock`;
    expect(hub.network_mode).toBeUndefined();
    expect(hub.networks_advanced).toEqual([{ name: "${docker_network.mirror-egress-network.name}" }]);
    expect(hub.ports).toBeUndefined();
    expect(hub.entrypoint).toEqual([
      "/bin/sh",
      "-c",
      // Terraform reads "$${" as a literal "${".
      terraformLiteral(renderMirrorSupervisor({
        proxyConfigPath: "/etc/registry-stack/config.yml",
        offlineConfigPath: "/etc/registry-stack/offline-config.yml",
        socketPath: socket,
        upstreamUrl: "https://registry-1.docker.io",
        ...MIRROR_PROBE,
        startTimeoutSeconds: 20,
      })),
    ]);
    expect(hub.healthcheck).toMatchObject({ test: ["CMD-SHELL", mirrorHealthCommand(socket, 5001)] });
    expect(hub.capabilities).toEqual({ drop: ["ALL"] });
    expect(synthesized).toHaveResourceWithProperties(Volume, { name: "registry-mirror-hub-data", lifecycle: { prevent_destroy: false } });
    expect(json.resource.docker_network["mirror-egress-network"]).toEqual({ name: "registry-mirror-egress" });
    expect(container("mirror-ghcr").networks_advanced).toEqual([{ name: "upstream-net" }]);
  });

  test("writes the proxy section (with the upstream password) only into the secret config file", () => {
    expect(synthesized).not.toContain(UPSTREAM_SECRET);
    const configFile = path.join(materialDirectory, "registry-mirror-hub.config.yml");
    const config = YAML.parse(fs.readFileSync(configFile, "utf8"));
    expect(config.proxy).toEqual({ remoteurl: "https://registry-1.docker.io", username: "hubuser", password: UPSTREAM_SECRET, ttl: "72h" });
    expect(config.storage.delete).toEqual({ enabled: true });
    expect(fs.statSync(configFile).mode & 0o777).toBe(0o600);
    expect(uploadsOfMirror("mirror-hub")[0]).toMatchObject({ file: "/etc/registry-stack/config.yml", source: expect.stringMatching(/^assets\//) });
  });

  test("gives each mirror an offline config: the same storage and secret, read-only, no proxy section, its own socket and debug port", () => {
    const hub = container("mirror-hub");
    const socket = `/run/registry-stack/${String(hub.name).replace(/^registry-/, "")}.sock`;
    const proxyConfig = YAML.parse(fs.readFileSync(path.join(materialDirectory, "registry-mirror-hub.config.yml"), "utf8"));
    const offlineFile = path.join(materialDirectory, "registry-mirror-hub.offline-config.yml");
    const offline = YAML.parse(fs.readFileSync(offlineFile, "utf8"));
    expect(offline.proxy).toBeUndefined();
    expect(fs.readFileSync(offlineFile, "utf8")).not.toContain(UPSTREAM_SECRET);
    expect(offline.storage.maintenance).toEqual({ uploadpurging: { enabled: false }, readonly: { enabled: true } });
    expect(offline.storage.filesystem).toEqual(proxyConfig.storage.filesystem);
    expect(offline.http.secret).toBe(proxyConfig.http.secret);
    expect([proxyConfig.http.addr, offline.http.addr]).toEqual([`${socket}.proxy`, `${socket}.offline`]);
    expect([proxyConfig.http.debug.addr, offline.http.debug.addr]).toEqual(["127.0.0.1:5001", "127.0.0.1:5002"]);
    expect(fs.statSync(offlineFile).mode & 0o777).toBe(0o600);
    expect(uploadsOfMirror("mirror-hub")).toContainEqual(expect.objectContaining({ file: "/etc/registry-stack/offline-config.yml", permissions: "0600", source: expect.stringMatching(/^assets\//) }));
    const conf = uploadsOf(json, "proxy").find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content as string;
    expect(conf).toContain(`alias ${socket}.status;`);
  });

  test("runs the private registry and the verifier without the supervisor", () => {
    for (const id of ["registry", "auth-verifier"]) expect(String((container(id).entrypoint as string[])[2])).toMatch(/^rm -f \/run\/registry-stack\/.*exec registry serve \/etc\/registry-stack\/config.yml$/);
  });

  test("trusts a private upstream's CA through SSL_CERT_FILE", () => {
    expect(container("mirror-ghcr").env).toEqual(["OTEL_TRACES_EXPORTER=none", "SSL_CERT_FILE=/etc/registry-stack/upstream-ca.crt"]);
    expect(uploadsOfMirror("mirror-ghcr")).toContainEqual({ file: "/etc/registry-stack/upstream-ca.crt", content: fs.readFileSync(caFile, "utf8"), permissions: "0644" });
    expect(container("mirror-hub").env).toEqual(["OTEL_TRACES_EXPORTER=none"]);
  });

  test("publishes each mirror's port on the proxy, a TLS server each, read-only", () => {
    const proxy = container("proxy");
    expect(proxy.ports).toEqual([
      { internal: 8443, external: 5000, ip: "0.0.0.0" },
      { internal: 8500, external: 5001, ip: "0.0.0.0" },
      { internal: 8501, external: 5002, ip: "0.0.0.0" },
    ]);
    const conf = uploadsOf(json, "proxy").find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content;
    expect(conf).toContain(`server unix:/run/registry-stack/${String(container("mirror-hub").name).replace(/^registry-/, "")}.sock;`);
    expect(conf).toContain("listen 8501 ssl;");
    expect(conf).toContain("read-only pull-through cache of ghcr.io; push to the private registry store.example.test:5000 instead");
  });

  test("gives each mirror a blob cache volume of its own, mounted writable in the read-only proxy, bounded by blobCacheMb and the ttl", () => {
    for (const name of ["hub", "ghcr"]) expect(synthesized).toHaveResourceWithProperties(Volume, { name: `registry-mirror-${name}-blob-cache` });
    const proxy = container("proxy");
    expect(proxy.read_only).toBe(true);
    expect((proxy.volumes as { container_path: string; volume_name: string; read_only?: boolean }[]).filter((v) => v.container_path.startsWith("/var/cache/"))).toEqual([
      { container_path: "/var/cache/registry-stack/mirror-hub", volume_name: expect.stringMatching(/^\$\{docker_volume\.proxy_mirror-hub-blob-cache_[0-9A-F]{8}\.name\}$/) },
      { container_path: "/var/cache/registry-stack/mirror-ghcr", volume_name: expect.stringMatching(/^\$\{docker_volume\.proxy_mirror-ghcr-blob-cache_[0-9A-F]{8}\.name\}$/) },
    ]);
    const conf = uploadsOf(json, "proxy").find((u) => u.file === "/etc/registry-stack/nginx.conf")!.content as string;
    expect(conf).toContain("proxy_cache_path /var/cache/registry-stack/mirror-hub levels=1:2 keys_zone=registry_mirror_hub:2m max_size=2048m inactive=259200s use_temp_path=off;");
    expect(conf).toContain("proxy_cache_path /var/cache/registry-stack/mirror-ghcr levels=1:2 keys_zone=registry_mirror_ghcr:2m max_size=2048m inactive=604800s use_temp_path=off;");
  });

  test("gives a mirror with users no blob cache when the registry checks the logins (authCacheSeconds: 0)", () => {
    const registryChecks = synthJson(
      buildStack({ hostnames: ["store.example.test"], ipAddresses: [], authCacheSeconds: 0, mirrors: [{ name: "hub", upstream: "docker.io", port: 5001, anonymousPull: true }, { name: "ghcr", upstream: "ghcr.io", port: 5002 }] }),
    );
    expect(Object.values(registryChecks.resource.docker_volume).map((v) => v.name).filter((n) => String(n).endsWith("-blob-cache"))).toEqual(["registry-mirror-hub-blob-cache"]);
  });

  test("bounds a mirror's data volume with maxSizeMb: a size-bound container on that volume, and the mirror without the blob-descriptor cache", () => {
    // GIVEN hub bounded to 512 MiB, ghcr unbounded
    const boundedMaterial = tempDirectory();
    const bounded = synthJson(
      buildStack({
        materialDirectory: boundedMaterial,
        hostnames: ["store.example.test"],
        ipAddresses: [],
        mirrors: [{ name: "hub", upstream: "docker.io", port: 5001, anonymousPull: true, maxSizeMb: 512 }, { name: "ghcr", upstream: "ghcr.io", port: 5002 }],
      }),
    );
    // THEN one size-bound container, for hub only: its volume, no network, no capability, read-only, the registry's user
    const sizeBounds = Object.entries(bounded.resource.docker_container).filter(([id]) => id.includes("size-bound"));
    expect(sizeBounds.map(([id]) => id)).toEqual([expect.stringMatching(/^mirror-hub-size-bound_container/)]);
    const job = sizeBounds[0][1];
    expect(job).toMatchObject({
      name: "registry-mirror-hub-size-bound",
      network_mode: "none",
      read_only: true,
      user: "65532:65532",
      capabilities: { drop: ["ALL"] },
      volumes: [{ container_path: "/var/lib/registry", volume_name: expect.stringContaining("mirror-hub") }],
      env: ["DATA_DIR=/var/lib/registry", `MAX_BYTES=${512 * 1024 * 1024}`, "INTERVAL_SECONDS=30"],
    });
    expect((job.entrypoint as string[]).slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    expect((job.entrypoint as string[]).slice(3)).toEqual(["mirror-size-bound", "loop"]);
    // AND the bounded mirror's registry keeps no blob descriptors in memory (they would outlive a deleted blob)
    const storageOf = (name: string) => YAML.parse(fs.readFileSync(path.join(boundedMaterial, `registry-mirror-${name}.config.yml`), "utf8")).storage;
    expect(storageOf("hub").cache).toBeUndefined();
    expect(storageOf("ghcr").cache).toEqual({ blobdescriptor: "inmemory" });
  });

  test("writes client files for every mirror", () => {
    const files = Object.values(json.resource.local_file).map((f) => f.filename as string);
    expect(files).toEqual(
      expect.arrayContaining([
        `${TEST_CLIENT_DIRECTORY}/certs.d/store.example.test:5001/ca.crt`,
        `${TEST_CLIENT_DIRECTORY}/containerd/certs.d/docker.io/hosts.toml`,
        `${TEST_CLIENT_DIRECTORY}/containerd/certs.d/ghcr.io/hosts.toml`,
        `${TEST_CLIENT_DIRECTORY}/containers/registries.conf.d/50-registry-stack.conf`,
      ]),
    );
    const k3s = Object.values(json.resource.terraform_data).map((d) => d.input as { file: string; mirrors: object }).find((i) => i.file === stack.client.k3sRegistriesPath)!;
    expect(k3s.mirrors).toEqual({
      "docker.io": { endpoint: ["https://store.example.test:5001"] },
      "ghcr.io": { endpoint: ["https://store.example.test:5002"] },
    });
    expect(stack.client.registryMirrors).toEqual(["https://store.example.test:5001"]);
  });

  test("fails when a foreign file sits where the stack writes a client file, naming it, and writes nothing", () => {
    const clientConfigDirectory = tempDirectory();
    const foreign = path.join(clientConfigDirectory, "containerd", "certs.d", "docker.io", "hosts.toml");
    fs.mkdirSync(path.dirname(foreign), { recursive: true });
    fs.writeFileSync(foreign, 'server = "https://mine.example.test"\n');
    const material = tempDirectory();
    expect(() =>
      buildStack({ materialDirectory: material, clientConfigDirectory, mirrors: [{ name: "hub", upstream: "docker.io", port: 5001 }] }),
    ).toThrow(`${foreign} exists and was not written by registry-stack`);
    expect(fs.readdirSync(material)).toEqual([]);
  });
});
