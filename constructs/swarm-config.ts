import { Config } from "@cdktf/provider-docker/lib/config";
import { ServiceTaskSpecContainerSpecConfigs } from "@cdktf/provider-docker/lib/service";
import { createHash } from "crypto";
import { Construct } from "constructs";

export interface SwarmConfigProps {
  /** Start of the config's name; a hash of the content is appended (a Swarm config never changes). */
  readonly name: string;
  /** Text that is not secret: it is in cdk.tf.json (base64) and `cdktf diff` shows its changes. */
  readonly content: string;
}

/** A Swarm config: a file every task of a service gets, read-only; a new content is a new config. */
export class SwarmConfig extends Construct {
  public readonly config: Config;

  constructor(scope: Construct, id: string, props: SwarmConfigProps) {
    super(scope, id);
    const hash = createHash("sha256").update(props.content).digest("hex").slice(0, 12);
    this.config = new Config(this, "config", {
      name: `${props.name}-${hash}`,
      data: Buffer.from(props.content, "utf8").toString("base64"),
      lifecycle: { createBeforeDestroy: true },
    });
  }

  /** The config at `path` (absolute) in a task, world-readable. */
  mount(path: string): ServiceTaskSpecContainerSpecConfigs {
    return { configId: this.config.id, configName: this.config.name, fileName: path, fileUid: "0", fileGid: "0", fileMode: 0o444 };
  }
}
