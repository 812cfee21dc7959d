import {
  DaemonJsonLedger,
  EMPTY_LEDGER,
  parseDaemonJson,
  parseLedger,
  reconcileDaemonJson,
  renderLedger,
} from "../../renderers/daemon-json";

const OWNER = "registry/client";
const insecure = (entries: string[]) => ({ insecureRegistries: entries });
const parse = (text: string | undefined) => (text === undefined ? undefined : JSON.parse(text));

/** Runs add/remove steps like the script does, threading file text and ledger. */
function steps(initial: string | undefined, ...changes: Array<[string, string[] | undefined]>) {
  let text = initial;
  let ledger: DaemonJsonLedger = EMPTY_LEDGER;
  for (const [owner, entries] of changes) {
    const result = reconcileDaemonJson(text, ledger, owner, entries && insecure(entries));
    text = result.daemonJson;
    ledger = result.ledger ?? EMPTY_LEDGER;
  }
  return { text, ledger };
}

describe("reconcileDaemonJson", () => {
  test("creates the file with the key when there is none, and records that it did", () => {
    const result = reconcileDaemonJson(undefined, EMPTY_LEDGER, OWNER, insecure(["registry.test:8443"]));
    expect(result.daemonJson).toBe('{\n  "insecure-registries": [\n    "registry.test:8443"\n  ]\n}\n');
    expect(result.ledger).toEqual({ owners: { [OWNER]: ["registry.test:8443"] }, added: ["registry.test:8443"], createdKey: true, createdFile: true });
    expect(result.changed).toBe(true);
  });

  test("writes nothing when there is no file and nothing to add (TLS mode)", () => {
    expect(reconcileDaemonJson(undefined, EMPTY_LEDGER, OWNER, insecure([]))).toEqual({ daemonJson: undefined, ledger: undefined, changed: false });
  });

  test("keeps other keys, their order and foreign entries; appends new entries", () => {
    const existing = JSON.stringify({
      "log-driver": "json-file",
      "insecure-registries": ["other:5000"],
      "log-opts": { "max-size": "10m" },
      debug: true,
    });
    const result = reconcileDaemonJson(existing, EMPTY_LEDGER, OWNER, insecure(["new.test:8443"]));
    expect(result.daemonJson).toBe(
      [
        "{",
        '  "log-driver": "json-file",',
        '  "insecure-registries": [',
        '    "other:5000",',
        '    "new.test:8443"',
        "  ],",
        '  "log-opts": {',
        '    "max-size": "10m"',
        "  },",
        '  "debug": true',
        "}",
        "",
      ].join("\n"),
    );
    expect(result.ledger?.added).toEqual(["new.test:8443"]);
  });

  test("does not claim an entry that was already there: removing the owner keeps it", () => {
    const existing = '{"insecure-registries": ["localhost:5000"], "debug": true}';
    const added = reconcileDaemonJson(existing, EMPTY_LEDGER, OWNER, insecure(["localhost:5000", "127.0.0.1:5000"]));
    expect(added.ledger?.added).toEqual(["127.0.0.1:5000"]);
    const removed = reconcileDaemonJson(added.daemonJson, added.ledger!, OWNER, undefined);
    expect(parse(removed.daemonJson)).toEqual({ "insecure-registries": ["localhost:5000"], debug: true });
    expect(removed.ledger).toBeUndefined();
  });

  test("removes exactly what it added, and the key it created, on remove", () => {
    const { text, ledger } = steps('{"debug": true}', [OWNER, ["a:1", "b:2"]], [OWNER, undefined]);
    expect(text).toBe('{\n  "debug": true\n}\n');
    expect(ledger).toEqual(EMPTY_LEDGER);
  });

  test("keeps the user's key, even empty, on remove", () => {
    const { text } = steps('{"insecure-registries": [], "debug": false}', [OWNER, ["a:1"]], [OWNER, undefined]);
    expect(parse(text)).toEqual({ "insecure-registries": [], debug: false });
  });

  test("deletes the file on remove only when it created it and nothing else is in it", () => {
    expect(steps(undefined, [OWNER, ["a:1"]], [OWNER, undefined]).text).toBeUndefined();
    const created = reconcileDaemonJson(undefined, EMPTY_LEDGER, OWNER, insecure(["a:1"]));
    const userEdited = JSON.stringify({ ...JSON.parse(created.daemonJson!), debug: true });
    expect(parse(reconcileDaemonJson(userEdited, created.ledger!, OWNER, undefined).daemonJson)).toEqual({ debug: true });
    const existedEmpty = steps("{}", [OWNER, ["a:1"]], [OWNER, undefined]);
    expect(existedEmpty.text).toBe("{}\n");
  });

  test("leaves no stale entry after a port change (remove old, add new), foreign entries untouched", () => {
    const initial = '{"insecure-registries": ["foreign:5000"], "log-level": "warn"}';
    const { text, ledger } = steps(
      initial,
      [OWNER, ["localhost:5000", "127.0.0.1:5000"]],
      [OWNER, undefined],
      [OWNER, ["localhost:5001", "127.0.0.1:5001"]],
    );
    expect(parse(text)).toEqual({ "insecure-registries": ["foreign:5000", "localhost:5001", "127.0.0.1:5001"], "log-level": "warn" });
    expect(ledger.added).toEqual(["localhost:5001", "127.0.0.1:5001"]);
  });

  test("a new claim by the same owner drops its earlier entries even without a remove (lost state)", () => {
    const { text } = steps("{}", [OWNER, ["localhost:5000"]], [OWNER, ["localhost:5001"]]);
    expect(parse(text)).toEqual({ "insecure-registries": ["localhost:5001"] });
  });

  test("an entry two owners need stays until the last one goes", () => {
    const both = steps("{}", ["a/client", ["shared:1", "a:1"]], ["b/client", ["shared:1"]]);
    const oneLeft = reconcileDaemonJson(both.text, both.ledger, "a/client", undefined);
    expect(parse(oneLeft.daemonJson)).toEqual({ "insecure-registries": ["shared:1"] });
    const none = reconcileDaemonJson(oneLeft.daemonJson, oneLeft.ledger!, "b/client", undefined);
    expect(parse(none.daemonJson)).toEqual({});
  });

  test("re-adds an entry the user deleted by hand; does not duplicate existing ones", () => {
    const first = reconcileDaemonJson("{}", EMPTY_LEDGER, OWNER, insecure(["a:1"]));
    const again = reconcileDaemonJson('{"insecure-registries": []}', first.ledger!, OWNER, insecure(["a:1", "a:1"]));
    expect(parse(again.daemonJson)).toEqual({ "insecure-registries": ["a:1"] });
    expect(again.ledger?.added).toEqual(["a:1"]);
  });

  test("leaves the text untouched when its entries do not change", () => {
    const existing = '{ "debug":true,\n "insecure-registries": ["a:1"] }';
    expect(reconcileDaemonJson(existing, EMPTY_LEDGER, OWNER, insecure(["a:1"]))).toMatchObject({ daemonJson: existing, changed: false });
    expect(reconcileDaemonJson(existing, EMPTY_LEDGER, OWNER, undefined)).toMatchObject({ daemonJson: existing, changed: false });
  });

  test("treats an empty file like no file, as dockerd does", () => {
    expect(parse(reconcileDaemonJson(" \n", EMPTY_LEDGER, OWNER, insecure(["a:1"])).daemonJson)).toEqual({ "insecure-registries": ["a:1"] });
    expect(parse(reconcileDaemonJson('\uFEFF{"debug": true}', EMPTY_LEDGER, OWNER, insecure(["a:1"])).daemonJson)).toEqual({ debug: true, "insecure-registries": ["a:1"] });
  });

  test("fails when the content is not valid JSON, naming the source", () => {
    expect(() => reconcileDaemonJson('{"debug": true,}', EMPTY_LEDGER, OWNER, insecure([]), "/etc/docker/daemon.json")).toThrow(
      /^\/etc\/docker\/daemon\.json is not valid JSON \(.+\); dockerd would refuse to start with it: fix or remove the file, then run again$/,
    );
  });
});

