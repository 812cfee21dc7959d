// The page: sign-in, repository list, tags of a repository. Plain DOM, no framework: three views
// and a table do not need one, and the page must work with no internet (nothing is fetched but
// this origin's files and the registry API).
import { Access, deletePermission, describeAccess } from "./access.js";
import { filterNames, formatBytes, formatCreated, pullCommand, shortDigest } from "./format.js";
import { RegistryClient, RegistryError, TagDetails } from "./registry-client.js";

const REPOSITORIES_PER_PAGE = 100;
const TAGS_PER_PAGE = 50;
/** Manifest/config requests in flight at once while filling a tag page. */
const DETAIL_CONCURRENCY = 4;

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} missing from index.html`);
  return element as T;
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, props: { className?: string; text?: string } = {}, children: Node[] = []): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (props.className) e.className = props.className;
  if (props.text !== undefined) e.textContent = props.text;
  for (const c of children) e.append(c);
  return e;
}

function showMessage(target: HTMLElement, text: string | undefined): void {
  target.textContent = text ?? "";
  target.hidden = text === undefined;
}

const views = { signIn: byId("sign-in-view"), repositories: byId("repositories-view"), tags: byId("tags-view") };
function showView(name: keyof typeof views): void {
  for (const [key, view] of Object.entries(views)) view.hidden = key !== name;
}

interface Session {
  readonly client: RegistryClient;
  readonly access: Access;
  repositories: string[];
  catalogComplete: boolean;
  catalogError?: string;
}

let session: Session | undefined;
/** Bumped on every navigation and sign-out: answers for an older view are dropped. */
let generation = 0;
let repositoryPage = 0;

// ---------------------------------------------------------------------------------------------
// Sign-in and sign-out

byId("registry-host").textContent = location.host;

byId<HTMLFormElement>("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void signIn();
});
byId("sign-out").addEventListener("click", () => {
  signOut();
  // The next user starts at the list, not in the repository the last one had open.
  if (location.hash !== "") location.hash = "#/";
});

async function signIn(): Promise<void> {
  const userInput = byId<HTMLInputElement>("user");
  const passwordInput = byId<HTMLInputElement>("password");
  const button = byId<HTMLButtonElement>("sign-in");
  const errorLine = byId("sign-in-error");
  showMessage(errorLine, undefined);
  button.disabled = true;
  let lockedForSeconds: number | undefined;
  performance.mark("registry-ui:sign-in");
  let client: RegistryClient | undefined;
  try {
    client = await RegistryClient.signIn(userInput.value, passwordInput.value);
    passwordInput.value = "";
    const access = await client.access();
    session = { client, access, repositories: [], catalogComplete: false };
    byId("session-user").textContent = `Signed in as ${access.user}`;
    byId("session-access").textContent = describeAccess(access);
    byId("session").hidden = false;
    void loadRepositories(session);
    route();
  } catch (err) {
    // Signed in but the rights could not be read: forget the credentials rather than half-sign-in.
    client?.signOut();
    passwordInput.value = "";
    lockedForSeconds = err instanceof RegistryError ? err.retryAfter : undefined;
    showMessage(errorLine, messageOf(err));
  } finally {
    // After a 429 the proxy refuses sign-ins from this address for Retry-After seconds: so does the button.
    if (lockedForSeconds === undefined) button.disabled = false;
    else setTimeout(() => (button.disabled = false), lockedForSeconds * 1000);
  }
}

function signOut(message?: string): void {
  session?.client.signOut();
  session = undefined;
  generation += 1;
  repositoryPage = 0;
  byId("session").hidden = true;
  byId("session-user").textContent = "";
  byId("session-access").textContent = "";
  byId("repository-list").replaceChildren();
  byId("tag-rows").replaceChildren();
  byId<HTMLInputElement>("filter").value = "";
  byId<HTMLInputElement>("password").value = "";
  showMessage(byId("sign-in-error"), message);
  showView("signIn");
  byId<HTMLInputElement>("user").focus();
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A 401 after sign-in means the account changed (password, removal): start over. */
function handleFailure(err: unknown, target: HTMLElement): void {
  if (err instanceof RegistryError && err.status === 401) {
    signOut("The registry no longer accepts your sign-in (password changed or account removed). Sign in again.");
    return;
  }
  if (err instanceof RegistryError && err.status === 0 && session === undefined) return;
  showMessage(target, messageOf(err));
}

// ---------------------------------------------------------------------------------------------
// Routing: #/ lists repositories, #/r/<name> shows a repository's tags

window.addEventListener("hashchange", () => route());

function route(): void {
  generation += 1;
  if (!session) {
    showView("signIn");
    return;
  }
  const match = /^#\/r\/(.+)$/.exec(location.hash);
  if (match) void openRepository(session, decodeURIComponent(match[1]));
  else {
    showView("repositories");
    renderRepositories();
    byId<HTMLInputElement>("filter").focus();
  }
}

// ---------------------------------------------------------------------------------------------
// Repositories

byId<HTMLInputElement>("filter").addEventListener("input", () => {
  repositoryPage = 0;
  renderRepositories();
});
byId("previous-page").addEventListener("click", () => {
  repositoryPage = Math.max(0, repositoryPage - 1);
  renderRepositories();
});
byId("next-page").addEventListener("click", () => {
  repositoryPage += 1;
  renderRepositories();
});

async function loadRepositories(s: Session): Promise<void> {
  let first = true;
  try {
    for await (const page of s.client.repositories(REPOSITORIES_PER_PAGE)) {
      if (session !== s) return;
      s.repositories.push(...page);
      if (first) {
        first = false;
        renderRepositories();
        performance.mark("registry-ui:first-page");
      } else {
        renderRepositoryCount();
      }
    }
    s.catalogComplete = true;
  } catch (err) {
    if (session !== s) return;
    s.catalogError = messageOf(err);
    handleFailure(err, byId("repositories-error"));
  }
  if (session === s) renderRepositories();
}

function renderRepositoryCount(): void {
  const s = session;
  if (!s) return;
  const filter = byId<HTMLInputElement>("filter").value;
  const shown = filterNames(s.repositories, filter).length;
  const loaded = s.catalogComplete ? `${s.repositories.length.toLocaleString("en")} repositories` : `${s.repositories.length.toLocaleString("en")} repositories loaded so far…`;
  byId("repository-count").textContent = filter.trim() === "" ? loaded : `${shown.toLocaleString("en")} match · ${loaded}`;
}

function renderRepositories(): void {
  const s = session;
  if (!s || views.repositories.hidden) return;
  const names = filterNames(s.repositories, byId<HTMLInputElement>("filter").value);
  const pages = Math.max(1, Math.ceil(names.length / REPOSITORIES_PER_PAGE));
  repositoryPage = Math.min(repositoryPage, pages - 1);
  const start = repositoryPage * REPOSITORIES_PER_PAGE;
  const items = names.slice(start, start + REPOSITORIES_PER_PAGE).map((name) => {
    const link = element("a", { text: name });
    link.href = `#/r/${encodeURIComponent(name)}`;
    return element("li", {}, [link]);
  });
  if (items.length === 0) items.push(element("li", { className: "muted", text: s.repositories.length === 0 && s.catalogComplete ? "No repositories yet." : "No repository matches." }));
  byId("repository-list").replaceChildren(...items);
  byId("page-info").textContent = names.length === 0 ? "" : `${start + 1}–${Math.min(start + REPOSITORIES_PER_PAGE, names.length)} of ${names.length.toLocaleString("en")}`;
  byId<HTMLButtonElement>("previous-page").disabled = repositoryPage === 0;
  byId<HTMLButtonElement>("next-page").disabled = repositoryPage >= pages - 1;
  showMessage(byId("repositories-error"), s.catalogError);
  renderRepositoryCount();
}

