import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderWriteHoldPoller } from "../../renderers/write-hold-poller";

const INPUT = {
  stateUrl: "http://registry-collector:5001/debug/health",
  flagFile: "/run/registry-stack-hold/write-hold",
  intervalSeconds: 1,
  timeoutSeconds: 2,
  nginxCommand: ["nginx", "-e", "stderr", "-c", "/etc/registry-stack/nginx.conf", "-g", "daemon off;"],
};

describe("renderWriteHoldPoller", () => {
  const script = renderWriteHoldPoller(INPUT);

  test("holds writes from the start, until the collector first answers 200", () => {
    const lines = script.split("\n");
    expect(lines.indexOf(': > "$flag"')).toBeGreaterThan(-1);
    expect(lines.indexOf(': > "$flag"')).toBeLessThan(lines.findIndex((l) => l.includes("while :")));
  });

  test("clears the flag only on a 200 within the timeout, and sets it on anything else (fail closed)", () => {
    expect(script).toContain(`if timeout 2 wget -q -O /dev/null "$url" 2>/dev/null; then rm -f "$flag"; else : > "$flag"; fi`);
    expect(script).toContain("flag='/run/registry-stack-hold/write-hold'");
    expect(script).toContain("url='http://registry-collector:5001/debug/health'");
    expect(script).toContain("sleep 1\n");
  });

  test("execs nginx last, each argument quoted, so nginx is the task's first process and gets SIGQUIT", () => {
    expect(script.trimEnd().split("\n").pop()).toBe("exec 'nginx' '-e' 'stderr' '-c' '/etc/registry-stack/nginx.conf' '-g' 'daemon off;'");
  });

  test("quotes a URL with a single quote safely", () => {
    expect(renderWriteHoldPoller({ ...INPUT, stateUrl: "http://a/'b" })).toContain("url='http://a/'\\''b'");
  });
});

describe("renderWriteHoldPoller, run by sh with stand-ins for wget, timeout and nginx", () => {
  const waitFor = async (what: string, condition: () => boolean, timeoutMs = 8000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  test("the flag follows the collector's answer: set from the start, cleared on 200, set again when it fails", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hold-poller-"));
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    const answer = path.join(dir, "answer");
    // wget succeeds while the answer file says 200; timeout runs its command; nginx waits.
    fs.writeFileSync(path.join(bin, "wget"), `#!/bin/sh\n[ "$(cat ${answer} 2>/dev/null)" = 200 ]\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "timeout"), `#!/bin/sh\nshift\nexec "$@"\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "nginx"), `#!/bin/sh\nexec sleep 30\n`, { mode: 0o755 });
    const flag = path.join(dir, "write-hold");
    const script = renderWriteHoldPoller({ ...INPUT, flagFile: flag, nginxCommand: ["nginx"] });
    const child = spawn("/bin/sh", ["-c", script], { env: { PATH: `${bin}:/usr/bin:/bin` }, detached: true, stdio: "ignore" });
    try {
      await waitFor("the flag exists at the start", () => fs.existsSync(flag));
      fs.writeFileSync(answer, "200");
      await waitFor("the flag is cleared on 200", () => !fs.existsSync(flag));
      fs.writeFileSync(answer, "503");
      await waitFor("the flag is set again on 503", () => fs.existsSync(flag));
    } finally {
      process.kill(-child.pid!, "SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
