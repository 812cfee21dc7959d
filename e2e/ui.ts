// Callbacks of page.evaluate/waitForFunction run in the browser and use its globals.
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Browser, chromium, Page } from "playwright-core";
import { curl, DockerClient, freePort } from "./clients";
import { Deployment, PROJECT_ROOT, synthAndDeploy, TestUser } from "./deployment";
import { assert, assertEqual, assertMatch, Check, say } from "./harness";
import { JsonObject } from "./terraform-plan";
import { OCI_INDEX, OCI_MANIFEST, RegistryApi } from "./registry-api";
import { baseConfig, buildUniqueImage, SuiteChecks, SuiteContext } from "./scenarios";

/**
 * The web UI (issue #13) in a real browser: Debian's Chromium, headless, driven by
 * playwright-core, against its own deployment (deleteEnabled, a low login limit so that the
 * 429 path is reachable). Checks 20 (headers, redirect, challenge), 21 (the browser flow) and
 * 22 (time to the first page with 1,000 repositories, printed, not asserted).
 */

const CHROMIUM = "/usr/bin/chromium";
// As FACTS.md: without the background-networking flags Chromium floods the closed network.
const CHROMIUM_FLAGS = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
export const SCREENSHOT_DIR = path.join(PROJECT_ROOT, ".e2e", "screenshots");
const BULK_REPOSITORIES = 1000;
const LOGINS_PER_MINUTE = 6;
const UI_HEADER = "X-Registry-UI: 1";

/** base64 sha256 of a certificate's SubjectPublicKeyInfo, for --ignore-certificate-errors-spki-list. */
function spkiHash(pem: string): string {
  const der = new crypto.X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
  return crypto.createHash("sha256").update(der).digest("base64");
}

interface UiTarget {
  port: number;
  origin: string;
  baseUrl: string;
  cacert: string;
  scratch: string;
  user: { name: string; password: string };
  /** A pull-only user limited to apps/* (roles, issue #11). */
  scopedUser: { name: string; password: string };
}

export async function uiScenario(ctx: SuiteContext, c: SuiteChecks): Promise<void> {
  const tag = "ui";
  const mine = [c.uiHeaders, c.uiBrowser, c.uiScale];
  const dir = ctx.ws.dir(tag);
  const scratch = ctx.ws.dir(`${tag}-scratch`);
  const port = await freePort();
  const users: TestUser[] = [
    { name: "alice", password: "alice-ui-password-1" },
    { name: "bob", password: "bob-ui-password-2" },
  ];
  const config = {
    ...baseConfig(dir, "e2e-ui", port, users),
    hostnames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    deleteEnabled: true,
    // Deleting tags needs the admin role (issue #11).
    // bob may only pull, and only apps/*: the page must show that and offer no delete.
    users: [{ name: "alice", role: "admin" }, { name: "bob", role: "pull", repositories: ["apps/*"] }] as JsonObject[],
    failedLoginsPerMinute: LOGINS_PER_MINUTE,
  };
  const endpoint = `localhost:${port}`;
  const t: UiTarget = {
    port,
    origin: `https://${endpoint}`,
    baseUrl: `https://127.0.0.1:${port}`,
    cacert: path.join(config.clientConfigDirectory, "certs.d", endpoint, "ca.crt"),
    scratch,
    user: { name: "alice", password: users[0].password as string },
    scopedUser: { name: "bob", password: users[1].password as string },
  };
  const dep = new Deployment(ctx, tag, dir);
  let browser: Browser | undefined;
  try {
    if (!fs.existsSync(CHROMIUM)) {
      for (const ch of mine) ch.abort(`${CHROMIUM} missing: run bash e2e/setup-host.sh (installs Debian's chromium)`);
      return;
    }
    const s1 = await synthAndDeploy(ctx.timings, dep, mine, () => dep.synth("out-1", config, users));
    if (s1 === undefined) return;

    await c.uiHeaders.phase("static files, security headers, redirect, no Basic challenge for the UI", () => headerChecks(c.uiHeaders, t));
    c.uiHeaders.finish();

    const api = new RegistryApi(t.baseUrl, fs.readFileSync(t.cacert, "utf8"), t.user);
    const docker = new DockerClient(ctx.engine, path.join(scratch, "docker-config"));
    const seeded = await ctx.timings.time(`${tag}: seed repositories`, () => seed(c.uiBrowser, api, docker, endpoint, t));

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_FLAGS, `--ignore-certificate-errors-spki-list=${spkiHash(fs.readFileSync(t.cacert, "utf8"))}`] });
    const b = browser;
    await c.uiScale.phase(`time to the first page of ${BULK_REPOSITORIES} + repositories`, () => scaleCheck(c.uiScale, b, t, seeded.repositories));
    c.uiScale.finish();
    await c.uiBrowser.phase("sign in, filter, tags, copy, delete, sign out, wrong password, login limit", () => browserFlow(c.uiBrowser, b, t, seeded, docker, api));
    c.uiBrowser.finish();
    api.close();
  } catch (err) {
    for (const ch of mine) ch.abort(`scenario ${tag} failed: ${(err as Error).message}`);
  } finally {
    await browser?.close().catch((err: Error) => say(tag, `browser close failed: ${err.message}`));
    await ctx.timings.time(`${tag}: destroy`, () => dep.destroy()).catch((err: Error) => say(tag, `destroy failed: ${err.message}`));
  }
}

