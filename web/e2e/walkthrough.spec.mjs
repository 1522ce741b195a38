/**
 * End-to-end walkthrough: Pachyderm as Cloud Storage in a real Label Studio,
 * through the real UI in headless Chromium, against a real backend (no mocks).
 *
 *   bash web/e2e/run-walkthrough.sh        starts scripts/demo.sh, runs this, stops everything
 *
 * Run directly only against a fresh `scripts/demo.sh` that allows 127.0.0.1:1 too
 * (PACHYDERM_ALLOWED_HOSTS), with its output in DEMO_OUTPUT:
 *
 *   LS_URL=http://localhost:8080 LS_EMAIL=... LS_PASSWORD=... PFS_PORT=30650 DEMO_OUTPUT=demo.out \
 *     node web/e2e/walkthrough.spec.mjs
 *
 * Steps:
 *   0. the demo, as printed by scripts/demo.sh (steps/demo-project.mjs): its URL, its
 *      login, one box submitted, the printed command shows the export commit;
 *   1. the PFS server holds traffic@master (generated PNGs) and an empty traffic-labels repo;
 *   2. log in, create a bounding-box project in the "Create Project" dialog;
 *   3. add a Pachyderm source storage in the Cloud Storage wizard (check connection,
 *      preview, files as tasks, save & sync); the Data Manager lists the tasks;
 *   4. the labeling screen shows the image, streamed from Pachyderm by the storage proxy;
 *   5. draw a box and submit;
 *   6. add a Pachyderm target storage (traffic-labels@master), sync it, read the exported
 *      annotation back from Pachyderm;
 *   then the step modules: versions (steps/versions.mjs), media seeking (steps/media-seek.mjs),
 *   pachd out of reach for a watching storage (steps/outage.mjs), labeling rounds promoted from
 *   a target storage's card (steps/rounds.mjs);
 *   7. the wizard explains bad input: an unreachable pachd, a missing repo.
 * Screenshots of each go to docs/images/ (SCREENSHOT_DIR). A failure names its
 * step and leaves a screenshot in ARTIFACT_DIR. When a later step cannot go on
 * without the failed result the run stops there; a wrong value nothing depends on
 * (a count on a card) is reported and the run carries on. Either way the exit
 * status is non-zero.
 */
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  bodyText,
  clickAddStorage,
  labelingStage,
  launchChromium,
  login,
  nextResponse,
  proxiedUri,
  screenshotter,
  settle,
  storageCard,
  waitForLabelingImage,
} from "./lib/browser.mjs";
import { pfsTools } from "./lib/pfs.mjs";
import { waitForCount, waitForNone, waitUntil } from "./lib/wait.mjs";
import { createRunner, expect } from "./lib/steps.mjs";
import { demoProjectSteps } from "./steps/demo-project.mjs";
import { versionSteps } from "./steps/versions.mjs";
import { mediaSeekSteps } from "./steps/media-seek.mjs";
import { outageSteps } from "./steps/outage.mjs";
import { roundsSteps } from "./steps/rounds.mjs";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));

const BASE = process.env.LS_URL;
const PFS_PORT = process.env.PFS_PORT;
if (!BASE || !PFS_PORT) {
  console.error("LS_URL and PFS_PORT are required; bash web/e2e/run-walkthrough.sh sets them up");
  process.exit(2);
}
const EMAIL = process.env.LS_EMAIL ?? "e2e@example.com";
const PASSWORD = process.env.LS_PASSWORD ?? "walkthrough-pass-1";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR ?? here("../../docs/images/");
const ARTIFACT_DIR = process.env.ARTIFACT_DIR ?? tmpdir();
const REPO_ROOT = process.env.REPO_ROOT ?? here("../../");
const PYTHON = process.env.PYTHON ?? here("../../.venv/bin/python");
// The address typed into the form: what a user of a local pachd would write.
const FORM_ADDRESS = `grpc://localhost:${PFS_PORT}`;
// Nothing listens on port 1. run-walkthrough.sh allows it past Label Studio's SSRF
// protection, so the request really dials it and the "cannot reach" path is shown.
const UNREACHABLE_ADDRESS = process.env.UNREACHABLE_ADDRESS ?? "grpc://127.0.0.1:1";
// A free port run-walkthrough.sh allows past the SSRF protection too: steps/outage.mjs relays it
// to the PFS server, and takes the relay down to show pachd out of reach.
const RELAY_PORT = Number(process.env.RELAY_PORT ?? 0);

