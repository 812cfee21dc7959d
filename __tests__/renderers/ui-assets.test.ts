import { UI_REQUEST_HEADER } from "../../config/rules";
import { readUiSources, renderUiAssets } from "../../renderers/ui-assets";

describe("renderUiAssets", () => {
  const sources = readUiSources();
  const files = renderUiAssets(sources, { deleteEnabled: true });
  const byPath = Object.fromEntries(files.map((f) => [f.path, f.content]));

  test("serves index.html, style.css, one ES module per source file and settings.json", () => {
    const modules = Object.keys(sources).filter((n) => n.startsWith("src/")).map((n) => n.slice(4).replace(/\.ts$/, ".js"));
    expect(modules).toEqual(expect.arrayContaining(["app.js", "access.js", "format.js", "registry-client.js"]));
    expect(files.map((f) => f.path)).toEqual(["index.html", "settings.json", "style.css", ...modules].sort((a, b) => a.localeCompare(b)));
    expect(byPath["index.html"]).toBe(sources["index.html"]);
    expect(JSON.parse(byPath["settings.json"])).toEqual({ deleteEnabled: true, requestHeader: UI_REQUEST_HEADER });
    expect(JSON.parse(renderUiAssets(sources, { deleteEnabled: false }).find((f) => f.path === "settings.json")!.content)).toEqual({ deleteEnabled: false, requestHeader: UI_REQUEST_HEADER });
  });

  test("emits JavaScript whose relative imports all name served files", () => {
    for (const file of files.filter((f) => f.path.endsWith(".js"))) {
      expect(file.content).not.toMatch(/:\s*(string|number|boolean)\b\s*[,)=;]/);
      for (const [, target] of file.content.matchAll(/from "\.\/([^"]+)"/g)) expect(byPath).toHaveProperty([target]);
    }
    expect(byPath["app.js"]).toContain('from "./registry-client.js"');
  });

  test("has no inline script, inline handler, inline style or resource from another origin in index.html", () => {
    const html = byPath["index.html"];
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.map((m) => [m[1].trim(), m[2].trim()])).toEqual([['type="module" src="app.js"', ""]]);
    expect(html).not.toMatch(/\son[a-z]+=|\sstyle=|<style|(src|href)="(https?:)?\/\//i);
  });

  test("keeps credentials out of storage, URLs and cookies", () => {
    const code = files.filter((f) => f.path.endsWith(".js")).map((f) => f.content).join("\n");
    expect(code).not.toMatch(/localStorage|sessionStorage|indexedDB|document\.cookie|history\.(push|replace)State/);
    expect(code).toContain('credentials: "omit"');
  });

  test("is deterministic", () => {
    expect(renderUiAssets(readUiSources(), { deleteEnabled: true })).toEqual(files);
  });

  test("fails naming the file when a source does not parse", () => {
    expect(() => renderUiAssets({ "src/broken.ts": "export const x = ;" }, { deleteEnabled: false })).toThrow(/ui\/src\/broken\.ts: .*Unexpected token \(1:18\)/);
  });
});
