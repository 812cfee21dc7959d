import "cdktf/lib/testing/adapters/jest";
import { File } from "@cdktf/provider-local/lib/file";
import { TerraformStack, Testing } from "cdktf";
import * as fs from "fs";
import * as path from "path";
import { ClientConfig, clientFileKey } from "../../constructs/client-config";
import { registryEndpoints } from "../../renderers/registry-client-files";
import { TerraformData } from "../../constructs/terraform-data";
import { tempDirectory } from "../fixtures/test-stack";

const PROJECT = "/nonexistent/project";

interface Synthesized {
  resource: Record<string, Record<string, Record<string, unknown>>>;
  removed?: unknown[];
  moved?: Array<{ from: string; to: string }>;
}

function synth(props: Partial<ConstructorParameters<typeof ClientConfig>[2]> & { directory: string }) {
  let client: ClientConfig | undefined;
  const text = Testing.synthScope((scope) => {
    client = new ClientConfig(scope, "client", { endpoints: ["localhost:5000", "127.0.0.1:5000"], projectDirectory: PROJECT, ...props });
  });
  return { text, json: JSON.parse(text) as Synthesized, client: client! };
}

describe("registryEndpoints", () => {
  test("lists host:port for every name and address, IPv6 in brackets", () => {
    expect(registryEndpoints(["store.example.test"], ["192.0.2.10", "2001:db8::1"], 5000)).toEqual([
      "store.example.test:5000",
      "192.0.2.10:5000",
      "[2001:db8::1]:5000",
    ]);
  });

  test("adds the bare host on 443, which docker uses when the port is omitted", () => {
    expect(registryEndpoints(["store.example.test"], [], 443)).toEqual(["store.example.test", "store.example.test:443"]);
  });
});

