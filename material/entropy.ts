import * as crypto from "crypto";

/**
 * Everything non-deterministic the stack needs. Real runs use `systemEntropy`;
 * tests inject fixed material so snapshots are stable.
 */
export interface Entropy {
  /** Cryptographically strong random bytes. */
  randomBytes(size: number): Buffer;
  /** A fresh RSA private key, PEM (PKCS#8). */
  generateRsaPrivateKeyPem(bits: number): string;
  /** The current time. */
  now(): Date;
}

export const systemEntropy: Entropy = {
  randomBytes: (size) => crypto.randomBytes(size),
  generateRsaPrivateKeyPem: (bits) =>
    crypto.generateKeyPairSync("rsa", { modulusLength: bits }).privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  now: () => new Date(),
};
