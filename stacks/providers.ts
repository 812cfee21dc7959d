import { DockerProvider } from "@cdktf/provider-docker/lib/provider";
import { LocalProvider } from "@cdktf/provider-local/lib/provider";
import { TerraformStack } from "cdktf";
import { RegistrySettings } from "../config/schema";
import { AccessRules } from "../renderers/access-module";
import { pinProviderVersions } from "./provider-versions";

/** The Docker provider (the engine, or the swarm manager, of `dockerHost`) and the local one, pinned. */
export function declareProviders(scope: TerraformStack, settings: RegistrySettings): void {
  new DockerProvider(scope, "docker", {
    host: settings.dockerHost,
    certPath: settings.dockerCertPath,
    sshOpts: settings.dockerSshOptions.length > 0 ? settings.dockerSshOptions : undefined,
  });
  new LocalProvider(scope, "local");
  pinProviderVersions(scope);
}

/** What each user may do, as the proxy's access module decides it. */
export function accessRulesOf(settings: RegistrySettings): AccessRules {
  return {
    users: settings.users.map((u) => ({ name: u.name, role: u.role, repositories: u.repositories })),
    deleteEnabled: settings.deleteEnabled,
    anonymousPull: settings.anonymousPull,
    tokenSeconds: settings.authCacheSeconds,
  };
}
