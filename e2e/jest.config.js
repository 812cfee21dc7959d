/**
 * The jest tests that need Terraform on the PATH (a prerequisite of the end-to-end suite, not of
 * `npm test`): `npm run test:e2e` runs them before the deployments.
 * @type {import('jest').Config}
 */
module.exports = {
  rootDir: "..",
  testEnvironment: "node",
  roots: ["<rootDir>/e2e/terraform"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": "ts-jest" },
  setupFilesAfterEnv: ["<rootDir>/__tests__/setup.ts"],
  testTimeout: 120000,
};
