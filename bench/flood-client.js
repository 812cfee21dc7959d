// The wrong-password flood of bench/flood.ts, in a process of its own so that it does not share
// an event loop with the valid users it disturbs. Plain JavaScript: started with `node`, no
// compile step. Argument: JSON {baseUrl, host, ca, user, addresses, perSecond, ms}. Sends GET /v2/
// with a wrong password from each address at `perSecond` in all, on keep-alive connections, for
// `ms`, then prints {"statuses": {...}, "errors": n} and exits.
const https = require("https");

const o = JSON.parse(process.argv[2]);
const statuses = {};
let errors = 0;
const agents = o.addresses.map((localAddress) => new https.Agent({ keepAlive: true, maxSockets: 4, ca: o.ca, localAddress }));
const authorization = `Basic ${Buffer.from(`${o.user}:not-the-password-${process.pid}`).toString("base64")}`;
const end = Date.now() + o.ms;
const gapMs = 1000 / o.perSecond;

function once(i) {
  return new Promise((resolve) => {
    const req = https.request(new URL("/v2/", o.baseUrl), {
      agent: agents[i % agents.length],
      servername: o.host.split(":")[0],
      timeout: 10000,
      headers: { Host: o.host, Authorization: authorization },
    }, (res) => {
      res.resume();
      res.on("end", () => {
        statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
        resolve();
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => {
      errors++;
      resolve();
    });
    req.end();
  });
}

(async () => {
  const inFlight = [];
  for (let i = 0; Date.now() < end; i++) {
    inFlight.push(once(i));
    await new Promise((r) => setTimeout(r, gapMs));
  }
  await Promise.all(inFlight);
  for (const a of agents) a.destroy();
  process.stdout.write(JSON.stringify({ statuses, errors }));
})();
