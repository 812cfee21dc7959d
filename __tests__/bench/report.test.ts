import { buildReport, Machine, renderMarkdown, renderTable } from "../../bench/report";
import { describeJudged, judge, MIN_REPETITIONS, Target, TARGETS } from "../../bench/targets";

const machine: Machine = { cpus: 2, cpuModel: "test CPU", memoryGiB: 4, kernel: "Linux test", node: "v20", uptimeAtStart: "load average: 1.00", aeadMBps: {} };
const atMost: Target = { id: "x", issue: 22, what: "x ratio", comparison: "at most", limit: 1.1 };
const atLeast: Target = { id: "y", issue: 22, what: "y ratio", comparison: "at least", limit: 0.95 };

describe("judging a target", () => {
  it("is met when the median meets an upper limit, even if the max does not", () => {
    // GIVEN five paired repetitions whose median is 1.05 and whose max is 1.4
    const j = judge(atMost, [1.0, 1.4, 1.05, 1.02, 1.08]);
    // THEN the verdict follows the median, and the spread is kept
    expect(j.verdict).toBe("met");
    expect(j.spread).toEqual({ n: 5, median: 1.05, min: 1.0, max: 1.4 });
  });

  it("is missed when the median is above an upper limit by any amount", () => {
    expect(judge(atMost, [1.118, 1.118, 1.2, 1.0, 1.11]).verdict).toBe("MISSED");
  });

  it("is missed when the median is below a lower limit", () => {
    expect(judge(atLeast, [0.91, 0.9, 0.99, 0.93, 0.92]).verdict).toBe("MISSED");
    expect(judge(atLeast, [0.96, 0.9, 0.99, 0.97, 0.92]).verdict).toBe("met");
  });

  it("is not judged on fewer than the minimum repetitions", () => {
    expect(judge(atLeast, [1, 1, 1, 1].slice(0, MIN_REPETITIONS - 1)).verdict).toBe("too few repetitions");
    expect(judge(atLeast, undefined).verdict).toBe("not measured");
  });

  it("judges a count target (limit 0) on a single run", () => {
    const failures: Target = { ...atMost, limit: 0 };
    expect(judge(failures, [0]).verdict).toBe("met");
    expect(judge(failures, [3]).verdict).toBe("MISSED");
  });

  it("prints a miss as a miss, with the limit and the spread", () => {
    const line = describeJudged(judge(atMost, [1.2, 1.3, 1.25, 1.22, 1.4]));
    expect(line).toBe("MISSED  #22 x ratio ≤ 1.1: median 1.25 (min 1.20, max 1.40, n 5)");
  });
});

describe("the table of targets", () => {
  it("holds the limits issue 22 set, not looser ones", () => {
    const limit = (id: string) => TARGETS.find((t) => t.id === id);
    expect(limit("auth_pull_vs_anonymous")).toMatchObject({ issue: 22, comparison: "at most", limit: 1.1 });
    expect(limit("upload_vs_direct")).toMatchObject({ issue: 22, comparison: "at least", limit: 0.95 });
    expect(limit("flood_p99_vs_quiet")).toMatchObject({ issue: 22, comparison: "at most", limit: 1.5 });
    expect(limit("download_vs_registry_tls")).toMatchObject({ issue: 22, comparison: "at least", limit: 1.0 });
    expect(limit("download_vs_direct")).toMatchObject({ issue: 22, comparison: "at least", limit: 0.8, stretch: true });
    expect(limit("deploy_failures")).toMatchObject({ issue: 19, limit: 0 });
  });
});

describe("the report", () => {
  // GIVEN a run cut after the upload ratio, with one target missed
  const report = buildReport(
    machine,
    { samples: { upload_vs_direct: [0.9, 0.91, 0.88, 0.93, 0.95], catalog_growth: [8, 9, 10] }, figures: { "upload through the proxy": "300 MiB/s" } },
    { seconds: 600, cuts: ["time budget: flood not measured"], now: new Date("2026-12-06T21:00:00Z") },
  );

  it("judges every target of the table, printing misses and what was not measured", () => {
    expect(report.targets.map((t) => t.id)).toEqual(TARGETS.map((t) => t.id));
    expect(report.targets.find((t) => t.id === "upload_vs_direct")?.verdict).toBe("MISSED");
    expect(report.targets.find((t) => t.id === "flood_p99_vs_quiet")?.verdict).toBe("not measured");
    expect(renderTable(report)).toContain("MISSED  #22 upload throughput through the proxy / straight to the registry's socket ≥ 0.95: median 0.91");
  });

  it("marks the run incomplete and says what was cut", () => {
    expect(report.complete).toBe(false);
    const md = renderMarkdown(report);
    expect(md).toContain("**INCOMPLETE**: time budget: flood not measured");
    expect(md).toContain("| **MISSED** | #22 | upload throughput through the proxy / straight to the registry's socket | ≥ 0.95 | 0.91 | 0.88 – 0.95 | 5 |");
    expect(md).toContain("| #22 | full catalog listing time, 1,000 / 100 repositories | 9 | 8 – 10 | 3 |");
    expect(md).toContain("shared 2-core machine");
  });
});
