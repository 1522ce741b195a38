/**
 * Browser smoke check of the registration script against a stock Label Studio.
 *
 *   node e2e/register.spec.mjs            starts Label Studio from ../.venv on port 8099
 *   LS_URL=http://host:port node e2e/...  uses a running one (LS_EMAIL / LS_PASSWORD)
 *
 * Label Studio runs unmodified (no plugin), so the built script is injected
 * into the page, and the Pachyderm storage API is answered by request mocks
 * that record what the wizard sends. What it proves, in headless Chromium:
 * - the Pachyderm tile appears in the first wizard opened on a page;
 * - its form validates before any request, with the provider's messages;
 * - the requests carry the API field names, Pachyderm's defaults and presign=false;
 * - editing a Pachyderm storage in the first wizard of a page loads it, keeps the
 *   stored token unless retyped, and never shows "Unknown provider";
 * - later wizards (target storage) list it natively;
 * - with Label Studio's legacy storage form, the script changes nothing and warns
 *   once, and that form renders form_layout.yml and posts what it should.
 * Screenshots go to e2e/screenshots/. Exits non-zero when a check fails.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { clickAddStorage, launchChromium, login as loginAs, settle } from "./lib/browser.mjs";
import { waitForAbsence, waitForCount, waitForNone, waitUntil } from "./lib/wait.mjs";
import { parse } from "yaml";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const BUNDLE = here("../../label_studio_pachyderm/static/label_studio_pachyderm/pachyderm-provider.js");
const FORM_LAYOUT = here("../../label_studio_pachyderm/form_layout.yml");
// SCREENSHOT_DIR lets test runs keep the committed screenshots untouched.
const SCREENSHOTS = process.env.SCREENSHOT_DIR ? `${process.env.SCREENSHOT_DIR.replace(/\/$/, "")}/` : here("./screenshots/");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const EMAIL = process.env.LS_EMAIL ?? "e2e@example.com";
const PASSWORD = process.env.LS_PASSWORD ?? "pass123456";
const PORT = process.env.LS_PORT ?? "8099";
const MASK = "••••••••••••••••";
const WARN_PREFIX = "[label-studio-pachyderm]";

const results = [];
function check(name, ok, detail = "") {
  results.push({ name, ok });
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${!ok && detail ? `\n     ${detail}` : ""}`);
}

// ------------------------------------------------------------------ Label Studio
async function waitForHealth(base, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${base}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  throw new Error(`Label Studio did not answer on ${base}/health within ${seconds}s`);
}

/** Starts a throwaway stock Label Studio; returns its URL and a stop function. */
async function startLabelStudio() {
  const dataDir = mkdtempSync(join(tmpdir(), "ls-e2e-"));
  const bin = process.env.LABEL_STUDIO_BIN ?? here("../../.venv/bin/label-studio");
  const child = spawn(
    bin,
    ["start", "--no-browser", "--port", PORT, "--username", EMAIL, "--password", PASSWORD],
    {
      cwd: dataDir,
      detached: true, // own process group, so stopping it stops its workers too
      stdio: "ignore",
      env: {
        ...process.env,
        DJANGO_SETTINGS_MODULE: "label_studio.core.settings.label_studio",
        LABEL_STUDIO_BASE_DATA_DIR: join(dataDir, "data"),
        // No calls to error reporting, the version check or analytics.
        SENTRY_DSN: "",
        FRONTEND_SENTRY_DSN: "",
        LATEST_VERSION_CHECK: "false",
        COLLECT_ANALYTICS: "false",
      },
    },
  );
  const stop = async () => {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      // already gone
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
    rmSync(dataDir, { recursive: true, force: true });
  };
  const base = `http://localhost:${PORT}`;
  try {
    await waitForHealth(base, 300);
  } catch (error) {
    await stop();
    throw error;
  }
  return { base, stop };
}

// ------------------------------------------------------------------ browser helpers
/** True once some element shows `text` (a substring), within the deadline. */
const shown = (page, text) => waitUntil(async () => (await page.getByText(text, { exact: false }).count()) > 0);

