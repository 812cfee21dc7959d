import * as path from "path";
/**
 * Client files for consumers other than dockerd, as pure functions: containerd's hosts.toml,
 * a containers-registries.conf(5) drop-in for Podman, CRI-O, Buildah and skopeo (both start
 * with STACK_FILE_MARKER: the stack owns them outright and refuses to overwrite one that lacks
 * it, a file the user wrote), and the entries merged into k3s/RKE2's registries.yaml.
 */

/** Where each kind of client file goes below the client folder (copy them to the same place on a node). */
export const CLIENT_FILE_LAYOUT = {
  dockerCerts: "certs.d",
  containerdHosts: path.join("containerd", "certs.d"),
  k3sRegistries: path.join("k3s", "registries.yaml"),
  registriesConfDropIn: path.join("containers", "registries.conf.d", "50-registry-stack.conf"),
} as const;

/**
 * Files the stack owns outright (besides certs.d/…/ca.crt): they must either not exist yet or
 * carry the stack's marker, so that a file the user wrote is never overwritten.
 */
export function stackOwnedClientFiles(directory: string, endpoints: readonly string[], mirrorUpstreams: readonly string[]): string[] {
  const hostsToml = (host: string) => path.join(directory, CLIENT_FILE_LAYOUT.containerdHosts, host, "hosts.toml");
  return [
    ...endpoints.map(hostsToml),
    ...mirrorUpstreams.map(hostsToml),
    ...(mirrorUpstreams.length > 0 ? [path.join(directory, CLIENT_FILE_LAYOUT.registriesConfDropIn)] : []),
  ];
}

/** `host:port` for every name and address; the bare host as well on 443, which clients may omit. */
export function registryEndpoints(hostnames: string[], ipAddresses: string[], port: number): string[] {
  const hosts = [...hostnames, ...ipAddresses.map((ip) => (ip.includes(":") ? `[${ip}]` : ip))];
  return hosts.flatMap((host) => (port === 443 ? [host, `${host}:443`] : [`${host}:${port}`]));
}

export const STACK_FILE_MARKER = "# Written by registry-stack";

/** A pull-through cache as clients see it. */
export interface MirrorEndpoint {
  /** The registry it caches, as named in image references: docker.io, ghcr.io, host:port. */
  readonly upstream: string;
  /** `host:port` clients use to reach the mirror. */
  readonly endpoint: string;
}

/** Where a client goes for `upstream` when no mirror answers (containerd's `server`). */
export function upstreamServerUrl(upstream: string): string {
  // docker.io is a name, not a host: Docker Hub's registry API answers at registry-1.docker.io.
  return upstream === "docker.io" ? "https://registry-1.docker.io" : `https://${upstream}`;
}

function header(owner: string, what: string): string {
  return `${STACK_FILE_MARKER} (${owner}): ${what}. Changes are overwritten by the next deploy.\n`;
}

function tomlString(value: string): string {
  // Host names, ports and paths only: a JSON string is a valid TOML basic string for them.
  return JSON.stringify(value);
}

/**
 * containerd `certs.d/<upstream>/hosts.toml` (containerd ≥ 1.5, `config_path`): pulls and
 * resolves go to the mirror first, with `caFile` (relative to this folder) as its CA; the
 * upstream stays the fallback server.
 */
export function renderContainerdMirrorHostsToml(mirror: MirrorEndpoint, caFile: string, owner: string): string {
  return [
    header(owner, `containerd pulls of ${mirror.upstream} go through the mirror ${mirror.endpoint}`),
    `server = ${tomlString(upstreamServerUrl(mirror.upstream))}`,
    "",
    `[host.${tomlString(`https://${mirror.endpoint}`)}]`,
    '  capabilities = ["pull", "resolve"]',
    `  ca = ${tomlString(caFile)}`,
    "",
  ].join("\n");
}

/**
 * containerd `certs.d/<host:port>/hosts.toml` for the private registry: its CA. As a `host`
 * table, not a top-level `ca`: containerd 1.6 refuses a hosts.toml without one ("invalid `host` tree").
 */
export function renderContainerdRegistryHostsToml(endpoint: string, caFile: string, owner: string): string {
  return [
    header(owner, `containerd trusts the registry stack's CA for ${endpoint}`),
    `server = ${tomlString(`https://${endpoint}`)}`,
    "",
    `[host.${tomlString(`https://${endpoint}`)}]`,
    '  capabilities = ["pull", "resolve", "push"]',
    `  ca = ${tomlString(caFile)}`,
    "",
  ].join("\n");
}

/**
 * The stack's entries of a k3s / RKE2 `registries.yaml` (merged into the file by
 * renderers/registries-yaml.ts): `mirrors` sends each upstream to its mirror, `configs` gives
 * every endpoint (registry and mirrors) its CA file. `caFileOf` maps an endpoint to the CA's
 * absolute path on the node (k3s needs absolute paths). Credentials are not written here.
 */
export function k3sRegistriesClaim(
  registryEndpoints: readonly string[],
  mirrors: readonly MirrorEndpoint[],
  caFileOf: (endpoint: string) => string,
): { mirrors: Record<string, unknown>; configs: Record<string, unknown> } {
  return {
    mirrors: Object.fromEntries(mirrors.map((m) => [m.upstream, { endpoint: [`https://${m.endpoint}`] }])),
    configs: Object.fromEntries([...registryEndpoints, ...mirrors.map((m) => m.endpoint)].map((endpoint) => [endpoint, { tls: { ca_file: caFileOf(endpoint) } }])),
  };
}

/**
 * A `registries.conf.d/` drop-in (containers-registries.conf.d(5)) for Podman, CRI-O, Buildah
 * and skopeo: each upstream gets its mirror, tried before the upstream itself. Their CA goes
 * to `certs.d/<host:port>/ca.crt` beside it (/etc/containers/certs.d, or per user
 * ~/.config/containers/certs.d), the layout of Docker's certs.d.
 */
export function renderRegistriesConfDropIn(mirrors: readonly MirrorEndpoint[], owner: string): string {
  const blocks = mirrors.map((m) =>
    [
      "[[registry]]",
      `prefix = ${tomlString(m.upstream)}`,
      `location = ${tomlString(m.upstream)}`,
      "",
      "[[registry.mirror]]",
      `location = ${tomlString(m.endpoint)}`,
      "",
    ].join("\n"),
  );
  return [header(owner, "pulls of mirrored registries go through the registry stack's mirrors"), ...blocks].join("\n");
}
