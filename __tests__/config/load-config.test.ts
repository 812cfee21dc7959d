import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError } from "../../config/config-error";
import { loadConfig, passwordEnvName } from "../../config/load-config";
import { problemsOf } from "../fixtures/problems-of";

function project(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "load-config-"));
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content, { mode: 0o600 });
  return dir;
}

const SECRET = "Zq-correct-horse-7731";

/** Runs `load` and returns everything a user could see: the error's message and anything printed. */
function visibleOutput(load: () => unknown): { message: string; printed: string } {
  const printed: string[] = [];
  const spies = [
    jest.spyOn(process, "emitWarning").mockImplementation((w: string | Error) => void printed.push(String(w))),
    jest.spyOn(console, "warn").mockImplementation((...a: unknown[]) => void printed.push(a.join(" "))),
    jest.spyOn(console, "error").mockImplementation((...a: unknown[]) => void printed.push(a.join(" "))),
    jest.spyOn(console, "log").mockImplementation((...a: unknown[]) => void printed.push(a.join(" "))),
  ];
  try {
    load();
    return { message: "", printed: printed.join("\n") };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return { message: `${error.message}\n${error.problems.join("\n")}`, printed: printed.join("\n") };
  } finally {
    spies.forEach((spy) => spy.mockRestore());
  }
}


describe("loadConfig", () => {
  test("uses the embedded default when there is no config file", () => {
    const cwd = project({});
    expect(loadConfig({}, cwd)).toEqual({ props: { users: [{ name: "admin", role: "admin" }] }, source: "embedded default configuration", warnings: [] });
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
    expect(props).toEqual({ publicPort: 443, users: [{ name: "admin", role: "admin", password: "s3cret-admin" }] });
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
      `${path.join(cwd, "registry.secrets.yml")}: passwords, line 2, column 3: an entry names no configured user (not shown: a mistyped entry can hold a password); did you mean "alice"? fix the name or remove the entry`,
    ]);
    expect(problems.join("\n")).not.toContain("oops");
    expect(problems.join("\n")).not.toContain("alcie");
  });

  describe("never shows a secret (issue #8, item 5)", () => {
    const secretsFile = (cwd: string) => path.join(cwd, "registry.secrets.yml");
    const cases: Array<[string, Record<string, string>, NodeJS.ProcessEnv, RegExp]> = [
      ["a YAML syntax error in the secrets file", { "registry.secrets.yml": `passwords:\n  admin: ${SECRET}: x\n` }, {}, /registry\.secrets\.yml: not valid YAML \(BLOCK_AS_IMPLICIT_KEY\) at line 2, column 10; fix the file/],
      ["an unclosed quote in the secrets file", { "registry.secrets.yml": `passwords:\n  admin: "${SECRET}\n` }, {}, /registry\.secrets\.yml: not valid YAML \(MISSING_CHAR\) at line 3, column 1/],
      ["an unknown tag in the secrets file (a parser warning)", { "registry.secrets.yml": `passwords:\n  admin: !vault ${SECRET}\n  ghost: x\n` }, {}, /passwords, line 3, column 3: an entry names no configured user \(not shown/],
      ["a password that is not a string", { "registry.secrets.yml": `passwords:\n  admin: [${SECRET}]\n` }, {}, /registry\.secrets\.yml: passwords\.admin is a list, not a password; write the password as a quoted string: admin: "<password>"/],
      ["a too-long password in the secrets file", { "registry.secrets.yml": `passwords:\n  admin: ${SECRET.repeat(4)}\n` }, {}, /passwords\.admin is longer than 72 bytes \(84\)/],
      ["a too-long password in the environment", {}, { REGISTRY_PASSWORD_ADMIN: SECRET.repeat(4) }, /^REGISTRY_PASSWORD_ADMIN: the password for user "admin" is longer than 72 bytes \(84\)/m],
      ["a password in the config file", { "registry-stack.yml": `users:\n  - name: admin\n    password: ${SECRET}\n` }, {}, /users\[0\]\.password: passwords do not belong in the config file/],
    ];
    test.each(cases)("fails on %s without the password in any message or output", (_, files, env, expected) => {
      // GIVEN
      const cwd = project(files);
      // WHEN
      const { message, printed } = visibleOutput(() => loadConfig(env, cwd));
      // THEN
      expect(message).toMatch(expected);
      expect(message).not.toContain(SECRET.slice(0, 8));
      expect(printed).not.toContain(SECRET.slice(0, 8));
      if (files["registry.secrets.yml"]) expect(message).toContain(secretsFile(cwd));
    });
  });

  describe("passwords are reported where they come from (issue #8, item 6)", () => {
    test("fails when the environment has an empty password, naming the variable", () => {
      expect(problemsOf(() => loadConfig({ REGISTRY_PASSWORD_ADMIN: "" }, project({})))).toEqual([
        'REGISTRY_PASSWORD_ADMIN: the password for user "admin" is empty; set another password or unset the variable',
      ]);
    });

    test("fails when the secrets file has an empty or too-long password, naming the file and entry", () => {
      const cwd = project({ "registry-stack.yml": "users: [{name: alice}, {name: bob}]\n", "registry.secrets.yml": `passwords:\n  alice: ""\n  bob: "${"é".repeat(37)}"\n` });
      expect(problemsOf(() => loadConfig({}, cwd))).toEqual([
        `${path.join(cwd, "registry.secrets.yml")}: passwords.alice is empty; set another password or remove the entry to have one generated`,
        `${path.join(cwd, "registry.secrets.yml")}: passwords.bob is longer than 72 bytes (74), which bcrypt would silently truncate; set another password or remove the entry to have one generated`,
      ]);
    });

    test("warns when the secrets file is readable by group or others, as ssh does for keys", () => {
      // GIVEN
      const cwd = project({ "registry.secrets.yml": "passwords:\n  admin: x\n" });
      const file = path.join(cwd, "registry.secrets.yml");
      fs.chmodSync(file, 0o644);
      // WHEN
      const { warnings } = loadConfig({}, cwd);
      // THEN
      expect(warnings).toEqual([`${file} is accessible by group or others (mode 0644); restrict it: chmod 600 ${file}`]);
      fs.chmodSync(file, 0o600);
      expect(loadConfig({}, cwd).warnings).toEqual([]);
    });

    test("fails when a config file is over 1 MiB, before parsing it", () => {
      const cwd = project({ "registry-stack.yml": `hostnames:\n${"  - h.example.test\n".repeat(60_000)}` });
      expect(problemsOf(() => loadConfig({}, cwd))).toEqual([
        `${path.join(cwd, "registry-stack.yml")}: is 1140011 bytes; files over 1048576 bytes are refused (lists are limited, see README.md)`,
      ]);
    });
  });
});

