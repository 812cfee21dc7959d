import { z } from "zod";

/**
 * Parses a ledger: the JSON file the stack keeps beside a client file it shares with the host's
 * admin (daemon.json, registries.yaml), recording what the stack wrote there. Throws a message
 * naming the ledger, each wrong field and what to do.
 */
export function parseJsonLedger<T>(text: string, schema: z.ZodType<T>, sourceName: string, clientFile: string): T {
  const fail = (why: string) =>
    new Error(`${sourceName}: ${why}; it records what the registry stack wrote into ${clientFile}: fix it, or remove it to forget those entries`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw fail(`not valid JSON (${(error as Error).message})`);
  }
  const result = schema.safeParse(parsed);
  if (!result.success) {
    throw fail(result.error.issues.map((issue) => `${issue.path.length > 0 ? `"${issue.path.join(".")}"` : "the ledger"}: ${issue.message}`).join("; "));
  }
  return result.data;
}