const { pfs, seed } = pfsTools({
  bin: process.env.PLUGIN_BIN ?? here("../../.venv/bin/label-studio-pachyderm"),
  python: PYTHON,
  address: `grpc://127.0.0.1:${PFS_PORT}`,
});

// Two frames with one "car" each. The first is the one labeled: the box drawn
// in the browser goes around the car, and the export must say where it is.
const CAR = { x0: 150, y0: 110, x1: 330, y1: 210 };
const IMAGES = [
  { name: "car-0001.png", width: 480, height: 320, colour: [40, 80, 220], box: [CAR.x0, CAR.y0, CAR.x1, CAR.y1] },
  { name: "car-0002.png", width: 480, height: 320, colour: [220, 60, 40], box: [60, 180, 200, 280] },
];
const LABELED = IMAGES[0];
const FOLDER = "frames";
// Not the demo's images/labels: those belong to the demo project the first steps use.
const SOURCE_REPO = "traffic";
const TARGET_REPO = "traffic-labels";
const PROJECT_TITLE = "Pachyderm walkthrough";
const SOURCE_TITLE = "Frames from Pachyderm";
const TARGET_TITLE = "Labels to Pachyderm";
const LABEL = "Car";

mkdirSync(SCREENSHOT_DIR, { recursive: true });
const runner = createRunner({
  onFailure: async (number) => {
    if (!state.page) return;
    const path = join(ARTIFACT_DIR, `walkthrough-failure-step-${number}.png`);
    await state.page.screenshot({ path });
    console.log(`     failure screenshot: ${path}`);
  },
});
const { step, check, note } = runner;
const shot = screenshotter(SCREENSHOT_DIR, note);
const state = { page: null, pageErrors: [] };

// ------------------------------------------------------------------ small helpers
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** GET on Label Studio's API with the browser's session (same cookies as the UI). */
async function api(context, path) {
  const response = await context.request.get(`${BASE}${path}`);
  const text = await response.text();
  expect(response.ok(), `GET ${path} answered ${response.status()}`, text.slice(0, 500));
  return JSON.parse(text);
}

