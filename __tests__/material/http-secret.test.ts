import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ensureHttpSecret } from "../../material/http-secret";
import { MaterialStore } from "../../material/material-store";
import { fixedEntropy } from "../fixtures/fixed-entropy";

describe("ensureHttpSecret", () => {
  let root: string;
  beforeEach(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), "http-secret-"))));
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  test("generates 32 random bytes as hex and persists them 0600", () => {
    // GIVEN
    const store = new MaterialStore(root);
    const entropy = fixedEntropy();
    // WHEN
    const secret = ensureHttpSecret(store, entropy);
    // THEN
    expect(secret).toMatch(/^[0-9a-f]{64}$/);
    expect(secret).toBe(fixedEntropy().randomBytes(32).toString("hex"));
    expect(store.read("http-secret")).toBe(secret);
    expect(fs.statSync(store.path("http-secret")).mode & 0o777).toBe(0o600);
  });

  test("reuses the stored secret on later synths", () => {
    // GIVEN
    const store = new MaterialStore(root);
    const first = ensureHttpSecret(store, fixedEntropy({ seed: "one" }));
    // WHEN
    const second = ensureHttpSecret(store, fixedEntropy({ seed: "two" }));
    // THEN
    expect(second).toBe(first);
  });

  test("regenerates a malformed secret", () => {
    // GIVEN
    const store = new MaterialStore(root);
    store.write("http-secret", "not hex");
    // WHEN
    const secret = ensureHttpSecret(store, fixedEntropy());
    // THEN
    expect(secret).toMatch(/^[0-9a-f]{64}$/);
    expect(store.read("http-secret")).toBe(secret);
  });
});