describe("parseDaemonJson", () => {
  test("fails when the content is not a JSON object", () => {
    expect(() => parseDaemonJson('["a"]')).toThrow(
      "daemon.json is not a JSON object (got an array); daemon.json must be an object like {}: fix or remove the file, then run again",
    );
    expect(() => parseDaemonJson("null", "d.json")).toThrow("d.json is not a JSON object (got null)");
  });

  test("fails when insecure-registries is not an array of strings", () => {
    expect(() => parseDaemonJson('{"insecure-registries": "a:1"}', "d.json")).toThrow(
      'd.json: "insecure-registries" must be an array of strings, got "a:1"; fix it by hand, then run again',
    );
  });
});

describe("parseLedger", () => {
  test("reads back what renderLedger wrote", () => {
    const ledger = { owners: { [OWNER]: ["a:1"] }, added: ["a:1"], createdKey: true, createdFile: false };
    expect(parseLedger(renderLedger(ledger), "l")).toEqual(ledger);
  });

  test("fails when the ledger is damaged, naming it", () => {
    expect(() => parseLedger("{", "/etc/docker/daemon.json.registry-stack")).toThrow(
      /^\/etc\/docker\/daemon\.json\.registry-stack: not valid JSON .*fix it, or remove it to forget those entries$/,
    );
    expect(() => parseLedger('{"owners": {"a": "x"}, "added": [], "createdKey": true, "createdFile": true}', "l")).toThrow(
      'l: "owners.a": Invalid input: expected array, received string; it records what the registry stack wrote into daemon.json: fix it, or remove it to forget those entries',
    );
  });
});

