import { anyToHclTerraform, anyToTerraform, hashMapper, hashMapperHcl, TerraformResource } from "cdktf";
import { Construct } from "constructs";

export interface TerraformDataProps {
  /** Stored in state; what destroy-time provisioners read as `self.input`. */
  readonly input: Record<string, unknown>;
  /** Any change replaces the resource. */
  readonly triggersReplace: Record<string, unknown>;
  readonly provisioners: TerraformResource["provisioners"];
}

/**
 * Terraform's built-in `terraform_data` resource, synthesized as cdktf's `DataResource` does it.
 * `DataResource` also registers a validation that runs `terraform version` at every synth (to
 * require Terraform ≥ 1.4): `cdktf synth` and the unit tests would then need Terraform on the
 * PATH, and every run would ask HashiCorp's update check over the network. Deploying needs
 * Terraform ≥ 1.7 anyway (README), which has `terraform_data`.
 */
export class TerraformData extends TerraformResource {
  public static readonly tfResourceType = "terraform_data";
  private readonly input: Record<string, unknown>;
  private readonly triggersReplace: Record<string, unknown>;

  constructor(scope: Construct, id: string, props: TerraformDataProps) {
    super(scope, id, {
      terraformResourceType: TerraformData.tfResourceType,
      terraformGeneratorMetadata: { providerName: "terraform" },
      provisioners: props.provisioners,
    });
    this.input = props.input;
    this.triggersReplace = props.triggersReplace;
  }

  protected synthesizeAttributes(): { [name: string]: unknown } {
    return { input: hashMapper(anyToTerraform)(this.input), triggers_replace: hashMapper(anyToTerraform)(this.triggersReplace) };
  }

  protected synthesizeHclAttributes(): { [name: string]: unknown } {
    return { input: hashMapperHcl(anyToHclTerraform)(this.input), triggers_replace: hashMapperHcl(anyToHclTerraform)(this.triggersReplace) };
  }
}
