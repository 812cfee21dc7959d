import * as fs from "fs";
import * as path from "path";
import { transform } from "sucrase";
import { UI_REQUEST_HEADER } from "../config/rules";

/** A file of the web UI, served under /ui/ (`path` relative to it). */
export interface UiFile {
  readonly path: string;
  readonly content: string;
}

/** What the page reads from /ui/settings.json: the stack's settings the browser cannot ask the registry for. */
export interface UiSettingsInput {
  readonly deleteEnabled: boolean;
}

/** The UI's sources as found in ui/: `index.html`, `style.css`, `src/*.ts`. */
export type UiSources = Readonly<Record<string, string>>;

/** The project's ui/ folder (next to renderers/). */
export const UI_SOURCE_DIRECTORY = path.join(__dirname, "..", "ui");

export function readUiSources(directory: string = UI_SOURCE_DIRECTORY): UiSources {
  const sources: Record<string, string> = {};
  for (const name of ["index.html", "style.css"]) sources[name] = fs.readFileSync(path.join(directory, name), "utf8");
  for (const name of fs.readdirSync(path.join(directory, "src")).filter((n) => n.endsWith(".ts")).sort()) {
    sources[`src/${name}`] = fs.readFileSync(path.join(directory, "src", name), "utf8");
  }
  return sources;
}

/**
 * The served files: HTML and CSS as they are, each `src/x.ts` as the ES module `x.js` (types
 * stripped by sucrase, which synth runs on anyway; type checking is `npm test`'s job), and settings.json.
 * Deterministic: the same sources give the same bytes, so the proxy is replaced only when the UI changes.
 */
export function renderUiAssets(sources: UiSources, settings: UiSettingsInput): UiFile[] {
  const files: UiFile[] = [];
  for (const [name, text] of Object.entries(sources)) {
    if (name.startsWith("src/") && name.endsWith(".ts")) {
      let code: string;
      try {
        ({ code } = transform(text, { transforms: ["typescript"], filePath: name }));
      } catch (err) {
        throw new Error(`ui/${name}: ${(err as Error).message}`);
      }
      files.push({ path: path.posix.basename(name).replace(/\.ts$/, ".js"), content: code });
    } else {
      files.push({ path: name, content: text });
    }
  }
  files.push({ path: "settings.json", content: `${JSON.stringify({ deleteEnabled: settings.deleteEnabled, requestHeader: UI_REQUEST_HEADER })}\n` });
  return files.sort((a, b) => a.path.localeCompare(b.path));
}
