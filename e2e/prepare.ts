import { ensureDistributionV3Binary, ensureRootfsTarball } from "./images";
import { ensureTerraformTools } from "./terraform-tools";

/**
 * `npx ts-node e2e/prepare.ts`: builds (or finds in the cache) everything the e2e suite needs
 * before it starts an engine: the Debian rootfs, distribution v3, Terraform and the providers.
 * .ci/run calls it so that the cold build time shows as a step of its own.
 */
async function main(): Promise<void> {
  const log = (line: string) => console.log(`[prepare] ${line}`);
  const only = process.argv[2];
  if (only !== "terraform") {
    await ensureRootfsTarball(log);
    await ensureDistributionV3Binary(log);
  }
  if (only !== "images") {
    const tools = await ensureTerraformTools(log);
    for (const line of tools.summary) log(line);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
