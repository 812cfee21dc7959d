import { spawnSync } from "child_process";
import { Testing } from "cdktf";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { ClientConfig } from "../../constructs/client-config";
import { tempDirectory } from "../../__tests__/fixtures/test-stack";

/**
 * The synthesized terraform_data of ClientConfig, applied for real by Terraform itself (terraform_data is built in, so `init` needs
 * no provider download). The stack is only the client config, with the real script.
 */

const PROJECT = path.resolve(__dirname, "../..");
const FOREIGN = { "log-level": "warn", "insecure-registries": ["foreign:5000"] };

/** Synthesizes a ClientConfig for `port` into `<stackDir>/cdk.tf.json`, like `cdktf synth` does. */
function synthClient(stackDir: string, clientDir: string, port: number, tls = false): string {
  const text = Testing.synthScope((scope) => {
    new ClientConfig(scope, "client", {
      endpoints: [`localhost:${port}`, `127.0.0.1:${port}`],
      caCertificatePem: tls ? "PEM\n" : undefined,
      directory: clientDir,
      projectDirectory: PROJECT,
    });
  });
  const doc = JSON.parse(text) as Record<string, unknown>;
  // Keep terraform_data and removed: the local provider (certs.d) is not available to Terraform here.
  const resource = doc.resource as Record<string, unknown>;
  const out = { resource: { terraform_data: resource.terraform_data }, removed: doc.removed };
  fs.mkdirSync(stackDir, { recursive: true });
  const file = path.join(stackDir, "cdk.tf.json");
  fs.writeFileSync(file, JSON.stringify(out, null, 2));
  return file;
}

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, "utf8"));

// Part of `npm run test:e2e` (e2e/jest.config.js), where Terraform is a prerequisite: without it
// these tests fail rather than skip.
const terraform = spawnSync("terraform", ["version"], { encoding: "utf8", env: { ...process.env, CHECKPOINT_DISABLE: "1" } });

describe(`terraform_data daemon.json through ${terraform.stdout?.split("\n")[0] || "terraform"}`, () => {
  test("terraform is on the PATH", () => {
    expect(terraform.status).toBe(0);
  });

  const env = { ...process.env, CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1" };
  const tf = (dir: string, ...args: string[]) => {
    const result = spawnSync("terraform", [...args, "-no-color"], { cwd: dir, env, encoding: "utf8", timeout: 120_000 });
    if (result.status !== 0) throw new Error(`terraform ${args.join(" ")} failed:\n${result.stdout}\n${result.stderr}`);
    return result.stdout;
  };

  test("port 5000 → 5001 → TLS → destroy: no stale entry, foreign settings kept, file untouched at the end", () => {
    const root = tempDirectory();
    const clientDir = path.join(root, "client");
    const stackDir = path.join(root, "stack");
    const daemonJson = path.join(clientDir, "daemon.json");
    fs.mkdirSync(clientDir);
    fs.writeFileSync(daemonJson, JSON.stringify(FOREIGN));

    synthClient(stackDir, clientDir, 5000);
    tf(stackDir, "init", "-input=false");
    tf(stackDir, "apply", "-auto-approve", "-input=false");
    expect(readJson(daemonJson)["insecure-registries"]).toEqual(["foreign:5000", "localhost:5000", "127.0.0.1:5000"]);

    synthClient(stackDir, clientDir, 5001);
    const replaced = tf(stackDir, "apply", "-auto-approve", "-input=false");
    expect(replaced).toContain("Plan: 1 to add, 0 to change, 1 to destroy.");
    expect(readJson(daemonJson)).toEqual({ ...FOREIGN, "insecure-registries": ["foreign:5000", "localhost:5001", "127.0.0.1:5001"] });

    synthClient(stackDir, clientDir, 5001, true);
    tf(stackDir, "apply", "-auto-approve", "-input=false");
    expect(readJson(daemonJson)).toEqual(FOREIGN);
    // With TLS the k3s registries.yaml entries go through the same kind of resource and script.
    const registriesYaml = path.join(clientDir, "k3s", "registries.yaml");
    expect(Object.keys(YAML.parse(fs.readFileSync(registriesYaml, "utf8")).configs).sort()).toEqual(["127.0.0.1:5001", "localhost:5001"]);

    synthClient(stackDir, clientDir, 5002);
    tf(stackDir, "apply", "-auto-approve", "-input=false");
    const destroyed = tf(stackDir, "destroy", "-auto-approve", "-input=false");
    expect(destroyed).toContain("scripts/daemon-json-file.ts remove");
    expect(readJson(daemonJson)).toEqual(FOREIGN);
    expect(fs.existsSync(registriesYaml)).toBe(false);
    // A folder the scripts created stays, empty (as for daemon.json's folder).
    expect(fs.readdirSync(clientDir)).toEqual(["daemon.json", "k3s"]);
    expect(fs.readdirSync(path.join(clientDir, "k3s"))).toEqual([]);
  });

  test("a file the stack created is deleted by destroy; the removed block of the old local_file is accepted", () => {
    const root = tempDirectory();
    const clientDir = path.join(root, "client");
    const stackDir = path.join(root, "stack");
    synthClient(stackDir, clientDir, 5000);
    tf(stackDir, "init", "-input=false");
    tf(stackDir, "apply", "-auto-approve", "-input=false");
    expect(readJson(path.join(clientDir, "daemon.json"))).toEqual({ "insecure-registries": ["localhost:5000", "127.0.0.1:5000"] });
    tf(stackDir, "destroy", "-auto-approve", "-input=false");
    expect(fs.readdirSync(clientDir)).toEqual([]);
  });
});
