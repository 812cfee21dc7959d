import { App } from "cdktf";
import { ConfigError } from "./config/config-error";
import { loadConfig } from "./config/load-config";
import { ClusterStack } from "./stacks/cluster-stack";
import { RegistryStack } from "./stacks/registry-stack";

export interface MainOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** The project folder: config files and relative paths are found here. @default process.cwd() */
  readonly cwd?: string;
  /** @default - cdktf's (cdktf.out, or what the CLI sets) */
  readonly outdir?: string;
  readonly stdout?: (line: string) => void;
  readonly stderr?: (line: string) => void;
}

/**
 * Loads the configuration, builds the stack and synthesizes it. Bad input is one ConfigError:
 * its problem list and source are printed once, without a stack trace, and the exit code is 1.
 */
export function main(options: MainOptions = {}): number {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const stdout = options.stdout ?? ((line: string) => process.stdout.write(`${line}\n`));
  const stderr = options.stderr ?? ((line: string) => process.stderr.write(`${line}\n`));
  try {
    const { props, source, warnings } = loadConfig(env, cwd);
    warnings.forEach((warning) => stderr(`WARNING: ${warning}`));
    const app = new App(options.outdir === undefined ? undefined : { outdir: options.outdir });
    const stackProps = { projectDirectory: cwd, ...props };
    const stack = props.cluster !== undefined ? new ClusterStack(app, "registry", stackProps, source) : new RegistryStack(app, "registry", stackProps, source);
    if (stack.generatedPasswords.users.length > 0) {
      stdout(`Generated passwords for ${stack.generatedPasswords.users.join(", ")} are in ${stack.generatedPasswords.file} (owner-only).`);
    }
    if (stack instanceof ClusterStack && stack.settings.stateBackend.type === "local") {
      stderr("WARNING: cluster mode keeps the registry's secrets (S3 keys, Redis password, http.secret, htpasswd, TLS key) in the Terraform state (docker_secret.data); keep the local state file owner-only or use an encrypted remote stateBackend (docs/cluster.md).");
    }
    if (stack.settings.tls.mode === "none") {
      stderr("WARNING: tls.mode is 'none': passwords and images cross the network in clear text. Lab use only.");
    }
    app.synth();
    return 0;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    stderr(error.message);
    return 1;
  }
}

if (require.main === module) process.exitCode = main();