/** True once every input named in `values` holds its value, within the deadline. */
const hasValues = (page, values) =>
  waitUntil(async () => {
    for (const [name, want] of Object.entries(values)) {
      if ((await page.inputValue(`input[name="${name}"]`, { timeout: 1000 })) !== want) return false;
    }
    return true;
  });
const hasValue = (page, name, want) => hasValues(page, { [name]: want });

async function createProject(page, title) {
  const csrf = (await page.context().cookies()).find((cookie) => cookie.name === "csrftoken")?.value;
  return page.evaluate(
    async ({ csrf, title }) => {
      const response = await fetch("/api/projects", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ title }),
      });
      return response.json();
    },
    { csrf, title },
  );
}

/** Opens the project's Cloud Storage settings and injects the built script. */
async function openStorageSettings(page, base, projectId) {
  await page.goto(`${base}/projects/${projectId}/settings/storage`);
  await page.waitForSelector('[data-testid^="add-source-storage-button"]', { state: "attached", timeout: 60_000 });
  await page.addScriptTag({ path: BUNDLE });
}

/** Records Pachyderm storage API calls and answers them like the plugin would. */
async function mockPachydermApi(page) {
  const calls = [];
  await page.route(/\/api\/storages\/(export\/)?pachyderm(\/|\?|$)/, async (route) => {
    const request = route.request();
    const url = new URL(request.url());
    const body = request.postData() ? JSON.parse(request.postData()) : null;
    calls.push({ method: request.method(), path: url.pathname, body });
    const json = (data, status = 200) => route.fulfill({ status, contentType: "application/json", body: JSON.stringify(data) });
    if (url.pathname.endsWith("/validate")) return json({});
    if (url.pathname.endsWith("/files")) {
      return json({ files: [{ key: "cats/001.jpg", last_modified: new Date().toISOString(), size: 48213 }] });
    }
    if (url.pathname.endsWith("/sync")) return json({ id: 41, type: "pachyderm", status: "completed" });
    if (request.method() === "POST") return json({ id: 41, type: "pachyderm", ...body }, 201);
    if (request.method() === "PATCH") return json({ id: 41, type: "pachyderm", ...body });
    return route.continue();
  });
  return calls;
}

const STORED = {
  id: 7,
  type: "pachyderm",
  title: "Raw images",
  pachd_address: "grpc://pachd.example.com:30650",
  pach_project: "vision",
  repo: "images",
  branch: "master",
  commit: "",
  prefix: "cats",
  regex_filter: ".*\\.jpg$",
  use_blob_urls: true,
  recursive_scan: true,
  presign: false,
  presign_ttl: 1,
  // Every field the API returns for a source storage: the wizard validates the stored values.
  watch_commits: false,
  changed_files: "keep",
  status: "completed",
  last_sync_count: 3,
};

/** Makes the storage list (and types) include one stored Pachyderm source storage. */
async function mockStoredPachydermStorage(page, projectId) {
  await page.route(/\/api\/storages\/?(\?.*)?$/, async (route) => {
    if (route.request().method() !== "GET") return route.continue();
    return route.fulfill({ contentType: "application/json", body: JSON.stringify([{ ...STORED, project: projectId }]) });
  });
  await page.route(/\/api\/storages\/types/, async (route) => {
    const response = await route.fetch();
    const types = await response.json();
    return route.fulfill({ response, body: JSON.stringify([...types, { name: "pachyderm", title: "Pachyderm" }]) });
  });
}

function watchConsole(page) {
  const warnings = [];
  page.on("console", (message) => {
    if (message.text().startsWith(WARN_PREFIX)) warnings.push(message.text());
  });
  page.on("pageerror", (error) => warnings.push(`page error: ${error.message}`));
  return warnings;
}

