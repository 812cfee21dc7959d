import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Tls } from "../../config/registry-stack-props";
import { keptAddresses, OVERRIDE_FILE, parseArgs, planTeardown, preventDestroyOverride, SynthesizedStack } from "../../scripts/teardown";
import { buildStack, synthJson, tempDirectory } from "../fixtures/test-stack";

const PROJECT = path.resolve(__dirname, "../..");

/** What `terraform state list` prints after a full deploy of the synthesized stack. */
function addressesOf(stack: SynthesizedStack): string[] {
  return Object.entries(stack.resource ?? {}).flatMap(([type, byId]) => Object.keys(byId).map((id) => `${type}.${id}`));
}

function synthesized(props: Parameters<typeof buildStack>[0] = {}): SynthesizedStack {
  return synthJson(buildStack(props)) as unknown as SynthesizedStack;
}

describe("planTeardown on synthesized stacks", () => {
  const topologies: Array<[string, Parameters<typeof buildStack>[0]]> = [
    ["proxy + TLS (default)", {}],
    ["direct TLS", { proxy: false }],
    ["plain HTTP", { tls: Tls.none() }],
    ["volume not protected", { preventVolumeDestroy: false }],
  ];

  test.each(topologies)("%s: keeps exactly the data volume and targets everything else", (_name, props) => {
    const stack = synthesized(props);
    const all = addressesOf(stack);
    const plan = planTeardown(all, stack, { all: false, yes: false });
    const dataVolume = all.filter((a) => /^docker_volume\.registry_data_[0-9A-F]{8}$/.test(a));
    expect(dataVolume).toHaveLength(1);
    expect(plan.kept).toEqual(dataVolume);
    const targets = plan.destroyArgs!.filter((a) => a.startsWith("-target=")).map((a) => a.slice("-target=".length));
    expect(targets.sort()).toEqual(all.filter((a) => a !== dataVolume[0]).sort());
    expect(targets.some((t) => t.startsWith("docker_container."))).toBe(true);
    expect(targets.some((t) => t.startsWith("docker_network."))).toBe(true);
    expect(targets.some((t) => t.startsWith("terraform_data."))).toBe(true);
    expect(plan.destroyArgs!.slice(0, 2)).toEqual(["destroy", "-input=false"]);
    expect(plan.override).toBeUndefined();
  });

  test("keeps nothing with storageHostPath (Terraform never deletes a host folder)", () => {
    const stack = synthesized({ storageHostPath: "/srv/registry" });
    const plan = planTeardown(addressesOf(stack), stack, { all: false, yes: true });
    expect(plan.kept).toEqual([]);
    expect(plan.destroyArgs).toContain("-auto-approve");
    expect(plan.destroyArgs!.filter((a) => a.startsWith("-target="))).toHaveLength(addressesOf(stack).length);
  });

  test("--all destroys everything with prevent_destroy lifted by an override", () => {
    const stack = synthesized();
    const plan = planTeardown(addressesOf(stack), stack, { all: true, yes: false });
    expect(plan.destroyArgs).toEqual(["destroy", "-input=false"]);
    const volume = addressesOf(stack).find((a) => a.startsWith("docker_volume.registry_data_"))!.split(".")[1];
    expect(JSON.parse(plan.override!)).toEqual({ resource: { docker_volume: { [volume]: { lifecycle: { prevent_destroy: false } } } } });
  });

  test("targets what the state holds, also resources no longer in the configuration", () => {
    const stack = synthesized();
    const plan = planTeardown(["docker_container.old_name", "data.x.y", ""], stack, { all: false, yes: false });
    expect(plan.destroyArgs).toEqual(["destroy", "-input=false", "-target=docker_container.old_name"]);
  });

  test("does nothing on an empty state, or when only the data volume is left", () => {
    const stack = synthesized();
    expect(planTeardown([], stack, { all: false, yes: false })).toEqual({ kept: [] });
    const volume = keptAddresses(stack)[0];
    expect(planTeardown([volume], stack, { all: false, yes: false })).toEqual({ kept: [volume] });
  });

  test("the override is empty when nothing is protected", () => {
    expect(preventDestroyOverride(synthesized({ preventVolumeDestroy: false }))).toBeUndefined();
  });
});