// ---------------------------------------------------------------------------------------------
// 13: what the proxy serves

async function headerChecks(check: Check, t: UiTarget): Promise<void> {
  const get = (p: string, headers: string[] = [], credentials?: string) => curl({ url: `${t.baseUrl}${p}`, cacert: t.cacert, headers, credentials, scratchDir: t.scratch });
  const root = await get("/");
  assertEqual(root.status, 302, "GET /");
  assertEqual(root.headers["location"], "/ui/", "Location of GET / (relative: the published port is not nginx's)");
  const page = await get("/ui/");
  assertEqual(page.status, 200, "GET /ui/");
  assertMatch(page.headers["content-type"] ?? "", /^text\/html/, "Content-Type of /ui/");
  const csp = page.headers["content-security-policy"] ?? "";
  for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
    assert(csp.split(/;\s*/).includes(directive), `CSP ${JSON.stringify(csp)} lacks ${directive}`);
  }
  assert(!/unsafe-inline|unsafe-eval|https?:/.test(csp), `CSP allows inline code or other origins: ${csp}`);
  assertEqual(page.headers["x-frame-options"], "DENY", "X-Frame-Options");
  assertEqual(page.headers["referrer-policy"], "no-referrer", "Referrer-Policy");
  const scripts = [...page.body.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
  assert(scripts.length > 0 && scripts.every((m) => /\bsrc="[^"]+"/.test(m[1]) && m[2].trim() === ""), `index.html has inline script: ${JSON.stringify(scripts.map((m) => m[0]))}`);
  assert(!/\son[a-z]+=|\sstyle=|(src|href)="(https?:)?\/\//i.test(page.body), "index.html has inline handlers, inline styles or another origin's resources");
  const app = await get("/ui/app.js");
  assertEqual(app.status, 200, "GET /ui/app.js");
  assertMatch(app.headers["content-type"] ?? "", /^text\/javascript/, "Content-Type of app.js (module scripts need a JavaScript type)");
  check.note(`GET / → 302 Location /ui/; /ui/ → 200 text/html with CSP "${csp}", X-Frame-Options DENY, Referrer-Policy no-referrer; only <script src>; app.js → ${app.headers["content-type"]}`);

  const challenges: string[] = [];
  for (const [label, credentials] of [["no credentials", undefined], ["wrong password", `${t.user.name}:wrong`]] as const) {
    const docker = await get("/v2/", [], credentials);
    assertEqual(docker.status, 401, `GET /v2/ (${label}) as a docker client`);
    assertMatch(docker.headers["www-authenticate"] ?? "", /^Basic realm="Registry"/, `challenge for docker clients (${label})`);
    const ui = await get("/v2/", [UI_HEADER], credentials);
    assertEqual(ui.status, 401, `GET /v2/ (${label}) with ${UI_HEADER}`);
    assertEqual(ui.headers["www-authenticate"], undefined, `WWW-Authenticate for the UI (${label})`);
    assertEqual(ui.headers["docker-distribution-api-version"], "registry/2.0", `API version header for the UI (${label})`);
    challenges.push(`${label}: docker → 401 ${docker.headers["www-authenticate"]}; with ${UI_HEADER} → 401 without WWW-Authenticate`);
  }
  check.note(challenges.join("; "));
  const right = await get("/v2/", [UI_HEADER], `${t.user.name}:${t.user.password}`);
  assertEqual(right.status, 200, "GET /v2/ with the UI header and the right password");
}

// ---------------------------------------------------------------------------------------------
// Test data

interface Seeded {
  repositories: string[];
  web: { repository: string; digest: string };
  multi: { repository: string; tag: string; digest: string; bytes: number; platforms: { label: string; bytes: number }[]; created: string };
}

async function seed(check: Check, api: RegistryApi, docker: DockerClient, endpoint: string, t: UiTarget): Promise<Seeded> {
  // A real image (docker build + push) under two tags: the copied pull command must work with docker.
  await docker.login(endpoint, t.user.name, t.user.password);
  await buildUniqueImage(docker, fs.mkdtempSync(path.join(t.scratch, "web-")), "rse2e-local/ui-web:1");
  const web = "apps/web";
  await docker.tag("rse2e-local/ui-web:1", `${endpoint}/${web}:1.0`);
  const pushed = await docker.push(`${endpoint}/${web}:1.0`);
  await docker.tag("rse2e-local/ui-web:1", `${endpoint}/${web}:old`);
  await docker.push(`${endpoint}/${web}:old`);

  // A two-platform OCI index, built blob by blob.
  const multi = "apps/multi";
  const amd64 = await api.pushImage(multi, { os: "linux", architecture: "amd64", created: "2026-03-04T05:06:07Z", layerBytes: 300 * 1024 });
  const arm64 = await api.pushImage(multi, { os: "linux", architecture: "arm64", variant: "v8", created: "2026-03-04T05:16:07Z", layerBytes: 200 * 1024 });
  const indexDigest = await api.pushIndex(multi, "2.0", [
    { image: amd64, platform: { os: "linux", architecture: "amd64" } },
    { image: arm64, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
  ]);
  await api.tagManifest(multi, indexDigest, "latest", OCI_INDEX);
  await api.tagManifest(multi, amd64.digest, "1.9", OCI_MANIFEST);
  const imageBytes = (i: typeof amd64) => i.config.size + i.layers.reduce((s, l) => s + l.size, 0);
  check.note(`pushed ${web}:1.0 and :old (docker, ${pushed.digest}); ${multi}:2.0 and :latest = OCI index ${indexDigest} over linux/amd64 and linux/arm64/v8, ${multi}:1.9 = the amd64 image alone`);

  // Many repositories, cheaply: one tiny image whose blobs every repository mounts.
  const bulk = Array.from({ length: BULK_REPOSITORIES }, (_, i) => `load/r-${String(i + 1).padStart(4, "0")}`);
  const started = Date.now();
  const source = await api.pushImage(bulk[0], { os: "linux", architecture: "amd64", created: "2026-01-01T00:00:00Z", layerBytes: 64 });
  const manifest = await api.request("GET", `/v2/${bulk[0]}/manifests/${source.digest}`, undefined, { Accept: "application/vnd.oci.image.manifest.v1+json" });
  assertEqual(manifest.status, 200, "GET the bulk manifest");
  await api.putManifest(bulk[0], "1", "application/vnd.oci.image.manifest.v1+json", JSON.parse(manifest.body.toString("utf8")) as object);
  let next = 1;
  const deadline = Date.now() + 240_000;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < bulk.length) {
        if (Date.now() > deadline) throw new Error(`creating ${BULK_REPOSITORIES} repositories took over 240 s`);
        const repository = bulk[next++];
        await api.mountBlob(repository, source.config, bulk[0]);
        await api.mountBlob(repository, source.layers[0], bulk[0]);
        await api.putManifest(repository, "1", "application/vnd.oci.image.manifest.v1+json", JSON.parse(manifest.body.toString("utf8")) as object);
      }
    }),
  );
  check.note(`${BULK_REPOSITORIES} repositories load/r-0001…${bulk[bulk.length - 1]} created in ${((Date.now() - started) / 1000).toFixed(1)} s (blob mounts + one manifest each)`);
  const blobs = new Map<string, number>();
  for (const i of [amd64, arm64]) for (const b of [i.config, ...i.layers]) blobs.set(b.digest, b.size);
  return {
    repositories: [multi, web, ...bulk].sort(),
    web: { repository: web, digest: pushed.digest },
    multi: {
      repository: multi,
      tag: "2.0",
      digest: indexDigest,
      bytes: [...blobs.values()].reduce((a, b) => a + b, 0),
      platforms: [
        { label: "linux/amd64", bytes: imageBytes(amd64) },
        { label: "linux/arm64/v8", bytes: imageBytes(arm64) },
      ],
      created: "2026-03-04 05:16 UTC",
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Browser helpers

async function newPage(browser: Browser, t: UiTarget): Promise<{ page: Page; problems: string[]; close: () => Promise<void> }> {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: t.origin });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const problems: string[] = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    // Answers the page handles itself (401/429 at sign-in, 404 from /registry-stack/me without roles) are logged as failed loads.
    if (msg.type() === "error" && !/^Failed to load resource: the server responded with a status of (401|404|429)/.test(msg.text())) problems.push(`console error: ${msg.text()}`);
  });
  page.on("dialog", (dialog) => {
    problems.push(`unexpected browser dialog: ${dialog.type()} ${dialog.message()}`);
    void dialog.dismiss();
  });
  return { page, problems, close: () => context.close() };
}

