import { File } from "@cdktf/provider-local/lib/file";
import { Construct } from "constructs";
import * as fs from "fs";
import * as path from "path";
import { renderDaemonJson } from "../renderers/daemon-json";

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
}

/** Files a Docker client needs: certs.d/<host:port>/ca.crt and a daemon.json merged into the existing one. */
export class ClientConfig extends Construct {
  /** Absolute folder of the client files. */
  public readonly directory: string;
  public readonly daemonJsonPath: string;
  /** `certs.d/<endpoint>/ca.crt` paths, in `endpoints` order (empty without TLS). */
  public readonly caCertificatePaths: string[];

  constructor(scope: Construct, id: string, props: ClientConfigProps) {
    super(scope, id);
    this.directory = path.resolve(props.directory);
    this.daemonJsonPath = path.join(this.directory, "daemon.json");
    const pem = props.caCertificatePem;
    this.caCertificatePaths = pem === undefined ? [] : props.endpoints.map((endpoint) => path.join(this.directory, "certs.d", endpoint, "ca.crt"));
    this.caCertificatePaths.forEach((filename, index) => {
      new File(this, `ca-${index}`, { filename, content: pem, filePermission: "0644", directoryPermission: "0755" });
    });

    // An engine's existing settings must survive: read the current file and change only our entries.
    const existing = fs.existsSync(this.daemonJsonPath) ? fs.readFileSync(this.daemonJsonPath, "utf8") : undefined;
    const daemonJson = renderDaemonJson(
      existing,
      { insecureRegistries: pem === undefined ? props.endpoints : [], managedRegistries: props.endpoints },
      this.daemonJsonPath,
    );
    new File(this, "daemon-json", { filename: this.daemonJsonPath, content: daemonJson, filePermission: "0644", directoryPermission: "0755" });
  }
}

/** `host:port` for every name and address; the bare host as well on 443, which clients may omit. */
export function registryEndpoints(hostnames: string[], ipAddresses: string[], port: number): string[] {
  const hosts = [...hostnames, ...ipAddresses.map((ip) => (ip.includes(":") ? `[${ip}]` : ip))];
  return hosts.flatMap((host) => (port === 443 ? [host, `${host}:443`] : [`${host}:${port}`]));
}
