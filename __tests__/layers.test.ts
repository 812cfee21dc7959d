import * as fs from "fs";
import * as path from "path";

// The layers from the bottom up: a module may import its own layer and those below it, never one above.
// scripts/ are the npm commands beside the stack: they may use what the stack is built from, not the stack.
const LAYERS = ["config", "renderers", "material", "scripts", "constructs", "stacks"];
const ROOT = path.join(__dirname, "..");

function sources(folder: string): string[] {
  return fs.readdirSync(path.join(ROOT, folder), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts")).map((f) => path.join(folder, f));
}

function importedLayers(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), "utf8");
  return [...text.matchAll(/^import[^"]*"(\.[^"]+)"/gm)].map((m) => path.relative(ROOT, path.resolve(path.dirname(path.join(ROOT, file)), m[1])).split(path.sep)[0]);
}

describe("layers", () => {
  test.each(LAYERS)("%s imports nothing from a layer above its own", (layer) => {
    const rank = LAYERS.indexOf(layer);
    const upward = sources(layer).flatMap((file) =>
      importedLayers(file)
        .filter((imported) => LAYERS.includes(imported) && LAYERS.indexOf(imported) > rank)
        .map((imported) => `${file} imports ${imported}/`),
    );
    expect(upward).toEqual([]);
  });
});

describe("the browser code", () => {
  // ui/ is served to browsers as files; the stack reads it as sources, and a value it shares with
  // the page (the UI's request header) goes to the page in settings.json, not by an import.
  test.each(LAYERS)("%s imports nothing from ui/", (layer) => {
    expect(sources(layer).filter((file) => importedLayers(file).includes("ui"))).toEqual([]);
  });

  test("ui/ imports nothing from the stack's layers", () => {
    expect(sources("ui").filter((file) => importedLayers(file).some((imported) => LAYERS.includes(imported)))).toEqual([]);
  });
});
