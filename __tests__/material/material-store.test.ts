import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { MaterialStore } from "../../material/material-store";

const OLD = new Date("2001-01-01T00:00:00Z");

describe("MaterialStore", () => {
  let root: string;
  let previousUmask: number;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "material-store-"));
    previousUmask = process.umask(0o022);
  });
  afterEach(() => {
    process.umask(previousUmask);
    fs.rmSync(root, { recursive: true, force: true });
  });

  test("creates the directory 0700 and returns the absolute path of the written file", () => {
    // GIVEN
    const store = new MaterialStore(path.relative(process.cwd(), path.join(root, "a", "stack")));
    // WHEN
    const written = store.write("secret", "s3cret");
    // THEN
    expect(written).toBe(path.join(root, "a", "stack", "secret"));
    expect(store.path("secret")).toBe(written);
    expect(fs.statSync(path.join(root, "a", "stack")).mode & 0o777).toBe(0o700);
    expect(fs.readFileSync(written, "utf8")).toBe("s3cret");
    expect(store.read("secret")).toBe("s3cret");
  });

  test("sets the requested mode whatever the umask", () => {
    // GIVEN
    const store = new MaterialStore(root);
    process.umask(0o077);
    // WHEN
    const cert = store.write("server.crt", "cert", 0o644);
    process.umask(0o000);
    const key = store.write("server.key", "key");
    // THEN
    expect(fs.statSync(cert).mode & 0o777).toBe(0o644);
    expect(fs.statSync(key).mode & 0o777).toBe(0o600);
  });

  test("does not rewrite a file whose content is unchanged, but fixes its mode", () => {
    // GIVEN
    const store = new MaterialStore(root);
    const file = store.write("ca.crt", "same", 0o644);
    fs.utimesSync(file, OLD, OLD);
    fs.chmodSync(file, 0o666);
    const inode = fs.statSync(file).ino;
    // WHEN
    store.write("ca.crt", "same", 0o644);
    // THEN
    const stat = fs.statSync(file);
    expect(stat.mtime).toEqual(OLD);
    expect(stat.ino).toBe(inode);
    expect(stat.mode & 0o777).toBe(0o644);
  });

  test("replaces changed content atomically and leaves no temp files", () => {
    // GIVEN
    const store = new MaterialStore(root);
    const file = store.write("ca.crt", "old");
    fs.utimesSync(file, OLD, OLD);
    // WHEN
    store.write("ca.crt", "new");
    // THEN
    expect(fs.readFileSync(file, "utf8")).toBe("new");
    expect(fs.statSync(file).mtime).not.toEqual(OLD);
    expect(fs.readdirSync(root)).toEqual(["ca.crt"]);
  });

  test("reads a missing file as undefined and removes files idempotently", () => {
    const store = new MaterialStore(path.join(root, "missing"));
    expect(store.read("nothing")).toBeUndefined();
    store.write("x", "1");
    store.remove("x");
    store.remove("x");
    expect(store.read("x")).toBeUndefined();
  });

  test("fails when a name is not a plain file name", () => {
    const store = new MaterialStore(root);
    expect(() => store.write("../escape", "x")).toThrow('MaterialStore: "../escape" is not a plain file name');
    expect(() => store.read("..")).toThrow('MaterialStore: ".." is not a plain file name');
  });
});
