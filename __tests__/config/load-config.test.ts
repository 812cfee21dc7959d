import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadConfig, passwordEnvName } from "../../config/load-config";
import { problemsOf } from "../fixtures/problems-of";

function project(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "load-config-"));
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  return dir;
}


describe("loadConfig", () => {
  test("uses the embedded default when there is no config file", () => {
    const cwd = project({});
    expect(loadConfig({}, cwd)).toEqual({ props: { users: [{ name: "admin" }] }, source: "embedded default configuration" });
  });

  test("reads ./registry-stack.yml and takes passwords from the environment before the secrets file", () => {
    const cwd = project({
      "registry-stack.yml": "hostnames: [store.example.test]\nipAddresses: [192.0.2.10]\nusers:\n  - name: alice\n  - name: bob\n  - name: ci.bot\n",
      "registry.secrets.yml": "passwords:\n  alice: from-file\n  bob: bob-file\n",
    });
    const { props, source } = loadConfig({ REGISTRY_PASSWORD_ALICE: "from-env" }, cwd);
    expect(source).toBe(`configuration in ${path.join(cwd, "registry-stack.yml")}`);
    expect(props.hostnames).toEqual(["store.example.test"]);
    expect(props.users).toEqual([{ name: "alice", password: "from-env" }, { name: "bob", password: "bob-file" }, { name: "ci.bot" }]);
  });

  test("honours REGISTRY_STACK_CONFIG and REGISTRY_STACK_SECRETS", () => {
    const cwd = project({ "prod.yml": "publicPort: 443\n", "prod.secrets.yml": "passwords:\n  admin: s3cret-admin\n" });
    const { props } = loadConfig({ REGISTRY_STACK_CONFIG: "prod.yml", REGISTRY_STACK_SECRETS: "prod.secrets.yml" }, cwd);
    expect(props).toEqual({ publicPort: 443, users: [{ name: "admin", password: "s3cret-admin" }] });
  });

  test("maps user names to environment variable names", () => {
    expect(passwordEnvName("ci.bot-1")).toBe("REGISTRY_PASSWORD_CI_BOT_1");
  });

  test("fails when REGISTRY_STACK_CONFIG names a missing file", () => {
    const cwd = project({});
    expect(problemsOf(() => loadConfig({ REGISTRY_STACK_CONFIG: "nope.yml" }, cwd))).toEqual([
      `REGISTRY_STACK_CONFIG: file ${path.join(cwd, "nope.yml")} does not exist; fix the path or unset REGISTRY_STACK_CONFIG`,
    ]);
  });

  test("fails when the config file is not YAML or not a mapping", () => {
    expect(problemsOf(() => loadConfig({}, project({ "registry-stack.yml": "a: [1\n" })))[0]).toMatch(/registry-stack.yml: not valid YAML/);
    expect(problemsOf(() => loadConfig({}, project({ "registry-stack.yml": "- 1\n" })))[0]).toMatch(/must be a YAML mapping/);
  });

  test("fails when the config file holds a password, or the secrets file names an unknown user", () => {
    const cwd = project({
      "registry-stack.yml": "users:\n  - name: alice\n    password: oops\n",
      "registry.secrets.yml": "passwords:\n  alcie: x\n",
    });
    const problems = problemsOf(() => loadConfig({}, cwd));
    expect(problems).toEqual([
      "users[0].password: passwords do not belong in the config file; set REGISTRY_PASSWORD_ALICE or use the secrets file",
      `${path.join(cwd, "registry.secrets.yml")}: passwords.alcie names no configured user; fix the name or remove the entry`,
    ]);
    expect(problems.join("\n")).not.toContain("oops");
  });
});
