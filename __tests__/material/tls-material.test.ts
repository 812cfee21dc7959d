import { normalizeIdentity } from "../../material/tls-material";
import { problemsOf } from "../fixtures/problems-of";

describe("normalizeIdentity", () => {
  test("lower-cases and de-duplicates names and writes IPs canonically", () => {
    expect(
      normalizeIdentity({
        hostnames: ["Registry.Example.TEST", "registry.example.test", "*.apps.example.test"],
        ipAddresses: ["127.0.0.1", "0:0::1", "::1", "::FFFF:192.0.2.1", "2001:DB8:0:0::5"],
      }),
    ).toEqual({
      hostnames: ["registry.example.test", "*.apps.example.test"],
      ipAddresses: ["127.0.0.1", "::1", "::ffff:c000:201", "2001:db8::5"],
    });
  });

  test("fails when entries are invalid, listing each", () => {
    expect(problemsOf(() => normalizeIdentity({ hostnames: ["ok.test", "-bad", "a b"], ipAddresses: ["1.2.3", "127.0.0.1"] }))).toEqual([
      'hostnames[1]: "-bad" is not a valid DNS name; use letters, digits, hyphens and dots',
      'hostnames[2]: "a b" is not a valid DNS name; use letters, digits, hyphens and dots',
      'ipAddresses[0]: "1.2.3" is not an IPv4 or IPv6 address (without zone id); fix or remove it',
    ]);
  });
});
