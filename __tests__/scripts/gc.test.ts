import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { resolveSettings } from "../../config/schema";
import { collectorLookupArgs, gcDockerArgs, main } from "../../scripts/gc";

const retention = { rules: [{ repositories: "^", keepNewest: 5 }] };

describe("npm run gc", () => {
  test("runs the job in the maintenance container of the configured engine", () => {
    const settings = resolveSettings({ namePrefix: "store", dockerHost: "ssh://deploy@store.example.test", retention }, "registry");
    expect(gcDockerArgs(settings, false)).toEqual(["--host", "ssh://deploy@store.example.test", "exec", "store-maintenance", "/bin/sh", "/etc/registry-stack/maintenance.sh", "run"]);
    expect(gcDockerArgs(settings, true).slice(-2)).toEqual(["run", "--dry-run"]);
  });

  test("passes the TLS client files of a tcp:// engine", () => {
    const settings = resolveSettings({ dockerHost: "tcp://build.example.test:2376", dockerCertPath: "certs", projectDirectory: "/srv/p", retention }, "registry");
    expect(gcDockerArgs(settings, false).slice(0, 9)).toEqual([
      "--host", "tcp://build.example.test:2376", "--tlsverify",
      "--tlscacert", "/srv/p/certs/ca.pem", "--tlscert", "/srv/p/certs/cert.pem", "--tlskey", "/srv/p/certs/key.pem",
    ]);
  });

  test("cluster mode: looks up the collector task's container on the manager, then runs the job in it", () => {
    const settings = resolveSettings(
      {
        namePrefix: "store",
        dockerHost: "ssh://admin@manager-1",
        retention: { rules: [{ repositories: "^", keepTags: ["^v"] }] },
        cluster: { nodes: ["10.0.0.1"], storage: { endpoint: "http://s3:9000", bucket: "b", accessKey: "a", secretKey: "s" }, redis: { addresses: ["redis:6379"] } },
      },
      "registry",
    );
    expect(collectorLookupArgs(settings)).toEqual(["--host", "ssh://admin@manager-1", "ps", "-q", "--filter", "label=com.docker.swarm.service.name=store-collector"]);
    expect(gcDockerArgs(settings, true, "0123abcd")).toEqual(["--host", "ssh://admin@manager-1", "exec", "0123abcd", "/bin/sh", "/etc/registry-stack/maintenance.sh", "run", "--dry-run"]);
  });

  test("fails when retention is not configured, or on an unknown argument", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gc-script-"));
    const writes: string[] = [];
    const spy = jest.spyOn(process.stderr, "write").mockImplementation((chunk) => (writes.push(String(chunk)), true));
    try {
      expect(main([], {}, dir)).toBe(1);
      expect(main(["--force"], {}, dir)).toBe(2);
    } finally {
      spy.mockRestore();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(writes[0]).toMatch(/retention is not configured/);
    expect(writes[1]).toMatch(/unknown argument\(s\) --force/);
  });
});
