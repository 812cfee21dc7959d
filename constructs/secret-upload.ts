import { ContainerUpload } from "@cdktf/provider-docker/lib/container";
import { AssetType, TerraformAsset } from "cdktf";
import { Construct } from "constructs";

/**
 * An upload whose content never enters the plan or state: the file is copied as an asset
 * and referenced by path and hash (`upload.content` would be stored in state in clear text).
 */
export function secretUpload(scope: Construct, id: string, file: string, containerPath: string, permissions = "0600"): ContainerUpload {
  const asset = new TerraformAsset(scope, id, { path: file, type: AssetType.FILE });
  return { file: containerPath, source: asset.path, sourceHash: asset.assetHash, permissions };
}
