import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { DAEMON_JSON_SCRIPT } from "../../constructs/client-config";
import { applyChange, CHANGE_VARIABLE, DaemonJsonChange, ledgerPath, parseChange } from "../../scripts/daemon-json-file";
import { tempDirectory } from "../fixtures/test-stack";

const PROJECT = path.resolve(__dirname, "../..");
const OWNER = "registry/client";

function change(file: string, entries: string[], owner = OWNER): DaemonJsonChange {
  return { daemon_json: file, owner, insecure_registries: entries };
}
const read = (file: string) => JSON.parse(fs.readFileSync(file, "utf8"));

describe("applyChange on real files", () => {
  test("adds entries and keeps every foreign key and entry; remove takes back only its own", () => {
    const file = path.join(tempDirectory(), "daemon.json");
    fs.writeFileSync(file, JSON.stringify({ "data-root": "/srv/docker", "insecure-registries": ["foreign:5000"], "log-opts": { "max-size": "10m" } }));
    expect(applyChange("add", change(file, ["localhost:5000", "foreign:5000"])).daemonJson).toBe("written");
    expect(read(file)).toEqual({ "data-root": "/srv/docker", "insecure-registries": ["foreign:5000", "localhost:5000"], "log-opts": { "max-size": "10m" } });
    expect(read(ledgerPath(file)).added).toEqual(["localhost:5000"]);

    applyChange("remove", change(file, ["localhost:5000", "foreign:5000"]));
    expect(read(file)).toEqual({ "data-root": "/srv/docker", "insecure-registries": ["foreign:5000"], "log-opts": { "max-size": "10m" } });
    expect(fs.existsSync(ledgerPath(file))).toBe(false);
  });

  test("leaves no stale entry after moving the port 5000 → 5001 (destroy old, create new)", () => {
    const file = path.join(tempDirectory(), "daemon.json");
    fs.writeFileSync(file, '{"debug": true, "insecure-registries": ["foreign:1"]}\n');
    const at = (port: number) => change(file, [`localhost:${port}`, `127.0.0.1:${port}`]);
    applyChange("add", at(5000));
    applyChange("remove", at(5000));
    applyChange("add", at(5001));
    expect(read(file)).toEqual({ debug: true, "insecure-registries": ["foreign:1", "localhost:5001", "127.0.0.1:5001"] });
    applyChange("remove", at(5001));
    expect(read(file)).toEqual({ debug: true, "insecure-registries": ["foreign:1"] });
  });

  test("never removes an entry that was there before, even one it needs", () => {
    const file = path.join(tempDirectory(), "daemon.json");
    fs.writeFileSync(file, '{"insecure-registries": ["localhost:5000"]}');
    expect(applyChange("add", change(file, ["localhost:5000"])).daemonJson).toBe("unchanged");
    expect(applyChange("remove", change(file, ["localhost:5000"])).daemonJson).toBe("unchanged");
    expect(fs.readFileSync(file, "utf8")).toBe('{"insecure-registries": ["localhost:5000"]}');
  });

  test("creates the file and its folder, and deletes the file it created when nothing else is left", () => {
    const dir = path.join(tempDirectory(), "etc-docker");
    const file = path.join(dir, "daemon.json");
    applyChange("add", change(file, ["localhost:5000"]));
    expect(read(file)).toEqual({ "insecure-registries": ["localhost:5000"] });
    expect(fs.statSync(file).mode & 0o777).toBe(0o644 & ~process.umask());
    expect(applyChange("remove", change(file, ["localhost:5000"])).daemonJson).toBe("deleted");
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test("keeps the file it created when someone added other settings meanwhile", () => {
    const file = path.join(tempDirectory(), "daemon.json");
    applyChange("add", change(file, ["localhost:5000"]));
    fs.writeFileSync(file, JSON.stringify({ ...read(file), "live-restore": true }));
    applyChange("remove", change(file, ["localhost:5000"]));
    expect(read(file)).toEqual({ "live-restore": true });
  });

  test("writes nothing with TLS (no entries) when there is no daemon.json", () => {
    const dir = tempDirectory();
    applyChange("add", change(path.join(dir, "daemon.json"), []));
    applyChange("remove", change(path.join(dir, "daemon.json"), []));
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test("keeps the file's mode and leaves no temp file", () => {
    const dir = tempDirectory();
    const file = path.join(dir, "daemon.json");
    fs.writeFileSync(file, "{}", { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    applyChange("add", change(file, ["a:1"]));
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir).sort()).toEqual(["daemon.json", "daemon.json.registry-stack"]);
  });

  test("fails when daemon.json is not valid JSON, naming it, and writes nothing", () => {
    const dir = tempDirectory();
    const file = path.join(dir, "daemon.json");
    fs.writeFileSync(file, '{"debug": true,}');
    expect(() => applyChange("add", change(file, ["a:1"]))).toThrow(`${file} is not valid JSON`);
    expect(() => applyChange("remove", change(file, ["a:1"]))).toThrow(`${file} is not valid JSON`);
    expect(fs.readdirSync(dir)).toEqual(["daemon.json"]);
    expect(fs.readFileSync(file, "utf8")).toBe('{"debug": true,}');
  });

  test("fails when the ledger is damaged, naming it, and writes nothing", () => {
    const dir = tempDirectory();
    const file = path.join(dir, "daemon.json");
    fs.writeFileSync(file, "{}");
    fs.writeFileSync(ledgerPath(file), "nope");
    expect(() => applyChange("add", change(file, ["a:1"]))).toThrow(`${ledgerPath(file)}: not valid JSON`);
    expect(fs.readFileSync(file, "utf8")).toBe("{}");
  });

  test("fails when daemon_json is relative", () => {
    expect(() => applyChange("add", change("daemon.json", []))).toThrow('daemon_json must be an absolute path, got "daemon.json"');
  });
});

describe("parseChange", () => {
  test("reads what Terraform's jsonencode(self.input) passes", () => {
    expect(parseChange('{"daemon_json":"/d/daemon.json","insecure_registries":["a:1"],"owner":"registry/client"}')).toEqual(
      change("/d/daemon.json", ["a:1"]),
    );
  });

  test("fails when the variable is missing or malformed", () => {
    expect(() => parseChange(undefined)).toThrow(`${CHANGE_VARIABLE} is not set`);
    expect(() => parseChange('{"daemon_json": 1}')).toThrow(`${CHANGE_VARIABLE} must be {"daemon_json": string`);
  });
});

describe("the command line Terraform runs", () => {
  const run = (action: string, value: string) =>
    spawnSync("sh", ["-c", `node -r ts-node/register/transpile-only ${DAEMON_JSON_SCRIPT} ${action}`], {
      cwd: PROJECT,
      env: { ...process.env, [CHANGE_VARIABLE]: value },
      encoding: "utf8",
    });

  test("adds and removes, reporting what it did", () => {
    const file = path.join(tempDirectory(), "daemon.json");
    const value = JSON.stringify(change(file, ["localhost:5000"]));
    const added = run("add", value);
    expect(added.stdout).toBe(`daemon.json add (${OWNER}; insecure-registries: localhost:5000): ${file} written\n`);
    expect(added.status).toBe(0);
    expect(run("remove", value).status).toBe(0);
    expect(fs.existsSync(file)).toBe(false);
  });

  test("exits 1 with the reason when the file is unparsable", () => {
    const file = path.join(tempDirectory(), "daemon.json");
    fs.writeFileSync(file, "[");
    const result = run("add", JSON.stringify(change(file, ["a:1"])));
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`daemon-json-file: ${file} is not valid JSON`);
  });

  test("refuses an unknown action", () => {
    expect(() => execFileSync("sh", ["-c", `node -r ts-node/register/transpile-only ${DAEMON_JSON_SCRIPT} merge`], { cwd: PROJECT, stdio: "pipe" })).toThrow(
      /usage:/,
    );
  });
});
