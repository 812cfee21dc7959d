import * as fs from "fs";
import * as path from "path";
import { renderConfigurationReference } from "../config/reference";

/** `npm run docs:config`: writes docs/configuration.md from the schema. */
const target = path.join(__dirname, "..", "docs", "configuration.md");
fs.writeFileSync(target, renderConfigurationReference());
console.log(`wrote ${path.relative(process.cwd(), target)}`);
