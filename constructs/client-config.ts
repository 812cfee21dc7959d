import { File } from "@cdktf/provider-local/lib/file";
import { Annotations, App, TerraformStack } from "cdktf";
import { Construct } from "constructs";
import * as fs from "fs";
import * as path from "path";
import { parseDaemonJson } from "../renderers/daemon-json";
import { parseRegistriesYaml } from "../renderers/registries-yaml";
import {
  CLIENT_FILE_LAYOUT,
  MirrorEndpoint,
  renderContainerdMirrorHostsToml,
  renderContainerdRegistryHostsToml,
  k3sRegistriesClaim,
  renderRegistriesConfDropIn,
} from "../renderers/registry-client-files";
import { TerraformData } from "./terraform-data";

/** The script Terraform runs to change daemon.json, relative to `projectDirectory`. */
export const DAEMON_JSON_SCRIPT = "scripts/daemon-json-file.ts";
/** The script Terraform runs to change registries.yaml, relative to `projectDirectory`. */
export const REGISTRIES_YAML_SCRIPT = "scripts/registries-yaml-file.ts";

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
   * script from there. In the JSON it is relative to the stack's folder when the synth output is
   * inside it (the default cdktf.out: "../../.."), so that the plan does not depend on where the
   * project was cloned; absolute otherwise (`--output` elsewhere).
   * @default - the checkout this file belongs to
   */
  readonly projectDirectory?: string;
  /**
   * The engine the stack deploys to; with a remote one (ssh://, tcp://) a warning says that the
   * client files are written on the machine running Terraform, not on that engine's host.
   * @default - a local engine
   */
  readonly dockerHost?: string;
  /**
   * Pull-through caches: `upstream` as clients name it, `endpoints` every `host:port` of the mirror.
   * @default []
   */
  readonly mirrors?: ReadonlyArray<{ readonly upstream: string; readonly endpoints: string[] }>;
  /**
   * The k3s/RKE2 registries.yaml the stack merges its entries into (with TLS).
   * @default "<directory>/k3s/registries.yaml"
   */
  readonly k3sRegistriesFile?: string;
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
  /** Entries the stack keeps in daemon.json's `registry-mirrors`: the docker.io mirror, if any. */
  public readonly registryMirrors: string[];
  /** The resource whose create/destroy adds/removes the daemon.json entries. */
  public readonly daemonJson: TerraformData;
  /** Absolute path of the k3s/RKE2 registries.yaml the stack's entries are merged into. */
  public readonly k3sRegistriesPath: string;
  /** The resource whose create/destroy adds/removes the registries.yaml entries (none without TLS). */
  public readonly k3sRegistries: TerraformData;

  constructor(scope: Construct, id: string, props: ClientConfigProps) {
    super(scope, id);
    this.directory = path.resolve(props.directory);
    this.daemonJsonPath = path.join(this.directory, "daemon.json");
    this.k3sRegistriesPath = path.resolve(props.k3sRegistriesFile ?? path.join(this.directory, CLIENT_FILE_LAYOUT.k3sRegistries));
    const projectDirectory = scriptWorkingDirectory(this, props.projectDirectory ?? path.resolve(__dirname, ".."));
    const pem = props.caCertificatePem;
    const mirrors = props.mirrors ?? [];
    const mirrorHosts = mirrors.flatMap((m) => m.endpoints);
    const mirrorEndpoints = mirrors.map((m) => ({ upstream: m.upstream, endpoint: m.endpoints[0] }));
    const dockerCa = (endpoint: string) => path.join(this.directory, CLIENT_FILE_LAYOUT.dockerCerts, endpoint, "ca.crt");
    this.caCertificatePaths = pem === undefined ? [] : props.endpoints.map(dockerCa);
    // Construct ids are Terraform addresses: keyed by endpoint (never by position), so adding or
    // reordering names leaves every other file's address alone. `legacyIndex` is the position
    // earlier versions keyed the file by: a `moved` block carries such a file over on upgrade.
    const file: DeclareFile = (kind, key, legacyIndex, filename, content) => {
      const declared = new File(this, `${kind}-${clientFileKey(key)}`, { filename, content, filePermission: "0644", directoryPermission: "0755" });
      declared.moveFromId(`local_file.${TerraformStack.of(this).getLogicalId(new Construct(this, `${kind}-${legacyIndex}`).node)}`);
      return declared;
    };
    if (pem !== undefined) {
      props.endpoints.forEach((endpoint, index) => file("ca", endpoint, index, dockerCa(endpoint), pem));
      mirrorHosts.forEach((endpoint, index) => file("mirror-ca", endpoint, index, dockerCa(endpoint), pem));
      this.writeOtherClients(file, pem, props.endpoints, mirrorEndpoints);
    }
    // registries.yaml is one file per node, often with the admin's own entries: merged, not owned.
    // Declared also without TLS (with no entries): Terraform runs no destroy provisioner for a
    // resource removed from the configuration, so a switch to tls.mode none must replace it instead.
    const claim = pem !== undefined ? k3sRegistriesClaim(props.endpoints, mirrorEndpoints, dockerCa) : { mirrors: {}, configs: {} };
    if (pem !== undefined) validateExisting(this.k3sRegistriesPath, (text, name) => parseRegistriesYaml(text, name));
    this.k3sRegistries = mergedEntries(
      this,
      "k3s-registries",
      { file: this.k3sRegistriesPath, owner: this.node.path, ...claim },
      REGISTRIES_YAML_SCRIPT,
      "REGISTRY_STACK_REGISTRIES_YAML",
      projectDirectory,
    );
    this.insecureRegistries = pem === undefined ? [...props.endpoints] : [];
    const hub = mirrors.find((m) => m.upstream === "docker.io");
    // dockerd uses registry-mirrors for docker.io only (moby#46319): other mirrors are for the other clients.
    this.registryMirrors = hub ? [`https://${hub.endpoints[0]}`] : [];

    // Read-only, to fail at synth rather than half-way through an apply; the merge happens at apply.
    validateExisting(this.daemonJsonPath, parseDaemonJson);

    const change = {
      daemon_json: this.daemonJsonPath,
      owner: this.node.path,
      insecure_registries: this.insecureRegistries,
      // Only with a docker.io mirror, so that stacks without one keep their resource (no replacement).
      ...(this.registryMirrors.length > 0 ? { registry_mirrors: this.registryMirrors } : {}),
    };
    this.daemonJson = mergedEntries(this, "daemon-json", change, DAEMON_JSON_SCRIPT, "REGISTRY_STACK_DAEMON_JSON", projectDirectory);
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

  /** containerd hosts.toml (+ ca.crt beside each) and the registries.conf.d drop-in. */
  private writeOtherClients(file: DeclareFile, pem: string, endpoints: readonly string[], mirrors: readonly MirrorEndpoint[]): void {
    const owner = this.node.path;
    const hostsDir = (host: string) => path.join(this.directory, CLIENT_FILE_LAYOUT.containerdHosts, host);
    // containerd resolves a relative `ca` against the host's folder: the folder can be copied as it is.
    endpoints.forEach((endpoint, index) => {
      file("containerd-ca", endpoint, index, path.join(hostsDir(endpoint), "ca.crt"), pem);
      file("containerd-hosts", endpoint, index, path.join(hostsDir(endpoint), "hosts.toml"), renderContainerdRegistryHostsToml(endpoint, "ca.crt", owner));
    });
    mirrors.forEach((mirror, index) => {
      file("containerd-mirror-ca", mirror.upstream, index, path.join(hostsDir(mirror.upstream), "ca.crt"), pem);
      file("containerd-mirror-hosts", mirror.upstream, index, path.join(hostsDir(mirror.upstream), "hosts.toml"), renderContainerdMirrorHostsToml(mirror, "ca.crt", owner));
    });
    if (mirrors.length > 0) {
      new File(this, "registries-conf-drop-in", {
        filename: path.join(this.directory, CLIENT_FILE_LAYOUT.registriesConfDropIn),
        content: renderRegistriesConfDropIn(mirrors, owner),
        filePermission: "0644",
        directoryPermission: "0755",
      });
    }
  }
}

