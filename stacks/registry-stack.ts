import { Network } from "@cdktf/provider-docker/lib/network";
import { Volume } from "@cdktf/provider-docker/lib/volume";
import { Image } from "@cdktf/provider-docker/lib/image";
import { TerraformStack } from "cdktf";
import { Construct } from "constructs";
import { ClientConfig } from "../constructs/client-config";
import { registryEndpoints } from "../renderers/registry-client-files";
import { Maintenance } from "../constructs/maintenance";
import { MirrorSizeBound } from "../constructs/mirror-size-bound";
import { NginxProxy } from "../constructs/nginx-proxy";
import { Registry } from "../constructs/registry";
import { DEFAULT_AUTH_VERIFIER_CPUS, RegistrySettings, RegistryStackConfig, resolveSettings } from "../config/schema";
import { mirrorTtlSeconds } from "../config/rules";
import { Entropy, systemEntropy } from "../material/entropy";
import { prepareMaterial } from "../material/prepare-material";
import { readUiSources, renderUiAssets } from "../renderers/ui-assets";
import { accessRulesOf, declareProviders } from "./providers";
import { declareRegistryOutputs } from "./registry-outputs";
import { declareStateBackend } from "./state-backend";

/** Docker's default CPU weight is 1024. */
const VERIFIER_CPU_SHARES = 128;

/** The configuration (config/schema.ts is its one definition) plus what only code can pass. */
export type RegistryStackProps = RegistryStackConfig & {
  /**
   * Randomness and clock. Tests inject fixed material.
   * @default - the system's CSPRNG, Node's RSA key generation and clock
   */
  readonly entropy?: Entropy;
};

/**
 * A private Docker registry: distribution behind Nginx (or terminating TLS itself), htpasswd
 * users, TLS material and the client files, on one Docker Engine.
 */
export class RegistryStack extends TerraformStack {
  /** Props with every default applied. */
  public readonly settings: RegistrySettings;
  public readonly registry: Registry;
  public readonly proxy?: NginxProxy;
  /** The registry holding the htpasswd file when the proxy caches logins. */
  public readonly authVerifier?: Registry;
  /** Pull-through caches by mirror name. */
  public readonly mirrors: Record<string, Registry> = {};
  public readonly client: ClientConfig;
  /** Retention and garbage collection, when `retention` is configured. */
  public readonly maintenance?: Maintenance;
  /** `host:port` values clients use. */
  public readonly endpoints: string[];
  /** Users whose passwords were generated, and the file holding them. */
  public readonly generatedPasswords: { readonly users: string[]; readonly file?: string };

