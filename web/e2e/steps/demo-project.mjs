/**
 * The walkthrough's first steps: what a newcomer does after `bash scripts/demo.sh`,
 * exactly as it printed it (lib/demo-block.mjs reads the block): open the URL, log
 * in, open a task, which shows the demo model's box as a pre-annotation (the prediction
 * from detections@master, label_studio_pachyderm/demo_model.py), submit it, run the
 * command, and see the export commit.
 *
 * @param ctx the walkthrough's context (see walkthrough.spec.mjs): page, api, step,
 *   check, note, expect, shot, pfs, demoOutput, repoRoot, python.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { bodyText, labelingStage, login, nextResponse, proxiedUri, storageCard, waitForLabelingImage } from "../lib/browser.mjs";
import { waitForCount, waitForNone, waitUntil } from "../lib/wait.mjs";
import { demoNoise, parseDemoBlock } from "../lib/demo-block.mjs";

// The demo's images (label_studio_pachyderm/demo.py SHAPES): 256x256, one filled box each,
// labeled with its colour.
const SHAPES = {
  "red-square.png": { label: "Red", box: [40, 40, 140, 140] },
  "green-wide.png": { label: "Green", box: [20, 70, 220, 150] },
  "blue-tall.png": { label: "Blue", box: [90, 20, 150, 220] },
  "orange-corner.png": { label: "Orange", box: [150, 150, 230, 230] },
};
const SIZE = 256;
const TARGET_TITLE = "Demo labels (labels@master)"; // label_studio_pachyderm/demo.py TARGET_TITLE
const MODEL_VERSION = "demo-colour-boxes-1"; // label_studio_pachyderm/demo.py MODEL_VERSION

/** The pixel box (x0, y0, x1, y1) of a rectanglelabels item, from its percent coordinates. */
function pixelBox(item) {
  const { x, y, width, height } = item.value;
  return [x, y, x + width, y + height].map((value) => (value * SIZE) / 100);
}

/** Whether two pixel boxes are the same within `tolerance` pixels on every side. */
function sameBox(a, b, tolerance = 2) {
  return a.length === 4 && a.every((value, i) => Math.abs(value - b[i]) <= tolerance);
}