// ---------------------------------------------------------------------------------------------
// Tags of one repository

let tagPage = 0;
let currentTags: { repository: string; tags: string[] } | undefined;
/** Manifest digest of each tag whose row has been filled, to name the tags a delete leaves on a manifest. */
const digestOfTag = new Map<string, string>();

byId("previous-tags").addEventListener("click", () => {
  tagPage = Math.max(0, tagPage - 1);
  renderTagPage();
});
byId("next-tags").addEventListener("click", () => {
  tagPage += 1;
  renderTagPage();
});

async function openRepository(s: Session, repository: string): Promise<void> {
  const mine = generation;
  showView("tags");
  byId("repository-name").textContent = repository;
  byId("tag-count").textContent = "loading tags…";
  byId("tag-rows").replaceChildren();
  showMessage(byId("tags-error"), undefined);
  showMessage(byId("tags-status"), undefined);
  const permission = deletePermission(s.access, repository);
  showMessage(byId("delete-note"), permission.allowed ? undefined : permission.reason);
  try {
    const tags = await s.client.tags(repository);
    if (mine !== generation) return;
    currentTags = { repository, tags: tags.sort() };
    digestOfTag.clear();
    tagPage = 0;
    renderTagPage();
  } catch (err) {
    if (mine === generation) {
      byId("tag-count").textContent = "";
      handleFailure(err, byId("tags-error"));
    }
  }
}

