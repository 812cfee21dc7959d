import { HttpBackend, LocalBackend, PgBackend, PgBackendConfig, S3Backend, TerraformStack } from "cdktf";
import * as path from "path";
import { StateBackend } from "../config/schema";

/**
 * Declares where Terraform keeps the state. The local default is absolute: Terraform runs in
 * cdktf.out/stacks/<stack>/, so a relative path would put the state inside cdktf.out/ and lose
 * it with that folder (the next deploy then collides with the containers it created).
 * Remote backends take their credentials from the environment only, never from the config.
 */
export function declareStateBackend(stack: TerraformStack, stackId: string, backend: StateBackend, projectDirectory: string): void {
  switch (backend.type) {
    case "local":
      new LocalBackend(stack, { path: backend.path ?? path.join(projectDirectory, `terraform.${stackId}.tfstate`) });
      return;
    case "s3":
      new S3Backend(stack, {
        bucket: backend.bucket,
        key: backend.key,
        region: backend.region,
        endpoints: backend.endpoint ? { s3: backend.endpoint } : undefined,
        usePathStyle: backend.usePathStyle,
        // S3-compatible stores have no AWS account or region to validate against.
        skipCredentialsValidation: backend.endpoint ? true : undefined,
        skipRegionValidation: backend.endpoint ? true : undefined,
        skipRequestingAccountId: backend.endpoint ? true : undefined,
        skipMetadataApiCheck: backend.endpoint ? true : undefined,
      });
      return;
    case "pg":
      // conn_str holds the database password: Terraform reads it from PG_CONN_STR when the
      // attribute is absent, so it is left out of the JSON on purpose.
      new PgBackend(stack, { schemaName: backend.schemaName } as Omit<PgBackendConfig, "connStr"> as PgBackendConfig);
      return;
    case "http":
      // Basic auth comes from TF_HTTP_USERNAME / TF_HTTP_PASSWORD.
      new HttpBackend(stack, { address: backend.address, lockAddress: backend.lockAddress, unlockAddress: backend.unlockAddress });
      return;
  }
}
