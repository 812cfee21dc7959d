import { App } from "cdktf";
import { loadConfig } from "./config/load-config";
import { RegistryStack } from "./stacks/registry-stack";

const app = new App();
const { props, source } = loadConfig();
const stack = new RegistryStack(app, "registry", props, source);
if (stack.generatedPasswords.users.length > 0) {
  console.log(`Generated passwords for ${stack.generatedPasswords.users.join(", ")} are in ${stack.generatedPasswords.file} (owner-only).`);
}
if (stack.settings.tls.mode === "none") {
  console.error("WARNING: tls.mode is 'none': passwords and images cross the network in clear text. Lab use only.");
}
app.synth();