function renderTagPage(): void {
  const s = session;
  const current = currentTags;
  if (!s || !current) return;
  const mine = generation;
  const { repository, tags } = current;
  const pages = Math.max(1, Math.ceil(tags.length / TAGS_PER_PAGE));
  tagPage = Math.min(tagPage, pages - 1);
  const start = tagPage * TAGS_PER_PAGE;
  const pageTags = tags.slice(start, start + TAGS_PER_PAGE);
  byId("tag-count").textContent = tags.length === 1 ? "1 tag" : `${tags.length.toLocaleString("en")} tags`;
  byId("tag-page-info").textContent = tags.length === 0 ? "" : `${start + 1}–${start + pageTags.length} of ${tags.length}`;
  byId<HTMLButtonElement>("previous-tags").disabled = tagPage === 0;
  byId<HTMLButtonElement>("next-tags").disabled = tagPage >= pages - 1;
  const permission = deletePermission(s.access, repository);
  const rows = pageTags.map((tag) => tagRow(s, repository, tag, permission.allowed));
  if (rows.length === 0) {
    const cell = element("td", { className: "muted", text: "This repository has no tags (its manifests may still be reachable by digest)." });
    cell.colSpan = 7;
    rows.push({ row: element("tr", {}, [cell]), fill: async () => undefined });
  }
  byId("tag-rows").replaceChildren(...rows.map((r) => r.row));
  void runLimited(rows.map((r) => r.fill), DETAIL_CONCURRENCY, () => mine === generation);
}

/** Runs tasks with at most `limit` at once; stops starting new ones when `stillWanted` turns false. */
async function runLimited(tasks: (() => Promise<void>)[], limit: number, stillWanted: () => boolean): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length && stillWanted()) await tasks[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}

function copyField(value: string, label: string): HTMLElement {
  const input = element("input");
  input.readOnly = true;
  input.value = value;
  // As wide as the command, so the tag at its end is visible without scrolling the field.
  input.size = Math.max(20, value.length);
  input.setAttribute("aria-label", label);
  const button = element("button", { text: "Copy" });
  button.type = "button";
  button.title = `Copy ${label}`;
  button.addEventListener("click", () => void copy(input, button));
  return element("div", { className: "copy" }, [input, button]);
}

async function copy(input: HTMLInputElement, button: HTMLButtonElement): Promise<void> {
  try {
    await navigator.clipboard.writeText(input.value);
    button.textContent = "Copied";
  } catch {
    // No clipboard access (e.g. a plain-HTTP origin): leave the text selected for Ctrl+C.
    input.focus();
    input.select();
    button.textContent = "Press Ctrl+C";
  }
  setTimeout(() => (button.textContent = "Copy"), 2000);
}

