import { runSelfTest } from "./self-test";

// `npm run test:e2e`. For now it runs the self-test of the e2e machinery (engine, images,
// realizer); the stack's own end-to-end checks are to be added here.
runSelfTest().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
