import { cpusLiteral } from "../../constructs/container-defaults";

describe("cpusLiteral", () => {
  // What kreuzwerker/docker 4.x reads back from NanoCPUs (nanoInt64ToDecimalString): any other
  // spelling of the same value plans a replacement of the container at every deploy.
  test.each([
    [1, "1.0"],
    [2, "2.0"],
    [0.5, "0.5"],
    [0.1, "0.1"],
    [1.5, "1.5"],
    [0.25, "0.25"],
    [1 / 3, "0.333333333"],
    [2 / 3, "0.666666667"],
  ])("writes %p as %p", (cpus, literal) => {
    expect(cpusLiteral(cpus)).toBe(literal);
  });
});
