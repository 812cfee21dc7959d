import "cdktf/lib/testing/adapters/jest";
import { Testing } from "cdktf";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { ConfigError } from "../../config/config-error";
import { ClusterStack } from "../../stacks/cluster-stack";
import { RegistryStackProps } from "../../stacks/registry-stack";
import { fixedEntropy } from "../fixtures/fixed-entropy";
import { synthJson, tempDirectory, TEST_CLIENT_DIRECTORY, TEST_PROJECT_DIRECTORY } from "../fixtures/test-stack";

const ACCESS_KEY = "test-access-key-4d1f";
const SECRET_KEY = "test-secret-key-9a7c2e";
const REDIS_PASSWORD = "test-redis-password-5b8";
const USER_PASSWORD = "alice-password-1";

const CLUSTER: RegistryStackProps = {
  users: [{ name: "alice", password: USER_PASSWORD }, { name: "reader", role: "pull" }],
  publicPort: 5443,
  cluster: {
    nodes: ["10.143.0.2", "10.143.0.3", "node-c.example.test"],
    storage: { endpoint: "http://10.143.0.1:7070", bucket: "registry", accessKey: ACCESS_KEY, secretKey: SECRET_KEY },
    redis: { addresses: ["10.143.0.1:6379"], password: REDIS_PASSWORD },
  },
};

function buildCluster(props: RegistryStackProps = CLUSTER, materialDirectory = tempDirectory()): ClusterStack {
  return new ClusterStack(Testing.app(), "registry", {
    materialDirectory,
    clientConfigDirectory: TEST_CLIENT_DIRECTORY,
    projectDirectory: TEST_PROJECT_DIRECTORY,
    entropy: fixedEntropy(),
    ...props,
  });
}

type Json = Record<string, unknown>;
const services = (json: ReturnType<typeof synthJson>) => json.resource.docker_service as Record<string, Json>;
const taskSpec = (service: Json) => service.task_spec as Json;
const containerSpec = (service: Json) => taskSpec(service).container_spec as Json;

