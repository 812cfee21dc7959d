import { z } from "zod";
import { registryStackPropsSchema, TlsSource } from "./schema";

export type { RegistryStackConfig, StateBackend, TlsSource } from "./schema";

export type RegistryUserProps = NonNullable<z.input<typeof registryStackPropsSchema>["users"]>[number];
export type RegistryMirrorProps = NonNullable<z.input<typeof registryStackPropsSchema>["mirrors"]>[number];
export type RetentionProps = NonNullable<z.input<typeof registryStackPropsSchema>["retention"]>;

/** Factories for `tls`, for stacks written in TypeScript. */
export const Tls = {
  /** A CA and a server certificate generated and kept under the material directory. */
  selfSigned: (options: { serverValidityDays?: number } = {}): TlsSource => ({ mode: "self-signed", ...options }),
  /** Your own certificate (leaf, optionally followed by intermediates), its key and the CA clients should trust. */
  fromFiles: (files: { certificateFile: string; keyFile: string; caFile: string }): TlsSource => ({ mode: "files", ...files }),
  /** Plain HTTP. Lab use only: clients must list the registry under `insecure-registries`. */
  none: (): TlsSource => ({ mode: "none" }),
};