/** The page down to the end of its content, for a screenshot without the empty rest of the viewport. */
async function contentBox(page: Page): Promise<{ x: number; y: number; width: number; height: number }> {
  const box = await page.locator("main").boundingBox();
  assert(box !== null, "no <main> to measure");
  return { x: 0, y: 0, width: page.viewportSize()?.width ?? 1360, height: Math.ceil(box.y + box.height + 16) };
}

/**
 * page.goto, again (at most 3 times) when Chromium aborts it with ERR_NETWORK_CHANGED: it sees
 * the address changes of the bridges and veths that the suite's other deployments create at the
 * same time on this host, which says nothing about the page.
 */
async function gotoPage(page: Page, url: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await page.goto(url);
      return;
    } catch (err) {
      if (attempt >= 3 || !/ERR_NETWORK_CHANGED/.test((err as Error).message)) throw err;
      say("ui", `page.goto ${url}: ERR_NETWORK_CHANGED (a docker network changed on the host), attempt ${attempt + 1}`);
    }
  }
}

async function signIn(page: Page, user: string, password: string): Promise<void> {
  await page.fill("#user", user);
  await page.fill("#password", password);
  await page.click("#sign-in");
}

// ---------------------------------------------------------------------------------------------
// 15: 1,000 repositories

async function scaleCheck(check: Check, browser: Browser, t: UiTarget, repositories: string[]): Promise<void> {
  const runs: string[] = [];
  for (let i = 1; i <= 3; i++) {
    const { page, problems, close } = await newPage(browser, t);
    try {
      await gotoPage(page, `${t.origin}/ui/`);
      await page.waitForSelector("#sign-in-form");
      const t0 = Date.now();
      await signIn(page, t.user.name, t.user.password);
      await page.waitForFunction(() => document.querySelectorAll("#repository-list li a").length === 100);
      const firstPageMs = Date.now() - t0;
      const measured = await page.evaluate(() => {
        const m = performance.measure("sign-in to first page", "registry-ui:sign-in", "registry-ui:first-page");
        return m.duration;
      });
      await page.waitForFunction((n) => document.getElementById("repository-count")?.textContent === `${n.toLocaleString("en")} repositories`, repositories.length, { timeout: 60_000 });
      const allMs = Date.now() - t0;
      const firstNames = await page.$$eval("#repository-list li a", (links) => links.map((a) => a.textContent));
      assertEqual(firstNames, repositories.slice(0, 100), "first page of the list");
      assert(problems.length === 0, problems.join("\n"));
      runs.push(`run ${i}: first 100 rows ${firstPageMs} ms after clicking Sign in (in-page measure ${measured.toFixed(0)} ms), all ${repositories.length} names loaded after ${allMs} ms`);
    } finally {
      await close();
    }
  }
  for (const r of runs) check.note(r);
  say("ui", `MEASUREMENT (not asserted): time to the first page rendered with ${repositories.length} repositories — ${runs.join("; ")}`);
}