export async function demoProjectSteps(ctx) {
  const { page, api, step, check, note, expect, shot } = ctx;
  let block;
  let demo;

  await step("scripts/demo.sh printed the project's URL, the login and the command; the project is ready", async () => {
    const output = readFileSync(ctx.demoOutput, "utf8");
    block = parseDemoBlock(output);
    const noise = demoNoise(output);
    check(noise.length === 0, "scripts/demo.sh printed its steps and the block, no warnings, nothing twice", noise);
    expect(block.url.origin === new URL(ctx.base).origin, `the printed URL is on this Label Studio (${ctx.base})`, block.url.href);
    expect(block.command[0] === ".venv/bin/label-studio-pachyderm" && block.command[1] === "pfs", "the printed command is a pfs verb", block.command);
    note(`Open: ${block.url.href}  Log in: ${block.email}  Then run: ${block.command.join(" ")}`);

    await login(page, block.url.origin, block.email, block.password);
    const project = await api(`/api/projects/${block.project}`);
    const sources = await api(`/api/storages/pachyderm?project=${block.project}`);
    const targets = await api(`/api/storages/export/pachyderm?project=${block.project}`);
    expect(/<RectangleLabels\b/.test(project.label_config), "the demo project labels with bounding boxes", project.label_config);
    expect(sources.length === 1 && sources[0].repo === "images" && sources[0].branch === "master", "one source storage, on images@master", sources);
    expect(sources[0].watch_commits === true && sources[0].use_blob_urls === true, "the source watches commits and imports files as tasks", sources[0]);
    // The watcher (inside `label-studio-pachyderm start`) makes its own catch-up sync of a storage it
    // starts to watch, so the storage may be in a sync again: wait for it to settle.
    const source = await ctx.waitForSync(`/api/storages/pachyderm/${sources[0].id}`, "the demo's source storage");
    expect(source.status === "completed" && project.task_number > 0, "the source storage is synced: the project has tasks", { status: source.status, tasks: project.task_number });
    expect(targets.length === 1 && targets[0].repo === "labels", "one target storage, on labels@master", targets);
    demo = { tasks: project.task_number };
    // The first line counts the files on the branch and the tasks left to label (none labeled yet).
    const files = Object.keys(SHAPES).length;
    check(output.includes(`project "Pachyderm demo", ${files} images on images@master, ${files} of them to label.`),
      `the block says ${files} images on images@master, ${files} of them to label`, output.match(/Label Studio is ready:.*/)?.[0]);

    // What a second `bash scripts/demo.sh` does with a running Label Studio: it finds
    // everything again (same project, no second storage, no new task).
    const again = JSON.parse(
      execFileSync(ctx.python, ["-m", "label_studio_pachyderm.demo", "project", "--url", block.url.origin,
        "--email", block.email, "--pachd-address", sources[0].pachd_address], {
        cwd: ctx.repoRoot, encoding: "utf8", env: { ...process.env, LS_PASSWORD: block.password }, timeout: 120_000,
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    check(again.project === block.project && again.created.length === 0 && again.tasks === demo.tasks,
      "a second run reuses the project and its storages and makes no new tasks", again);
    check((await api(`/api/storages/pachyderm?project=${block.project}`)).length === 1, "still one source storage after a second run");
    note(`project ${block.project}: ${demo.tasks} tasks, source ${sources[0].id} (watching), target ${targets[0].id}`);
  });

  await step("every task of the demo project has the demo model's prediction (detections@master)", async () => {
    // The model finishes the output commit within a second of the seed, usually before the demo's
    // sync; one that finished after it is attached by the watcher, which follows detections@master.
    let tasks = [];
    const predicted = await waitUntil(async () => {
      const answer = await api(`/api/tasks?project=${block.project}&page_size=100`);
      tasks = (answer.tasks ?? answer).filter((task) => task.pachyderm_version === undefined || task.pachyderm_version === "current");
      return tasks.length === Object.keys(SHAPES).length && tasks.every((task) => task.total_predictions >= 1);
    }, 120_000, { interval: 1000 });
    expect(predicted, "each of the demo's images has a prediction", tasks.map((task) => ({ id: task.id, predictions: task.total_predictions })));
    note(`${tasks.length} tasks, each with a prediction of ${MODEL_VERSION}`);
  });

  await step('follow it: open the URL, "Label All Tasks": the model\'s box is on the image (a pre-annotation); Submit', async () => {
    await page.goto(block.url.href);
    const [next] = await Promise.all([
      // The label stream asks for its first task with the Data Manager's next_task action.
      page.waitForResponse((response) => /^\/api\/dm\/actions\/?$/.test(new URL(response.url()).pathname) &&
        new URL(response.url()).searchParams.get("id") === "next_task", { timeout: 60_000 }),
      page.getByRole("button", { name: /Label All Tasks/ }).click(),
    ]);
    const task = JSON.parse(await bodyText(next));
    const uri = proxiedUri(String(Object.values(task.data ?? {})[0]), ctx.base);
    const shape = SHAPES[uri.split("/").pop()];
    expect(shape, "the task to label is one of the demo's images", uri);
    // The prediction Label Studio hands the labeling screen: the model's, its box where demo.py drew it.
    const prediction = (task.predictions ?? []).find((entry) => entry.model_version === MODEL_VERSION);
    expect(prediction, `the task comes with a prediction of ${MODEL_VERSION}`, task.predictions);
    const predicted = prediction.result.find((item) => item.type === "rectanglelabels");
    expect(predicted?.value.rectanglelabels?.includes(shape.label) && sameBox(pixelBox(predicted), shape.box),
      `the prediction is a ${shape.label} box around the shape (${shape.box.join(", ")})`, predicted);
    await waitForLabelingImage(page);
    const stage = await labelingStage(page);
    expect(stage && stage.width > 100, "the image stage is on screen", stage);
    // Nothing drawn yet: the region list is the UI's own record that the pre-annotation's box is there.
    const regions = page.locator('[class*="outliner"], [class*="Outliner"]');
    await regions.getByText(shape.label).first().waitFor({ timeout: 30_000 });
    check(await waitForCount(page, regions.getByText(/^(Red|Green|Blue|Orange)$/), 1),
      "the region list shows exactly one box, the model's", await regions.first().innerText().catch(() => ""));
    // Selected, the box shows its outline and handles on the shape it was drawn around (for the screenshot).
    await regions.getByText(shape.label).first().click();
    await shot(page, "00-demo-labeling.png");
    await page.mouse.click(stage.x + 3, stage.y + 3);
    const [posted] = await Promise.all([
      nextResponse(page, "POST", /^\/api\/tasks\/\d+\/annotations\/?$/),
      page.locator('[data-testid="bottombar-submit-button"]').click(),
    ]);
    const postedBody = await bodyText(posted);
    expect(posted.status() === 201, `submitting answered ${posted.status()}`, postedBody);
    const annotation = JSON.parse(postedBody);
    const region = annotation.result.find((item) => item.type === "rectanglelabels");
    expect(region?.value.rectanglelabels?.includes(shape.label), `the annotation holds a ${shape.label} box`, annotation.result);
    check(sameBox(pixelBox(region), pixelBox(predicted), 0.5), "the submitted box is the model's, as pre-annotated", { submitted: region.value, predicted: predicted.value });
    demo.task = annotation.task;
    // For later steps on the demo project (steps/rounds.mjs).
    ctx.ids.demo = { project: block.project, task: annotation.task };
    note(`annotation ${annotation.id} on task ${annotation.task} (${uri}): ${shape.label} box, pre-annotated by ${MODEL_VERSION}`);
  });

  await step("the printed command shows the export commit", async () => {
    const [program, ...args] = block.command;
    const run = () => {
      try {
        return execFileSync(program, args, { cwd: ctx.repoRoot, encoding: "utf8", timeout: 60_000, stdio: ["ignore", "pipe", "pipe"] });
      } catch (error) {
        return String(error.stderr ?? error.message);
      }
    };
    // Auto-export runs when the submit commits; poll with a generous deadline for a loaded machine.
    const deadline = Date.now() + 60_000;
    let output = run();
    while (!/auto-export/.test(output) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      output = run();
    }
    expect(/auto-export/.test(output), "the printed command shows a commit made by the auto-export", output);
    check(/Finished: yes/.test(output), "the export commit is finished", output);
    check(output.includes("Pachyderm demo"), "its description names the project", output);
    const exported = JSON.parse(ctx.pfs("get-file", `labels@master:/${demo.task}.json`));
    check(exported.id === demo.task && (exported.annotations ?? []).length === 1, `labels@master:/${demo.task}.json holds the annotation`, exported);
    note(output.trim().split("\n").join(" | "));

    // Nobody pressed Sync: the target card still counts the auto-export (Label Studio's own
    // "Annotations <exported> (<total> total)" line and a Last Sync).
    await page.goto(`${block.url.origin}/projects/${block.project}/settings/storage`);
    const card = storageCard(page, TARGET_TITLE);
    await card.waitFor({ timeout: 30_000 });
    let line = null;
    const counted = await waitUntil(async () => {
      line = (await card.innerText({ timeout: 1000 })).match(/Annotations\s*(\d+)\s*\((\d+) total\)/);
      return line && line[1] === "1" && line[2] === "1";
    }, 30_000);
    check(counted, 'after the auto-export, with no manual sync, the target card says "Annotations 1 (1 total)"',
      { card: line?.[0], text: await card.innerText().catch(() => "") });
    await shot(page, "01-demo-target-card.png");

    // The export went through: nothing waits (meta.pending_exports 0, no last_export_error), so the
    // card adds no line of its own about waiting changes or an export error.
    const target = (await api(`/api/storages/export/pachyderm?project=${block.project}`)).find((entry) => entry.title === TARGET_TITLE);
    check(target?.meta?.pending_exports === 0 && !target?.meta?.last_export_error, "the target's meta: nothing waiting, no export error", target?.meta);
    check(await waitForNone(page, card.locator('[data-testid="pachyderm-pending-exports"], [data-testid="pachyderm-export-error"]')),
      "the target card shows no waiting changes and no export error", await card.innerText().catch(() => ""));
  });
}