// ------------------------------------------------------------------ scenarios
async function sourceStorageWizard(page, base, projectId) {
  const calls = await mockPachydermApi(page);
  const warnings = watchConsole(page);
  await openStorageSettings(page, base, projectId);

  await clickAddStorage(page, "source");
  const tile = page.locator('[data-testid="storage-provider-pachyderm"]');
  check("first wizard of the page lists the Pachyderm tile", await waitForCount(page, tile, 1));
  check("the tile shows the Pachyderm icon", await waitForCount(page, tile.locator('svg[aria-label="Pachyderm"]'), 1));
  await page.screenshot({ path: `${SCREENSHOTS}wizard-provider-grid.png` });

  await tile.click();
  await page.getByRole("button", { name: "Next", exact: true }).click();
  await page.waitForSelector('input[name="pachd_address"]', { timeout: 10_000 });
  check("details step renders the provider, not 'Unknown provider'", await waitForNone(page, page.getByText("Unknown provider")));
  for (const name of ["pachd_address", "auth_token", "pach_project", "repo", "branch", "commit"]) {
    check(`source form has ${name}`, await waitForCount(page, page.locator(`input[name="${name}"]`), 1));
  }
  check("no presign toggle", await waitForNone(page, page.getByText("pre-signed", { exact: false })));
  check("project defaults to 'default'", await hasValue(page, "pach_project", "default"));
  check("branch defaults to 'master'", await hasValue(page, "branch", "master"));

  await page.fill('input[name="title"]', "Raw images");
  await page.fill('input[name="pachd_address"]', "http://pachd:30650");
  await page.fill('input[name="repo"]', "default/images");
  await page.fill('input[name="commit"]', "master^1");
  await page.getByRole("button", { name: "Test Connection" }).click();
  check("address error shown before any request", await shown(page, "pachd speaks gRPC: write grpc://host:port"));
  check("repo error shown", await shown(page, 'the part before "/" goes in the Project field'));
  check("commit error shown", await shown(page, "Enter a commit id (32 hex characters"));
  // The errors are up: the click has done all it will; settled, no request may have gone out.
  check("no request sent for an invalid form", await waitForAbsence(page, () => calls.length === 0), JSON.stringify(calls));
  await page.screenshot({ path: `${SCREENSHOTS}wizard-validation.png` });

  await page.fill('input[name="pachd_address"]', "grpc://localhost:30650");
  await page.fill('input[name="repo"]', "images");
  await page.fill('input[name="commit"]', "");
  await page.getByRole("button", { name: "Test Connection" }).click();
  await page.getByText("Connection Verified").waitFor({ timeout: 10_000 });
  const validate = await waitUntil(() => calls.find((call) => call.path === "/api/storages/pachyderm/validate"));
  check("validate goes to /api/storages/pachyderm/validate", Boolean(validate), JSON.stringify(calls));
  const sent = validate?.body ?? {};
  check(
    "validate body: API names, defaults, presign=false",
    sent.pachd_address === "grpc://localhost:30650" &&
      sent.repo === "images" &&
      sent.pach_project === "default" &&
      sent.branch === "master" &&
      sent.presign === false &&
      sent.recursive_scan === true &&
      sent.use_blob_urls === false &&
      !("presign_ttl" in sent) &&
      !("bucket" in sent),
    JSON.stringify(sent),
  );

  await page.getByRole("button", { name: "Next", exact: true }).click();
  await page.getByRole("button", { name: "Load Preview" }).click();
  await page.getByText("cats/001.jpg").waitFor({ timeout: 10_000 });
  check("preview lists the files the API returned", true);
  await page.getByRole("button", { name: "Next", exact: true }).click();
  await page.getByRole("button", { name: "Save", exact: true }).click();
  const create = await waitUntil(() => calls.find((call) => call.method === "POST" && call.path === "/api/storages/pachyderm"));
  check(
    "create posts the storage with presign=false",
    create?.body?.repo === "images" && create?.body?.presign === false && create?.body?.title === "Raw images",
    JSON.stringify(create),
  );
  check("no registration warnings", await waitForAbsence(page, () => warnings.length === 0), warnings.join("\n"));

  // Same page: this wizard mounts with the provider already in Label Studio's map.
  await clickAddStorage(page, "target");
  const targetTile = page.locator('[data-testid="storage-provider-pachyderm"]');
  check("a later wizard (target storage) lists the tile natively", await waitForCount(page, targetTile, 1));
  await targetTile.click();
  await page.getByRole("button", { name: "Next", exact: true }).click();
  await page.waitForSelector('input[name="pachd_address"]', { timeout: 10_000 });
  check("target form has the folder field", await waitForCount(page, page.locator('input[name="prefix"]'), 1));
  check("target form has no commit field", await waitForNone(page, page.locator('input[name="commit"]')));
  check(
    "target form has Label Studio's 'Can delete objects' toggle, once",
    await waitForCount(page, page.locator('input[aria-label="Can delete objects from storage"]'), 1),
  );
  check("target branch help says it is created on first write", await shown(page, "created on the first write"));
  await page.screenshot({ path: `${SCREENSHOTS}wizard-target.png` });
}