describe("loadConfig, upstream passwords of mirrors", () => {
  const config = "mirrors:\n  - name: hub\n    upstream: docker.io\n    port: 5001\n    username: hubuser\n";

  test("takes the variable over the secrets file", () => {
    const cwd = project({ "registry-stack.yml": config, "registry.secrets.yml": `upstreamPasswords:\n  hub: from-file-${SECRET}\n` });
    const mirrorsOf = (env: NodeJS.ProcessEnv) => (loadConfig(env, cwd).props.mirrors ?? []).map((m) => m.password);
    expect(mirrorsOf({})).toEqual([`from-file-${SECRET}`]);
    expect(mirrorsOf({ REGISTRY_UPSTREAM_PASSWORD_HUB: `from-env-${SECRET}` })).toEqual([`from-env-${SECRET}`]);
  });

  test("fails on a password in the config file and on one for no configured mirror, without showing either", () => {
    const cwd = project({
      "registry-stack.yml": `${config}    password: ${SECRET}\n`,
      "registry.secrets.yml": `upstreamPasswords:\n  quay: ${SECRET}\n`,
    });
    const { message } = visibleOutput(() => loadConfig({}, cwd));
    expect(message).toContain("mirrors[0].password: passwords do not belong in the config file; set REGISTRY_UPSTREAM_PASSWORD_HUB or upstreamPasswords in the secrets file");
    expect(message).toContain("upstreamPasswords, line 2, column 3: an entry names no configured mirror (not shown: a mistyped entry can hold a password)");
    expect(message).not.toContain("quay");
    expect(message).not.toContain(SECRET.slice(0, 8));
  });
});

