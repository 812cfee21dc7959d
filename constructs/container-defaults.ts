/**
 * An engine's `default-ulimits` (hardened hosts, Amazon Linux) are read back as the container's
 * own, and `ulimit` forces replacement, so every deploy would replace every container. The stack
 * sets no ulimit, so ignoring it hides nothing it declares. (Default `log-opts` were the same
 * case before kreuzwerker/docker 4.1.)
 */
export const IGNORE_ENGINE_DEFAULTS = { ignoreChanges: ["ulimit"] };

/**
 * A memory limit with Docker's own default swap allowance (as much swap as memory), declared:
 * the engine reports memory_swap back, and an unset one is planned back to null at every deploy.
 */
export function memoryLimit(megabytes: number): { memory: number; memorySwap: number } {
  return { memory: megabytes, memorySwap: 2 * megabytes };
}

export const NO_NEW_PRIVILEGES = ["no-new-privileges:true"];

/**
 * The only writable place besides volumes in containers with a read-only root filesystem:
 * nginx's pid file and temp paths, anything a program puts in /tmp. In memory, counted in
 * the container's memory limit.
 */
export const SCRATCH_TMPFS = { "/tmp": "rw,noexec,nosuid,nodev,size=64m" };

/**
 * Text Terraform must take literally: `${` and `%{` start template sequences in any string of the
 * configuration (an upload's content included), `$${` and `%%{` are their escapes.
 */
export function terraformLiteral(text: string): string {
  // A function replacement: in a replacement string "$$" would itself mean one "$".
  return text.replace(/\$\{/g, () => "$${").replace(/%\{/g, () => "%%{");
}

export { REGISTRY_GID, REGISTRY_UID, REGISTRY_USER } from "../renderers/volume-ownership";

/**
 * For a one-shot container run with `attach` and `logs` (the provider waits for it to exit but
 * does not look at its exit code): a non-zero exit fails the deploy with `message` and what the
 * container printed, which says why (it is gone from `docker logs` once the container is replaced).
 */
export function exitedZero(message: string): { condition: string; errorMessage: string } {
  const output = '${self.container_logs == null ? "(not captured)" : trimspace(self.container_logs)}';
  return { condition: "${self.exit_code == 0}", errorMessage: `${message}. It printed: ${output}` };
}

/**
 * Docker's `--cpus` as the provider reads it back (NanoCPUs to 9 decimals, trailing zeros cut,
 * a whole number as "1.0"): written any other way, every plan would replace the container.
 */
export function cpusLiteral(cpus: number): string {
  const nano = Math.round(cpus * 1e9);
  const nine = (nano / 1e9).toFixed(9);
  return (nine.match(/0/g) ?? []).length === 9 ? (nano / 1e9).toFixed(1) : nine.replace(/0+$/, "");
}