// ---------------------------------------------------------------------------------------------
// 14: the flow a user goes through

async function browserFlow(check: Check, browser: Browser, t: UiTarget, seeded: Seeded, docker: DockerClient, api: RegistryApi): Promise<void> {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const { page, problems, close } = await newPage(browser, t);
  try {
    await gotoPage(page, `${t.origin}/`);
    assertEqual(new URL(page.url()).pathname, "/ui/", "/ redirects to /ui/");
    await page.waitForSelector("#sign-in-form");
    await signIn(page, t.user.name, t.user.password);
    await page.waitForFunction(() => document.querySelectorAll("#repository-list li a").length > 0);
    const sessionText = await page.textContent("#session");
    assertMatch(sessionText ?? "", /Signed in as alice/, "session line");
    assertMatch(sessionText ?? "", /role admin · all repositories · delete allowed · anonymous pull off/, "access line (from /registry-stack/me: admin, all repositories, delete enabled)");
    check.note(`signed in: "${(sessionText ?? "").replace(/\s+/g, " ").trim()}"`);
    await page.waitForFunction((n) => document.getElementById("repository-count")?.textContent === `${n.toLocaleString("en")} repositories`, seeded.repositories.length, { timeout: 60_000 });
    const listShot = path.join(SCREENSHOT_DIR, "ui-repositories.png");
    await page.screenshot({ path: listShot });

    await page.fill("#filter", "apps/");
    await page.waitForFunction(() => document.querySelectorAll("#repository-list li a").length === 2);
    const filtered = await page.$$eval("#repository-list li a", (links) => links.map((a) => a.textContent));
    assertEqual(filtered, [seeded.multi.repository, seeded.web.repository], "repositories matching 'apps/'");
    check.note(`filter "apps/" over ${seeded.repositories.length} repositories → ${filtered.join(", ")}`);

    // The index: size, created, platforms.
    await page.click(`#repository-list a:text-is("${seeded.multi.repository}")`);
    const multiRow = `#tag-rows tr[data-tag="${seeded.multi.tag}"]`;
    for (const tag of [seeded.multi.tag, "1.9", "latest"]) await page.waitForSelector(`#tag-rows tr[data-tag="${tag}"] ul.platforms li`);
    const cells = await page.$eval(multiRow, (row) => ({
      digest: row.querySelector(".digest code")?.textContent,
      digestTitle: row.querySelector(".digest code")?.getAttribute("title"),
      size: row.querySelector(".size")?.textContent,
      sizeTitle: row.querySelector(".size")?.getAttribute("title"),
      created: row.querySelector(".created")?.textContent,
      platforms: [...row.querySelectorAll("ul.platforms li")].map((li) => li.textContent),
    }));
    assertEqual(cells.digestTitle, seeded.multi.digest, "full digest of the index");
    assertEqual(cells.digest, seeded.multi.digest.slice(0, "sha256:".length + 12), "short digest");
    assertMatch(cells.sizeTitle ?? "", new RegExp(`^${seeded.multi.bytes.toLocaleString("en")} bytes`), "total compressed size (bytes)");
    assertEqual(cells.created, seeded.multi.created, "created (newest platform's config)");
    assertEqual(cells.platforms.map((p) => p?.replace(/ \(.*\)$/, "")), seeded.multi.platforms.map((p) => p.label), "platforms");
    check.note(`${seeded.multi.repository}:${seeded.multi.tag}: digest ${cells.digest}, size ${cells.size} (${cells.sizeTitle}), created ${cells.created}, platforms ${cells.platforms.join(", ")}`);
    const single = await page.$eval('#tag-rows tr[data-tag="1.9"]', (row) => ({
      size: row.querySelector(".size")?.getAttribute("title"),
      platforms: [...row.querySelectorAll("ul.platforms li")].map((li) => li.textContent),
    }));
    assertMatch(single.size ?? "", new RegExp(`^${seeded.multi.platforms[0].bytes.toLocaleString("en")} bytes`), "size of the single-platform tag 1.9");
    assertEqual(single.platforms, ["linux/amd64"], "platform of the single image (from its config)");
    check.note(`${seeded.multi.repository}:1.9 (one image): ${single.size}, platform ${single.platforms.join(", ")}`);
    const tagShot = path.join(SCREENSHOT_DIR, "ui-tags.png");
    await page.screenshot({ path: tagShot, clip: await contentBox(page) });

    // Copy the pull command and use it.
    await page.click("h2 a[href='#/']");
    await page.fill("#filter", "apps/web");
    await page.click(`#repository-list a:text-is("${seeded.web.repository}")`);
    const webRow = '#tag-rows tr[data-tag="1.0"]';
    await page.waitForSelector(`${webRow} .digest code`);
    await page.click(`${webRow} .pull button`);
    await page.waitForFunction((row) => document.querySelector(`${row} .pull button`)?.textContent === "Copied", webRow);
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assertEqual(copied, `docker pull localhost:${t.port}/${seeded.web.repository}:1.0`, "copied pull command");
    const words = copied.split(" ");
    await docker.rmi(words[2]).catch(() => undefined);
    const pulled = await docker.pull(words[2]);
    assertEqual(pulled.digest, seeded.web.digest, "digest pulled with the copied command");
    check.note(`copied "${copied}" from the clipboard; docker ran it → ${pulled.digest} (the pushed digest)`);

    // Delete one of two tags of the same manifest.
    const oldRow = '#tag-rows tr[data-tag="old"]';
    await page.waitForSelector(`${oldRow} .actions button`);
    await page.click(`${oldRow} .actions button`);
    await page.waitForSelector("#delete-dialog[open]");
    const question = (await page.textContent("#delete-dialog")) ?? "";
    assertMatch(question, new RegExp(`${seeded.web.repository}:old \\(manifest ${seeded.web.digest.slice(0, 19)}\\)`), "confirmation names the tag and its manifest");
    assertMatch(question, /Other tags stay, also 1\.0 on the same manifest\./, "confirmation names the other tag on the same manifest");
    await page.click("#delete-confirm");
    await page.waitForSelector(oldRow, { state: "detached" });
    assertEqual(await page.textContent("#tags-status"), `Deleted ${seeded.web.repository}:old.`, "status after delete");
    const tagsAfter = JSON.parse((await api.request("GET", `/v2/${seeded.web.repository}/tags/list`)).body.toString("utf8")) as { tags: string[] };
    assertEqual(tagsAfter.tags, ["1.0"], "tags left in the registry");
    check.note(`deleted ${seeded.web.repository}:old after a confirmation ("${question.replace(/\s+/g, " ").trim().slice(0, 160)}…"); registry tags now ${JSON.stringify(tagsAfter.tags)}: 1.0 (same manifest) kept`);

    // Sign out: nothing of the session is left in the page or in storage.
    await page.click("#sign-out");
    await page.waitForSelector("#sign-in-view:not([hidden])");
    const leftovers = await page.evaluate(() => ({
      storage: localStorage.length + sessionStorage.length,
      password: (document.getElementById("password") as HTMLInputElement).value,
      rows: document.querySelectorAll("#tag-rows tr, #repository-list li").length,
      url: location.href,
    }));
    assertEqual({ storage: leftovers.storage, password: leftovers.password, rows: leftovers.rows }, { storage: 0, password: "", rows: 0 }, "after sign-out");
    assert(!leftovers.url.includes(t.user.password), "password in the URL");
    check.note(`signed out: sign-in form shown, no rows left, localStorage+sessionStorage empty, URL ${leftovers.url.replace(t.origin, "")}`);

    await scopedUserFlow(check, page, t, seeded);

    // Wrong password: a clear message, no browser dialog (no Basic challenge on the UI's request).
    const wrongResponse = page.waitForResponse((r) => new URL(r.url()).pathname === "/v2/");
    await signIn(page, t.user.name, "not-the-password");
    const response = await wrongResponse;
    await page.waitForSelector("#sign-in-error:not([hidden])");
    assertEqual(await page.textContent("#sign-in-error"), "Wrong user name or password.", "message for a wrong password");
    assertEqual(response.status(), 401, "status of the wrong sign-in");
    assertEqual((await response.allHeaders())["www-authenticate"], undefined, "WWW-Authenticate on the UI's 401");
    check.note(`wrong password → "Wrong user name or password." (401 without WWW-Authenticate, so no browser login dialog)`);
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, "ui-wrong-password.png") });

    // The login limit: more wrong sign-ins than failedLoginsPerMinute → the 429 and its Retry-After.
    let limited = "";
    for (let i = 0; i < LOGINS_PER_MINUTE + 6 && limited === ""; i++) {
      await page.waitForSelector("#sign-in:not([disabled])");
      const answer = page.waitForResponse((r) => new URL(r.url()).pathname === "/v2/");
      await signIn(page, t.user.name, `wrong-${i}`);
      if ((await answer).status() === 429) {
        await page.waitForFunction(() => /Too many/.test(document.getElementById("sign-in-error")?.textContent ?? ""));
        limited = (await page.textContent("#sign-in-error")) ?? "";
      }
    }
    assertEqual(limited, "Too many sign-in attempts from your address. Try again in 60 seconds.", "message at the login limit");
    assert(await page.isDisabled("#sign-in"), "Sign in button disabled while limited");
    check.note(`after more than ${LOGINS_PER_MINUTE} wrong sign-ins/min: "${limited}" and the Sign in button is disabled`);
    assert(problems.length === 0, `browser problems:\n${problems.join("\n")}`);
    check.note(`no page errors, console errors, CSP violations or browser dialogs; screenshots: ${listShot}, ${tagShot}`);
  } finally {
    await close();
  }
}