/** The methods' shared way to declare one client file of `kind` for `key` (an endpoint or an upstream). */
type DeclareFile = (kind: string, key: string, legacyIndex: number, filename: string, content: string) => File;

/**
 * A construct id part for an endpoint or upstream (`host[:port]`, IPv6 in brackets) that stays
 * readable in Terraform addresses: `.` → `_`, `:` → `__`, brackets dropped. One-to-one for valid
 * names (they hold no `_` and no `..`); cdktf adds a hash of the full path besides.
 */
export function clientFileKey(endpoint: string): string {
  return endpoint.replace(/[[\]]/g, "").replace(/\./g, "_").replace(/:/g, "__");
}

/**
 * The provisioners' working_dir. Terraform runs them in `<outdir>/stacks/<stack>/`: with the
 * output inside the project that folder is a fixed number of levels below it, and a relative path
 * keeps clones in different folders planning the same JSON. Compared after resolving symbolic
 * links, since Terraform's ".." follows the physical folder.
 */
export function scriptWorkingDirectory(scope: Construct, projectDirectory: string): string {
  const real = (p: string) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  const project = real(projectDirectory);
  const outdir = real(App.of(scope).outdir);
  if (outdir !== project && !outdir.startsWith(project + path.sep)) return projectDirectory;
  const stackDirectory = path.join(outdir, "stacks", TerraformStack.of(scope).node.id);
  return path.relative(stackDirectory, project);
}

function validateExisting(file: string, parse: (text: string, name: string) => unknown): void {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return; // absent or unreadable here: the script reports it at apply
  }
  parse(text, file);
}

/**
 * Entries merged into a file shared with other settings: a `terraform_data` whose local-exec
 * provisioners run `script` with the entries on create (add) and destroy (remove). Any change of
 * the entries replaces the resource, so the old ones are removed before the new ones are added.
 */
function mergedEntries(scope: Construct, id: string, change: Record<string, unknown>, script: string, variable: string, projectDirectory: string): TerraformData {
  const run = (action: "add" | "remove") => ({
    type: "local-exec" as const,
    // Destroy-time provisioners may only refer to self: the entries come from the resource's own state.
    command: `node -r ts-node/register/transpile-only ${script} ${action}`,
    workingDir: projectDirectory,
    environment: { [variable]: "${jsonencode(self.input)}" },
    ...(action === "remove" ? { when: "destroy" as const } : {}),
  });
  return new TerraformData(scope, id, { input: change, triggersReplace: change, provisioners: [run("add"), run("remove")] });
}

