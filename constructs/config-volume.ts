import { Container, ContainerUpload, ContainerVolumes } from "@cdktf/provider-docker/lib/container";
import { Volume } from "@cdktf/provider-docker/lib/volume";
import { createHash } from "crypto";
import { ITerraformDependable } from "cdktf";
import { Construct } from "constructs";
import { IGNORE_ENGINE_DEFAULTS } from "./container-defaults";

export interface ConfigVolumeProps {
  /** Name of the container that mounts the volume; the volume and the seeder are named after it. */
  readonly containerName: string;
  /** An image already declared by the stack; the seeder is created from it but never started. */
  readonly image: string;
  /** Where the volume is mounted; every upload must be inside it. */
  readonly directory: string;
  readonly uploads: ContainerUpload[];
  /**
   * Keep one volume under a fixed name and write each change into it, for a container that
   * reloads its files instead of being replaced (the proxy). Files no longer uploaded stay.
   * @default false - a volume per content, named after it
   */
  readonly reloaded?: boolean;
  /** What must exist before the files change, e.g. the registries a new nginx.conf points to. */
  readonly dependsOn?: ITerraformDependable[];
}

/** A short hash of uploads (paths, modes, contents or content hashes). */
export function uploadsDigest(uploads: readonly ContainerUpload[]): string {
  const digest = createHash("sha256");
  for (const u of uploads) {
    digest.update(JSON.stringify([u.file, u.permissions ?? "", u.executable ?? "", u.content ?? "", u.contentBase64 ?? "", u.sourceHash ?? ""]));
  }
  return digest.digest("hex").slice(0, 12);
}

/**
 * A container's configuration files on a volume it mounts read-only, so that the container
 * itself can run with a read-only root filesystem.
 *
 * kreuzwerker/docker uploads files by extracting a tar at `/`, which the engine refuses for a
 * container whose root filesystem is read-only, whatever volumes it has. The files are
 * therefore uploaded into a seeder container that mounts the volume read-write, is created and
 * never started; the engine writes them through its mount into the volume.
 */
export class ConfigVolume extends Construct {
  public readonly volume: Volume;
  public readonly seeder: Container;
  /** The read-only mount for the container that uses the files. */
  public readonly mount: ContainerVolumes;

  constructor(scope: Construct, id: string, props: ConfigVolumeProps) {
    super(scope, id);
    const outside = props.uploads.filter((u) => !u.file.startsWith(`${props.directory}/`));
    if (outside.length > 0) {
      throw new Error(`${this.node.path}: uploads outside ${props.directory}: ${outside.map((u) => u.file).join(", ")}`);
    }

    // Named after the files: a change gives a new volume (nothing stale, such as a key no longer
    // used, stays behind), and the new name replaces the container that mounts it.
    const name = props.reloaded ? `${props.containerName}-config` : `${props.containerName}-config-${uploadsDigest(props.uploads)}`;
    this.volume = new Volume(this, "volume", { name });
    this.seeder = new Container(this, "seeder", {
      name: `${props.containerName}-config-seed`,
      image: props.image,
      start: false,
      mustRun: false,
      networkMode: "none",
      volumes: [{ volumeName: this.volume.name, containerPath: props.directory }],
      upload: props.uploads,
      dependsOn: props.dependsOn,
      lifecycle: IGNORE_ENGINE_DEFAULTS,
    });
    this.mount = { volumeName: this.volume.name, containerPath: props.directory, readOnly: true };
  }
}
