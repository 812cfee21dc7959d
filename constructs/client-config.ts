import { File } from "@cdktf/provider-local/lib/file";
import { Annotations, DataResource, TerraformStack } from "cdktf";
import { Construct } from "constructs";
import * as fs from "fs";
import * as path from "path";
import { parseDaemonJson } from "../renderers/daemon-json";

/** The script Terraform runs to change daemon.json, relative to `projectDirectory`. */
export const DAEMON_JSON_SCRIPT = "scripts/daemon-json-file.ts";

export interface ClientConfigProps {
  /** Every `host:port` clients use to reach the registry. */
  readonly endpoints: string[];
  /**
   * CA certificate clients must trust.
   * @default - none: plain HTTP, the endpoints are listed under `insecure-registries`
   */
  readonly caCertificatePem?: string;
  /** Folder receiving certs.d/ and daemon.json, e.g. /etc/docker. */
  readonly directory: string;
  /**
   * Folder holding this project (scripts/ and node_modules/): Terraform runs the daemon.json
   * script from there.
   * @default - the checkout this file belongs to
   */
  readonly projectDirectory?: string;
  /**
   * The engine the stack deploys to; with a remote one (ssh://, tcp://) a warning says that the
   * client files are written on the machine running Terraform, not on that engine's host.
   * @default - a local engine
   */
  readonly dockerHost?: string;
}

/**
 * Files a Docker client needs: certs.d/<host:port>/ca.crt (stack-owned `local_file`s) and the
 * stack's entries in daemon.json. daemon.json is shared with the engine's own settings, so it is
 * not a `local_file` (destroy would delete the whole file): a `terraform_data` resource carries
 * the entries, and its local-exec provisioners add them on create and remove exactly those the
 * stack inserted on destroy. Any change of the entries replaces the resource, so the old ones
 * are removed before the new ones are added.
 */
export class ClientConfig extends Construct {
  /** Absolute folder of the client files. */
  public readonly directory: string;
  public readonly daemonJsonPath: string;
  /** `certs.d/<endpoint>/ca.crt` paths, in `endpoints` order (empty without TLS). */
  public readonly caCertificatePaths: string[];
  /** Entries the stack keeps in daemon.json's `insecure-registries` (empty with TLS). */
  public readonly insecureRegistries: string[];
  /** The resource whose create/destroy adds/removes the daemon.json entries. */
  public readonly daemonJson: DataResource;

  constructor(scope: Construct, id: string, props: ClientConfigProps) {
    super(scope, id);
    this.directory = path.resolve(props.directory);
    this.daemonJsonPath = path.join(this.directory, "daemon.json");
    const pem = props.caCertificatePem;
    this.caCertificatePaths = pem === undefined ? [] : props.endpoints.map((endpoint) => path.join(this.directory, "certs.d", endpoint, "ca.crt"));
    this.caCertificatePaths.forEach((filename, index) => {
      new File(this, `ca-${index}`, { filename, content: pem, filePermission: "0644", directoryPermission: "0755" });
    });
    this.insecureRegistries = pem === undefined ? [...props.endpoints] : [];

    // Read-only, to fail at synth rather than half-way through an apply; the merge happens at apply.
    validateExisting(this.daemonJsonPath);

    const change = { daemon_json: this.daemonJsonPath, owner: this.node.path, insecure_registries: this.insecureRegistries };
    const run = (action: "add" | "remove") => ({
      type: "local-exec" as const,
      // Destroy-time provisioners may only refer to self: the entries come from the resource's own state.
      command: `node -r ts-node/register/transpile-only ${DAEMON_JSON_SCRIPT} ${action}`,
      workingDir: props.projectDirectory ?? path.resolve(__dirname, ".."),
      environment: { REGISTRY_STACK_DAEMON_JSON: "${jsonencode(self.input)}" },
      ...(action === "remove" ? { when: "destroy" as const } : {}),
    });
    this.daemonJson = new DataResource(this, "daemon-json", {
      input: change,
      triggersReplace: change,
      provisioners: [run("add"), run("remove")],
    });
    // Until this version daemon.json was a local_file of the same id: forget it without deleting
    // the file (its destroy would delete the engine's other settings). Needs Terraform >= 1.7.
    TerraformStack.of(this).addOverride("removed", [
      { from: `local_file.${this.daemonJson.friendlyUniqueId}`, lifecycle: { destroy: false } },
    ]);

    const remote = props.dockerHost !== undefined && /^(ssh|tcp):\/\//.test(props.dockerHost);
    if (remote && this.directory === "/etc/docker") {
      Annotations.of(this).addWarning(
        `clientConfigDirectory is /etc/docker but dockerHost is ${props.dockerHost}: Terraform writes the client files ` +
          "on the machine running cdktf, so this configures that machine's Docker, not the engine's host; " +
          "copy certs.d/ (and the insecure-registries entries) to the registry host and every client (see README, Client setup)",
      );
    }
  }
}

function validateExisting(file: string): void {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return; // absent or unreadable here: the script reports it at apply
  }
  parseDaemonJson(text, file);
}

/** `host:port` for every name and address; the bare host as well on 443, which clients may omit. */
export function registryEndpoints(hostnames: string[], ipAddresses: string[], port: number): string[] {
  const hosts = [...hostnames, ...ipAddresses.map((ip) => (ip.includes(":") ? `[${ip}]` : ip))];
  return hosts.flatMap((host) => (port === 443 ? [host, `${host}:443`] : [`${host}:${port}`]));
}
