import { TerraformOutput } from "cdktf";
import { Construct } from "constructs";

/** The outputs both topologies give: where the registry is and the first commands to try. */
export function declareRegistryOutputs(
  scope: Construct,
  props: { readonly endpoint: string; readonly user: string; readonly caCertificatePath?: string; readonly clientConfigDirectory: string },
): void {
  const scheme = props.caCertificatePath !== undefined ? "https" : "http";
  const curl = props.caCertificatePath !== undefined ? `curl --cacert ${props.caCertificatePath} -u ${props.user}` : `curl -u ${props.user}`;
  new TerraformOutput(scope, "registry_url", { value: `${scheme}://${props.endpoint}` });
  new TerraformOutput(scope, "docker_login_command", { value: `docker login ${props.endpoint} -u ${props.user}` });
  new TerraformOutput(scope, "catalog_command", { value: `${curl} ${scheme}://${props.endpoint}/v2/_catalog` });
  new TerraformOutput(scope, "tags_command", { value: `${curl} ${scheme}://${props.endpoint}/v2/<name>/tags/list` });
  new TerraformOutput(scope, "client_config_directory", { value: props.clientConfigDirectory });
}
