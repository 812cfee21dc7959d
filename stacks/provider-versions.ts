import { TerraformStack } from "cdktf";

/**
 * The provider versions the stack is deployed and tested with (`npm run test:e2e` deploys through
 * builds served under these labels). The TypeScript bindings (@cdktf/provider-docker 12.0.3,
 * @cdktf/provider-local 11.1.1) are generated from older schemas and would pin kreuzwerker/docker
 * 3.6.2 and hashicorp/local 2.6.1; every attribute the stack sets exists unchanged in these
 * versions, which the suite proves with real plans. Exact pins: a provider's read-back behaviour
 * decides whether a plan after a deploy is empty, so a new version is taken on purpose, after the
 * suite has run with it, never by a range.
 */
export const PROVIDER_VERSIONS = {
  "kreuzwerker/docker": "4.6.0",
  "hashicorp/local": "2.9.0",
} as const;

/** Sets `required_providers` of the stack to PROVIDER_VERSIONS. */
export function pinProviderVersions(stack: TerraformStack): void {
  for (const [source, version] of Object.entries(PROVIDER_VERSIONS)) {
    const name = source.split("/")[1];
    stack.addOverride(`terraform.required_providers.${name}`, { source, version });
  }
}
