import { renderOwnershipScript } from "../../renderers/volume-ownership";

/**
 * The script's input checks. The script itself changes owners of real files as root, so it runs
 * in the registry image in the e2e suite (e2e/scripts-in-image.ts, checks 50 and 51).
 */

const OWNER = "65532:65532";

describe("renderOwnershipScript input", () => {
  test("fails when the owner is not numeric uid:gid", () => {
    expect(() => renderOwnershipScript({ stores: [{ path: "/var/lib/registry" }], always: [] }, "registry")).toThrow("owner must be numeric uid:gid, got registry");
  });

  test("fails when a directory is not a plain absolute path", () => {
    expect(() => renderOwnershipScript({ stores: [{ path: "/var/lib/registry" }], always: ["data; rm -rf /"] }, OWNER)).toThrow("directories must be plain absolute paths: data; rm -rf /");
  });

  test("fails when the folder that keeps a store filled is not a plain folder name", () => {
    expect(() => renderOwnershipScript({ stores: [{ path: "/var/lib/registry", keepFilledWith: "docker/x" }], always: [] }, OWNER)).toThrow("keepFilledWith must be a plain folder name: docker/x");
  });
});