describe("parseArgs", () => {
  test("defaults to cdktf.out/stacks/registry in the current folder", () => {
    expect(parseArgs([], "/p")).toEqual({ all: false, yes: false, dryRun: false, stackDir: "/p/cdktf.out/stacks/registry" });
    expect(parseArgs(["--all", "--yes", "--stack", "lab", "--output", "out"], "/p")).toMatchObject({ all: true, yes: true, stackDir: "/p/out/stacks/lab" });
  });

  test("fails on an unknown argument, naming it", () => {
    expect(() => parseArgs(["--force"])).toThrow("unknown argument --force");
    expect(() => parseArgs(["--stack"])).toThrow("--stack needs a value");
  });
});

// Terraform's own behaviour, with terraform_data stand-ins for the docker resources (the docker
// provider cannot be installed here): same graph, the "volume" with prevent_destroy.
const terraform = spawnSync("terraform", ["version"], { encoding: "utf8" });
const describeWithTerraform = terraform.status === 0 ? describe : describe.skip;

describeWithTerraform("npm run teardown against Terraform (terraform_data stand-ins)", () => {
  const env = { ...process.env, CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1" };
  const STAND_IN = {
    resource: {
      terraform_data: {
        registry_data: { input: "registry-data", lifecycle: { prevent_destroy: true } },
        "backend-network": { input: "registry-backend" },
        registry_container: { input: "${terraform_data.registry_data.id}", depends_on: ["terraform_data.backend-network"] },
        proxy_container: { input: "${terraform_data.registry_container.id}" },
      },
    },
  };
  const tf = (dir: string, ...args: string[]) => spawnSync("terraform", [...args, "-no-color"], { cwd: dir, env, encoding: "utf8", timeout: 120_000 });
  const teardown = (dir: string, ...args: string[]) =>
    spawnSync("node", ["-r", "ts-node/register/transpile-only", "scripts/teardown.ts", "--stack-dir", dir, "--yes", ...args], {
      cwd: PROJECT,
      env,
      encoding: "utf8",
      timeout: 180_000,
    });
  const stateList = (dir: string) => tf(dir, "state", "list").stdout.trim().split("\n").filter(Boolean).sort();

  test("plain destroy fails at plan; teardown keeps the volume; redeploy reuses it; --all removes everything", () => {
    const dir = tempDirectory();
    fs.writeFileSync(path.join(dir, "cdk.tf.json"), JSON.stringify(STAND_IN));
    expect(tf(dir, "init", "-input=false").status).toBe(0);
    expect(tf(dir, "apply", "-auto-approve", "-input=false").status).toBe(0);
    const volumeId = tf(dir, "state", "show", "terraform_data.registry_data").stdout.match(/id\s+=\s+"([^"]+)"/)![1];

    const plain = tf(dir, "destroy", "-auto-approve", "-input=false");
    expect(plain.status).not.toBe(0);
    expect(plain.stderr).toContain("Instance cannot be destroyed");
    expect(stateList(dir)).toHaveLength(4);

    const kept = teardown(dir);
    expect(kept.status).toBe(0);
    expect(stateList(dir)).toEqual(["terraform_data.registry_data"]);
    expect(kept.stdout).toContain("Kept (still in the state; the next deploy reuses it): terraform_data.registry_data");

    const redeploy = tf(dir, "apply", "-auto-approve", "-input=false");
    expect(redeploy.stdout).toContain("Plan: 3 to add, 0 to change, 0 to destroy.");
    expect(tf(dir, "state", "show", "terraform_data.registry_data").stdout).toContain(volumeId);

    const all = teardown(dir, "--all");
    expect(all.status).toBe(0);
    expect(stateList(dir)).toEqual([]);
    expect(fs.existsSync(path.join(dir, OVERRIDE_FILE))).toBe(false);
    expect(fs.readFileSync(path.join(dir, "cdk.tf.json"), "utf8")).toBe(JSON.stringify(STAND_IN));
  });

  test("--dry-run prints the command and changes nothing", () => {
    const dir = tempDirectory();
    fs.writeFileSync(path.join(dir, "cdk.tf.json"), JSON.stringify(STAND_IN));
    tf(dir, "init", "-input=false");
    tf(dir, "apply", "-auto-approve", "-input=false");
    const dry = teardown(dir, "--dry-run");
    expect(dry.stdout).toContain(
      `(cd ${dir} && terraform destroy -input=false -auto-approve -target=terraform_data.backend-network -target=terraform_data.proxy_container -target=terraform_data.registry_container)`,
    );
    expect(stateList(dir)).toHaveLength(4);
  });
});
