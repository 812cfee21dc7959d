import { z } from "zod";
import { registryStackPropsSchema } from "./schema";

/** One documented field: where it sits in the config file and what the schema says about it. */
export interface ReferenceRow {
  readonly field: string;
  readonly type: string;
  readonly required: boolean;
  readonly defaultText?: string;
  readonly description: string;
}

interface Meta {
  readonly description?: string;
  readonly defaultText?: string;
}

type AnySchema = z.core.$ZodType;

const defOf = (schema: AnySchema) => schema._zod.def as z.core.$ZodTypeDef & Record<string, unknown>;
const metaOf = (schema: AnySchema): Meta => (z.globalRegistry.get(schema) as Meta | undefined) ?? {};

/** Unwraps optional/default/pipe wrappers, keeping what they say about presence and default. */
function unwrap(schema: AnySchema): { inner: AnySchema; optional: boolean; defaultValue?: unknown; meta: Meta } {
  let current = schema;
  let optional = false;
  let defaultValue: unknown;
  let meta: Meta = {};
  for (;;) {
    meta = { ...metaOf(current), ...meta };
    const def = defOf(current);
    if (def.type === "optional") {
      optional = true;
      current = def.innerType as AnySchema;
    } else if (def.type === "default") {
      optional = true;
      defaultValue = def.defaultValue;
      current = def.innerType as AnySchema;
    } else if (def.type === "pipe") {
      current = def.out as AnySchema;
    } else return { inner: current, optional, defaultValue, meta };
  }
}

function typeName(schema: AnySchema): string {
  const def = defOf(schema);
  switch (def.type) {
    case "string":
    case "number":
    case "boolean":
      return def.type;
    case "enum":
      return Object.values(def.entries as Record<string, string>)
        .map((v) => `\`"${v}"\``)
        .join(" \\| ");
    case "literal":
      return (def.values as unknown[]).map((v) => `\`${JSON.stringify(v)}\``).join(" \\| ");
    case "array":
      return `list of ${typeName(unwrap(def.element as AnySchema).inner)}`;
    case "object":
      return "object";
    case "union":
      return "one of the forms below";
    default:
      return def.type;
  }
}

function rowsOf(schema: AnySchema, prefix: string, rows: ReferenceRow[], condition?: string): void {
  const shape = (defOf(schema).shape ?? {}) as Record<string, AnySchema>;
  for (const [key, fieldSchema] of Object.entries(shape)) {
    const { inner, optional, defaultValue, meta } = unwrap(fieldSchema);
    const field = `${prefix}${key}`;
    const def = defOf(inner);
    if (meta.description === undefined) throw new Error(`config reference: ${field} has no description in config/schema.ts`);
    const defaultText = meta.defaultText ?? (defaultValue === undefined ? undefined : `\`${JSON.stringify(defaultValue)}\``);
    const when = condition === undefined ? "" : `(${condition}) `;
    rows.push({ field, type: typeName(inner), required: !optional, defaultText, description: `${when}${meta.description}` });
    if (def.type === "object") rowsOf(inner, `${field}.`, rows);
    if (def.type === "array") {
      const element = unwrap(def.element as AnySchema).inner;
      if (defOf(element).type === "object") rowsOf(element, `${field}[].`, rows);
    }
    if (def.type === "union") {
      const discriminator = def.discriminator as string;
      for (const option of def.options as AnySchema[]) {
        const tag = (defOf(unwrap((defOf(option).shape as Record<string, AnySchema>)[discriminator]).inner).values as unknown[])[0];
        rowsOf(option, `${field}.`, rows, `${discriminator}: ${String(tag)}`);
      }
    }
  }
}

/** Every field of the configuration, in schema order, nested fields after their parent. */
export function configurationReferenceRows(): ReferenceRow[] {
  const rows: ReferenceRow[] = [];
  rowsOf(registryStackPropsSchema, "", rows);
  return rows;
}

/** docs/configuration.md: the configuration reference, rendered from the schema. */
export function renderConfigurationReference(): string {
  const cell = (text: string) => text.replace(/\n/g, " ");
  return [
    "# Configuration reference",
    "",
    "Generated from `config/schema.ts` by `npm run docs:config` (do not edit by hand; `npm test` fails when it",
    "is out of date). The config file (`registry-stack.yml`, or `$REGISTRY_STACK_CONFIG`) is YAML of this shape;",
    "TypeScript stacks pass the same fields as `RegistryStackProps`. Passwords never go in the config file:",
    "`REGISTRY_PASSWORD_<USER>` and `REGISTRY_UPSTREAM_PASSWORD_<MIRROR>` variables, or `passwords.<user>` and",
    "`upstreamPasswords.<mirror>` in the secrets file (`registry.secrets.yml`, or `$REGISTRY_STACK_SECRETS`).",
    "Unknown keys are refused. What each bad value says: [bad-inputs.md](bad-inputs.md).",
    "",
    "| field | type | default | description |",
    "|---|---|---|---|",
    ...configurationReferenceRows().map(
      (row) => `| \`${row.field}\` | ${row.type} | ${row.required ? "required" : (row.defaultText ?? "—")} | ${cell(row.description)} |`,
    ),
    "",
  ].join("\n");
}