function tagRow(s: Session, repository: string, tag: string, deleteAllowed: boolean): { row: HTMLTableRowElement; fill: () => Promise<void> } {
  const cells = {
    tag: element("td", { className: "tag", text: tag }),
    digest: element("td", { className: "digest muted", text: "…" }),
    size: element("td", { className: "size", text: "…" }),
    created: element("td", { className: "created", text: "…" }),
    platforms: element("td", { className: "platforms-cell", text: "…" }),
    pull: element("td", { className: "pull" }, [copyField(pullCommand(location.host, repository, tag), `pull command for ${tag}`)]),
    actions: element("td", { className: "actions" }),
  };
  const row = element("tr", {}, Object.values(cells));
  row.dataset.tag = tag;
  const fill = async (): Promise<void> => {
    let details: TagDetails;
    try {
      details = await s.client.tagDetails(repository, tag);
    } catch (err) {
      if (err instanceof RegistryError && err.status === 401) return handleFailure(err, byId("tags-error"));
      cells.digest.textContent = "–";
      cells.size.textContent = "–";
      cells.created.textContent = "–";
      cells.platforms.textContent = messageOf(err);
      return;
    }
    if (currentTags?.repository === repository) digestOfTag.set(tag, details.digest);
    cells.digest.replaceChildren(copyDigest(details.digest));
    cells.size.textContent = formatBytes(details.size);
    cells.size.title = `${details.size.toLocaleString("en")} bytes (compressed layers and config${details.isIndex ? ", each blob once across platforms" : ""})`;
    cells.created.textContent = formatCreated(details.created);
    cells.platforms.replaceChildren(
      element(
        "ul",
        { className: "platforms" },
        details.platforms.map((p) => element("li", { text: details.isIndex ? `${p.platform} (${formatBytes(p.size)})` : p.platform })),
      ),
    );
    if (details.platforms.length === 0) cells.platforms.textContent = details.isIndex ? "index without platforms" : "not an image";
    if (deleteAllowed) {
      const button = element("button", { className: "danger", text: "Delete" });
      button.type = "button";
      button.addEventListener("click", () => void confirmDelete(s, repository, tag, details.digest));
      cells.actions.replaceChildren(button);
    }
  };
  return { row, fill };
}

function copyDigest(digest: string): HTMLElement {
  const code = element("code", { text: shortDigest(digest) });
  code.title = digest;
  const button = element("button", { text: "Copy" });
  button.type = "button";
  button.title = "Copy the full digest";
  const hidden = element("input");
  hidden.value = digest;
  hidden.hidden = true;
  button.addEventListener("click", () => void copy(hidden, button));
  return element("div", { className: "copy" }, [code, button, hidden]);
}

// ---------------------------------------------------------------------------------------------
// Delete

async function confirmDelete(s: Session, repository: string, tag: string, digest: string): Promise<void> {
  const dialog = byId<HTMLDialogElement>("delete-dialog");
  const sameManifest = [...digestOfTag].filter(([t, d]) => t !== tag && d === digest).map(([t]) => t);
  byId("delete-what").textContent = `The tag ${repository}:${tag} (manifest ${shortDigest(digest)}) will be removed.`;
  byId("delete-consequence").textContent =
    (sameManifest.length > 0 ? `Other tags stay, also ${sameManifest.join(", ")} on the same manifest. ` : "Other tags stay; no other tag on this page points to this manifest. ") +
    "The manifest and its layers stay reachable by digest until the registry's garbage collection removes untagged content.";
  byId("delete-confirm").textContent = `Delete ${tag}`;
  dialog.returnValue = "";
  dialog.showModal();
  const answer = await new Promise<string>((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }));
  if (answer !== "confirm") return;
  const status = byId("tags-status");
  try {
    await s.client.deleteTag(repository, tag);
    if (currentTags?.repository === repository) currentTags.tags = currentTags.tags.filter((t) => t !== tag);
    renderTagPage();
    showMessage(status, `Deleted ${repository}:${tag}.`);
  } catch (err) {
    handleFailure(err, byId("tags-error"));
  }
}

signOut();