async function editStoredStorage(page, base, projectId) {
  const calls = await mockPachydermApi(page);
  const warnings = watchConsole(page);
  await mockStoredPachydermStorage(page, projectId);
  await openStorageSettings(page, base, projectId);

  await page.getByRole("button", { name: "Storage options" }).first().click();
  await page.getByText("Edit", { exact: true }).click();
  await page.waitForSelector('input[name="pachd_address"]', { timeout: 10_000 }).catch(() => {});
  check("editing in the first wizard of a page: no 'Unknown provider'", await waitForNone(page, page.getByText("Unknown provider")));
  check("stored address loaded", await hasValue(page, "pachd_address", STORED.pachd_address));
  check("stored project and repo loaded", await hasValues(page, { pach_project: "vision", repo: "images" }));
  check("stored token masked, never echoed", await hasValue(page, "auth_token", MASK));
  await page.screenshot({ path: `${SCREENSHOTS}wizard-edit.png` });

  await page.getByRole("button", { name: "Test Connection" }).click();
  await page.getByText("Connection Verified").waitFor({ timeout: 10_000 }).catch(() => {});
  await page.getByRole("button", { name: "Next", exact: true }).click();
  await page.getByRole("button", { name: "Next", exact: true }).click();
  await page.getByRole("button", { name: "Save", exact: true }).click();
  const patch = await waitUntil(() => calls.find((call) => call.method === "PATCH"));
  check("save PATCHes /api/storages/pachyderm/7", patch?.path === "/api/storages/pachyderm/7", JSON.stringify(calls));
  check(
    "unchanged token is left out of the update; other values are kept",
    patch && !("auth_token" in patch.body) && patch.body.prefix === "cats" && patch.body.regex_filter === ".*\\.jpg$",
    JSON.stringify(patch?.body),
  );
  check("no registration warnings while editing", await waitForAbsence(page, () => warnings.length === 0), warnings.join("\n"));
}

/** Serves the plugin's form_layout.yml the way the storage form endpoint returns it. */
async function mockLegacyFormEndpoints(page) {
  const layout = parse(readFileSync(FORM_LAYOUT, "utf8"));
  await page.route(/\/api\/storages\/types/, async (route) => {
    const response = await route.fetch();
    const types = await response.json();
    return route.fulfill({ response, body: JSON.stringify([...types, { name: "pachyderm", title: "Pachyderm" }]) });
  });
  await page.route(/\/api\/storages\/(export\/)?pachyderm\/form/, (route) =>
    route.fulfill({
      contentType: "application/json",
      body: JSON.stringify(layout[route.request().url().includes("/export/") ? "ExportStorage" : "ImportStorage"]),
    }),
  );
}

