import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { MaterialStore } from "../../material/material-store";
import { problemsOf } from "../fixtures/problems-of";

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

  test("reads a missing file, and a file in a missing folder, as undefined", () => {
    const store = new MaterialStore(path.join(root, "missing"));
    expect(store.read("nothing")).toBeUndefined();
  });

  test("has no way to delete a file: generated keys and passwords may be the only copy", () => {
    expect(Object.getOwnPropertyNames(MaterialStore.prototype).filter((name) => /remove|delete|unlink/i.test(name))).toEqual([]);
  });

  describe("with deferred writes", () => {
    test("writes nothing before commit(), but reads see the staged content", () => {
      // GIVEN
      const directory = path.join(root, "stack");
      const store = new MaterialStore(directory, { deferWrites: true });
      // WHEN
      const target = store.write("ca.key", "key");
      store.write("ca.crt", "cert", 0o644);
      // THEN
      expect(target).toBe(path.join(directory, "ca.key"));
      expect(fs.existsSync(directory)).toBe(false);
      expect(store.read("ca.key")).toBe("key");
      expect(store.pendingWrites).toEqual(["ca.key", "ca.crt"]);
    });

    test("commit() writes every staged file with its mode, then writes go straight to disk", () => {
      // GIVEN
      const directory = path.join(root, "stack");
      const store = new MaterialStore(directory, { deferWrites: true });
      store.write("ca.key", "key");
      store.write("ca.crt", "cert", 0o644);
      // WHEN
      store.commit();
      const later = store.write("registry.config.yml", "config");
      // THEN
      expect(fs.readFileSync(path.join(directory, "ca.key"), "utf8")).toBe("key");
      expect(fs.statSync(path.join(directory, "ca.key")).mode & 0o777).toBe(0o600);
      expect(fs.statSync(path.join(directory, "ca.crt")).mode & 0o777).toBe(0o644);
      expect(fs.readFileSync(later, "utf8")).toBe("config");
      expect(store.pendingWrites).toEqual([]);
      expect(fs.readdirSync(directory).sort()).toEqual(["ca.crt", "ca.key", "registry.config.yml"]);
    });
  });

  test("fails when a file cannot be read, naming it", () => {
    // GIVEN a material folder under a regular file
    const file = path.join(root, "plain-file");
    fs.writeFileSync(file, "x");
    const store = new MaterialStore(path.join(file, "stack"));
    // WHEN
    const problems = problemsOf(() => store.read("ca.key"));
    // THEN
    expect(problems).toEqual([`${path.join(file, "stack", "ca.key")}: cannot be read (ENOTDIR); the material folder and its files must be readable by the user running cdktf`]);
  });

  test("fails when a name is not a plain file name", () => {
    const store = new MaterialStore(root);
    expect(() => store.write("../escape", "x")).toThrow('MaterialStore: "../escape" is not a plain file name');
    expect(() => store.read("..")).toThrow('MaterialStore: ".." is not a plain file name');
  });
});
