import { Network } from "@cdktf/provider-docker/lib/network";
import { TerraformStack } from "cdktf";
import { Construct } from "constructs";
import { ClientConfig } from "../constructs/client-config";
import { CollectorService } from "../constructs/collector-service";
import { ProxyService } from "../constructs/proxy-service";
import { RegistryService } from "../constructs/registry-service";
import { ClusterSettings, RegistrySettings, resolveSettings } from "../config/schema";
import { systemEntropy } from "../material/entropy";
import { prepareMaterial } from "../material/prepare-material";
import { registryEndpoints } from "../renderers/registry-client-files";
import { accessRulesOf, declareProviders } from "./providers";
import { RegistryStackProps } from "./registry-stack";
import { declareRegistryOutputs } from "./registry-outputs";
import { declareStateBackend } from "./state-backend";

/**
 * The registry on a Docker Swarm (`dockerHost` is a manager): registry replicas on S3-compatible
 * storage sharing a Redis blob-descriptor cache, replicated login verifiers, one more registry
 * process that alone purges abandoned uploads, and nginx on every node publishing the public port,
 * all on one encrypted overlay network. Same configuration file, users, TLS material and client
 * files as the single-host RegistryStack; see docs/cluster.md.
 */
export class ClusterStack extends TerraformStack {
  public readonly settings: RegistrySettings;
  public readonly cluster: ClusterSettings;
  public readonly network: Network;
  public readonly registry: RegistryService;
  public readonly authVerifier: RegistryService;
  /** The one registry task that purges abandoned uploads (distribution#4074); it serves no client. */
  public readonly uploadPurger: RegistryService;
  public readonly proxy: ProxyService;
  /** The one garbage collector, with retention configured. */
  public readonly collector?: CollectorService;
  public readonly client: ClientConfig;
  /** `host:port` values clients use: every node's address. */
  public readonly endpoints: string[];
  public readonly generatedPasswords: { readonly users: string[]; readonly file?: string };

  constructor(scope: Construct, id: string, props: RegistryStackProps = {}, source?: string) {
    super(scope, id);
    const { entropy = systemEntropy, ...rest } = props;
    const settings = resolveSettings(rest, id, source);
    if (settings.cluster === undefined) throw new Error(`${id}: ClusterStack needs the cluster section; RegistryStack deploys to one engine`);
    this.settings = settings;
    const cluster = settings.cluster;
    this.cluster = cluster;
    declareStateBackend(this, id, settings.stateBackend, settings.projectDirectory);

    const { tls, users, httpSecret, store } = prepareMaterial(settings, entropy);
    store.commit();
    this.generatedPasswords = { users: users.generatedFor, file: users.generatedPasswordFile };

    declareProviders(this, settings);

    const prefix = settings.namePrefix;
    this.network = new Network(this, "cluster-network", {
      name: `${prefix}-cluster`,
      driver: "overlay",
      // Only the stack's services: nothing else can join and reach the unauthenticated registries.
      attachable: false,
      options: cluster.encryptedNetwork ? { encrypted: "true" } : undefined,
      // The engine reports more options than it was given (vxlanid_list), and options force replacement.
      lifecycle: { ignoreChanges: ["options"] },
    });

    // The schema requires the secret keys in cluster mode.
    const s3 = { ...cluster.storage, accessKey: cluster.storage.accessKey ?? "", secretKey: cluster.storage.secretKey ?? "" };
    const shared = { s3, redis: cluster.redis };
    const common = {
      image: settings.registryImage,
      network: this.network,
      httpSecret,
      logLevel: settings.logLevel,
      secretFiles: store,
      stopGraceSeconds: settings.stopGraceSeconds,
      debugPort: settings.debugPort,
    };
    this.registry = new RegistryService(this, "registry", {
      ...common,
      serviceName: `${prefix}-registry`,
      replicas: cluster.registryReplicas,
      storage: shared,
      deleteEnabled: settings.deleteEnabled,
      memoryMb: settings.registryMemoryMb,
    });
    this.uploadPurger = new RegistryService(this, "upload-purger", {
      ...common,
      serviceName: `${prefix}-upload-purger`,
      replicas: 1,
      storage: shared,
      uploadPurging: true,
      deleteEnabled: settings.deleteEnabled,
      memoryMb: settings.registryMemoryMb,
    });
    this.authVerifier = new RegistryService(this, "auth-verifier", {
      ...common,
      serviceName: `${prefix}-auth`,
      replicas: cluster.verifierReplicas,
      users: users.entries,
      storage: { inMemory: true },
      deleteEnabled: false,
      memoryMb: settings.authVerifierMemoryMb,
    });
    const retention = settings.retention;
    if (retention) {
      this.collector = new CollectorService(this, "collector", {
        serviceName: `${prefix}-collector`,
        image: settings.registryImage,
        network: this.network,
        s3,
        redis: cluster.redis,
        httpSecret,
        schedule: retention.schedule,
        dryRun: retention.dryRun,
        writeSettleSeconds: retention.writeSettleSeconds,
        rules: retention.rules,
        logLevel: settings.logLevel,
        secretFiles: store,
        stopGraceSeconds: settings.stopGraceSeconds,
        memoryMb: settings.registryMemoryMb,
      });
    }
    this.proxy = new ProxyService(this, "proxy", {
      serviceName: `${prefix}-proxy`,
      image: settings.proxyImage,
      network: this.network,
      registry: this.registry,
      verifier: {
        service: this.authVerifier,
        cacheSeconds: settings.authCacheSeconds,
        verificationsPerMinute: settings.failedLoginsPerMinute,
        verificationBurst: settings.failedLoginsBurst,
        totalVerificationsPerMinute: settings.loginVerificationsPerMinute,
        limitScope: settings.failedLoginsScope,
        access: accessRulesOf(settings),
      },
      serverNames: [...settings.hostnames, ...settings.ipAddresses],
      publicPort: settings.publicPort,
      tls: tls ? { certificateChainPem: tls.certificateChainPem, privateKeyPem: tls.privateKeyPem } : undefined,
      secretFiles: store,
      stopGraceSeconds: settings.stopGraceSeconds,
      memoryMb: settings.proxyMemoryMb,
      writeHoldStateUrl: this.collector?.holdStateUrl,
    });

    // Every node's address (cluster.nodes are in hostnames/ipAddresses): a client that loses one node uses another.
    this.endpoints = registryEndpoints(settings.hostnames, settings.ipAddresses, settings.publicPort);
    this.client = new ClientConfig(this, "client", {
      endpoints: this.endpoints,
      caCertificatePem: tls?.caCertificatePem,
      directory: settings.clientConfigDirectory,
      projectDirectory: settings.projectDirectory,
      dockerHost: settings.dockerHost,
      mirrors: [],
      k3sRegistriesFile: settings.k3sRegistriesFile,
    });
    declareRegistryOutputs(this, {
      endpoint: this.endpoints[0],
      user: settings.users[0].name,
      caCertificatePath: tls ? this.client.caCertificatePaths[0] : undefined,
      clientConfigDirectory: this.client.directory,
    });
  }
}
