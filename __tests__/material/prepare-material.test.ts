import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { resolveSettings } from "../../config/schema";
import { RegistryStackProps } from "../../stacks/registry-stack";
import { prepareMaterial } from "../../material/prepare-material";
import { fixedEntropy } from "../fixtures/fixed-entropy";
import { problemsOf } from "../fixtures/problems-of";

/** A project folder with its material folder; every check runs before anything is written. */
function prepare(props: Omit<RegistryStackProps, "entropy">) {
  const project = fs.mkdtempSync(path.join(os.tmpdir(), "prepare-material-"));
  const settings = resolveSettings({ projectDirectory: project, ...props }, "registry");
  return { project, run: () => prepareMaterial(settings, fixedEntropy()) };
}

function folder(files: Record<string, string> = {}, dirs: string[] = []): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "storage-host-path-"));
  for (const dir of dirs) fs.mkdirSync(path.join(root, dir), { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    fs.writeFileSync(path.join(root, name), content);
  }
  return root;
}

describe("prepareMaterial, storageHostPath (issue 20)", () => {
  const FIX =
    "use an empty folder, one that does not exist yet (Docker creates it at deploy and the volume owner gives it to the registry's user), or one that already holds a registry store (docker/registry/v2)";

  test("accepts a folder that is absent, empty (lost+found aside) or holds a registry store, also one migrated before its first push", () => {
    const accepted = [
      path.join(os.tmpdir(), "storage-host-path-absent", "data"),
      folder(),
      folder({}, ["lost+found"]),
      folder({ "docker/registry/v2/blobs/sha256/aa/data": "x" }, ["docker/registry/v2/repositories"]),
      folder({}, ["docker"]),
    ];
    for (const storageHostPath of accepted) {
      const { run, project } = prepare({ storageHostPath, tls: { mode: "none" } });
      expect(run().users.entries.map((e) => e.name)).toEqual(["admin"]);
      expect(fs.existsSync(path.join(project, "assets"))).toBe(false);
    }
  });

  test("fails when the folder holds anything else, naming what, and writes nothing", () => {
    // GIVEN a home-like folder and a store with a foreign file beside it
    const home = folder({ ".bashrc": "x", "notes.txt": "y", "projects/a": "z", "more/b": "w" });
    const mixed = folder({ "docker/registry/v2/blobs/x": "x", "docker/backup.tar": "y" });
    const file = path.join(folder({ "f.txt": "x" }), "f.txt");
    // WHEN / THEN
    const problemsFor = (storageHostPath: string) => {
      const { run, project } = prepare({ storageHostPath, tls: { mode: "none" } });
      const problems = problemsOf(run);
      expect(fs.existsSync(path.join(project, "assets"))).toBe(false);
      return problems;
    };
    expect(problemsFor(home)).toEqual([
      `storageHostPath: "${home}" holds other files than a registry store (4 entries, e.g. ".bashrc", "more", "notes.txt"); the volume owner would chown everything in it to 65532:65532: ${FIX}`,
    ]);
    expect(problemsFor(mixed)).toEqual([`storageHostPath: "${mixed}" holds other files than a registry store ("docker/backup.tar"); the volume owner would chown everything in it to 65532:65532: ${FIX}`]);
    expect(problemsFor(file)).toEqual([`storageHostPath: "${file}" is a file, not a folder; ${FIX}`]);
  });

  test("fails when the folder is a link to a system folder", () => {
    const link = path.join(folder(), "etc-link");
    fs.symlinkSync("/etc", link);
    const { run } = prepare({ storageHostPath: link, tls: { mode: "none" } });
    expect(problemsOf(run)).toEqual([
      `storageHostPath: "${link}" is a link to "/etc", which is a system folder or inside one: the volume owner would chown everything in it to 65532:65532; use a folder of its own`,
    ]);
  });

  test("does not look into the folder on a remote engine, whose folders are not on this machine", () => {
    const home = folder({ ".bashrc": "x" });
    const { run } = prepare({ storageHostPath: home, tls: { mode: "none" }, dockerHost: "ssh://deploy@store.example.test" });
    expect(run().users.entries).toHaveLength(1);
  });
});

describe("prepareMaterial, client files that are folders (issue 20)", () => {
  test("fails when k3sRegistriesFile is a folder, pointing at the file inside", () => {
    const k3s = folder({}, ["rancher"]);
    const { run } = prepare({ k3sRegistriesFile: path.join(k3s, "rancher"), clientConfigDirectory: folder() });
    expect(problemsOf(run)).toEqual([
      `k3sRegistriesFile: ${path.join(k3s, "rancher")} is a folder; point k3sRegistriesFile at the file inside, e.g. ${path.join(k3s, "rancher", "registries.yaml")}`,
    ]);
  });

  test("fails when daemon.json in clientConfigDirectory is a folder", () => {
    const client = folder({}, ["daemon.json"]);
    const { run } = prepare({ clientConfigDirectory: client, tls: { mode: "none" } });
    expect(problemsOf(run)).toEqual([`clientConfigDirectory: ${path.join(client, "daemon.json")} is a folder; the stack merges into a daemon.json file there: move the folder away`]);
  });
});
