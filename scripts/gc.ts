/**
 * Runs the retention + garbage-collection job now, in the deployed stack's maintenance container
 * (in cluster mode: the collector task's container, on the manager dockerHost names), exactly as
 * the schedule runs it:
 *
 *   npm run gc                  delete what the retention rules say, collect garbage, print the report
 *   npm run gc -- --dry-run     only report what would be deleted
 *
 * The configuration is read like `cdktf synth` reads it ($REGISTRY_STACK_CONFIG, else
 * ./registry-stack.yml), for the engine (dockerHost) and the container name (namePrefix). It
 * needs the docker CLI; the job's log goes to stderr, its JSON report to stdout.
 */
import { spawnSync } from "child_process";
import * as path from "path";
import { ConfigError } from "../config/config-error";
import { loadConfig } from "../config/load-config";
import { RegistrySettings, resolveSettings } from "../config/schema";
import { MAINTENANCE_SCRIPT_PATH } from "../renderers/maintenance-settings";

function engineArgs(settings: RegistrySettings): string[] {
  const engine = ["--host", settings.dockerHost];
  if (settings.dockerHost.startsWith("tcp://") && settings.dockerCertPath) {
    const cert = (file: string) => path.resolve(settings.projectDirectory, settings.dockerCertPath ?? "", file);
    engine.push("--tlsverify", "--tlscacert", cert("ca.pem"), "--tlscert", cert("cert.pem"), "--tlskey", cert("key.pem"));
  }
  return engine;
}

/**
 * Arguments of the docker CLI that run the job in the maintenance container; in cluster mode in
 * `container`, the collector task's container on dockerHost (see collectorLookupArgs).
 */
export function gcDockerArgs(settings: RegistrySettings, dryRun: boolean, container = `${settings.namePrefix}-maintenance`): string[] {
  return [...engineArgs(settings), "exec", container, "/bin/sh", MAINTENANCE_SCRIPT_PATH, "run", ...(dryRun ? ["--dry-run"] : [])];
}

/** Cluster mode: the docker CLI arguments that print the id of the collector task's container on dockerHost (a manager). */
export function collectorLookupArgs(settings: RegistrySettings): string[] {
  return [...engineArgs(settings), "ps", "-q", "--filter", `label=com.docker.swarm.service.name=${settings.namePrefix}-collector`];
}

export function main(argv: string[], env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): number {
  const unknown = argv.filter((a) => a !== "--dry-run");
  if (unknown.length > 0) {
    process.stderr.write(`npm run gc: unknown argument(s) ${unknown.join(" ")}; use: npm run gc [-- --dry-run]\n`);
    return 2;
  }
  let settings: RegistrySettings;
  try {
    const { props, source } = loadConfig(env, cwd);
    settings = resolveSettings({ projectDirectory: cwd, ...props }, "registry", source);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 1;
  }
  if (!settings.retention) {
    process.stderr.write("npm run gc: retention is not configured, so the stack has no maintenance container (nor collector); add a retention section (README: Storage lifecycle) and deploy\n");
    return 1;
  }
  if (settings.dockerSshOptions.length > 0) {
    process.stderr.write("npm run gc: dockerSshOptions are not passed to the docker CLI; put them in ~/.ssh/config for this host\n");
  }
  let container: string | undefined;
  if (settings.cluster !== undefined) {
    const lookup = spawnSync("docker", collectorLookupArgs(settings), { encoding: "utf8", env });
    if (lookup.error || lookup.status !== 0) {
      process.stderr.write(`npm run gc: could not list the containers on ${settings.dockerHost} (${lookup.error?.message ?? lookup.stderr.trim()})\n`);
      return 1;
    }
    container = lookup.stdout.split("\n").find((line) => line.trim() !== "");
    if (container === undefined) {
      process.stderr.write(
        `npm run gc: the collector (service ${settings.namePrefix}-collector) runs on another manager than ${settings.dockerHost}; \`docker service ps ${settings.namePrefix}-collector\` names its node: set dockerHost to that node for this command\n`,
      );
      return 1;
    }
  }
  const result = spawnSync("docker", gcDockerArgs(settings, argv.includes("--dry-run"), container), { stdio: "inherit", env });
  if (result.error) {
    process.stderr.write(`npm run gc: could not run the docker CLI (${result.error.message}); install it or put it on the PATH\n`);
    return 1;
  }
  return result.status ?? 1;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
