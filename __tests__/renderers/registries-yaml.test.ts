import {
  EMPTY_REGISTRIES_LEDGER,
  parseRegistriesLedger,
  reconcileRegistriesYaml,
  RegistriesYamlLedger,
  renderRegistriesLedger,
} from "../../renderers/registries-yaml";
import { parse } from "yaml";

const OWNER = "registry/client";
const CLAIM = {
  mirrors: { "docker.io": { endpoint: ["https://store.example.test:5001"] } },
  configs: { "store.example.test:5001": { tls: { ca_file: "/etc/registry/ca.crt" } } },
};

function roundTrip(ledger: RegistriesYamlLedger | undefined): RegistriesYamlLedger {
  return ledger === undefined ? EMPTY_REGISTRIES_LEDGER : parseRegistriesLedger(renderRegistriesLedger(ledger), "ledger");
}

describe("reconcileRegistriesYaml", () => {
  test("creates the file with the stack's entries and deletes it again on remove", () => {
    const added = reconcileRegistriesYaml(undefined, EMPTY_REGISTRIES_LEDGER, OWNER, CLAIM);
    expect(parse(added.text!)).toEqual(CLAIM);
    expect(added.ledger).toEqual({
      owners: { [OWNER]: { mirrors: ["docker.io"], configs: ["store.example.test:5001"] } },
      added: { mirrors: ["docker.io"], configs: ["store.example.test:5001"] },
      createdSections: ["configs", "mirrors"],
      createdFile: true,
    });
    expect(reconcileRegistriesYaml(added.text, roundTrip(added.ledger), OWNER, undefined)).toEqual({ text: undefined, ledger: undefined, changed: true });
  });

  test("keeps the admin's entries, keys and comments, never overwrites a foreign entry, and removes only its own", () => {
    const existing = [
      "# node registries (admin)",
      "mirrors:",
      "  docker.io:",
      "    endpoint:",
      "      - https://corp-mirror.example.test # our own Hub mirror",
      "  quay.io:",
      "    endpoint:",
      "      - https://quay-cache.example.test",
      "configs:",
      "  quay-cache.example.test:",
      "    auth:",
      "      username: robot",
      "",
    ].join("\n");
    const added = reconcileRegistriesYaml(existing, EMPTY_REGISTRIES_LEDGER, OWNER, CLAIM);
    const merged = parse(added.text!);
    expect(merged.mirrors["docker.io"]).toEqual({ endpoint: ["https://corp-mirror.example.test"] });
    expect(merged.mirrors["quay.io"]).toEqual({ endpoint: ["https://quay-cache.example.test"] });
    expect(merged.configs).toEqual({ "quay-cache.example.test": { auth: { username: "robot" } }, "store.example.test:5001": { tls: { ca_file: "/etc/registry/ca.crt" } } });
    expect(added.text).toContain("# node registries (admin)");
    expect(added.text).toContain("# our own Hub mirror");
    expect(added.ledger?.added).toEqual({ mirrors: [], configs: ["store.example.test:5001"] });
    const removed = reconcileRegistriesYaml(added.text, roundTrip(added.ledger), OWNER, undefined);
    expect(removed.text).toBe(existing);
    expect(removed.ledger).toBeUndefined();
  });

  test("a new claim replaces the owner's old entries (port change) and updates its own values", () => {
    const first = reconcileRegistriesYaml("{}\n", EMPTY_REGISTRIES_LEDGER, OWNER, CLAIM);
    const moved = {
      mirrors: { "docker.io": { endpoint: ["https://store.example.test:6001"] } },
      configs: { "store.example.test:6001": { tls: { ca_file: "/etc/registry/ca.crt" } } },
    };
    const second = reconcileRegistriesYaml(first.text, roundTrip(first.ledger), OWNER, moved);
    expect(parse(second.text!)).toEqual(moved);
    expect(second.ledger?.added).toEqual({ mirrors: ["docker.io"], configs: ["store.example.test:6001"] });
  });

  test("leaves the text untouched when nothing changes", () => {
    const first = reconcileRegistriesYaml(undefined, EMPTY_REGISTRIES_LEDGER, OWNER, CLAIM);
    const again = reconcileRegistriesYaml(first.text, roundTrip(first.ledger), OWNER, CLAIM);
    expect(again).toMatchObject({ text: first.text, changed: false });
  });

  test("refuses a file k3s could not read, naming it", () => {
    expect(() => reconcileRegistriesYaml("mirrors: [", EMPTY_REGISTRIES_LEDGER, OWNER, CLAIM, "/etc/rancher/k3s/registries.yaml")).toThrow(
      "/etc/rancher/k3s/registries.yaml: not valid YAML",
    );
    expect(() => reconcileRegistriesYaml("mirrors: [a, b]\n", EMPTY_REGISTRIES_LEDGER, OWNER, CLAIM)).toThrow('"mirrors" is not a mapping');
    expect(() => parseRegistriesLedger('{"owners": {}, "added": {"mirrors": []}, "createdSections": [], "createdFile": false}', "l")).toThrow('l: "added.configs": Invalid input: expected array, received undefined;');
    expect(() => parseRegistriesLedger('{"owners": {}, "added": {"mirrors": [], "configs": []}, "createdSections": ["other"], "createdFile": 1}', "l")).toThrow(
      /^l: "createdSections\.0": Invalid option: expected one of "mirrors"\|"configs"; "createdFile": Invalid input: expected boolean, received number;/,
    );
  });
});
