/**
 * Versioned labeling in the browser: the labeled image changes in Pachyderm, the
 * source storage (set to "Make a new task version") syncs, and the Data Manager's
 * "Pachyderm version" filter lists the old version's task, as docs/user-guide.md#versions
 * tells a user to do: Filters, Add Filter, Pachyderm version, contains, "superseded"; then the
 * file is deleted and the same filter with "deleted" lists its task; the Pachyderm version column
 * reads each task's version, and "Label All Tasks" on a newest-first tab serves the current frame,
 * not the deleted file's task; then the file comes back.
 *
 * @param ctx the walkthrough's context (see walkthrough.spec.mjs); uses ids.project,
 *   ids.source and ids.task from the earlier steps.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bodyText, sessionRequest as send, settle } from "../lib/browser.mjs";
import { waitForCount } from "../lib/wait.mjs";

export async function versionSteps(ctx, { repo, folder, image }) {
  const { page, api, step, expect, note, shot, ids, pfs } = ctx;
  let newTask;
  let supersededIn;
  let deletedIn;

  // The new version of the labeled frame (always the same bytes), put the way a user would
  // (pachctl-like put-file).
  function putNewVersion(message) {
    const dir = mkdtempSync(join(tmpdir(), "versions-"));
    const local = join(dir, image.name);
    try {
      execFileSync(ctx.python, ["-c",
        "import sys; from label_studio_pachyderm.demo import png; open(sys.argv[1], 'wb').write(png(480, 320, (20, 160, 90), (100, 60, 300, 200)))",
        local], { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
      pfs("put-file", `${repo}@master:/${folder}/${image.name}`, "-f", local, "-m", message);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  async function syncSource() {
    const synced = await send(page, "POST", `/api/storages/pachyderm/${ids.source}/sync`, {});
    expect(synced.status === 200, `sync answered ${synced.status}`, synced.text.slice(0, 300));
    return ctx.waitForSync(`/api/storages/pachyderm/${ids.source}`, "the source storage");
  }

  // The Data Manager's rows once the "Pachyderm version" filter line says ``value``: waits
  // (up to 30 s) for the list to be exactly the row of task ``id``; returns the row count and
  // whether that row is there.
  async function filteredTo(line, value, id) {
    const input = line.locator('input:not([type="checkbox"])').last();
    await input.fill(value);
    await input.press("Enter");
    const row = page.locator(".lsf-table-row").filter({
      has: page.locator(".lsf-table__cell", { hasText: new RegExp(`^${id}$`) }),
    });
    const deadline = Date.now() + 30_000;
    let rows = -1;
    let found = 0;
    while (Date.now() < deadline) {
      await settle(page);
      rows = await page.locator(".lsf-table-row").count();
      found = await row.count();
      if (rows === 1 && found === 1) break;
    }
    return { rows, found: found === 1 };
  }
  let filterLine;

  await step("a labeled image changes in Pachyderm: with \"Make a new task version\" the sync adds a new task", async () => {
    const patched = await send(page, "PATCH", `/api/storages/pachyderm/${ids.source}`, { changed_files: "new_version" });
    expect(patched.status === 200, `PATCH changed_files answered ${patched.status}`, patched.text.slice(0, 300));

    putNewVersion("new version of one frame");
    const storage = await syncSource();
    expect(storage.meta.tasks_superseded === 1, "the sync made one new task version", storage.meta);

    const old = await api(`/api/tasks/${ids.task}`);
    newTask = old.meta?.pachyderm?.superseded_by;
    expect(Number.isInteger(newTask), "the labeled task names the task of the new version (superseded_by)", old.meta);
    expect(old.total_annotations === 1, "the old version keeps its annotation", { total_annotations: old.total_annotations });
    const fresh = await api(`/api/tasks/${newTask}`);
    expect(fresh.meta.pachyderm.previous_task === ids.task, "the new task names the old one (previous_task)", fresh.meta);
    supersededIn = storage.meta.commit;
    note(`task ${ids.task} superseded by task ${newTask} in ${storage.meta.commit}`);
  });

  await step('the Data Manager: Filters -> Pachyderm version contains "superseded" lists the old version', async () => {
    await page.goto(`${ctx.base}/projects/${ids.project}/data`);
    const listsThree = await waitForCount(page, page.locator(".lsf-table-row"), 3, 30_000);
    const before = await page.locator(".lsf-table-row").count();
    expect(listsThree, `the Data Manager lists 3 tasks (2 frames + the new version), not ${before}`);

    await page.getByRole("button", { name: /^Filters/ }).click();
    await page.getByRole("button", { name: /Add Filter/ }).click();
    // The new filter line (Label Studio's Data Manager names it "filterLine"): its column
    // picker, then the value field (the default operator for text is "contains").
    const line = page.locator('[class*="filterLine"]:not([class*="filterLine__"])').last();
    await line.locator('[class*="filterLine__column"][class*="field"]').click();
    // The column list is long: type into its search box, as a user would, then pick the column.
    await page.getByPlaceholder("Search").last().fill("Pachyderm");
    await page.getByText("Pachyderm version", { exact: true }).last().click();
    await settle(page);
    filterLine = line;
    const { rows, found } = await filteredTo(line, "superseded", ids.task);
    expect(rows === 1 && found, `the filtered list shows 1 task, the superseded version ${ids.task}`,
      { rows, text: await page.locator(".lsf-table-row").first().innerText() });
    await shot(page, "09-data-manager-superseded-filter.png");
  });

  await step('a file deleted in Pachyderm: its task stays, names the commit (deleted_in), and "deleted" in the same filter lists it', async () => {
    pfs("delete-file", `${repo}@master:/${folder}/${image.name}`, "-m", "remove one frame");
    const storage = await syncSource();
    expect(storage.meta.tasks_deleted === 1, "the sync marked one task deleted", storage.meta);
    const gone = await api(`/api/tasks/${newTask}`);
    expect(gone.meta.pachyderm.deleted_in === storage.meta.commit, "the task names the commit where its file disappeared", gone.meta);

    const { rows, found } = await filteredTo(filterLine, "deleted", newTask);
    expect(rows === 1 && found, `the filtered list shows 1 task, the deleted file's task ${newTask}`,
      { rows, text: await page.locator(".lsf-table-row").first().innerText() });
    await shot(page, "10-data-manager-deleted-filter.png");
    deletedIn = storage.meta.commit;
  });

  await step('the Pachyderm version column says which version each task is; "Label All Tasks" serves only current ones', async () => {
    const listed = await api(`/api/tasks?project=${ids.project}&page_size=100`);
    const byId = Object.fromEntries((listed.tasks ?? listed).map((t) => [t.id, t.pachyderm_version]));
    expect(byId[ids.task] === `superseded by #${newTask} (${supersededIn})`, "the old version reads superseded by the new", byId);
    const current = Object.keys(byId).map(Number).filter((id) => byId[id] === "current");
    expect(current.length === 1 && !current.includes(newTask), "one frame is current, the others are stale", byId);

    // A tab that lists the newest task first: Label Studio alone would serve the deleted file's task.
    const tab = await send(page, "POST", "/api/dm/views", {
      project: ids.project, data: { title: "Newest first", ordering: ["-tasks:id"], filters: { conjunction: "and", items: [] } },
    });
    expect(tab.status === 201, `a new tab answered ${tab.status}`, tab.text.slice(0, 300));
    await page.goto(`${ctx.base}/projects/${ids.project}/data?tab=${JSON.parse(tab.text).id}`);
    await waitForCount(page, page.locator(".lsf-table-row"), 3, 30_000);
    // A new tab shows the column (on by default where files make new versions), each row its version.
    const rowReading = (text) => page.locator(".lsf-table-row").filter({ hasText: text });
    expect(await waitForCount(page, rowReading(`deleted in ${deletedIn}`), 1, 30_000),
      `the row of task ${newTask} reads "deleted in ${deletedIn}"`, await page.locator(".lsf-table").innerText().catch(() => ""));
    expect(await waitForCount(page, rowReading(`superseded by #${newTask}`), 1), `the row of task ${ids.task} reads "superseded by #${newTask}"`);
    expect(await waitForCount(page, rowReading(/^(?!.*(deleted in|superseded by)).*current/s), 1), "one row reads current");
    await shot(page, "11-data-manager-version-column.png");
    const [next] = await Promise.all([
      page.waitForResponse((response) => /^\/api\/dm\/actions\/?$/.test(new URL(response.url()).pathname) &&
        new URL(response.url()).searchParams.get("id") === "next_task", { timeout: 60_000 }),
      page.getByRole("button", { name: /Label All Tasks/ }).click(),
    ]);
    const served = JSON.parse(await bodyText(next));
    expect(served.id === current[0], `"Label All Tasks" served the current frame ${current[0]}, not a stale version`,
      { served: served.id, stale: [ids.task, newTask] });
    note(`versions: ${JSON.stringify(byId)}; Label All Tasks served ${served.id}`);
    await page.goto(`${ctx.base}/projects/${ids.project}/data`);
  });

  await step("the deleted file comes back: the same task, deleted_in cleared", async () => {
    // The file comes back with the same bytes: the same task, deleted_in cleared.
    putNewVersion("the frame is back");
    const back = await syncSource();
    expect(back.meta.tasks_restored === 1, "the sync found the file back", back.meta);
    expect(!("deleted_in" in (await api(`/api/tasks/${newTask}`)).meta.pachyderm), "deleted_in is gone from the task");
    note(`task ${newTask}: deleted_in ${deletedIn}, restored in ${back.meta.commit}`);
  });
}
