// The wrong-password flood of bench/flood.ts, in a process of its own so that it does not share
// an event loop with the valid users it disturbs. Plain JavaScript: started with `node`, no
// compile step. Reads JSON {baseUrl, host, ca, user, addresses, perSecond, ms} from stdin. Sends
// GET /v2/ with a different wrong password each time from each address at `perSecond` in all, on keep-alive
// connections (up to 16 an address, so that the client itself does not hold the flood back), for
// `ms`; then prints {"statuses": {...}, "errors": n, "firstError": "..."} and
// exits, at the latest 5 s later (requests still unanswered then count as errors).
const https = require("https");

const o = JSON.parse(require("fs").readFileSync(0, "utf8"));
const statuses = {};
let errors = 0;
let firstError = "";
let sent = 0;
const agents = o.addresses.map((localAddress) => new https.Agent({ keepAlive: true, maxSockets: 16, ca: o.ca, localAddress }));
// A new guess every request, as password guessing sends: each one misses the login cache.
const guess = (i) => `Basic ${Buffer.from(`${o.user}:guess-${process.pid}-${i}`).toString("base64")}`;
const end = Date.now() + o.ms;
const gapMs = 1000 / o.perSecond;

function once(i) {
  return new Promise((resolve) => {
    const req = https.request(new URL("/v2/", o.baseUrl), {
      agent: agents[i % agents.length],
      servername: o.host.split(":")[0],
      timeout: 5000,
      headers: { Host: o.host, Authorization: guess(i) },
    }, (res) => {
      res.resume();
      res.on("end", () => {
        statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
        resolve();
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => {
      if (!errors) firstError = String(e);
      errors++;
      resolve();
    });
    req.end();
  });
}

function finish() {
  const answered = Object.values(statuses).reduce((a, b) => a + b, 0);
  process.stdout.write(JSON.stringify({ statuses, errors: sent - answered, firstError }));
  process.exit(0);
}

(async () => {
  const inFlight = [];
  for (let i = 0; Date.now() < end; i++, sent++) {
    inFlight.push(once(i));
    await new Promise((r) => setTimeout(r, gapMs));
  }
  setTimeout(finish, 5000).unref();
  await Promise.all(inFlight);
  finish();
})();
