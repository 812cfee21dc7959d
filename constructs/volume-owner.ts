import { Container, ContainerVolumes } from "@cdktf/provider-docker/lib/container";
import { ITerraformDependable } from "cdktf";
import { Construct } from "constructs";
import { renderOwnershipScript } from "../renderers/volume-ownership";
import { exitedZero, IGNORE_ENGINE_DEFAULTS, memoryLimit, NO_NEW_PRIVILEGES, REGISTRY_USER, terraformLiteral } from "./container-defaults";

export interface VolumeOwnerProps {
  /** Name of the container the volumes are prepared for; this one is named after it. */
  readonly containerName: string;
  /** An image already declared by the stack, with a POSIX shell, `stat` and `chown`. */
  readonly image: string;
  /**
   * The volumes (or host folders) that container writes, mounted here read-write at the same
   * paths; each is changed only when its top folder does not have the owner yet.
   */
  readonly mounts: ContainerVolumes[];
  /**
   * Small volumes changed in full at every run, e.g. a config volume, whose files a re-created
   * seeder uploads again as root.
   * @default - none
   */
  readonly alwaysMounts?: ContainerVolumes[];
  /**
   * Per mount path, a folder created in it when it is migrated so that it is never empty (see
   * OwnedDirectories.stores.keepFilledWith): for paths the image declares as VOLUME.
   * @default - none
   */
  readonly keepFilled?: Record<string, string>;
  /**
   * The owner given to the mounts.
   * @default REGISTRY_USER
   */
  readonly owner?: string;
  /** What must exist first, e.g. the seeder that fills a config volume. */
  readonly dependsOn?: ITerraformDependable[];
}

/**
 * A one-shot container that makes a non-root container's volumes its own (see
 * renderOwnershipScript); the container that uses them depends on it.
 *
 * kreuzwerker/docker with `attach = true` starts the container and waits until it is no longer
 * running before the apply goes on, so the volumes are ready when the dependant starts. It does
 * not judge the exit code (4.6 as 3.6.2: only stores it in `exit_code`), so a postcondition
 * fails the deploy on a non-zero exit, naming the volumes' container and quoting what it printed
 * (`logs`). `must_run` must be false:
 * with true the provider would delete the exited container and fail. The
 * exited container stays in state and is replaced, so run again, whenever one of its mounts
 * changes (a new config volume at every config change); `docker start -a` re-runs it by hand.
 */
export class VolumeOwner extends Construct {
  public readonly container: Container;
  public readonly owner: string;

  constructor(scope: Construct, id: string, props: VolumeOwnerProps) {
    super(scope, id);
    this.owner = props.owner ?? REGISTRY_USER;
    const always = props.alwaysMounts ?? [];
    const pathOf = (m: ContainerVolumes) => {
      if (m.containerPath === undefined) throw new Error(`${this.node.path}: every mount needs a containerPath`);
      return m.containerPath;
    };
    const directories = {
      stores: props.mounts.map((m) => ({ path: pathOf(m), keepFilledWith: props.keepFilled?.[pathOf(m)] })),
      always: always.map(pathOf),
    };
    this.container = new Container(this, "container", {
      name: `${props.containerName}-volume-owner`,
      image: props.image,
      entrypoint: ["/bin/sh", "-c", terraformLiteral(renderOwnershipScript(directories, this.owner))],
      user: "0:0",
      // chown needs CAP_CHOWN; CAP_DAC_READ_SEARCH lets it descend into directories another
      // tool left unreadable to root-without-capabilities (it grants reading, not writing).
      capabilities: { drop: ["ALL"], add: ["CAP_CHOWN", "CAP_DAC_READ_SEARCH"] },
      securityOpts: NO_NEW_PRIVILEGES,
      networkMode: "none",
      readOnly: true,
      volumes: [...props.mounts, ...always].map((m) => ({ ...m, readOnly: false })),
      attach: true,
      logs: true,
      mustRun: false,
      restart: "no",
      ...memoryLimit(128),
      dependsOn: props.dependsOn,
      lifecycle: {
        ...IGNORE_ENGINE_DEFAULTS,
        postcondition: [exitedZero(`could not make the volumes of ${props.containerName} owned by ${this.owner}`)],
      },
    });
  }
}
