import { spawnSync } from "child_process";
import { Testing } from "cdktf";
import * as fs from "fs";
import * as path from "path";
import { ClientConfig } from "../../constructs/client-config";
import { tempDirectory } from "../../__tests__/fixtures/test-stack";
import { ensureTerraformTools, TerraformTools } from "../terraform-tools";

/**
 * The client files (`local_file`s keyed by endpoint) applied for real by Terraform with the suite's
 * hashicorp/local build: a host name inserted before the others plans only the new name's files,
 * and nothing afterwards; files of earlier versions (keyed by position) are moved, not rewritten.
 */

const PROJECT = path.resolve(__dirname, "../..");
const PEM = "-----BEGIN CERTIFICATE-----\nnot parsed here\n-----END CERTIFICATE-----\n";

interface Synthesized {
  resource: Record<string, Record<string, unknown>>;
  moved?: Array<{ from: string; to: string }>;
  removed?: unknown;
}

function synthClient(clientDir: string, names: string[]): Synthesized {
  const text = Testing.synthScope((scope) => {
    new ClientConfig(scope, "client", {
      endpoints: names.map((n) => `${n}:5000`),
      caCertificatePem: PEM,
      directory: clientDir,
      projectDirectory: PROJECT,
      mirrors: [{ upstream: "docker.io", endpoints: names.map((n) => `${n}:5001`) }],
    });
  });
  return JSON.parse(text) as Synthesized;
}

function writeStack(stackDir: string, doc: Synthesized): void {
  fs.mkdirSync(stackDir, { recursive: true });
  fs.writeFileSync(path.join(stackDir, "cdk.tf.json"), JSON.stringify(doc, null, 2));
}

interface Change {
  address: string;
  previous_address?: string;
  change: { actions: string[] };
}

describe("client files keyed by endpoint, through Terraform and hashicorp/local", () => {
  let tools: TerraformTools;
  beforeAll(async () => {
    tools = await ensureTerraformTools();
  }, 20 * 60_000);

  const tf = (dir: string, ...args: string[]) => {
    const result = spawnSync("terraform", [...args, "-no-color"], { cwd: dir, env: { ...tools.env(), TF_IN_AUTOMATION: "1" }, encoding: "utf8", timeout: 120_000 });
    if (result.status !== 0) throw new Error(`terraform ${args.join(" ")} failed:\n${result.stdout}\n${result.stderr}`);
    return result.stdout;
  };
  /** The saved plan's changes that are not a plain no-op (a move is listed with its previous address). */
  const plan = (dir: string): Change[] => {
    tf(dir, "plan", "-input=false", "-out=tfplan");
    const shown = JSON.parse(tf(dir, "show", "-json", "tfplan")) as { resource_changes?: Change[] };
    return (shown.resource_changes ?? []).filter((c) => c.change.actions.join() !== "no-op" || c.previous_address !== undefined);
  };
  const filesUnder = (dir: string): string[] =>
    fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();

  test("a host name inserted first plans only creations of its files (and new content where the mirror's first endpoint is named), then nothing", () => {
    // GIVEN a deployed client config for localhost and 127.0.0.1
    const root = tempDirectory();
    const clientDir = path.join(root, "client");
    const stackDir = path.join(root, "stack");
    writeStack(stackDir, synthClient(clientDir, ["localhost", "127.0.0.1"]));
    tf(stackDir, "init", "-input=false");
    tf(stackDir, "apply", "-auto-approve", "-input=false");
    const before = filesUnder(clientDir);
    expect(plan(stackDir)).toEqual([]);

    // WHEN store.example.test is inserted before them
    writeStack(stackDir, synthClient(clientDir, ["store.example.test", "localhost", "127.0.0.1"]));
    const changes = plan(stackDir);

    // THEN no file is deleted or moved: the new name's files are created; the mirror's hosts.toml and
    // drop-in and daemon.json's registry-mirrors (they name the mirror's first endpoint, now the new
    // name) and the k3s entries (they list every endpoint) are replaced with their new content
    const summary = changes.map((c) => `${c.change.actions.join("+")} ${c.address.replace(/_[0-9A-F]{8}$/, "")}`).sort();
    console.log(`plan after inserting a name first:\n  ${summary.join("\n  ")}`);
    expect(summary).toEqual([
      "create local_file.client_ca-store_example_test__5000",
      "create local_file.client_containerd-ca-store_example_test__5000",
      "create local_file.client_containerd-hosts-store_example_test__5000",
      "create local_file.client_mirror-ca-store_example_test__5001",
      "delete+create local_file.client_containerd-mirror-hosts-docker_io",
      "delete+create local_file.client_registries-conf-drop-in",
      "delete+create terraform_data.client_daemon-json",
      "delete+create terraform_data.client_k3s-registries",
    ]);

    // AND applying it leaves every earlier file in place, the new ones beside them, and nothing to plan
    tf(stackDir, "apply", "-auto-approve", "-input=false", "tfplan");
    const after = filesUnder(clientDir);
    expect(after).toEqual(
      [
        ...before,
        "certs.d/store.example.test:5000/ca.crt",
        "certs.d/store.example.test:5001/ca.crt",
        "containerd/certs.d/store.example.test:5000/ca.crt",
        "containerd/certs.d/store.example.test:5000/hosts.toml",
      ].sort(),
    );
    expect(plan(stackDir)).toEqual([]);
    tf(stackDir, "destroy", "-auto-approve", "-input=false");
    expect(filesUnder(clientDir)).toEqual([]);
  });

  test("files written by earlier versions (keyed by position) are moved to their endpoint's address, not rewritten", () => {
    // GIVEN the state an earlier version left: the same files under the addresses the moved blocks start from
    const root = tempDirectory();
    const clientDir = path.join(root, "client");
    const stackDir = path.join(root, "stack");
    const current = synthClient(clientDir, ["localhost", "127.0.0.1"]);
    const moved = current.moved ?? [];
    expect(moved.length).toBeGreaterThan(0);
    const legacyIdOf = new Map(moved.map((m) => [m.to.replace(/^local_file\./, ""), m.from.replace(/^local_file\./, "")]));
    const legacyFiles = Object.fromEntries(Object.entries(current.resource.local_file).map(([id, file]) => [legacyIdOf.get(id) ?? id, file]));
    writeStack(stackDir, { ...current, resource: { ...current.resource, local_file: legacyFiles }, moved: undefined });
    tf(stackDir, "init", "-input=false");
    tf(stackDir, "apply", "-auto-approve", "-input=false");

    // WHEN this version's configuration is planned on that state
    writeStack(stackDir, current);
    const changes = plan(stackDir);

    // THEN every keyed file is a move with no action, and applying it leaves nothing to plan
    expect(changes.map((c) => c.change.actions.join())).toEqual(moved.map(() => "no-op"));
    expect(changes.map((c) => [c.previous_address, c.address]).sort()).toEqual(moved.map((m) => [m.from, m.to]).sort());
    tf(stackDir, "apply", "-auto-approve", "-input=false", "tfplan");
    expect(plan(stackDir)).toEqual([]);
  });
});