/** Polls a storage until its sync is over; fails with Label Studio's own message otherwise. */
async function waitForSync(context, path, what) {
  const deadline = Date.now() + 60_000;
  let storage;
  while (Date.now() < deadline) {
    storage = await api(context, path);
    if (["completed", "completed_with_errors", "failed"].includes(storage.status)) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  expect(
    storage.status === "completed",
    `${what} sync ended as "${storage.status}" instead of "completed"`,
    { traceback: storage.traceback, meta: storage.meta },
  );
  return storage;
}

/** Opens the storage wizard on the Pachyderm tile's connection form. */
async function openPachydermForm(page, kind, { gridScreenshot } = {}) {
  await clickAddStorage(page, kind);
  const tile = page.locator('[data-testid="storage-provider-pachyderm"]');
  await tile.waitFor({ timeout: 20_000 });
  await tile.click();
  // Selected, so the picture shows which tile to pick; the pointer moves off it
  // so the hover style does not blur the difference.
  await page.mouse.move(5, 5);
  if (gridScreenshot) await shot(page, gridScreenshot);
  await page.getByRole("button", { name: "Next", exact: true }).click();
  await page.locator('input[name="pachd_address"]').waitFor({ timeout: 20_000 });
  expect(await waitForNone(page, page.getByText("Unknown provider")), "the wizard says 'Unknown provider'");
}

async function fillConnection(page, { title, address, repo, branch }) {
  await page.fill('input[name="title"]', title);
  await page.fill('input[name="pachd_address"]', address);
  await page.fill('input[name="repo"]', repo);
  await page.fill('input[name="branch"]', branch);
}

/** Clicks "Test Connection"; returns the validate response (status and body). */
async function testConnection(page, kind) {
  const path = kind === "source" ? /^\/api\/storages\/pachyderm\/validate\/?$/ : /^\/api\/storages\/export\/pachyderm\/validate\/?$/;
  const [response] = await Promise.all([
    nextResponse(page, "POST", path),
    page.getByRole("button", { name: "Test Connection" }).click(),
  ]);
  return { status: response.status(), body: await bodyText(response) };
}

/** The first message of a 400 from Label Studio's API (DRF validation errors, by field). */
function errorMessage({ body }) {
  try {
    const errors = JSON.parse(body).validation_errors ?? {};
    return Object.values(errors).flat().map(String)[0] ?? body;
  } catch {
    return body;
  }
}

/** The target repo's commits (only master is written), newest first, as `pfs list-commit` prints them. */
function commitLines() {
  return pfs("list-commit", TARGET_REPO).trim().split("\n").slice(1).filter(Boolean);
}

async function closeWizard(page) {
  // The wizard's "×" has no label; it is the first button of the modal, in its header.
  await page.locator(".lsf-modal-ls__body button").filter({ visible: true }).first().click();
  await page.locator('input[name="pachd_address"]').waitFor({ state: "hidden", timeout: 10_000 });
}

// ------------------------------------------------------------------ the walkthrough
async function walkthrough(browser) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1200 } });
  const page = await context.newPage();
  state.page = page;
  page.on("pageerror", (error) => state.pageErrors.push(error.message));
  const ids = {};
  // What a step module (steps/*.mjs) needs, in one object.
  const ctx = {
    page,
    context,
    base: BASE,
    api: (path) => api(context, path),
    waitForSync: (path, what) => waitForSync(context, path, what),
    ids,
    pfs,
    pfsAddress: `grpc://127.0.0.1:${PFS_PORT}`,
    formAddress: FORM_ADDRESS,
    shot,
    step,
    check,
    note,
    expect,
    demoOutput: process.env.DEMO_OUTPUT,
    repoRoot: REPO_ROOT,
    python: PYTHON,
  };

  if (ctx.demoOutput) await demoProjectSteps(ctx);
  else note("DEMO_OUTPUT not set: the demo steps are skipped (bash web/e2e/run-walkthrough.sh runs them)");

  await step(`the PFS server holds ${SOURCE_REPO}@master and an empty ${TARGET_REPO} repo`, async () => {
    const seeded = seed({ source_repo: SOURCE_REPO, branch: "master", folder: FOLDER, target_repo: TARGET_REPO, images: IMAGES });
    LABELED.sha256 = seeded.files.find((file) => file.path === `${FOLDER}/${LABELED.name}`).sha256;
    state.seedCommit = seeded.commit;
    // Seen the way a user would check: pachctl-style listings.
    const listing = pfs("list-file", `${SOURCE_REPO}@master`, "-r");
    for (const image of IMAGES) {
      expect(listing.includes(`/${FOLDER}/${image.name}`), `${SOURCE_REPO}@master lists /${FOLDER}/${image.name}`, listing);
    }
    note(`${SOURCE_REPO}@${seeded.commit}: ${seeded.files.map((file) => `/${file.path} (${file.size} B)`).join(", ")}; ${TARGET_REPO}: empty`);
  });

  await step("log in and create a bounding-box project in the Create Project dialog", async () => {
    await login(page, BASE, EMAIL, PASSWORD);
    await page.goto(`${BASE}/projects/`);
    // Opening the dialog creates a draft project; typing before it exists makes
    // Label Studio PATCH /api/projects/undefined, so wait for it.
    const [draft] = await Promise.all([
      nextResponse(page, "POST", /^\/api\/projects\/?$/),
      page.locator("button", { hasText: /^Create( Project)?$/ }).filter({ visible: true }).first().click(),
    ]);
    expect(draft.status() === 201, `the draft project was not created (${draft.status()})`, await bodyText(draft));
    await page.fill('input[name="name"]', PROJECT_TITLE);
    await page.locator(".lsf-toggle-items__item", { hasText: "Labeling Setup" }).click();
    await settle(page);
    await page.locator(".lsf-templates-list__template", { hasText: "Object Detection with Bounding Boxes" }).click();
    await page.locator(".lsf-label", { hasText: LABEL }).first().waitFor({ timeout: 20_000 });
    await Promise.all([
      page.waitForURL(/\/projects\/\d+\/data/, { timeout: 30_000 }),
      page.locator("button", { hasText: /^Save$/ }).filter({ visible: true }).first().click(),
    ]);
    ids.project = Number(new URL(page.url()).pathname.split("/")[2]);
    const project = await api(context, `/api/projects/${ids.project}`);
    expect(project.title === PROJECT_TITLE, "the project has the title typed in", project.title);
    expect(/<RectangleLabels\b/.test(project.label_config), "the labeling config has RectangleLabels", project.label_config);
    expect(project.label_config.includes(`value="${LABEL}"`), `the labeling config has the label ${LABEL}`);
    note(`project ${ids.project}: "${PROJECT_TITLE}" (Object Detection with Bounding Boxes template)`);
  });

  await step("add a Pachyderm source storage in the Cloud Storage wizard; the tasks appear", async () => {
    await page.goto(`${BASE}/projects/${ids.project}/settings/storage`);
    await openPachydermForm(page, "source", { gridScreenshot: "01-provider-grid.png" });
    await fillConnection(page, { title: SOURCE_TITLE, address: FORM_ADDRESS, repo: SOURCE_REPO, branch: "master" });
    // A source storage's form ends with the Predictions fields, at their defaults (no predictions).
    const predictionsPath = page.locator('input[name="predictions_path"]');
    await predictionsPath.waitFor({ timeout: 20_000 });
    check(await page.locator('input[name="predictions_repo"]').inputValue() === "", "Predictions repo is empty (off) by default");
    check(await page.locator('input[name="predictions_branch"]').inputValue() === "master", "Predictions branch defaults to master");
    check(await predictionsPath.inputValue() === "{dir}/{stem}.json", "the predictions path defaults to {dir}/{stem}.json");
    check(await waitForCount(page, page.locator('[data-testid^="select-trigger-predictions_match"]', { hasText: "same commit set" }), 1),
      'Which predictions commit reads "... (same commit set)"');
    // An unknown placeholder is refused on the form, before anything is sent.
    await predictionsPath.fill("{name}.json");
    await predictionsPath.blur();
    const pathError = page.getByText("Unknown placeholder {name}: use {dir}, {stem}, {ext}, {path}");
    check(await waitForCount(page, pathError, 1), "the form refuses {name} in the predictions path");
    await predictionsPath.fill("{dir}/{stem}.json");
    await predictionsPath.blur();
    check(await waitForNone(page, pathError), "the message goes once the path is the default again");
    const connection = await testConnection(page, "source");
    expect(connection.status === 200, `Check connection answered ${connection.status}`, connection.body);
    await page.getByRole("button", { name: "Connection Verified" }).waitFor({ timeout: 20_000 });
    await shot(page, "02-connection.png");

    await page.getByRole("button", { name: "Next", exact: true }).click();
    // Label Studio's step speaks of a "Bucket Prefix ... within your bucket"; the plugin's words name the repo.
    const modalText = () => page.locator(".lsf-modal-ls__body").innerText({ timeout: 1000 });
    check(await waitUntil(async () => {
      const text = await modalText();
      return text.includes("Path prefix in the repo") && text.includes(`The path in default/${SOURCE_REPO}@master whose files`) && !/bucket/i.test(text);
    }), "the import settings step speaks of a path prefix in the repo, not of a bucket", await modalText().catch((error) => error.message));
    // LS's default Import Method is "Tasks": a preview of images says they are no task files.
    await page.getByRole("button", { name: "Load Preview" }).click();
    const warning = page.locator('[data-testid="pachyderm-preview-warning"]');
    check(await waitUntil(async () => {
      const text = await warning.innerText({ timeout: 1000 });
      return /not task files|is a task file/.test(text) && /"Files"/.test(text);
    }), 'a Tasks preview of images warns and names Import Method "Files"', await warning.innerText().catch((error) => error.message));
    check(await waitForNone(page, page.getByRole("button", { name: "Parquet", exact: true }).filter({ visible: true })),
      "the Pachyderm form offers no Parquet filter");
    // Label Studio's "Import Method": Files = every object becomes a task (use_blob_urls).
    await page.locator('[data-testid^="select-trigger-use_blob_urls"]').click();
    await page.locator('[data-testid="select-option-label"]', { hasText: /^Files - / }).click();
    await page.locator('[data-testid^="select-trigger-use_blob_urls"]', { hasText: /^Files - / }).waitFor();
    const [preview] = await Promise.all([
      nextResponse(page, "POST", /^\/api\/storages\/pachyderm\/files\/?$/),
      page.getByRole("button", { name: "Load Preview" }).click(),
    ]);
    const previewBody = await bodyText(preview);
    expect(preview.status() === 200, `the preview request answered ${preview.status()}`, previewBody);
    expect(JSON.parse(preview.request().postData()).use_blob_urls === true, "the preview was asked with use_blob_urls=true");
    for (const image of IMAGES) {
      await page.getByText(`${FOLDER}/${image.name}`, { exact: true }).waitFor({ timeout: 20_000 });
    }
    check(await waitForNone(page, warning), "no warning once Import Method is Files");
    // pachd gives each listed file its commit's finishing time: the rows say so, not "<time> ago" alone.
    const timeWords = `in commit ${state.seedCommit.slice(0, 8)}, finished `;
    check(await waitUntil(async () => (await modalText()).split(timeWords).length - 1 === IMAGES.length),
      `each preview row's time reads "${timeWords}..."`, await modalText().catch((error) => error.message));
    await shot(page, "03-preview.png");

    await page.getByRole("button", { name: "Next", exact: true }).click();
    const location = `default/${SOURCE_REPO}@master:/`;
    await page.getByText("Storage Location").waitFor({ timeout: 20_000 });
    // Label Studio draws "Not specified" there; the plugin writes the location one animation
    // frame later (web/src/runtime/touch-ups.ts), so wait for it rather than look once.
    check(await waitForCount(page, page.getByText(location, { exact: true }), 1), `the review step's Storage Location reads ${location}`,
      await page.locator(".lsf-modal-ls__body").innerText().catch(() => ""));
    const [created, synced] = await Promise.all([
      nextResponse(page, "POST", /^\/api\/storages\/pachyderm\/?$/),
      nextResponse(page, "POST", /^\/api\/storages\/pachyderm\/\d+\/sync\/?$/),
      page.getByRole("button", { name: "Save & Sync", exact: true }).click(),
    ]);
    const createdBody = await bodyText(created);
    expect(created.status() === 201, `saving the storage answered ${created.status()}`, createdBody);
    const saved = JSON.parse(createdBody);
    expect(
      saved.use_blob_urls === true && saved.repo === SOURCE_REPO && saved.branch === "master" && saved.pachd_address === FORM_ADDRESS,
      "the storage was saved with what the form said",
      saved,
    );
    check(saved.predictions_repo === "" && saved.predictions_path === "{dir}/{stem}.json" && saved.predictions_match === "commit_set",
      "the storage was saved with no predictions, at the default path and match", saved);
    expect(synced.ok(), `the sync request answered ${synced.status()}`, await bodyText(synced));
    ids.source = saved.id;
    const storage = await waitForSync(context, `/api/storages/pachyderm/${ids.source}`, "source storage");
    expect(storage.last_sync_count === IMAGES.length, `the sync created ${IMAGES.length} tasks`, storage.last_sync_count);

    // What a person sees: the Data Manager with one task per file.
    await page.goto(`${BASE}/projects/${ids.project}/data`);
    const footer = page.getByText(new RegExp(`Tasks:\\s*${IMAGES.length}\\s*/\\s*${IMAGES.length}`));
    await footer.waitFor({ timeout: 30_000 });
    expect(await waitForCount(page, page.locator(".lsf-table-row"), IMAGES.length, 30_000), `the Data Manager lists ${IMAGES.length} rows`,
      await page.locator(".lsf-table-row").count());
    // The thumbnails come through the storage proxy too; wait for them before the picture.
    await page.waitForFunction(
      (count) => [...document.querySelectorAll(".lsf-table-row img")].filter((img) => img.complete && img.naturalWidth > 0).length >= count,
      IMAGES.length,
      { timeout: 30_000 },
    );
    await shot(page, "03b-data-manager.png");

    const tasks = await api(context, `/api/tasks?project=${ids.project}&page_size=100`);
    const list = tasks.tasks ?? tasks;
    // The API shows each task's image as a proxy URL; the file URI is in its fileuri parameter.
    const uriOf = (task) => proxiedUri(String(Object.values(task.data)[0]), BASE);
    const labeled = list.find((task) => uriOf(task).endsWith(`/${FOLDER}/${LABELED.name}`));
    expect(labeled, `a task points at /${FOLDER}/${LABELED.name}`, list.map(uriOf));
    ids.task = labeled.id;
    note(`source storage ${ids.source}: ${IMAGES.length} tasks; task ${ids.task} = ${uriOf(labeled)}`);
  });

  await step("the labeling screen shows the image, streamed from Pachyderm by the storage proxy", async () => {
    const proxied = [];
    const onResponse = (response) => {
      const url = new URL(response.url());
      if (url.pathname === `/tasks/${ids.task}/resolve/` && url.searchParams.has("fileuri")) proxied.push(response);
    };
    page.on("response", onResponse);
    try {
      const row = page.locator(".lsf-table-row").filter({ has: page.locator(".lsf-table__cell", { hasText: new RegExp(`^${ids.task}$`) }) });
      await row.first().click();
      await page.waitForURL((url) => url.searchParams.get("task") === String(ids.task), { timeout: 30_000 });
      const image = page.locator(".lsf-main-view .lsf-image img");
      await image.waitFor({ state: "attached", timeout: 30_000 });
      await waitForLabelingImage(page, 30_000);
      const naturalSize = () => image.evaluate((img) => ({ width: img.naturalWidth, height: img.naturalHeight }));
      expect(
        await waitUntil(async () => {
          const natural = await naturalSize();
          return natural.width === LABELED.width && natural.height === LABELED.height;
        }),
        `the labeling image decoded at ${LABELED.width}x${LABELED.height}`,
        await naturalSize().catch((error) => error.message),
      );
      expect(await waitUntil(() => proxied.length > 0), `the browser fetched /tasks/${ids.task}/resolve/?fileuri=...`);
      const last = proxied[proxied.length - 1];
      const bytes = await last.body();
      expect(last.status() === 200, `the storage proxy answered ${last.status()}`);
      expect(last.headers()["content-type"]?.startsWith("image/png"), "the storage proxy said image/png", last.headers()["content-type"]);
      expect(sha256(bytes) === LABELED.sha256, "the proxy served the exact bytes put into Pachyderm");
      const uri = proxiedUri(last.url());
      note(`proxy: 200 image/png, ${bytes.length} bytes, fileuri=${uri}`);
      expect(uri.startsWith(`pfs://default/${SOURCE_REPO}@`) && uri.endsWith(`/${FOLDER}/${LABELED.name}`), `the task URI names the image in ${SOURCE_REPO}@<commit>`, uri);
    } finally {
      page.off("response", onResponse);
    }
  });

  await step(`draw a "${LABEL}" box around the car and submit`, async () => {
    await page.locator(".lsf-main-view .lsf-label", { hasText: LABEL }).first().click();
    // The Konva stage is the picture as shown: image pixels map linearly onto it.
    const stage = await labelingStage(page);
    expect(stage && stage.width > 100, "the image stage is on screen", stage);
    const scaleX = stage.width / LABELED.width;
    const scaleY = stage.height / LABELED.height;
    const from = { x: stage.x + CAR.x0 * scaleX, y: stage.y + CAR.y0 * scaleY };
    const to = { x: stage.x + CAR.x1 * scaleX, y: stage.y + CAR.y1 * scaleY };
    await page.mouse.move(from.x, from.y);
    await page.mouse.down();
    await page.mouse.move((from.x + to.x) / 2, (from.y + to.y) / 2, { steps: 8 });
    await page.mouse.move(to.x, to.y, { steps: 8 });
    await page.mouse.up();
    await page.locator(".lsf-main-view").getByText("Car").first().waitFor();
    // The region list is the UI's own record that a box exists.
    await page.locator('[class*="outliner"], [class*="Outliner"]').getByText(LABEL).first().waitFor({ timeout: 10_000 });
    await page.mouse.click(stage.x + 5, stage.y + 5); // deselect, so the picture shows the box plainly
    await shot(page, "04-labeling.png");

    const [posted] = await Promise.all([
      nextResponse(page, "POST", new RegExp(`^/api/tasks/${ids.task}/annotations/?$`)),
      page.locator('[data-testid="bottombar-submit-button"]').click(),
    ]);
    const postedBody = await bodyText(posted);
    expect(posted.status() === 201, `submitting answered ${posted.status()}`, postedBody);
    const annotation = JSON.parse(postedBody);
    const region = annotation.result.find((item) => item.type === "rectanglelabels");
    expect(region, "the annotation has a rectanglelabels result", annotation.result);
    expect(JSON.stringify(region.value.rectanglelabels) === JSON.stringify([LABEL]), `the box is labeled ${LABEL}`, region.value);
    const want = {
      x: (CAR.x0 / LABELED.width) * 100,
      y: (CAR.y0 / LABELED.height) * 100,
      width: ((CAR.x1 - CAR.x0) / LABELED.width) * 100,
      height: ((CAR.y1 - CAR.y0) / LABELED.height) * 100,
    };
    const off = Object.keys(want).filter((key) => Math.abs(region.value[key] - want[key]) > 2);
    expect(off.length === 0, `the box is around the car (±2% of the image): ${JSON.stringify(want)}`, region.value);
    ids.annotation = annotation.id;
    note(`annotation ${annotation.id}: ${LABEL} at x=${region.value.x.toFixed(1)}% y=${region.value.y.toFixed(1)}% ` +
      `w=${region.value.width.toFixed(1)}% h=${region.value.height.toFixed(1)}%`);
  });

  await step(`add a Pachyderm target storage (${TARGET_REPO}@master), sync it, read the export back from Pachyderm`, async () => {
    await page.goto(`${BASE}/projects/${ids.project}/settings/storage`);
    await openPachydermForm(page, "target");
    // The plugin corrects these words once the wizard has drawn them (next animation frame): wait for it.
    check(await waitUntil(async () => (await page.locator('input[name="repo"]').getAttribute("placeholder", { timeout: 1000 })) === "labels"),
      'the target form suggests the repo "labels"', await page.locator('input[name="repo"]').getAttribute("placeholder").catch(() => null));
    check(await waitForNone(page, page.getByText("Import your data from cloud storage providers")), 'the target form does not say "Import your data"');
    await fillConnection(page, { title: TARGET_TITLE, address: FORM_ADDRESS, repo: TARGET_REPO, branch: "master" });
    const connection = await testConnection(page, "target");
    expect(connection.status === 200, `Check connection (target) answered ${connection.status}`, connection.body);
    await page.getByRole("button", { name: "Connection Verified" }).waitFor({ timeout: 20_000 });
    const [created] = await Promise.all([
      nextResponse(page, "POST", /^\/api\/storages\/export\/pachyderm\/?$/),
      page.getByRole("button", { name: "Save", exact: true }).click(),
    ]);
    const createdBody = await bodyText(created);
    expect(created.status() === 201, `saving the target storage answered ${created.status()}`, createdBody);
    ids.target = JSON.parse(createdBody).id;

    // Label Studio itself exports existing annotations when a target storage is
    // created (SYNC_ON_TARGET_STORAGE_CREATION, on by default), so count from here.
    const commitsBefore = commitLines();
    note(`${TARGET_REPO}@master after saving the target storage: ${commitsBefore.length} commit(s)`);

    const card = storageCard(page, TARGET_TITLE);
    await card.waitFor({ timeout: 20_000 });
    const [synced] = await Promise.all([
      nextResponse(page, "POST", new RegExp(`^/api/storages/export/pachyderm/${ids.target}/sync/?$`)),
      card.getByRole("button", { name: "Sync Storage" }).click(),
    ]);
    expect(synced.ok(), `the export sync request answered ${synced.status()}`, await bodyText(synced));
    const target = await waitForSync(context, `/api/storages/export/pachyderm/${ids.target}`, "target storage");

    // Reload so both cards show their final status, as a person would see it.
    await page.reload();
    await storageCard(page, TARGET_TITLE).getByText("Completed").waitFor({ timeout: 20_000 });
    await storageCard(page, SOURCE_TITLE).getByText("Completed").waitFor({ timeout: 20_000 });
    await shot(page, "05-target-sync.png");

    const path = `/${ids.task}.json`;
    const exported = JSON.parse(pfs("get-file", `${TARGET_REPO}@master:${path}`));
    const results = (exported.annotations ?? []).flatMap((annotation) => annotation.result ?? []);
    const box = results.find((item) => item.type === "rectanglelabels");
    expect(exported.id === ids.task, `${TARGET_REPO}@master:${path} is task ${ids.task}`, exported.id);
    expect(box && box.value.rectanglelabels?.includes(LABEL), `${TARGET_REPO}@master:${path} holds the ${LABEL} rectanglelabels result`, results);
    note(`${TARGET_REPO}@master:${path}: task ${exported.id}, ${LABEL} box at x=${box.value.x.toFixed(1)}% y=${box.value.y.toFixed(1)}%`);
    const commitsAfter = commitLines();
    expect(commitsAfter.length === commitsBefore.length + 1, `the sync wrote ONE commit on ${TARGET_REPO}@master`, commitsAfter);
    note(`newest commit: ${commitsAfter[0].replace(/\s+/g, " ")}`);

    // The card reads "Annotations: <exported> (<total> total)", Label Studio's own
    // wording for meta.total_annotations: the project's annotations at sync time.
    const annotationsRowOf = async () => (await storageCard(page, TARGET_TITLE).innerText({ timeout: 1000 })).match(/Annotations\s*(\d+)\s*\((\d+) total\)/);
    let annotationsRow = null;
    const cardSays = await waitUntil(async () => {
      annotationsRow = await annotationsRowOf();
      return annotationsRow && annotationsRow[1] === "1" && annotationsRow[2] === "1";
    });
    check(
      cardSays,
      'the target storage card says "Annotations 1 (1 total)" (1 exported of the project\'s 1). ' +
        "Plugin bug if it says (0 total): the export sync leaves meta.total_annotations unset, " +
        "see export_annotations in label_studio_pachyderm/exports/writer.py",
      { card: annotationsRow?.[0], meta: target.meta },
    );
  });

  // More steps, each a module in steps/*.mjs taking ctx, go here (after the export,
  // before the error cases), one import line at the top and one call line each.
  await versionSteps(ctx, { repo: SOURCE_REPO, folder: FOLDER, image: LABELED });
  await mediaSeekSteps(ctx, { repo: SOURCE_REPO, folder: FOLDER });
  if (RELAY_PORT) await outageSteps(ctx, { repo: SOURCE_REPO, relayPort: RELAY_PORT });
  else note("RELAY_PORT not set: the pachd outage steps are skipped (bash web/e2e/run-walkthrough.sh sets it)");
  if (ids.demo) await roundsSteps(ctx);
  else note("no demo project: the labeling rounds steps are skipped (they promote the demo's labels repo)");

  await step("the wizard explains bad input: an unreachable pachd, a missing repo", async () => {
    await page.goto(`${BASE}/projects/${ids.project}/settings/storage`);
    await openPachydermForm(page, "source");
    await fillConnection(page, { title: "Broken", address: UNREACHABLE_ADDRESS, repo: SOURCE_REPO, branch: "master" });
    const unreachable = await testConnection(page, "source");
    const unreachableMessage = errorMessage(unreachable);
    expect(unreachable.status === 400, `Check connection with ${UNREACHABLE_ADDRESS} answered ${unreachable.status}`, unreachable.body);
    expect(/cannot reach pachd/i.test(unreachableMessage), "the server says it cannot reach pachd", unreachableMessage);
    await page.getByText(unreachableMessage).first().waitFor({ timeout: 20_000 });
    note(`shown: ${unreachableMessage}`);
    await shot(page, "06-error-unreachable.png");

    await page.fill('input[name="pachd_address"]', FORM_ADDRESS);
    await page.fill('input[name="repo"]', "no-such-repo");
    const missing = await testConnection(page, "source");
    const missingMessage = errorMessage(missing);
    expect(missing.status === 400, `Check connection with a missing repo answered ${missing.status}`, missing.body);
    expect(/no-such-repo/.test(missingMessage) && /not found/i.test(missingMessage), "the server names the missing repo", missingMessage);
    await page.getByText(missingMessage).first().waitFor({ timeout: 20_000 });
    note(`shown: ${missingMessage}`);
    expect(await waitForNone(page, page.getByText(/cannot reach pachd/i)), "the earlier error is gone once the address is fixed");
    await shot(page, "07-error-missing-repo.png");
    await closeWizard(page);

    const sources = await api(context, `/api/storages/pachyderm?project=${ids.project}`);
    expect(sources.length === 1, "the failed checks saved nothing", sources.map((storage) => storage.title));
  });

  await context.close();
}

async function main() {
  const browser = await launchChromium(CHROMIUM);
  let failed = false;
  try {
    await walkthrough(browser);
  } catch (error) {
    failed = true;
    if (!error.reported) console.log(`FAIL ${error.stack ?? error}`);
  } finally {
    await browser.close().catch(() => {});
  }
  failed = failed || runner.failed();
  runner.summary();
  if (state.pageErrors.length) {
    console.log(`\nuncaught page errors (reported, not failed on):\n  ${state.pageErrors.join("\n  ")}`);
  }
  process.exit(failed ? 1 : 0);
}

await main();
