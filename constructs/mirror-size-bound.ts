import { Container } from "@cdktf/provider-docker/lib/container";
import { Construct } from "constructs";
import { MIRROR_SIZE_BOUND_SCRIPT, MIRROR_SIZE_CHECK_SECONDS, mirrorSizeBoundEnvironment } from "../renderers/mirror-size-bound";
import { IGNORE_ENGINE_DEFAULTS, memoryLimit, NO_NEW_PRIVILEGES, REGISTRY_USER, terraformLiteral } from "./container-defaults";
import { Registry } from "./registry";

export interface MirrorSizeBoundProps {
  readonly containerName: string;
  /** The registry's image: a POSIX shell with find, stat, du, awk. */
  readonly image: string;
  /** The pull-through cache whose data volume is bounded. */
  readonly mirror: Registry;
  readonly maxSizeMb: number;
  readonly restartPolicy: string;
}

/**
 * Keeps a mirror's data volume under `maxSizeMb`: a container of the registry image beside the
 * mirror, on the same volume, that deletes the least recently used blobs when the volume is over
 * the bound (renderers/mirror-size-bound.sh). The mirror keeps serving: a deleted blob is fetched
 * from the upstream again at its next pull.
 */
export class MirrorSizeBound extends Construct {
  public static readonly MEMORY_MB = 64;
  public readonly container: Container;

  constructor(scope: Construct, id: string, props: MirrorSizeBoundProps) {
    super(scope, id);
    const data = props.mirror.dataMount;
    if (!data) throw new Error(`${props.mirror.node.path}: a size bound needs a mirror with persistent storage`);
    this.container = new Container(this, "container", {
      name: props.containerName,
      image: props.image,
      entrypoint: ["/bin/sh", "-c", terraformLiteral(MIRROR_SIZE_BOUND_SCRIPT), "mirror-size-bound", "loop"],
      env: mirrorSizeBoundEnvironment({ dataDirectory: Registry.DATA_PATH, maxSizeMb: props.maxSizeMb, intervalSeconds: MIRROR_SIZE_CHECK_SECONDS }),
      networkMode: "none",
      volumes: [data],
      readOnly: true,
      user: REGISTRY_USER,
      // The mirror's volume owner gives the volume to REGISTRY_USER first.
      dependsOn: [props.mirror.volumeOwner.container],
      restart: props.restartPolicy,
      mustRun: true,
      capabilities: { drop: ["ALL"] },
      securityOpts: NO_NEW_PRIVILEGES,
      ...memoryLimit(MirrorSizeBound.MEMORY_MB),
      lifecycle: IGNORE_ENGINE_DEFAULTS,
    });
  }
}