/** A pull-only user limited to apps/*: the page shows the role and scope, lists only those repositories, offers no delete. */
async function scopedUserFlow(check: Check, page: Page, t: UiTarget, seeded: Seeded): Promise<void> {
  await signIn(page, t.scopedUser.name, t.scopedUser.password);
  await page.waitForSelector("#session:not([hidden])");
  const access = (await page.textContent("#session-access")) ?? "";
  assertEqual(access, "role pull · repositories apps/* · delete: admins only · anonymous pull off", "access line of the pull-only user");
  const apps = seeded.repositories.filter((r) => r.startsWith("apps/"));
  await page.waitForFunction((n) => document.getElementById("repository-count")?.textContent === `${n} repositories`, apps.length);
  const listed = await page.$$eval("#repository-list li a", (links) => links.map((a) => a.textContent));
  assertEqual(listed, apps, "repositories listed for the user limited to apps/* (the proxy filters the catalog)");
  await page.click(`#repository-list a:text-is("${seeded.multi.repository}")`);
  await page.waitForSelector(`#tag-rows tr[data-tag="${seeded.multi.tag}"] ul.platforms li`);
  assertEqual(await page.locator("#tag-rows .actions button").count(), 0, "delete buttons for a pull-only user");
  const note = (await page.textContent("#delete-note")) ?? "";
  assertEqual(note, "Deleting needs the admin role; you are signed in with the pull role.", "why there is no delete button");
  check.note(`${t.scopedUser.name} (role pull, apps/*): "${access}"; list = ${listed.join(", ")} of ${seeded.repositories.length}; no Delete button, the page says "${note}"`);
  await page.click("#sign-out");
  await page.waitForSelector("#sign-in-view:not([hidden])");
}