describe("loadConfig, inputs that slipped through (issue 20)", () => {
  const MARKER = "Mk7-Marker-Pw";
  const CONFIG = "users: [{name: admin, role: admin}, {name: bob}]\nmirrors:\n  - {name: hub, upstream: docker.io, port: 5001, username: u}\n";
  const secretsOf = (cwd: string) => path.join(cwd, "registry.secrets.yml");

  // Every way we found to mistype a secrets file; each holds MARKER somewhere a parser may put it.
  const MALFORMED: string[] = [
    `passwords: {admin:${MARKER}}`,
    `passwords: {admin: ok, bob ${MARKER}}`,
    `passwords: {admin ${MARKER}}`,
    `passwords: {${MARKER}}`,
    `passwords: [${MARKER}]`,
    `passwords: ${MARKER}`,
    `passwords:\n  admin:${MARKER}`,
    `passwords:\n  admin ${MARKER}`,
    `passwords:\n  ${MARKER}`,
    `passwords:\n  - admin: ${MARKER}`,
    `passwords:\n  admin: |\n    ${MARKER}\n`,
    `passwords:\n  admin: >\n    ${MARKER}\n    more\n`,
    `passwords:\n  admin: "${MARKER}\\u0007"`,
    `passwords:\n  admin: "${MARKER}\\n"`,
    `passwords:\n  admin: [${MARKER}]`,
    `passwords:\n  admin: {${MARKER}: x}`,
    `passwords:\n  admin: !vault ${MARKER}`,
    `passwords:\n  admin: ${MARKER}: x`,
    `passwords:\n  admin: "${MARKER}`,
    `passwords:\n  admin: '${MARKER}`,
    `passwords:\n  admin: ${MARKER}\n  admin: ${MARKER}`,
    `passwords:\n  "${MARKER}": admin`,
    `passwords:\n  ? [${MARKER}]\n  : x`,
    `passwords:\n  ${MARKER}: x`,
    `passwords:\n  admn: ${MARKER}`,
    `passwords:\n\tadmin: ${MARKER}`,
    `passwords:\n  admin: &a ${MARKER}\n  bob: *a\n  ghost: *a`,
    `passwords:\n  admin: *${MARKER}`,
    `passwords: &p {admin: x}\n${MARKER}: *p`,
    `${MARKER}: x`,
    `admin: ${MARKER}`,
    `${MARKER}`,
    `- ${MARKER}`,
    `passwords:\n  admin: ${MARKER}\n upstreamPasswords: {}`,
    `passwords: {admin: ${MARKER}`,
    `passwords: {"admin":${MARKER}, bob: [}`,
    `upstreamPasswords: {hub:${MARKER}}`,
    `upstreamPasswords: {hub ${MARKER}}`,
    `upstreamPasswords:\n  hub: |\n    ${MARKER}\n`,
    `upstreamPasswords:\n  hbu: ${MARKER}`,
    `upstreamPasswords:\n  ${MARKER}: x`,
    `upstreamPasswords:\n  hub: 12345\npasswords:\n  admin: 0x${MARKER.length}`,
    `passwords:\n  admin: true\n  bob: 1e5`,
    `%YAML 1.1\n---\npasswords:\n  admin: ${MARKER}\n`,
    `passwords:\n  admin: ${MARKER.repeat(6)}`,
  ];

  test.each(MALFORMED.map((text, i) => [i, text]))("never shows the password of malformed secrets file #%i (%s)", (_, text) => {
    // GIVEN
    const cwd = project({ "registry-stack.yml": CONFIG, "registry.secrets.yml": `${text}\n` });
    // WHEN
    const env = { REGISTRY_PASSWORD_ADMIN: `${MARKER}-env`, REGISTRY_PASSWORD_ADNIM: `${MARKER}-stray`, REGISTRY_UPSTREAM_PASSWORD_HUB: `${MARKER}-up` };
    const result: { message: string; printed: string; warnings: string[] } = { message: "", printed: "", warnings: [] };
    Object.assign(result, visibleOutput(() => (result.warnings = loadConfig(env, cwd).warnings)));
    // THEN the file is refused or warned about, and no part of the marker appears anywhere
    const everything = [result.message, result.printed, ...result.warnings].join("\n");
    expect(everything).toContain(secretsOf(cwd));
    for (const part of [MARKER, MARKER.slice(0, 6), "Marker"]) expect(everything).not.toContain(part);
  });

  test("fails on the flow-style mistakes of the issue, naming the user but not the key YAML read", () => {
    // GIVEN `{admin:Pw}` (a colon without a space: one key) and `{admin: ok, bob Pw}` (no colon)
    const first = project({ "registry-stack.yml": CONFIG, "registry.secrets.yml": "passwords: {admin:Flow-NoSp-Pw-5k}\n" });
    const second = project({ "registry-stack.yml": CONFIG, "registry.secrets.yml": "passwords: {admin: ok, bob Flow-Leak-Pw-2h}\n" });
    // WHEN / THEN
    expect(problemsOf(() => loadConfig({}, first))).toEqual([
      `${secretsOf(first)}: passwords, line 1, column 13: the entry of user "admin" has a key with ':' or a space in it (not shown: a mistyped entry can hold a password): a colon without a space after it, or a missing colon; write \`admin: <password>\``,
    ]);
    expect(problemsOf(() => loadConfig({}, second))).toEqual([
      `${secretsOf(second)}: passwords, line 1, column 24: the entry of user "bob" has a key with ':' or a space in it (not shown: a mistyped entry can hold a password): a colon without a space after it, or a missing colon; write \`bob: <password>\``,
    ]);
  });

  test("fails on a number or boolean as a password with 'quote it', and on a block scalar's line break", () => {
    const cwd = project({ "registry-stack.yml": CONFIG, "registry.secrets.yml": "passwords:\n  admin: 123456\n  bob: |\n    Block-Pw-9\nupstreamPasswords:\n  hub: yes-but-true\n" });
    const numbers = project({ "registry-stack.yml": CONFIG, "registry.secrets.yml": "passwords:\n  bob: true\nupstreamPasswords:\n  hub: 0.5\n" });
    expect(problemsOf(() => loadConfig({}, cwd))).toEqual([
      `${secretsOf(cwd)}: passwords.admin is read by YAML as a number, not text; quote it: admin: "<password>"`,
      `${secretsOf(cwd)}: passwords.bob contains a line break; write the password on the key's line, quoted (a block scalar such as \`bob: |\` keeps a line break at its end)`,
    ]);
    expect(problemsOf(() => loadConfig({}, numbers))).toEqual([
      `${secretsOf(numbers)}: passwords.bob is read by YAML as a boolean, not text; quote it: bob: "<password>"`,
      `${secretsOf(numbers)}: upstreamPasswords.hub is read by YAML as a number, not text; quote it: hub: "<password>"`,
    ]);
  });

  test("fails on a password with a line break or control character in the environment, without showing it", () => {
    const problems = problemsOf(() => loadConfig({ REGISTRY_PASSWORD_ADMIN: "Env-Pw-1\n", REGISTRY_PASSWORD_BOB: "Env\u0000Pw" }, project({ "registry-stack.yml": CONFIG })));
    expect(problems).toEqual([
      'REGISTRY_PASSWORD_ADMIN: the password for user "admin" contains a line break; set another password or unset the variable',
      'REGISTRY_PASSWORD_BOB: the password for user "bob" contains a control character (NUL, escape…); set another password or unset the variable',
    ]);
  });

  test("warns once, naming the user and the variable that wins, when the environment and the secrets file disagree", () => {
    // GIVEN admin in both with different values, bob in both with the same, the hub mirror in both, different
    const cwd = project({ "registry-stack.yml": CONFIG, "registry.secrets.yml": 'passwords:\n  admin: "File-Pw-1"\n  bob: Same-Pw-2\nupstreamPasswords:\n  hub: File-Up-3\n' });
    // WHEN
    const { props, warnings } = loadConfig({ REGISTRY_PASSWORD_ADMIN: "Env-Pw-1", REGISTRY_PASSWORD_BOB: "Same-Pw-2", REGISTRY_UPSTREAM_PASSWORD_HUB: "Env-Up-3" }, cwd);
    // THEN
    expect(props.users?.map((u) => u.password)).toEqual(["Env-Pw-1", "Same-Pw-2"]);
    expect(warnings).toEqual([
      `user "admin" has a password in REGISTRY_PASSWORD_ADMIN and another in ${secretsOf(cwd)} (passwords.admin); REGISTRY_PASSWORD_ADMIN is used, the secrets file's is ignored`,
      `mirror "hub" has an upstream password in REGISTRY_UPSTREAM_PASSWORD_HUB and another in ${secretsOf(cwd)} (upstreamPasswords.hub); REGISTRY_UPSTREAM_PASSWORD_HUB is used, the secrets file's is ignored`,
    ]);
    expect(warnings.join("\n")).not.toMatch(/Pw-1|Up-3/);
  });

  test("warns about a password variable for no configured user, naming the closest user", () => {
    // GIVEN alice (no password anywhere) and a variable with her name misspelt, and one for nobody
    const cwd = project({ "registry-stack.yml": "users: [{name: alice}, {name: ci.bot}]\nmirrors:\n  - {name: hub, upstream: docker.io, port: 5001}\n" });
    // WHEN
    const { warnings } = loadConfig({ REGISTRY_PASSWORD_ALCIE: "Stray-Pw-1", REGISTRY_PASSWORD_CI_BOT: "ok-Pw-2", REGISTRY_PASSWORD_ZEBRA_CROSSING: "x", REGISTRY_UPSTREAM_PASSWORD_HBU: "y" }, cwd);
    // THEN
    expect(warnings).toEqual([
      'REGISTRY_PASSWORD_ALCIE is set but names no configured user, so it is ignored; did you mean REGISTRY_PASSWORD_ALICE (user "alice", which has no password set and gets a generated one)?',
      "REGISTRY_PASSWORD_ZEBRA_CROSSING is set but names no configured user, so it is ignored",
      'REGISTRY_UPSTREAM_PASSWORD_HBU is set but names no configured mirror, so it is ignored; did you mean REGISTRY_UPSTREAM_PASSWORD_HUB (mirror "hub")?',
    ]);
    expect(warnings.join("\n")).not.toContain("Stray");
  });
});
