import { isMap, parseDocument } from "yaml";
import { z } from "zod";
import { parseJsonLedger } from "./json-ledger";

/**
 * The stack's share of a k3s/RKE2 `registries.yaml`, as pure functions like daemon-json.ts:
 * the file's text and a ledger of what the stack wrote go in, the new text and ledger come out.
 * scripts/registries-yaml-file.ts does the reading and writing when Terraform creates or
 * destroys the client config.
 *
 * The stack owns single entries of the two maps, `mirrors.<upstream>` and `configs.<host:port>`.
 * An entry that was there before (a foreign entry) is never changed or removed, even when the
 * stack would write the same key; only entries the ledger says the stack inserted are updated
 * and removed. Every other key, entry and comment of the file stays (the yaml library keeps
 * comments; it may normalise spacing inside flow collections).
 */

export const SECTIONS = ["mirrors", "configs"] as const;
export type Section = (typeof SECTIONS)[number];

/** What one owner needs: entry key → value, per section. */
export type RegistriesYamlClaim = Readonly<Record<Section, Readonly<Record<string, unknown>>>>;

export interface RegistriesYamlLedger {
  /** Owner → the entry keys it needs, per section. */
  readonly owners: Readonly<Record<string, Readonly<Record<Section, readonly string[]>>>>;
  /** Entries the stack inserted, per section. */
  readonly added: Readonly<Record<Section, readonly string[]>>;
  /** Sections the stack created: they go again when empty. */
  readonly createdSections: readonly Section[];
  /** The stack created the file: it is deleted when nothing is left in it. */
  readonly createdFile: boolean;
}

export const EMPTY_REGISTRIES_LEDGER: RegistriesYamlLedger = { owners: {}, added: { mirrors: [], configs: [] }, createdSections: [], createdFile: false };

export interface RegistriesYamlResult {
  /** New content; undefined = delete the file (the stack created it and nothing is left). */
  readonly text: string | undefined;
  /** New ledger; undefined = delete the ledger (no owner left). */
  readonly ledger: RegistriesYamlLedger | undefined;
  readonly changed: boolean;
}

/**
 * Sets `owner`'s entries to `claim` (or drops the owner: undefined). When two owners claim one
 * key, the later claim's value is written (both are the same stack's view of one endpoint).
 */
export function reconcileRegistriesYaml(
  existing: string | undefined,
  ledger: RegistriesYamlLedger,
  owner: string,
  claim: RegistriesYamlClaim | undefined,
  sourceName = "registries.yaml",
): RegistriesYamlResult {
  const document = parseRegistriesYaml(existing ?? "", sourceName);
  const owners: Record<string, Readonly<Record<Section, readonly string[]>>> = { ...ledger.owners };
  delete owners[owner];
  if (claim !== undefined && SECTIONS.some((s) => Object.keys(claim[s]).length > 0)) {
    owners[owner] = { mirrors: Object.keys(claim.mirrors), configs: Object.keys(claim.configs) };
  }
  const added = { mirrors: [...ledger.added.mirrors], configs: [...ledger.added.configs] };
  const createdSections = new Set(ledger.createdSections);

  for (const section of SECTIONS) {
    const needed = new Set(Object.values(owners).flatMap((o) => o[section]));
    const hadSection = document.has(section);
    for (const key of [...added[section]]) {
      if (needed.has(key)) continue;
      document.deleteIn([section, key]);
      added[section] = added[section].filter((k) => k !== key);
    }
    for (const [key, value] of Object.entries(claim?.[section] ?? {})) {
      const ours = added[section].includes(key);
      if (!ours && document.hasIn([section, key])) continue; // a foreign entry: kept as it is
      document.setIn([section, key], value);
      if (!ours) added[section].push(key);
    }
    if (!hadSection && document.has(section)) createdSections.add(section);
    const node = document.get(section);
    if (createdSections.has(section) && isMap(node) && node.items.length === 0) {
      document.delete(section);
      createdSections.delete(section);
    }
  }

  const rendered = String(document);
  const empty = document.contents === null || (isMap(document.contents) && document.contents.items.length === 0 && !document.commentBefore && !document.comment);
  const createdFile = existing === undefined ? true : ledger.createdFile;
  const text = empty && createdFile ? undefined : rendered === String(parseRegistriesYaml(existing ?? "", sourceName)) ? existing : rendered;
  const noOwner = Object.keys(owners).length === 0;
  return {
    text,
    ledger: noOwner
      ? undefined
      : { owners: Object.fromEntries(Object.entries(owners).sort(([a], [b]) => a.localeCompare(b))), added, createdSections: [...createdSections].sort(), createdFile },
    changed: text !== existing,
  };
}

/** Parses registries.yaml text; throws a message naming `sourceName` when k3s could not read it either. */
export function parseRegistriesYaml(text: string, sourceName = "registries.yaml") {
  const document = parseDocument(text, { prettyErrors: false, logLevel: "error" });
  const fail = (why: string) => new Error(`${sourceName}: ${why}; k3s would not read it either: fix or remove the file, then run again`);
  if (document.errors.length > 0) throw fail(`not valid YAML (${document.errors[0].code})`);
  if (document.contents !== null && !isMap(document.contents)) throw fail("not a YAML mapping");
  for (const section of SECTIONS) {
    const node = document.get(section);
    if (node !== undefined && node !== null && !isMap(node)) throw fail(`"${section}" is not a mapping`);
  }
  return document;
}

const sectionKeysSchema = z.object({ mirrors: z.array(z.string()), configs: z.array(z.string()) });
const registriesLedgerSchema: z.ZodType<RegistriesYamlLedger> = z.object({
  owners: z.record(z.string(), sectionKeysSchema),
  added: sectionKeysSchema,
  createdSections: z.array(z.enum(SECTIONS)),
  createdFile: z.boolean(),
});

/** Parses a ledger file's text; throws a message naming `sourceName` and the wrong field. */
export function parseRegistriesLedger(text: string, sourceName: string): RegistriesYamlLedger {
  return parseJsonLedger(text, registriesLedgerSchema, sourceName, "registries.yaml");
}

export function renderRegistriesLedger(ledger: RegistriesYamlLedger): string {
  return JSON.stringify(ledger, null, 2) + "\n";
}
