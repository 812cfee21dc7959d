import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { REGISTRIES_YAML_SCRIPT } from "../../constructs/client-config";
import { applyRegistriesChange, parseRegistriesChange, REGISTRIES_CHANGE_VARIABLE, RegistriesYamlChange } from "../../scripts/registries-yaml-file";
import { tempDirectory } from "../fixtures/test-stack";

const PROJECT = path.resolve(__dirname, "../..");
const OWNER = "registry/client";

function change(file: string, port: number): RegistriesYamlChange {
  return {
    file,
    owner: OWNER,
    mirrors: { "docker.io": { endpoint: [`https://store.example.test:${port}`] } },
    configs: { [`store.example.test:${port}`]: { tls: { ca_file: "/etc/registry/ca.crt" } } },
  };
}

describe("applyRegistriesChange on real files", () => {
  test("merges into the node's file and takes back only its own entries, leaving the ledger only while needed", () => {
    const file = path.join(tempDirectory(), "registries.yaml");
    const mine = "mirrors:\n  quay.io:\n    endpoint:\n      - https://quay-cache.example.test\n";
    fs.writeFileSync(file, mine, { mode: 0o600 });
    expect(applyRegistriesChange("add", change(file, 5001))).toBe("written");
    expect(parse(fs.readFileSync(file, "utf8")).mirrors).toEqual({
      "quay.io": { endpoint: ["https://quay-cache.example.test"] },
      "docker.io": { endpoint: ["https://store.example.test:5001"] },
    });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.existsSync(`${file}.registry-stack`)).toBe(true);
    // A port change: Terraform destroys the old resource (remove), then creates the new one (add).
    applyRegistriesChange("remove", change(file, 5001));
    expect(fs.readFileSync(file, "utf8")).toBe(mine);
    expect(fs.existsSync(`${file}.registry-stack`)).toBe(false);
    applyRegistriesChange("add", change(file, 6001));
    expect(Object.keys(parse(fs.readFileSync(file, "utf8")).configs)).toEqual(["store.example.test:6001"]);
  });

  test("refuses a relative path and a malformed change", () => {
    expect(() => applyRegistriesChange("add", change("registries.yaml", 5001))).toThrow("file must be an absolute path");
    expect(() => parseRegistriesChange('{"file": "/x", "owner": "o", "mirrors": []}')).toThrow(`${REGISTRIES_CHANGE_VARIABLE} must be`);
  });
});

describe("the registries.yaml command line Terraform runs", () => {
  const run = (action: string, value: string) =>
    spawnSync("sh", ["-c", `node -r ts-node/register/transpile-only ${REGISTRIES_YAML_SCRIPT} ${action}`], {
      cwd: PROJECT,
      env: { ...process.env, [REGISTRIES_CHANGE_VARIABLE]: value },
      encoding: "utf8",
    });

  test("adds and removes, reporting what it did; exits 1 naming an unparsable file", () => {
    const file = path.join(tempDirectory(), "k3s", "registries.yaml");
    const value = JSON.stringify(change(file, 5001));
    const added = run("add", value);
    expect(added.stdout).toBe(`registries.yaml add (${OWNER}; mirrors: docker.io; configs: store.example.test:5001): ${file} written\n`);
    expect(run("remove", value).status).toBe(0);
    expect(fs.existsSync(file)).toBe(false);
    fs.writeFileSync(file, "mirrors: [");
    const broken = run("add", value);
    expect(broken.status).toBe(1);
    expect(broken.stderr).toContain(`registries-yaml-file: ${file}: not valid YAML`);
  });
});