describe("reconcileDaemonJson with registry-mirrors", () => {
  const claim = { insecureRegistries: [], registryMirrors: ["https://store.example.test:5001"] };

  test("adds the mirror beside the user's own mirrors and removes only its own", () => {
    const existing = JSON.stringify({ "registry-mirrors": ["https://mirror.corp.example"], debug: true });
    const added = reconcileDaemonJson(existing, EMPTY_LEDGER, OWNER, claim);
    expect(parse(added.daemonJson)).toEqual({ "registry-mirrors": ["https://mirror.corp.example", "https://store.example.test:5001"], debug: true });
    expect(added.ledger).toEqual({
      owners: {},
      added: [],
      createdKey: false,
      createdFile: false,
      registryMirrors: { owners: { [OWNER]: ["https://store.example.test:5001"] }, added: ["https://store.example.test:5001"], createdKey: false },
    });
    const removed = reconcileDaemonJson(added.daemonJson, parseLedger(renderLedger(added.ledger!), "ledger"), OWNER, undefined);
    expect(parse(removed.daemonJson)).toEqual({ "registry-mirrors": ["https://mirror.corp.example"], debug: true });
    expect(removed.ledger).toBeUndefined();
  });

  test("creates and later drops the key and the file it created", () => {
    const added = reconcileDaemonJson(undefined, EMPTY_LEDGER, OWNER, claim);
    expect(parse(added.daemonJson)).toEqual({ "registry-mirrors": ["https://store.example.test:5001"] });
    expect(reconcileDaemonJson(added.daemonJson, added.ledger!, OWNER, undefined)).toEqual({ daemonJson: undefined, ledger: undefined, changed: true });
  });

  test("reads ledgers written before mirrors existed, and refuses a malformed mirror section", () => {
    const old = '{"owners": {"registry/client": ["a:1"]}, "added": ["a:1"], "createdKey": true, "createdFile": false}';
    expect(parseLedger(old, "ledger")).toEqual({ owners: { [OWNER]: ["a:1"] }, added: ["a:1"], createdKey: true, createdFile: false });
    const bad = '{"owners": {}, "added": [], "createdKey": false, "createdFile": false, "registryMirrors": {"owners": {}, "added": "x", "createdKey": false}}';
    expect(() => parseLedger(bad, "ledger")).toThrow('ledger: "registryMirrors.added": Invalid input: expected array, received string;');
  });

  test("refuses a daemon.json whose registry-mirrors is not a list", () => {
    expect(() => parseDaemonJson('{"registry-mirrors": "https://x"}', "/etc/docker/daemon.json")).toThrow('"registry-mirrors" must be an array of strings');
  });
});