async function legacyForm(page, base, projectId) {
  const warnings = watchConsole(page);
  const calls = await mockPachydermApi(page);
  await mockLegacyFormEndpoints(page);
  // Label Studio shows its legacy, server-driven form outside the "opensource" environment.
  await page.route(`${base}/projects/${projectId}/settings/storage`, async (route) => {
    const response = await route.fetch();
    const html = (await response.text()).replace('sentry_environment: "opensource"', 'sentry_environment: "e2e"');
    return route.fulfill({ response, body: html });
  });
  await openStorageSettings(page, base, projectId);
  await clickAddStorage(page, "source");
  await page.getByText("Storage Type").waitFor({ timeout: 10_000 });
  // The script warns once it has seen the legacy form: after that, the page settled, it has
  // added nothing and warned no more.
  await waitUntil(() => warnings.length > 0);
  await settle(page).catch(() => {});
  check("legacy form: no tiles, nothing added", await waitForNone(page, page.locator('[data-testid^="storage-provider-"]')));
  check(
    "legacy form: exactly one console warning saying why",
    warnings.length === 1 && warnings[0].includes("legacy storage form"),
    warnings.join("\n"),
  );

  // The same modal renders the plugin's form_layout.yml once "Pachyderm" is chosen.
  await page.getByText("AWS S3", { exact: true }).click();
  await page.getByText("Pachyderm", { exact: true }).last().click();
  await page.waitForSelector('input[name="pachd_address"]', { timeout: 10_000 });
  for (const name of ["title", "pachd_address", "auth_token", "pach_project", "repo", "branch", "commit", "prefix", "regex_filter"]) {
    check(`legacy form renders ${name}`, await waitForCount(page, page.locator(`input[name="${name}"]`), 1));
  }
  check("legacy form: no pre-signed URL option", await waitForNone(page, page.getByText("pre-signed", { exact: false })));
  check("legacy form: branch defaults to master", await hasValue(page, "branch", "master"));
  await page.screenshot({ path: `${SCREENSHOTS}legacy-form-pachyderm.png` });

  await page.fill('input[name="title"]', "Legacy images");
  await page.fill('input[name="pachd_address"]', "grpc://localhost:30650");
  await page.fill('input[name="repo"]', "images");
  await page.getByText("Select an option").click();
  await page.getByText("Files - Automatically creates a task for each file", { exact: false }).last().click();
  await page.getByRole("button", { name: "Add Storage" }).click();
  const create = await waitUntil(() => calls.find((call) => call.method === "POST" && call.path === "/api/storages/pachyderm"));
  const body = create?.body ?? {};
  check(
    "legacy form posts API names; the untouched token is not sent",
    body.pachd_address === "grpc://localhost:30650" &&
      body.repo === "images" &&
      body.branch === "master" &&
      body.pach_project === "default" &&
      body.recursive_scan === true &&
      !("auth_token" in body) &&
      !("presign" in body),
    JSON.stringify(create),
  );
}

// ------------------------------------------------------------------ main
async function main() {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const server = process.env.LS_URL ? { base: process.env.LS_URL, stop: async () => {} } : await startLabelStudio();
  const browser = await launchChromium(CHROMIUM);
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const setup = await context.newPage();
    await loginAs(setup, server.base, EMAIL, PASSWORD);
    const project = await createProject(setup, "Pachyderm e2e");
    check("test project created", Number.isInteger(project.id), JSON.stringify(project));
    await setup.close();

    // Each scenario gets a fresh page: a fresh Label Studio bundle and provider map.
    for (const scenario of [sourceStorageWizard, editStoredStorage, legacyForm]) {
      const page = await context.newPage();
      try {
        await scenario(page, server.base, project.id);
      } catch (error) {
        check(`${scenario.name} ran to the end`, false, error.message.split("\n").slice(0, 12).join("\n     "));
        await page.screenshot({ path: `${SCREENSHOTS}failure-${scenario.name}.png` }).catch(() => {});
      }
      // The page may still be loading through a mock (the storage list after a save): let
      // those handlers end quietly instead of failing once the page is gone.
      await page.unrouteAll({ behavior: "ignoreErrors" }).catch(() => {});
      await page.close();
    }
  } finally {
    await browser.close();
    await server.stop();
  }
  const failed = results.filter((result) => !result.ok);
  console.log(`\n${results.length - failed.length}/${results.length} checks passed`);
  process.exit(failed.length === 0 ? 0 : 1);
}

await main();