  constructor(scope: Construct, id: string, props: RegistryStackProps = {}, source?: string) {
    super(scope, id);
    const { entropy = systemEntropy, ...rest } = props;
    const settings = resolveSettings(rest, id, source);
    this.settings = settings;
    declareStateBackend(this, id, settings.stateBackend, settings.projectDirectory);

    // Every check on input (files included) runs in prepareMaterial, which writes nothing; the
    // commit comes before the constructs because TerraformAsset reads the secret files they write.
    const { tls, users, httpSecret, store, upstreamCas } = prepareMaterial(settings, entropy);
    store.commit();
    this.generatedPasswords = { users: users.generatedFor, file: users.generatedPasswordFile };

    declareProviders(this, settings);

    const prefix = settings.namePrefix;
    const edge = new Network(this, "edge-network", { name: `${prefix}-edge` });
    // Behind the proxy the registry and the verifier have no network at all: they listen on unix
    // sockets in this volume, which only the proxy mounts, so nothing else on the host or on any
    // Docker network can reach them.
    const sockets = settings.proxy ? new Volume(this, "socket-volume", { name: `${prefix}-sockets` }) : undefined;
    const publish = { address: settings.publishAddress, port: settings.publicPort };
    const tlsPems = tls ? { certificateChainPem: tls.certificateChainPem, privateKeyPem: tls.privateKeyPem } : undefined;

    const registryImage = new Image(this, "registry-image", { name: settings.registryImage, keepLocally: true });
    const withAuthCache = settings.proxy && settings.authCacheSeconds > 0;
    this.registry = new Registry(this, "registry", {
      containerName: `${prefix}-registry`,
      image: registryImage,
      httpSecret,
      users: withAuthCache ? undefined : users.entries,
      deleteEnabled: settings.deleteEnabled,
      logLevel: settings.logLevel,
      storage:
        settings.storageHostPath !== undefined
          ? { hostPath: settings.storageHostPath }
          : { volumeName: settings.volumeName, preventDestroy: settings.preventVolumeDestroy },
      endpoint: sockets ? { socketVolume: sockets, socketName: "registry.sock" } : { networks: [edge] },
      secretFiles: store,
      tls: settings.proxy ? undefined : tlsPems,
      publish: settings.proxy ? undefined : publish,
      debugPort: settings.debugPort,
      restartPolicy: settings.restartPolicy,
      stopGraceSeconds: settings.stopGraceSeconds,
      memoryMb: settings.registryMemoryMb,
      instances: settings.registryInstances,
      // Each instance caches descriptors in its own memory: a blob deleted through one (or by the
      // garbage collector) would still be served from another's cache.
      blobDescriptorCache: settings.retention === undefined && (settings.registryInstances === 1 || !settings.deleteEnabled),
    });

    if (settings.retention) {
      this.maintenance = new Maintenance(this, "maintenance", {
        containerName: `${prefix}-maintenance`,
        image: registryImage,
        registry: this.registry,
        stateVolumeName: `${prefix}-maintenance`,
        schedule: settings.retention.schedule,
        dryRun: settings.retention.dryRun,
        writeSettleSeconds: settings.retention.writeSettleSeconds,
        rules: settings.retention.rules,
        restartPolicy: settings.restartPolicy,
        stopGraceSeconds: settings.stopGraceSeconds,
        memoryMb: settings.registryMemoryMb,
      });
    }

    if (withAuthCache && sockets) {
      this.authVerifier = new Registry(this, "auth-verifier", {
        containerName: `${prefix}-auth`,
        alias: "registry-auth",
        image: registryImage,
        httpSecret,
        users: users.entries,
        deleteEnabled: false,
        logLevel: settings.logLevel,
        storage: { inMemory: true },
        endpoint: { socketVolume: sockets, socketName: "auth.sock" },
        secretFiles: store,
        restartPolicy: settings.restartPolicy,
        stopGraceSeconds: settings.stopGraceSeconds,
        memoryMb: settings.authVerifierMemoryMb,
        // A password-guessing flood from many addresses keeps the verifier's bcrypt busy within
        // the login limit: capped, and at an eighth of the default weight, it leaves the proxy and
        // the registry the CPU they need for requests with a cached login.
        cpuShares: VERIFIER_CPU_SHARES,
        cpus: (settings.authVerifierCpus ?? DEFAULT_AUTH_VERIFIER_CPUS) / settings.registryInstances,
        instances: settings.registryInstances,
      });
    }

    // Mirrors need the proxy (the schema refuses them without it), so they always have sockets.
    let egress: Network | undefined;
    const egressNetwork = (network: string | undefined) => network ?? (egress ??= new Network(this, "mirror-egress-network", { name: `${prefix}-mirror-egress` })).name;
    for (const mirror of settings.mirrors) {
      if (!sockets) break;
      // The mirror's name is its identity (validated, documented): ids by position would replace
      // every later mirror's volume when one is removed from the list.
      this.mirrors[mirror.name] = new Registry(this, `mirror-${mirror.name}`, {
        containerName: `${prefix}-mirror-${mirror.name}`,
        alias: `mirror-${mirror.name}`,
        image: registryImage,
        httpSecret,
        users: withAuthCache || mirror.anonymousPull ? undefined : users.entries,
        // The TTL expiry deletes through the storage API; the proxy refuses DELETE from clients.
        deleteEnabled: true,
        logLevel: settings.logLevel,
        // A cache: nothing in it that the upstream does not have, so destroy may take it.
        storage: { volumeName: `${prefix}-mirror-${mirror.name}-data`, preventDestroy: false },
        endpoint: { socketVolume: sockets, socketName: `mirror-${mirror.name}.sock`, egressNetworks: [egressNetwork(mirror.network)] },
        secretFiles: store,
        restartPolicy: settings.restartPolicy,
        stopGraceSeconds: settings.stopGraceSeconds,
        memoryMb: settings.registryMemoryMb,
        pullThrough: {
          remoteUrl: mirror.upstreamUrl,
          username: mirror.username,
          password: mirror.password,
          ttl: mirror.ttl,
          caCertificatePem: upstreamCas[mirror.name],
        },
        // The size bound deletes blobs under the mirror: a cached descriptor would still say "exists" (distribution#4569).
        blobDescriptorCache: mirror.maxSizeMb === undefined,
      });
      if (mirror.maxSizeMb !== undefined) {
        new MirrorSizeBound(this, `mirror-${mirror.name}-size-bound`, {
          containerName: `${prefix}-mirror-${mirror.name}-size-bound`,
          image: registryImage.imageId,
          mirror: this.mirrors[mirror.name],
          maxSizeMb: mirror.maxSizeMb,
          restartPolicy: settings.restartPolicy,
        });
      }
    }

    if (sockets) {
      this.proxy = new NginxProxy(this, "proxy", {
        containerName: `${prefix}-proxy`,
        image: settings.proxyImage,
        registry: this.registry,
        authVerifier: this.authVerifier
          ? {
              registry: this.authVerifier,
              cacheSeconds: settings.authCacheSeconds,
              verificationsPerMinute: settings.failedLoginsPerMinute,
              verificationBurst: settings.failedLoginsBurst,
              totalVerificationsPerMinute: settings.loginVerificationsPerMinute,
              limitScope: settings.failedLoginsScope,
              access: accessRulesOf(settings),
            }
          : undefined,
        maintenance: this.maintenance,
        socketVolume: sockets,
        edgeNetwork: edge,
        serverNames: [...settings.hostnames, ...settings.ipAddresses],
        publish,
        tls: tlsPems,
        secretFiles: store,
        httpRedirectPort: settings.httpRedirectPort,
        uiFiles: settings.ui ? renderUiAssets(readUiSources(), { deleteEnabled: settings.deleteEnabled }) : undefined,
        mirrors: settings.mirrors.map((m) => ({
          name: m.name,
          registry: this.mirrors[m.name],
          port: m.port,
          mirrorOf: m.upstream,
          anonymousPull: m.anonymousPull,
          // Without the proxy's login check a mirror with users checks them itself, on every
          // request: a cached blob would skip that check, so such a mirror gets no cache.
          blobCache:
            withAuthCache || m.anonymousPull
              ? { volumeName: `${prefix}-mirror-${m.name}-blob-cache`, maxSizeMb: m.blobCacheMb, validSeconds: mirrorTtlSeconds(m.ttl) }
              : undefined,
        })),
        serveBlobsFromStorage: settings.serveBlobsFromStorage,
        restartPolicy: settings.restartPolicy,
        stopGraceSeconds: settings.stopGraceSeconds,
        memoryMb: settings.proxyMemoryMb,
      });
    }

    this.endpoints = registryEndpoints(settings.hostnames, settings.ipAddresses, settings.publicPort);
    this.client = new ClientConfig(this, "client", {
      endpoints: this.endpoints,
      caCertificatePem: tls?.caCertificatePem,
      directory: settings.clientConfigDirectory,
      projectDirectory: settings.projectDirectory,
      dockerHost: settings.dockerHost,
      mirrors: settings.mirrors.map((m) => ({ upstream: m.upstream, endpoints: registryEndpoints(settings.hostnames, settings.ipAddresses, m.port) })),
      k3sRegistriesFile: settings.k3sRegistriesFile,
    });
    this.declareOutputs(tls !== undefined);
  }

  private declareOutputs(withTls: boolean): void {
    declareRegistryOutputs(this, {
      endpoint: this.endpoints[0],
      user: this.settings.users[0].name,
      caCertificatePath: withTls ? this.client.caCertificatePaths[0] : undefined,
      clientConfigDirectory: this.client.directory,
    });
  }
}
