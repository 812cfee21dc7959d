import * as fs from "fs";
import * as path from "path";
import { configurationReferenceRows, renderConfigurationReference } from "../../config/reference";

describe("configuration reference", () => {
  test("docs/configuration.md is the one rendered from the schema (run `npm run docs:config` after changing config/schema.ts)", () => {
    const committed = fs.readFileSync(path.join(__dirname, "..", "..", "docs", "configuration.md"), "utf8");
    expect(committed).toBe(renderConfigurationReference());
  });

  test("lists nested fields of lists and forms, with defaults from the schema", () => {
    const rows = new Map(configurationReferenceRows().map((row) => [row.field, row]));
    expect(rows.get("users[].role")).toMatchObject({ required: false, defaultText: '`"push"`' });
    expect(rows.get("mirrors[].port")).toMatchObject({ required: true });
    expect(rows.get("retention.rules[].keepNewest")?.required).toBe(false);
    expect(rows.get("stateBackend.bucket")?.description).toMatch(/^\(type: s3\) /);
    expect(rows.get("authCacheSeconds")?.defaultText).toBe("60 with the proxy, 0 without");
  });
});
