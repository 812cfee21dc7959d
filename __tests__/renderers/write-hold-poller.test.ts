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
