import { parseArgs, renderPlanSummary, SUMMARY_MARKER } from "../../scripts/plan-summary";

describe("plan summary for a change request", () => {
  test("says so when nothing changes (no-op and read only)", () => {
    const plan = { resource_changes: [{ address: "docker_network.edge", change: { actions: ["no-op"] } }, { address: "data.x.y", change: { actions: ["read"] } }] };
    const text = renderPlanSummary(plan, "No changes.", "registry");
    expect(text.startsWith(SUMMARY_MARKER)).toBe(true);
    expect(text).toContain("**No changes.**");
    expect(text).not.toContain("| action |");
  });

  test("counts and lists every change, replacements named as such", () => {
    // GIVEN a replacement (create before destroy), an update and a no-op
    const plan = {
      resource_changes: [
        { address: "docker_container.registry", change: { actions: ["create", "delete"] } },
        { address: "docker_container.proxy", change: { actions: ["update"] } },
        { address: "docker_volume.data", change: { actions: ["no-op"] } },
      ],
    };
    // WHEN rendered
    const text = renderPlanSummary(plan, "  # docker_container.registry must be replaced", "registry");
    // THEN
    expect(text).toContain("**Plan: 1 to add, 1 to change, 1 to destroy.**");
    expect(text).toContain("| replace (create before destroy) | `docker_container.registry` |");
    expect(text).toContain("| update | `docker_container.proxy` |");
    expect(text).not.toContain("docker_volume.data");
    expect(text).toContain("```text\n  # docker_container.registry must be replaced\n```");
  });

  test("cuts Terraform's text to fit a GitHub comment and keeps code fences closed", () => {
    const plan = { resource_changes: [{ address: "a.b", change: { actions: ["create"] } }] };
    const text = renderPlanSummary(plan, "x".repeat(70_000) + "```", "registry");
    expect(text.length).toBeLessThan(65_536);
    expect(text).toContain("… (cut; the job log has the whole plan)");
    expect(text.match(/```/g)).toHaveLength(2);
  });

  test("fails when given an unknown argument, naming it", () => {
    expect(() => parseArgs(["--outt", "x"])).toThrow('unknown argument "--outt"');
    expect(parseArgs(["--skip-provider-lock", "--out", "s.md"])).toEqual({ out: "s.md", stack: "registry", skipProviderLock: true });
  });
});
