import { DataResource, TerraformStack, Testing } from "cdktf";
import { TerraformData } from "../../constructs/terraform-data";

/** The module object itself (what cdktf calls through), not an import's read-only namespace. */
const childProcess = jest.requireActual<typeof import("child_process")>("child_process");

const INPUT = { daemon_json: "/etc/docker/daemon.json", insecure_registries: ["localhost:5000"], nested: { empty: [] } };
const PROVISIONERS = [
  { type: "local-exec" as const, command: "node add.ts", workingDir: "/project", environment: { ENTRIES: "${jsonencode(self.input)}" } },
  { type: "local-exec" as const, command: "node remove.ts", when: "destroy" as const, environment: { ENTRIES: "${jsonencode(self.input)}" } },
];

function stackWith(create: (stack: TerraformStack) => void): TerraformStack {
  const stack = new TerraformStack(Testing.app(), "s");
  create(stack);
  return stack;
}

function validate(stack: TerraformStack): string[] {
  return stack.node.findAll().flatMap((c) => c.node.validate());
}

describe("TerraformData", () => {
  test("synthesizes what cdktf's DataResource synthesizes", () => {
    const ours = stackWith((s) => new TerraformData(s, "entries", { input: INPUT, triggersReplace: INPUT, provisioners: PROVISIONERS }));
    const cdktfs = stackWith((s) => new DataResource(s, "entries", { input: INPUT, triggersReplace: INPUT, provisioners: PROVISIONERS }));
    const resources = (stack: TerraformStack) => (JSON.parse(Testing.synth(stack)) as { resource: unknown }).resource;
    expect(resources(ours)).toEqual(resources(cdktfs));
    expect(resources(ours)).toEqual({
      terraform_data: {
        entries: {
          input: INPUT,
          triggers_replace: INPUT,
          provisioner: [
            { "local-exec": { command: "node add.ts", working_dir: "/project", environment: { ENTRIES: "${jsonencode(self.input)}" } } },
            { "local-exec": { command: "node remove.ts", when: "destroy", environment: { ENTRIES: "${jsonencode(self.input)}" } } },
          ],
        },
      },
    });
  });

  test("validates without a terraform binary, where cdktf's DataResource fails the synth", () => {
    const ours = stackWith((s) => new TerraformData(s, "entries", { input: INPUT, triggersReplace: INPUT, provisioners: PROVISIONERS }));
    const cdktfs = stackWith((s) => new DataResource(s, "entries", { input: INPUT, triggersReplace: INPUT, provisioners: PROVISIONERS }));
    // Every program cdktf runs fails here, as on a machine without Terraform.
    const execSync = jest.spyOn(childProcess, "execSync").mockImplementation(() => {
      throw new Error("not installed");
    });
    try {
      expect(validate(ours)).toEqual([]);
      expect(execSync).not.toHaveBeenCalled();
      expect(validate(cdktfs)).toEqual([expect.stringContaining("Could not determine version of terraform, terraform version failed: Error: not installed")]);
      expect(execSync).toHaveBeenCalledWith("terraform version", expect.anything());
    } finally {
      execSync.mockRestore();
    }
  });
});
