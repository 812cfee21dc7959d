import { Secret } from "@cdktf/provider-docker/lib/secret";
import { ServiceTaskSpecContainerSpecSecrets } from "@cdktf/provider-docker/lib/service";
import { AssetType, Fn, TerraformAsset } from "cdktf";
import { Construct } from "constructs";

export interface SwarmSecretProps {
  /** Start of the secret's name; a hash of the file is appended (a Swarm secret never changes). */
  readonly name: string;
  /** The owner-only material file holding the content. */
  readonly file: string;
}

/**
 * A Swarm secret whose content never enters cdk.tf.json: the file is copied as an asset and
 * Terraform reads it at plan time (`filebase64`). Terraform keeps `data` in its state (the
 * provider marks it sensitive, which hides it from plans, not from the state file): see
 * docs/cluster.md. A new content is a new secret (name with the content's hash), created before
 * the services switch to it and the old one is removed.
 */
export class SwarmSecret extends Construct {
  public readonly secret: Secret;

  constructor(scope: Construct, id: string, props: SwarmSecretProps) {
    super(scope, id);
    const asset = new TerraformAsset(this, "file", { path: props.file, type: AssetType.FILE });
    this.secret = new Secret(this, "secret", {
      name: `${props.name}-${asset.assetHash.slice(0, 12).toLowerCase()}`,
      data: Fn.filebase64(asset.path),
      lifecycle: { createBeforeDestroy: true },
    });
  }

  /** The secret as /run/secrets/<fileName> in a task, readable only by `uid`. */
  mount(fileName: string, uid: number): ServiceTaskSpecContainerSpecSecrets {
    return { secretId: this.secret.id, secretName: this.secret.name, fileName, fileUid: String(uid), fileGid: String(uid), fileMode: 0o400 };
  }
}