describe("ClientConfig", () => {
  test("writes one ca.crt per endpoint as local_file and claims no insecure registry with TLS", () => {
    const directory = "/nonexistent/client";
    const { text, json } = synth({ directory, caCertificatePem: "PEM", endpoints: ["store.example.test:5000"] });
    expect(text).toHaveResourceWithProperties(File, { filename: "/nonexistent/client/certs.d/store.example.test:5000/ca.crt", content: "PEM" });
    expect(Object.keys(json.resource.local_file)).toEqual([
      expect.stringMatching(/^client_ca-store_example_test__5000_[0-9A-F]{8}$/),
      expect.stringMatching(/^client_containerd-ca-store_example_test__5000_[0-9A-F]{8}$/),
      expect.stringMatching(/^client_containerd-hosts-store_example_test__5000_[0-9A-F]{8}$/),
    ]);
    expect(text).toHaveResourceWithProperties(TerraformData, {
      input: { daemon_json: "/nonexistent/client/daemon.json", owner: "stack/client", insecure_registries: [] },
    });
  });

  test("keys every client file by its endpoint: a name inserted first adds files and leaves the others' addresses and contents alone", () => {
    // GIVEN the endpoints of a deployed stack, and the same with a host name inserted before them
    const before = synth({ directory: "/nonexistent/client", caCertificatePem: "PEM", mirrors: [{ upstream: "docker.io", endpoints: ["localhost:5001", "127.0.0.1:5001"] }] });
    const after = synth({
      directory: "/nonexistent/client",
      caCertificatePem: "PEM",
      endpoints: ["store.example.test:5000", "localhost:5000", "127.0.0.1:5000"],
      mirrors: [{ upstream: "docker.io", endpoints: ["store.example.test:5001", "localhost:5001", "127.0.0.1:5001"] }],
    });
    // WHEN compared address by address
    const files = (s: ReturnType<typeof synth>) => s.json.resource.local_file;
    const added = Object.keys(files(after)).filter((id) => !(id in files(before)));
    // THEN every earlier address is still there with the same file (but the two naming the mirror's
    // first endpoint, changed in place), and only the new name's files are new
    const namingFirstMirrorEndpoint = /^client_(containerd-mirror-hosts-|registries-conf-drop-in)/;
    for (const [id, file] of Object.entries(files(before))) {
      expect(files(after)[id]).toEqual(namingFirstMirrorEndpoint.test(id) ? { ...file, content: expect.stringContaining("store.example.test:5001") } : file);
    }
    expect(added.sort()).toEqual([
      expect.stringMatching(/^client_ca-store_example_test__5000_/),
      expect.stringMatching(/^client_containerd-ca-store_example_test__5000_/),
      expect.stringMatching(/^client_containerd-hosts-store_example_test__5000_/),
      expect.stringMatching(/^client_mirror-ca-store_example_test__5001_/),
    ]);
  });

  test("moves the files of earlier versions (keyed by position) to their endpoint's address", () => {
    const { json } = synth({ directory: "/nonexistent/client", caCertificatePem: "PEM" });
    const ids = Object.keys(json.resource.local_file);
    // The ids cdktf gave `ca-0`, `containerd-ca-1` … in earlier versions (as in their snapshots).
    expect(json.moved).toEqual(
      expect.arrayContaining([
        { from: "local_file.client_ca-0_990A0F6C", to: `local_file.${ids.find((id) => id.startsWith("client_ca-localhost__5000_"))}` },
        { from: "local_file.client_containerd-ca-0_A4E21D47", to: `local_file.${ids.find((id) => id.startsWith("client_containerd-ca-localhost__5000_"))}` },
        { from: "local_file.client_containerd-ca-1_E0B568A3", to: `local_file.${ids.find((id) => id.startsWith("client_containerd-ca-127_0_0_1__5000_"))}` },
      ]),
    );
    expect(json.moved).toHaveLength(ids.length);
  });

  test("turns an endpoint into a readable id part, one-to-one for valid names", () => {
    expect(clientFileKey("store.example.test:5000")).toBe("store_example_test__5000");
    expect(clientFileKey("[2001:db8::1]:443")).toBe("2001__db8____1__443");
    expect(clientFileKey("docker.io")).toBe("docker_io");
    const keys = ["a-b.c:5000", "a.b-c:5000", "a-b-c:5000", "a.b.c:5000", "a:5000", "a", "a:443"].map(clientFileKey);
    expect(new Set(keys).size).toBe(keys.length);
  });

  test("gives containerd a hosts.toml with the CA beside it, and k3s registries.yaml entries, for the registry", () => {
    const { json, client } = synth({ directory: "/nonexistent/client", caCertificatePem: "PEM", endpoints: ["store.example.test:5000"] });
    const files = Object.fromEntries(Object.values(json.resource.local_file).map((f) => [f.filename as string, f.content as string]));
    expect(files["/nonexistent/client/containerd/certs.d/store.example.test:5000/ca.crt"]).toBe("PEM");
    expect(files["/nonexistent/client/containerd/certs.d/store.example.test:5000/hosts.toml"]).toContain(
      'server = "https://store.example.test:5000"\n\n[host."https://store.example.test:5000"]\n  capabilities = ["pull", "resolve", "push"]\n  ca = "ca.crt"\n',
    );
    expect(files["/nonexistent/client/k3s/registries.yaml"]).toBeUndefined();
    const k3s = Object.values(json.resource.terraform_data).find((d) => (d.input as { file?: string }).file === client.k3sRegistriesPath)!;
    expect(client.k3sRegistriesPath).toBe("/nonexistent/client/k3s/registries.yaml");
    expect(k3s.input).toEqual({
      file: "/nonexistent/client/k3s/registries.yaml",
      owner: "stack/client",
      mirrors: {},
      configs: { "store.example.test:5000": { tls: { ca_file: "/nonexistent/client/certs.d/store.example.test:5000/ca.crt" } } },
    });
    expect(k3s.triggers_replace).toEqual(k3s.input);
    const provisioners = k3s.provisioner as Array<{ "local-exec": { command: string; environment: Record<string, string>; when?: string } }>;
    expect(provisioners.map((p) => [p["local-exec"].command, p["local-exec"].when])).toEqual([
      ["node -r ts-node/register/transpile-only scripts/registries-yaml-file.ts add", undefined],
      ["node -r ts-node/register/transpile-only scripts/registries-yaml-file.ts remove", "destroy"],
    ]);
    expect(provisioners[0]["local-exec"].environment).toEqual({ REGISTRY_STACK_REGISTRIES_YAML: "${jsonencode(self.input)}" });
  });

  test("merges into the registries.yaml given, and fails at synth when it is not YAML, naming it", () => {
    const directory = tempDirectory();
    const k3sRegistriesFile = path.join(directory, "registries.yaml");
    expect(synth({ directory, caCertificatePem: "PEM", k3sRegistriesFile }).client.k3sRegistriesPath).toBe(k3sRegistriesFile);
    fs.writeFileSync(k3sRegistriesFile, "mirrors: [");
    expect(() => synth({ directory, caCertificatePem: "PEM", k3sRegistriesFile })).toThrow(`${k3sRegistriesFile}: not valid YAML`);
  });

  describe("with mirrors", () => {
    const mirrors = [
      { upstream: "docker.io", endpoints: ["store.example.test:5001", "127.0.0.1:5001"] },
      { upstream: "ghcr.io", endpoints: ["store.example.test:5002", "127.0.0.1:5002"] },
    ];
    const filesOf = (json: Synthesized) => Object.fromEntries(Object.values(json.resource.local_file).map((f) => [f.filename as string, f.content as string]));

    test("puts the docker.io mirror (only) into daemon.json's registry-mirrors and the CA into certs.d for every mirror endpoint", () => {
      const { json, client } = synth({ directory: "/nonexistent/client", caCertificatePem: "PEM", mirrors });
      expect(client.registryMirrors).toEqual(["https://store.example.test:5001"]);
      const [data] = Object.values(json.resource.terraform_data);
      expect(data.input).toMatchObject({ registry_mirrors: ["https://store.example.test:5001"] });
      expect(data.triggers_replace).toEqual(data.input);
      const files = filesOf(json);
      for (const endpoint of ["localhost:5000", "127.0.0.1:5000", ...mirrors.flatMap((m) => m.endpoints)]) {
        expect(files[`/nonexistent/client/certs.d/${endpoint}/ca.crt`]).toBe("PEM");
      }
    });

    test("leaves registry_mirrors out of daemon.json's resource without a docker.io mirror (no replacement on upgrade)", () => {
      const { json } = synth({ directory: "/nonexistent/client", caCertificatePem: "PEM", mirrors: [mirrors[1]] });
      expect(Object.values(json.resource.terraform_data)[0].input).not.toHaveProperty("registry_mirrors");
    });

    test("writes containerd hosts.toml per upstream, k3s mirror entries and a registries.conf.d drop-in", () => {
      const { json } = synth({ directory: "/nonexistent/client", caCertificatePem: "PEM", mirrors });
      const files = filesOf(json);
      expect(files["/nonexistent/client/containerd/certs.d/docker.io/hosts.toml"]).toMatch(
        /^# Written by registry-stack \(stack\/client\).*\n\nserver = "https:\/\/registry-1\.docker\.io"\n\n\[host\."https:\/\/store\.example\.test:5001"\]\n  capabilities = \["pull", "resolve"\]\n  ca = "ca\.crt"\n$/,
      );
      expect(files["/nonexistent/client/containerd/certs.d/ghcr.io/hosts.toml"]).toContain('server = "https://ghcr.io"');
      expect(files["/nonexistent/client/containerd/certs.d/ghcr.io/ca.crt"]).toBe("PEM");
      const k3s = Object.values(json.resource.terraform_data).map((d) => d.input as Record<string, Record<string, unknown>>).find((i) => "configs" in i)!;
      expect(k3s.mirrors).toEqual({ "docker.io": { endpoint: ["https://store.example.test:5001"] }, "ghcr.io": { endpoint: ["https://store.example.test:5002"] } });
      expect(Object.keys(k3s.configs).sort()).toEqual(["127.0.0.1:5000", "localhost:5000", "store.example.test:5001", "store.example.test:5002"]);
      expect(k3s.configs["store.example.test:5002"]).toEqual({ tls: { ca_file: "/nonexistent/client/certs.d/store.example.test:5002/ca.crt" } });
      const dropIn = files["/nonexistent/client/containers/registries.conf.d/50-registry-stack.conf"];
      expect(dropIn).toContain('[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n\n[[registry.mirror]]\nlocation = "store.example.test:5001"\n');
      expect(dropIn).toContain('prefix = "ghcr.io"');
    });
  });

  test("keeps daemon.json out of local_file: a terraform_data carries the entries and replaces on change", () => {
    const { json } = synth({ directory: "/nonexistent/client" });
    expect(json.resource.local_file).toBeUndefined();
    const [data] = Object.values(json.resource.terraform_data);
    const input = { daemon_json: "/nonexistent/client/daemon.json", owner: "stack/client", insecure_registries: ["localhost:5000", "127.0.0.1:5000"] };
    expect(data.input).toEqual(input);
    expect(data.triggers_replace).toEqual(input);
  });

  test("adds on create and removes on destroy through the script, from the resource's own state", () => {
    const { json } = synth({ directory: "/nonexistent/client" });
    const [data] = Object.values(json.resource.terraform_data);
    const env = { REGISTRY_STACK_DAEMON_JSON: "${jsonencode(self.input)}" };
    expect(data.provisioner).toEqual([
      { "local-exec": { command: "node -r ts-node/register/transpile-only scripts/daemon-json-file.ts add", working_dir: PROJECT, environment: env } },
      {
        "local-exec": {
          command: "node -r ts-node/register/transpile-only scripts/daemon-json-file.ts remove",
          working_dir: PROJECT,
          environment: env,
          when: "destroy",
        },
      },
    ]);
  });

  test("forgets the daemon.json local_file of earlier versions without deleting the file", () => {
    const { json, client } = synth({ directory: "/nonexistent/client" });
    expect(json.removed).toEqual([{ from: `local_file.${client.daemonJson.friendlyUniqueId}`, lifecycle: { destroy: false } }]);
    expect(client.daemonJson.friendlyUniqueId).toMatch(/^client_daemon-json_[0-9A-F]{8}$/);
  });

  test("runs the script from this checkout by default", () => {
    const text = Testing.synthScope((scope) => {
      new ClientConfig(scope, "client", { endpoints: ["a:1"], directory: "/nonexistent/client" });
    });
    const [data] = Object.values((JSON.parse(text) as Synthesized).resource.terraform_data);
    const provisioners = data.provisioner as Array<{ "local-exec": { working_dir: string } }>;
    expect(provisioners[0]["local-exec"].working_dir).toBe(path.resolve(__dirname, "../.."));
    expect(fs.existsSync(path.join(provisioners[0]["local-exec"].working_dir, "scripts/daemon-json-file.ts"))).toBe(true);
  });

  test("runs the script from ../../.. (the project seen from cdktf.out/stacks/<stack>) when the output is inside the project", () => {
    // GIVEN two checkouts of the project in different folders, each with its default cdktf.out
    const workingDirs = [tempDirectory("checkout-a-"), tempDirectory("checkout-b-")].map((project) => {
      const app = Testing.app({ outdir: path.join(project, "cdktf.out") });
      const stack = new TerraformStack(app, "registry");
      // WHEN each synthesizes the client config
      new ClientConfig(stack, "client", { endpoints: ["a:1"], directory: "/nonexistent/client", projectDirectory: project });
      const [data] = Object.values((JSON.parse(Testing.synth(stack)) as Synthesized).resource.terraform_data);
      const dirs = (data.provisioner as Array<{ "local-exec": { working_dir: string } }>).map((p) => p["local-exec"].working_dir);
      // THEN Terraform, running in <outdir>/stacks/registry, lands in the project folder
      expect(path.resolve(project, "cdktf.out", "stacks", "registry", dirs[0])).toBe(fs.realpathSync(project));
      return dirs;
    });
    expect(workingDirs[0]).toEqual(["../../..", "../../.."]);
    expect(workingDirs[1]).toEqual(workingDirs[0]);
  });

  test("keeps the absolute project folder when the output is elsewhere (cdktf synth --output <dir>)", () => {
    const project = tempDirectory("checkout-");
    const app = Testing.app({ outdir: tempDirectory("elsewhere-") });
    const stack = new TerraformStack(app, "registry");
    new ClientConfig(stack, "client", { endpoints: ["a:1"], directory: "/nonexistent/client", projectDirectory: project });
    const [data] = Object.values((JSON.parse(Testing.synth(stack)) as Synthesized).resource.terraform_data);
    expect((data.provisioner as Array<{ "local-exec": { working_dir: string } }>)[0]["local-exec"].working_dir).toBe(project);
  });

  test("writes nothing to disk at synth", () => {
    const directory = path.join(tempDirectory(), "client");
    synth({ directory });
    expect(fs.existsSync(directory)).toBe(false);
  });

  test("reads an existing daemon.json only to check it, and leaves it as it is", () => {
    const directory = tempDirectory();
    const file = path.join(directory, "daemon.json");
    fs.writeFileSync(file, '{"insecure-registries": ["localhost:5000"]}');
    const { json } = synth({ directory });
    expect(Object.values(json.resource.terraform_data)[0].input).toMatchObject({ insecure_registries: ["localhost:5000", "127.0.0.1:5000"] });
    expect(fs.readFileSync(file, "utf8")).toBe('{"insecure-registries": ["localhost:5000"]}');
  });

  test("fails at synth when an existing daemon.json is not JSON, naming it", () => {
    const directory = tempDirectory();
    fs.writeFileSync(path.join(directory, "daemon.json"), "{ not json");
    expect(() => synth({ directory })).toThrow(`${path.join(directory, "daemon.json")} is not valid JSON`);
  });

  test("warns when a remote engine's stack would write this machine's /etc/docker", () => {
    const warnings = (dockerHost: string | undefined, directory: string) =>
      synth({ directory, dockerHost }).client.node.metadata.filter((m) => m.type === "@cdktf/warn").map((m) => m.data as string);
    expect(warnings("ssh://deploy@store.example.test", "/etc/docker")).toEqual([
      expect.stringMatching(/^clientConfigDirectory is \/etc\/docker but dockerHost is ssh:\/\/deploy@store\.example\.test: Terraform writes the client files on the machine running cdktf/),
    ]);
    expect(warnings("tcp://store.example.test:2376", "/etc/docker/")).toHaveLength(1);
    expect(warnings("unix:///var/run/docker.sock", "/etc/docker")).toEqual([]);
    expect(warnings("ssh://deploy@store.example.test", "/nonexistent/client-config")).toEqual([]);
  });
});