describe("ClusterStack (cluster mode)", () => {
  const materialDirectory = tempDirectory();
  const stack = buildCluster(CLUSTER, materialDirectory);
  const text = Testing.synth(stack);
  const json = synthJson(stack);
  const byName = (name: string) => Object.values(services(json)).find((s) => s.name === name) as Json;

  test("declares the registry, the upload purger and the verifier replicated, the proxy global", () => {
    const modes = Object.fromEntries(Object.values(services(json)).map((s) => [s.name, s.mode]));
    expect(modes).toEqual({
      "registry-registry": { replicated: { replicas: 2 } },
      "registry-upload-purger": { replicated: { replicas: 1 } },
      "registry-auth": { replicated: { replicas: 2 } },
      "registry-proxy": { global: true },
    });
  });

  test("gives every service DNS round robin (no virtual IP: it needs IPVS) and only the proxy a port, in host mode", () => {
    for (const service of Object.values(services(json))) expect((service.endpoint_spec as Json).mode).toBe("dnsrr");
    expect(byName("registry-proxy").endpoint_spec).toEqual({ mode: "dnsrr", ports: [{ target_port: 8443, published_port: 5443, publish_mode: "host", protocol: "tcp" }] });
    for (const name of ["registry-registry", "registry-upload-purger", "registry-auth"]) expect((byName(name).endpoint_spec as Json).ports).toBeUndefined();
  });

  test("puts every service on one encrypted overlay network that nothing else can join, attached by id", () => {
    expect(json.resource.docker_network).toEqual({
      "cluster-network": { name: "registry-cluster", driver: "overlay", attachable: false, options: { encrypted: "true" }, lifecycle: { ignore_changes: ["options"] } },
    });
    for (const service of Object.values(services(json))) expect(taskSpec(service).networks_advanced).toEqual([{ id: "${docker_network.cluster-network.id}" }]);
  });

  test("keeps the S3 keys, the Redis password, http.secret, password hashes and the TLS key out of cdk.tf.json", () => {
    const configFile = fs.readFileSync(path.join(materialDirectory, "registry-registry.config.yml"), "utf8");
    const httpSecret = (YAML.parse(configFile) as { http: { secret: string } }).http.secret;
    expect(httpSecret.length).toBeGreaterThanOrEqual(32);
    for (const secret of [ACCESS_KEY, SECRET_KEY, REDIS_PASSWORD, USER_PASSWORD, httpSecret]) expect(text).not.toContain(secret);
    expect(text).not.toMatch(/PRIVATE KEY|\$2[aby]\$\d\d\$/);
    // Nor base64-encoded (configs are): decode every config and look again.
    for (const config of Object.values(json.resource.docker_config as Record<string, Json>)) {
      const content = Buffer.from(String(config.data), "base64").toString("utf8");
      for (const secret of [ACCESS_KEY, SECRET_KEY, REDIS_PASSWORD, USER_PASSWORD, httpSecret]) expect(content).not.toContain(secret);
      expect(content).not.toMatch(/PRIVATE KEY|\$2[aby]\$\d\d\$/);
    }
  });

  test("turns config.yml, htpasswd and the TLS key into Swarm secrets read from files at plan time", () => {
    const secrets = Object.values(json.resource.docker_secret as Record<string, Json>);
    expect(secrets.map((s) => String(s.name).replace(/-[0-9a-f]{12}$/, "")).sort()).toEqual(
      ["registry-auth-config", "registry-auth-htpasswd", "registry-proxy-key", "registry-registry-config", "registry-upload-purger-config"].sort(),
    );
    for (const secret of secrets) {
      expect(secret.data).toMatch(/^\$\{filebase64\("assets\/[^"]+"\)\}$/);
      expect(secret.lifecycle).toEqual({ create_before_destroy: true });
    }
    expect(containerSpec(byName("registry-registry")).secrets).toEqual([
      expect.objectContaining({ file_name: "registry-config.yml", file_uid: "65532", file_gid: "65532", file_mode: 0o400 }),
    ]);
  });

  test("shares S3 with path-style addressing, Redis (redis.addrs) and one http.secret; only the purger purges uploads", () => {
    const config = (name: string) => YAML.parse(fs.readFileSync(path.join(materialDirectory, `${name}.config.yml`), "utf8"));
    const registry = config("registry-registry");
    const purger = config("registry-upload-purger");
    const verifier = config("registry-auth");
    expect(registry.storage.s3).toEqual({
      regionendpoint: "http://10.143.0.1:7070",
      region: "us-east-1",
      bucket: "registry",
      forcepathstyle: true,
      secure: false,
      accesskey: ACCESS_KEY,
      secretkey: SECRET_KEY,
    });
    expect(registry.storage.cache).toEqual({ blobdescriptor: "redis" });
    expect(registry.redis).toEqual({ addrs: ["10.143.0.1:6379"], password: REDIS_PASSWORD, db: 0 });
    expect(registry.redis.addr).toBeUndefined();
    expect(registry.storage.maintenance.uploadpurging.enabled).toBe(false);
    expect(purger.storage.maintenance.uploadpurging.enabled).toBe(true);
    expect(purger.storage.s3).toEqual(registry.storage.s3);
    expect(new Set([registry.http.secret, purger.http.secret, verifier.http.secret]).size).toBe(1);
    expect(registry.http.addr).toBe(":5000");
    expect(verifier.storage.inmemory).toEqual({});
    expect(verifier.auth.htpasswd.path).toBe("/run/secrets/registry-htpasswd");
    expect(registry.auth).toBeUndefined();
  });

  test("nginx finds the replicas through Docker's DNS on every request: resolver 127.0.0.11 and a variable in proxy_pass", () => {
    const nginxConf = stack.proxy.nginxConf;
    expect(nginxConf).toContain("resolver 127.0.0.11 valid=5s ipv6=off;");
    expect(nginxConf).not.toMatch(/upstream docker-registry|upstream registry-auth/);
    expect(nginxConf).toMatch(/map \$host \$docker_registry_address \{\s+default registry-registry:5000;/);
    expect(nginxConf).toMatch(/map \$host \$registry_auth_address \{\s+default registry-auth:5000;/);
    expect(nginxConf).toContain("proxy_pass http://$registry_auth_address;");
    expect(nginxConf).toContain("allow $docker_registry_address;");
    const config = Object.values(json.resource.docker_config as Record<string, Json>).find((c) => String(c.name).startsWith("registry-proxy-nginx-conf-")) as Json;
    expect(Buffer.from(String(config.data), "base64").toString("utf8")).toBe(nginxConf);
    expect(containerSpec(byName("registry-proxy")).command).toEqual(["nginx", "-e", "stderr", "-c", "/etc/registry-stack/nginx.conf", "-g", "daemon off;"]);
  });

  test("runs the registry read-only as its own user with args (not the entrypoint), a healthcheck, limits and rolling updates", () => {
    const registry = byName("registry-registry");
    expect(containerSpec(registry)).toMatchObject({
      image: "registry:3.1.1",
      args: ["/run/secrets/registry-config.yml"],
      user: "65532:65532",
      read_only: true,
      cap_drop: ["ALL"],
      stop_grace_period: "2m",
      healthcheck: { test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:5001/debug/health"], interval: "15s", timeout: "5s", retries: 3, start_period: "10s" },
    });
    expect(containerSpec(registry).command).toBeUndefined();
    expect(taskSpec(registry).resources).toEqual({ limits: { memory_bytes: 1024 * 1024 * 1024 } });
    expect(taskSpec(registry).restart_policy).toEqual({ condition: "any", delay: "5s", window: "0s" });
    expect(registry.update_config).toMatchObject({ parallelism: 1, order: "start-first", failure_action: "rollback" });
    expect(byName("registry-proxy").update_config).toMatchObject({ parallelism: 1, order: "stop-first" });
    expect(byName("registry-proxy").converge_config).toBeUndefined();
    expect(registry.converge_config).toEqual({ delay: "2s", timeout: "5m" });
  });

  test("lists every node's address in the client files and the certificate", () => {
    expect(stack.endpoints).toEqual(["node-c.example.test:5443", "10.143.0.2:5443", "10.143.0.3:5443"]);
    expect(stack.settings.ipAddresses).toEqual(["10.143.0.2", "10.143.0.3"]);
    expect(stack.settings.hostnames).toEqual(["node-c.example.test"]);
  });

  test("the replica count is the configuration's", () => {
    const three = synthJson(buildCluster({ ...CLUSTER, cluster: { ...CLUSTER.cluster!, registryReplicas: 3 } }));
    expect(Object.values(services(three)).find((s) => s.name === "registry-registry")!.mode).toEqual({ replicated: { replicas: 3 } });
  });

  test("without encryption the overlay network has no options", () => {
    const plain = synthJson(buildCluster({ ...CLUSTER, cluster: { ...CLUSTER.cluster!, encryptedNetwork: false } }));
    expect((plain.resource.docker_network["cluster-network"] as Json).options).toBeUndefined();
  });
});

describe("ClusterStack: refused input", () => {
  const problemsOf = (props: RegistryStackProps): string[] => {
    try {
      buildCluster(props);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    throw new Error("no ConfigError");
  };

  test("fails when the S3 keys are missing, naming their variables", () => {
    const { accessKey: _a, secretKey: _s, ...storage } = CLUSTER.cluster!.storage;
    expect(problemsOf({ ...CLUSTER, cluster: { ...CLUSTER.cluster!, storage } })).toEqual([
      "cluster.storage.accessKey: is required; set REGISTRY_S3_ACCESS_KEY",
      "cluster.storage.secretKey: is required; set REGISTRY_S3_SECRET_KEY",
    ]);
  });

  test("fails when features that need one engine are configured, and never quotes a secret", () => {
    const problems = problemsOf({ ...CLUSTER, ui: true, proxy: false, cluster: { ...CLUSTER.cluster!, redis: { addresses: ["redis"], password: REDIS_PASSWORD } } });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^proxy: .*not available in cluster mode/),
        expect.stringMatching(/^ui: .*not available in cluster mode/),
        'cluster.redis.addresses[0]: "redis" must be host:port with a DNS name or IPv4 address and a port from 1 to 65535, e.g. redis.internal:6379',
      ]),
    );
    expect(problems.join("\n")).not.toContain(REDIS_PASSWORD);
  });

  test("refuses the retention rules that need push times or untagged manifests, naming each field", () => {
    const problems = problemsOf({ ...CLUSTER, retention: { rules: [{ repositories: "^a$", keepTags: ["^v"] }, { repositories: "^b$", keepNewest: 3, untaggedDays: 7 }] } });
    expect(problems).toEqual([
      "retention.rules[1].keepNewest: 3 is not available in cluster mode: the registry API on S3 gives no push time to order tags by; use keepTags (docs/cluster.md, Retention)",
      "retention.rules[1].untaggedDays: 7 is not available in cluster mode: the registry API on S3 lists no untagged manifests; use keepTags (docs/cluster.md, Retention)",
    ]);
  });

  test("fails when no node is listed", () => {
    expect(problemsOf({ ...CLUSTER, cluster: { ...CLUSTER.cluster!, nodes: [] } })).toEqual([
      "cluster.nodes: is empty; list the address of every Swarm node clients may use (each runs a proxy)",
    ]);
  });
});

describe("ClusterStack with retention: one collector for the cluster", () => {
  const materialDirectory = tempDirectory();
  const props: RegistryStackProps = { ...CLUSTER, retention: { schedule: "04:30", writeSettleSeconds: 4, rules: [{ repositories: "^ci/", keepTags: ["^v[0-9]+$", "^main$"] }] } };
  const stack = buildCluster(props, materialDirectory);
  const text = Testing.synth(stack);
  const json = synthJson(stack);
  const byName = (name: string) => Object.values(services(json)).find((s) => s.name === name) as Json;
  const configContent = (prefix: string) => {
    const config = Object.values(json.resource.docker_config as Record<string, Json>).find((c) => String(c.name).startsWith(prefix)) as Json;
    return Buffer.from(String(config.data), "base64").toString("utf8");
  };
  const collector = byName("registry-collector");

  test("declares exactly one collector task, on a manager, stopped before a new one starts", () => {
    expect(collector.mode).toEqual({ replicated: { replicas: 1 } });
    expect(taskSpec(collector).placement).toEqual({ constraints: ["node.role==manager"] });
    expect(collector.update_config).toMatchObject({ parallelism: 1, order: "stop-first" });
    expect(Object.values(services(json)).filter((s) => String(s.name).includes("collector"))).toHaveLength(1);
  });

  test("runs the one-host maintenance script with the registry image, as the registry's user, health checked on its API (not the hold state)", () => {
    expect(containerSpec(collector)).toMatchObject({
      image: "registry:3.1.1",
      command: ["/bin/sh", "/etc/registry-stack/maintenance.sh", "schedule"],
      env: { MAINTENANCE_SETTINGS: "/etc/registry-stack/maintenance.env", OTEL_TRACES_EXPORTER: "none" },
      user: "65532:65532",
      read_only: true,
      cap_drop: ["ALL"],
      // Every 3 s: Swarm's DNS names a task only once it is healthy, and the proxies hold writes until then.
      healthcheck: expect.objectContaining({ test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:5000/v2/"], interval: "3s" }),
    });
    expect(configContent("registry-collector-script-")).toBe(fs.readFileSync(path.join(__dirname, "..", "..", "renderers", "maintenance.sh"), "utf8"));
  });

  test("the settings: the schedule, the rules, the registry API, the Redis database and a settle time with the hold's propagation", () => {
    const settings = configContent("registry-collector-settings-");
    expect(settings).toContain("SCHEDULE='04:30'\n");
    expect(settings).toContain("SETTLE_SECONDS='7'\n");
    expect(settings).toContain("STORAGE_ACCESS='registry-api'\n");
    expect(settings).toContain("REDIS_ADDRESSES='10.143.0.1:6379'\nREDIS_DB='0'\nREDIS_PASSWORD_FILE='/run/secrets/collector-redis-password'\n");
    expect(settings).toContain("RULE_1_KEEP_TAGS='^v[0-9]+$\n^main$'");
  });

  test("its registries: S3 with deletes and no cache on loopback; an empty one whose health is the hold state, on the overlay", () => {
    const config = YAML.parse(fs.readFileSync(path.join(materialDirectory, "registry-collector.config.yml"), "utf8"));
    expect(config.http.addr).toBe("127.0.0.1:5000");
    expect(config.http.debug.addr).toBe("127.0.0.1:5003");
    expect(config.storage).toMatchObject({ s3: { bucket: "registry", accesskey: ACCESS_KEY }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } });
    expect(config.storage.cache).toBeUndefined();
    expect(config.redis).toBeUndefined();
    const hold = YAML.parse(fs.readFileSync(path.join(materialDirectory, "registry-collector.hold-state.yml"), "utf8"));
    expect(hold.storage.inmemory).toEqual({});
    expect(hold.http.debug.addr).toBe(":5001");
    expect(hold.health.file).toEqual([{ file: "/var/lib/registry-stack-maintenance/write-hold", interval: "1s" }]);
    expect(stack.collector!.holdStateUrl).toBe("http://registry-collector:5001/debug/health");
  });

  test("its config files and the Redis password are Swarm secrets; none of it in cdk.tf.json", () => {
    expect(containerSpec(collector).secrets).toEqual([
      expect.objectContaining({ file_name: "collector-config.yml", file_uid: "65532", file_mode: 0o400 }),
      expect.objectContaining({ file_name: "collector-hold-state.yml", file_uid: "65532", file_mode: 0o400 }),
      expect.objectContaining({ file_name: "collector-redis-password", file_uid: "65532", file_mode: 0o400 }),
    ]);
    expect(fs.readFileSync(path.join(materialDirectory, "registry-collector.redis-password"), "utf8")).toBe(REDIS_PASSWORD);
    for (const secret of [ACCESS_KEY, SECRET_KEY, REDIS_PASSWORD]) expect(text).not.toContain(secret);
    for (const config of Object.values(json.resource.docker_config as Record<string, Json>)) {
      const content = Buffer.from(String(config.data), "base64").toString("utf8");
      for (const secret of [ACCESS_KEY, SECRET_KEY, REDIS_PASSWORD]) expect(content).not.toContain(secret);
    }
  });

  test("every proxy polls the hold state into its own flag file and holds writes (503, Retry-After) while it exists", () => {
    const proxy = containerSpec(byName("registry-proxy"));
    const command = proxy.command as string[];
    expect(command.slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    expect(command[2]).toContain("url='http://registry-collector:5001/debug/health'");
    expect(command[2]).toContain("flag='/run/registry-stack-hold/write-hold'");
    expect(proxy.mounts).toEqual(expect.arrayContaining([expect.objectContaining({ type: "tmpfs", target: "/run/registry-stack-hold" })]));
    expect(stack.proxy.nginxConf).toContain("if (!-f /run/registry-stack-hold/write-hold)");
    expect(stack.proxy.nginxConf).toContain("add_header Retry-After 10 always;");
    expect(stack.proxy.nginxConf).toContain("map $request_method $registry_write_request");
  });

  test("without retention there is no collector and no write hold", () => {
    const plain = buildCluster();
    expect(plain.collector).toBeUndefined();
    expect(plain.proxy.nginxConf).not.toContain("write-hold");
  });
});
