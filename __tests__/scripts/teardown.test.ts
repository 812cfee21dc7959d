import { Tls } from "../../config/registry-stack-props";
import { keptAddresses, parseArgs, planTeardown, preventDestroyOverride, SynthesizedStack } from "../../scripts/teardown";
import { buildStack, synthJson } from "../fixtures/test-stack";

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
