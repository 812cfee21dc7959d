import { buildReport, mergeExploreFile, renderExploreMarkdown, renderMarkdown, Report } from "../../bench/report";
import { BLOB_BYTES, ProxyBenchResult, TransferResult } from "../../bench/proxy-bench";
import { RepeatResult } from "../../bench/reps";
import { Machine } from "../../bench/report";

const machine: Machine = {
  cpus: 2,
  cpuModel: "test CPU",
  memoryGiB: 4,
  kernel: "Linux test",
  node: "v20",
  dockerd: "Docker test",
  curl: "curl test",
  skopeo: "skopeo test",
  kernelTls: "not available (test)",
  aeadMBps: { "aes-128-gcm": 4000 },
};

const reps = (cut: boolean): RepeatResult => ({ background: [0, 0, 0], used: [0, 1, 2], disturbed: false, cut, wanted: 5 });

function transfer(key: string, uploadS: number, downloadS: number): TransferResult {
  return {
    key,
    label: `label of ${key}`,
    uploads: [uploadS, uploadS, uploadS],
    downloads: [downloadS, downloadS, downloadS],
    uploadMedianS: uploadS,
    downloadMedianS: downloadS,
    uploadMiBps: BLOB_BYTES / 2 ** 20 / uploadS,
    downloadMiBps: BLOB_BYTES / 2 ** 20 / downloadS,
    uploadServerCpuS: 1,
    downloadServerCpuS: 1,
    uploadClientCpuS: 1,
    downloadClientCpuS: 1,
  };
}

/** A proxy part as the bench measures it: every path the report's ratios name. */
function proxyPart(cut: boolean): ProxyBenchResult {
  return {
    blobBytes: BLOB_BYTES,
    repetitions: 3,
    reps: reps(cut),
    results: [
      transfer("direct", 2, 0.6),
      transfer("direct_tls", 2.1, 1.2),
      transfer("proxy", 2.2, 0.96),
      transfer("proxy_via_registry", 2.2, 1.5),
      transfer("proxy_output_32k", 2.2, 1.0),
      transfer("proxy_plain", 2.0, 0.5),
      transfer("recipe", 3.0, 2.0),
    ],
    blob: { file: "/nonexistent", size: BLOB_BYTES, digest: "sha256:0" },
    maxCommitSeconds: 0.1,
  };
}

describe("bench report of a run the watchdog stopped", () => {
  // GIVEN the proxy part measured (its loop cut by the time budget) and the watchdog stopping the run in the auth part
  const report = buildReport(machine, { proxy: proxyPart(true) }, 540, undefined, {
    stoppedIn: "the watchdog stopped the run at 540 s during authentication cost",
    notMeasured: ["auth", "synth"],
  });

  test("is marked incomplete and names every cut", () => {
    expect(report.complete).toBe(false);
    expect(report.cuts).toEqual([
      "the watchdog stopped the run at 540 s during authentication cost",
      "auth: not measured (the run was stopped before it finished)",
      "synth: not measured (the run was stopped before it finished)",
      "blob transfers: the time budget stopped it after 3 repetitions, 5 undisturbed ones wanted",
    ]);
  });

  test("keeps the figures of the part that was measured", () => {
    expect(report.ratios.proxy_download_vs_registry_tls).toBeCloseTo(1.2 / 0.96, 3);
    expect(report.ratios.proxy_upload_vs_direct).toBeCloseTo(2 / 2.2, 3);
    expect(report.targets.map((t) => t.figure)).toContain("proxy_download_vs_registry_tls");
    expect(Object.keys(report.ratios).some((k) => k.startsWith("auth_") || k.includes("synth"))).toBe(false);
  });

  test("renders the measured part, says which parts were not measured, and survives the JSON round trip", () => {
    const md = renderMarkdown(JSON.parse(JSON.stringify(report)) as Report);
    expect(md).toContain("INCOMPLETE RUN (`complete: false`)");
    expect(md).toContain("- CUT: synth: not measured (the run was stopped before it finished)");
    expect(md).toContain("### Blob transfers");
    expect(md).toMatch(/### Authentication\n\nNot measured in this run/);
    expect(md).toMatch(/### Synth\n\nNot measured in this run/);
  });
});

describe("bench report of a complete part", () => {
  test("is complete when nothing was left out or cut", () => {
    const report = buildReport(machine, { proxy: proxyPart(false) }, 300, undefined);
    expect(report.complete).toBe(true);
    expect(report.cuts).toEqual([]);
  });

  test("renders a synth part from an older report without the type-checked synth", () => {
    const report = buildReport(machine, { proxy: proxyPart(false) }, 300, undefined);
    const older = { ...report, context: { ...report.context, synth: { repetitions: 3, cold_median_s: 9.5, cold_s: [9.4, 9.5, 9.6], resynth_median_s: { "1_users": 7.1 }, resynth_s: { "1_users": [7, 7.1, 7.2] } } } };
    const md = renderMarkdown(older);
    expect(md).toContain("| `npx cdktf synth`, cold (fresh material directory, 1 user) | 9.50 s | 9.40, 9.50, 9.60 |");
    expect(md).not.toContain("type-checked at run time), re-synth");
  });
});

describe("exploration file", () => {
  test("keeps the earlier one-run file as the buffers stage when a tls stage is added", () => {
    const older = { generated: "2026-11-28T22:57:36.006Z", totalRunSeconds: 439, repetitions: 3, machine, rows: [{ key: "direct", label: "registry directly", upload_median_s: 3, download_median_s: 0.8, upload_vs_direct: 1, download_vs_direct: 1, upload_s: [3], download_s: [0.8] }] };
    const tls = { stage: "tls" as const, generated: "2026-11-29T07:00:00.000Z", totalRunSeconds: 400, repetitions: 8, machine, rows: [] };
    const file = mergeExploreFile(older, tls);
    expect(file.stages.buffers?.generated).toBe("2026-11-28T22:57:36.006Z");
    expect(file.stages.buffers?.rows[0].key).toBe("direct");
    expect(file.stages.tls?.generated).toBe("2026-11-29T07:00:00.000Z");
    const md = renderExploreMarkdown(file);
    expect(md.indexOf("## TLS downloads from storage")).toBeLessThan(md.indexOf("## Proxy buffering and upload pieces"));
  });
});
