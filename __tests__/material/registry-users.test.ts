import * as bcrypt from "bcryptjs";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { MaterialStore } from "../../material/material-store";
import { resolveRegistryUsers } from "../../material/registry-users";
import { fixedEntropy } from "../fixtures/fixed-entropy";
import { problemsOf } from "../fixtures/problems-of";

const COST = 4;
const OLD = new Date("2001-01-01T00:00:00Z");

describe("resolveRegistryUsers", () => {
  let root: string;
  let store: MaterialStore;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "registry-users-"));
    store = new MaterialStore(root);
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  const resolve = (users: Array<{ name: string; password?: string }>, seed = "run-1", bcryptCost = COST) =>
    resolveRegistryUsers(store, users, { bcryptCost, entropy: fixedEntropy({ seed }) });
  const generatedPasswords = () => YAML.parse(store.read("generated-passwords.yml") ?? "null") as Record<string, string> | null;

  test("hashes supplied passwords with bcrypt at the configured cost, in the given order", () => {
    // WHEN
    const result = resolve([{ name: "zoe", password: "zoe-secret" }, { name: "adam", password: "adam-secret" }]);
    // THEN
    expect(result.entries.map((e) => e.name)).toEqual(["zoe", "adam"]);
    expect(result.entries[0].hash).toMatch(/^\$2b\$04\$[./A-Za-z0-9]{53}$/);
    expect(bcrypt.compareSync("zoe-secret", result.entries[0].hash)).toBe(true);
    expect(bcrypt.compareSync("adam-secret", result.entries[1].hash)).toBe(true);
    expect(bcrypt.compareSync("adam-secret", result.entries[0].hash)).toBe(false);
    expect(result.generatedFor).toEqual([]);
    expect(result.generatedPasswordFile).toBeUndefined();
    expect(store.read("generated-passwords.yml")).toBeUndefined();
  });

  test("takes the salt from the entropy, so equal inputs give equal hashes", () => {
    const first = resolve([{ name: "ci", password: "pw" }], "same").entries[0].hash;
    fs.rmSync(root, { recursive: true });
    const second = resolve([{ name: "ci", password: "pw" }], "same").entries[0].hash;
    expect(second).toBe(first);
  });

  test("generates a strong password for a user without one and stores it 0600 for the operator", () => {
    // WHEN
    const result = resolve([{ name: "alice", password: "a" }, { name: "ci" }]);
    // THEN
    expect(result.generatedFor).toEqual(["ci"]);
    expect(result.generatedPasswordFile).toBe(path.join(root, "generated-passwords.yml"));
    expect(fs.statSync(result.generatedPasswordFile as string).mode & 0o777).toBe(0o600);
    const passwords = generatedPasswords() as Record<string, string>;
    expect(Object.keys(passwords)).toEqual(["ci"]);
    expect(passwords.ci).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(bcrypt.compareSync(passwords.ci, result.entries[1].hash)).toBe(true);
  });

  test("reuses generated passwords and unchanged hashes without running bcrypt or rewriting files", () => {
    // GIVEN
    const users = [{ name: "alice", password: "a" }, { name: "ci" }];
    const first = resolve(users, "run-1");
    const files = fs.readdirSync(root);
    files.forEach((f) => fs.utimesSync(store.path(f), OLD, OLD));
    const entropy = fixedEntropy({ seed: "run-2" });
    // WHEN
    const second = resolveRegistryUsers(store, users, { bcryptCost: COST, entropy });
    // THEN: a bcrypt run would have drawn a salt from the entropy
    expect(second).toEqual(first);
    expect(entropy.bytesServed).toBe(0);
    expect(files.sort()).toEqual(["fingerprint.key", "generated-passwords.yml", "users.json"]);
    files.forEach((f) => expect(fs.statSync(store.path(f)).mtime).toEqual(OLD));
  });

  test("re-hashes only the user whose password changed", () => {
    // GIVEN
    const first = resolve([{ name: "alice", password: "a" }, { name: "bob", password: "b" }], "run-1");
    // WHEN
    const second = resolve([{ name: "alice", password: "a2" }, { name: "bob", password: "b" }], "run-2");
    // THEN
    expect(second.entries[0].hash).not.toBe(first.entries[0].hash);
    expect(bcrypt.compareSync("a2", second.entries[0].hash)).toBe(true);
    expect(second.entries[1].hash).toBe(first.entries[1].hash);
  });

  test("re-hashes when the configured cost changes", () => {
    resolve([{ name: "alice", password: "a" }], "run-1", 4);
    const second = resolve([{ name: "alice", password: "a" }], "run-2", 5);
    expect(bcrypt.getRounds(second.entries[0].hash)).toBe(5);
    expect(bcrypt.compareSync("a", second.entries[0].hash)).toBe(true);
  });

  test("re-hashes when a user is renamed, since the fingerprint covers the name", () => {
    const first = resolve([{ name: "alice", password: "a" }], "run-1");
    const second = resolve([{ name: "alicia", password: "a" }], "run-1");
    expect(second.entries[0].name).toBe("alicia");
    expect(second.entries[0].hash).not.toBe(first.entries[0].hash);
    expect(bcrypt.compareSync("a", second.entries[0].hash)).toBe(true);
  });

  test("keeps the generated passwords of removed users and of users who now supply a password", () => {
    // GIVEN
    resolve([{ name: "alice" }, { name: "bob" }, { name: "ci" }], "run-1");
    const before = generatedPasswords() as Record<string, string>;
    // WHEN
    const result = resolve([{ name: "alice", password: "chosen" }, { name: "ci" }], "run-2");
    // THEN the hashes follow the users, the generated passwords stay (they may be the only copy)
    expect(result.generatedFor).toEqual(["ci"]);
    expect(generatedPasswords()).toEqual(before);
    expect(Object.keys(JSON.parse(store.read("users.json") as string))).toEqual(["alice", "ci"]);
  });

  test("keeps the generated password file when no password is generated any more", () => {
    // GIVEN
    resolve([{ name: "ci" }]);
    const before = store.read("generated-passwords.yml");
    // WHEN ci's password now comes from the environment
    const result = resolve([{ name: "ci", password: "chosen" }]);
    // THEN
    expect(result.generatedFor).toEqual([]);
    expect(result.generatedPasswordFile).toBe(store.path("generated-passwords.yml"));
    expect(store.read("generated-passwords.yml")).toBe(before);
  });

  test("reuses a kept generated password when the user goes back to a generated one", () => {
    resolve([{ name: "ci" }], "run-1");
    const first = generatedPasswords() as Record<string, string>;
    resolve([{ name: "ci", password: "chosen" }], "run-2");
    const result = resolve([{ name: "ci" }], "run-3");
    expect(bcrypt.compareSync(first.ci, result.entries[0].hash)).toBe(true);
  });

  test("keeps its state and key 0600 and never stores supplied passwords", () => {
    resolve([{ name: "alice", password: "very-secret-password" }]);
    for (const file of ["users.json", "fingerprint.key"]) {
      expect(fs.statSync(store.path(file)).mode & 0o777).toBe(0o600);
    }
    expect(store.read("fingerprint.key")).toMatch(/^[0-9a-f]{64}$/);
    expect(store.read("users.json")).not.toContain("very-secret-password");
  });

  test("re-hashes after a corrupt state file instead of failing", () => {
    resolve([{ name: "alice", password: "a" }]);
    store.write("users.json", "{ not json");
    const result = resolve([{ name: "alice", password: "a" }], "run-2");
    expect(bcrypt.compareSync("a", result.entries[0].hash)).toBe(true);
    expect(JSON.parse(store.read("users.json") as string).alice.hash).toBe(result.entries[0].hash);
  });

  test("handles user names that are Object.prototype members", () => {
    const result = resolve([{ name: "constructor" }, { name: "__proto__", password: "p" }]);
    expect(result.generatedFor).toEqual(["constructor"]);
    expect(Object.keys(JSON.parse(store.read("users.json") as string))).toEqual(["constructor", "__proto__"]);
    expect(resolve([{ name: "constructor" }, { name: "__proto__", password: "p" }], "run-2")).toEqual(result);
  });

  test("fails when the generated password file is not a YAML map, rather than replacing passwords", () => {
    store.write("generated-passwords.yml", "- just\n- a list\n");
    expect(problemsOf(() => resolve([{ name: "ci" }]))).toEqual([
      `${store.path("generated-passwords.yml")}: is not a YAML map of user name to password; fix it, or delete it to generate new passwords`,
    ]);
  });

  test("fails when the generated password file is not YAML, without printing its text", () => {
    // GIVEN
    store.write("generated-passwords.yml", "ci: kept-secret-0123: [x\n");
    const warn = jest.spyOn(process, "emitWarning").mockImplementation(() => undefined);
    const error = jest.spyOn(console, "error").mockImplementation(() => undefined);
    // WHEN
    const problems = problemsOf(() => resolve([{ name: "ci" }]));
    // THEN
    expect(problems).toEqual([expect.stringMatching(/generated-passwords\.yml: is not a YAML map/)]);
    expect(problems.join("\n")).not.toContain("kept-secret");
    expect(warn).not.toHaveBeenCalled();
    expect(error).not.toHaveBeenCalled();
    warn.mockRestore();
    error.mockRestore();
  });

  test("fails when an entry of the generated password file is not a string, naming the file, the key and the fix, rather than replacing it (issue 20)", () => {
    // GIVEN a number (a password YAML reads as a number), a boolean, a list and an empty entry, and a good one
    store.write("generated-passwords.yml", "ci: 123456\nops: true\nbot: [a]\nold:\ngood: kept-Pw-1\n");
    const before = store.read("generated-passwords.yml");
    // WHEN
    const problems = problemsOf(() => resolve([{ name: "ci" }, { name: "good" }]));
    // THEN
    const file = store.path("generated-passwords.yml");
    expect(problems).toEqual([
      `${file}: entry "ci" is a number, not a string; quote the password ("ci": "…") so YAML reads it as text, or delete the entry to have a new password generated (clients using the old one must then log in again)`,
      `${file}: entry "ops" is a boolean, not a string; quote the password ("ops": "…") so YAML reads it as text, or delete the entry to have a new password generated (clients using the old one must then log in again)`,
      `${file}: entry "bot" is a list, not a password; write the password back as a quoted string, or delete the entry to have a new password generated (clients using the old one must then log in again)`,
      `${file}: entry "old" has no password; write the password back as a quoted string, or delete the entry to have a new password generated (clients using the old one must then log in again)`,
    ]);
    expect(problems.join("\n")).not.toMatch(/123456|kept-Pw/);
    expect(store.read("generated-passwords.yml")).toBe(before);
  });
});
