/**
 * pachd out of reach, in the browser: a project whose source storage dials pachd through a TCP
 * relay this step owns (so the walkthrough's other storages keep their pachd), and that watches
 * the branch. While the relay is down:
 * - the storage card says "Failed" and, clicked, the watcher's reason ("cannot reach pachd");
 * - the labeling screen says why the image is missing (LS's error box, with the plugin's line);
 * once the relay is back, the card returns to "Completed" by itself (nobody presses Sync).
 * On the way it checks the edit form of this storage, saved without a token: an empty field.
 * And the Data Manager's last column, LS's "{ }" button, is headed "Source".
 *
 * @param ctx the walkthrough's context (see walkthrough.spec.mjs)
 * @param options repo (holding the frames to import) and relayPort, a port allowed by
 *   PACHYDERM_ALLOWED_HOSTS that nothing else listens on (run-walkthrough.sh picks it).
 */
import { createServer, connect } from "node:net";
import { sessionRequest as send, settle, storageCard } from "../lib/browser.mjs";
import { waitForNone, waitUntil } from "../lib/wait.mjs";

const PROJECT_TITLE = "Pachyderm outage";
const SOURCE_TITLE = "Frames through a relay";
const CONFIG = '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image"><Label value="Car"/></RectangleLabels></View>';

/** A TCP relay 127.0.0.1:port -> 127.0.0.1:target that can be taken down (connections cut) and brought back. */
function relay(port, target) {
  const sockets = new Set();
  let server = null;
  const track = (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  return {
    up: () =>
      new Promise((resolve, reject) => {
        server = createServer((client) => {
          const upstream = connect(target, "127.0.0.1");
          track(client);
          track(upstream);
          client.pipe(upstream);
          upstream.pipe(client);
          client.on("close", () => upstream.destroy());
          upstream.on("close", () => client.destroy());
        });
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => resolve());
      }),
    down: () =>
      new Promise((resolve) => {
        if (!server) return resolve();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        server = null;
      }),
  };
}

export async function outageSteps(ctx, { repo, relayPort }) {
  const { page, api, step, check, expect, note, shot } = ctx;
  const pfsPort = Number(new URL(ctx.pfsAddress.replace(/^grpc/, "http")).port);
  const link = relay(relayPort, pfsPort);
  const address = `grpc://127.0.0.1:${relayPort}`;
  let project;
  let source;
  let task;

  const storage = () => api(`/api/storages/pachyderm/${source}`);
  const card = () => storageCard(page, SOURCE_TITLE);
  const cardText = () => card().innerText({ timeout: 2000 });

  await step("a project whose watching source storage reaches pachd through a relay; its edit form shows no token", async () => {
    await link.up();
    const created = await send(page, "POST", "/api/projects/", { title: PROJECT_TITLE, label_config: CONFIG });
    expect(created.status === 201, `creating the project answered ${created.status}`, created.text.slice(0, 300));
    project = JSON.parse(created.text).id;
    const saved = await send(page, "POST", "/api/storages/pachyderm", {
      project, title: SOURCE_TITLE, pachd_address: address, repo, branch: "master", use_blob_urls: true,
      recursive_scan: true, watch_commits: true,
    });
    expect(saved.status === 201, `saving the storage answered ${saved.status}`, saved.text.slice(0, 300));
    source = JSON.parse(saved.text).id;
    expect(JSON.parse(saved.text).auth_token_set === false, "the storage says it has no token (auth_token_set: false)", saved.text.slice(0, 300));
    const synced = await send(page, "POST", `/api/storages/pachyderm/${source}/sync`, {});
    expect(synced.status === 200, `sync answered ${synced.status}`, synced.text.slice(0, 300));
    await ctx.waitForSync(`/api/storages/pachyderm/${source}`, "the relayed source storage");
    // The watcher (inside `label-studio-pachyderm start`) takes the new storage up by itself.
    expect(await waitUntil(async () => (await storage()).meta?.watching === true, 90_000), "the watcher follows the storage",
      (await storage()).meta);
    const tasks = await api(`/api/tasks?project=${project}&page_size=10`);
    task = (tasks.tasks ?? tasks)[0].id;

    // The card's "Storage options" -> Edit: LS masks every secret field; this storage has none.
    await page.goto(`${ctx.base}/projects/${project}/settings/storage`);
    await card().waitFor({ timeout: 30_000 });
    await card().getByRole("button", { name: "Storage options" }).click();
    await page.getByText("Edit", { exact: true }).filter({ visible: true }).first().click();
    const token = page.locator('input[name="auth_token"]');
    await token.waitFor({ timeout: 20_000 });
    // The card's menu stays drawn over the form until something else is clicked: the form's heading.
    await page.getByText("Edit Source Storage").first().click().catch(() => {});
    check(await waitUntil(async () => (await token.inputValue()) === ""), "the edit form's auth token is empty for a storage saved without one",
      await token.inputValue().catch((error) => error.message));
    await shot(page, "12-edit-no-token.png");
    await page.keyboard.press("Escape");
    await settle(page);

    // The card says what the storage watches and since when (meta.watching, meta.watch_since).
    await page.goto(`${ctx.base}/projects/${project}/settings/storage`);
    await card().waitFor({ timeout: 30_000 });
    const watching = card().locator('[data-testid="pachyderm-watching"]');
    const said = () => watching.innerText({ timeout: 1000 });
    check(await waitUntil(async () => new RegExp(`^Watching default/${repo}@master since \\d+ (s|min|h) ago$`).test(await said()), 30_000),
      `the card reads "Watching default/${repo}@master since <when> ago"`, await said().catch((error) => error.message));
    const meta = (await storage()).meta ?? {};
    if (meta.watch_last_commit) {
      const last = card().locator('[data-testid="pachyderm-watch-last-commit"]');
      check(await waitUntil(async () => (await last.innerText({ timeout: 1000 })).startsWith(`Last commit seen: ${meta.watch_last_commit.slice(0, 7)}`)),
        "the card names the last commit seen", await last.innerText().catch((error) => error.message));
    }
    check(await waitForNone(page, card().locator('[data-testid="pachyderm-watch-error"]')), "no watcher error on the card while pachd is reachable");
    await shot(page, "19-card-watching.png");
    note(`shown: ${await card().locator('[data-testid="pachyderm-card-status"]').innerText().catch(() => "")}`);
    note(`project ${project}, storage ${source} on ${address} (relay to the PFS server), task ${task}`);
  });

  await step('pachd out of reach: the card says "Failed" with the reason, the labeling screen says why the image is missing', async () => {
    await link.down();
    expect(await waitUntil(async () => (await storage()).status === "failed", 120_000),
      "the storage's status becomes failed while its watcher cannot reach pachd", await storage().then((s) => ({ status: s.status, meta: s.meta })));
    const failed = await storage();
    expect(/cannot reach pachd/.test(failed.traceback ?? ""), "the storage's traceback gives the watcher's reason", failed.traceback);

    await page.goto(`${ctx.base}/projects/${project}/settings/storage`);
    await card().waitFor({ timeout: 30_000 });
    check(await waitUntil(async () => /Status\s*Failed/.test(await cardText())), 'the card reads "Failed"', await cardText().catch(() => ""));
    // On the card itself, the watcher's reason in plain words (meta.watch_last_error).
    const reasonLine = card().locator('[data-testid="pachyderm-watch-error"]');
    check(await waitUntil(async () => /^Not following the branch: .*cannot reach pachd/.test(await reasonLine.innerText({ timeout: 1000 })), 30_000),
      'the card reads "Not following the branch: ... cannot reach pachd ..."', await reasonLine.innerText().catch((error) => error.message));
    await shot(page, "20-card-watch-error.png");
    // Clicking the status ("Failed (View Logs)") opens LS's "Storage Sync Error Log" with the traceback.
    await card().getByText(/^Failed/).click();
    // (Outside the card's own line, which says it too.)
    const logged = page.getByText(/cannot reach pachd/).and(page.locator(':not([data-testid="pachyderm-watch-error"])'));
    check(await waitUntil(async () => (await logged.count()) > 0),
      "clicking the status shows the reason (cannot reach pachd)");
    await shot(page, "13-card-failed-pachd-unreachable.png");
    await page.keyboard.press("Escape");

    await page.goto(`${ctx.base}/projects/${project}/data?task=${task}`);
    const reason = page.locator('[data-testid="pachyderm-media-error"]');
    check(await waitUntil(async () => /^Pachyderm is unreachable: cannot reach pachd at grpc:\/\/127\.0\.0\.1:\d+/.test(await reason.innerText({ timeout: 1000 })), 60_000),
      "the labeling screen says Pachyderm is unreachable, naming the address", await reason.innerText().catch((error) => error.message));
    await shot(page, "14-labeling-pachd-unreachable.png");
    note(`shown: ${await reason.innerText().catch(() => "")}`);
  });

  await step('pachd reachable again: the card is back to "Completed" by itself; the Data Manager\'s { } column is headed "Source"', async () => {
    await link.up();
    expect(await waitUntil(async () => {
      const now = await storage();
      return now.status === "completed" && !now.meta?.watch_last_error;
    }, 120_000), "the status returns to completed once the watcher reaches pachd", await storage().then((s) => ({ status: s.status, meta: s.meta })));
    await page.goto(`${ctx.base}/projects/${project}/settings/storage`);
    await card().waitFor({ timeout: 30_000 });
    check(await waitUntil(async () => /Status\s*Completed/.test(await cardText())), 'the card reads "Completed"', await cardText().catch(() => ""));
    check(await waitForNone(page, card().locator('[data-testid="pachyderm-watch-error"]')), "the card's watcher error line is gone");

    await page.goto(`${ctx.base}/projects/${project}/data`);
    await page.locator(".lsf-table-row").first().waitFor({ timeout: 30_000 });
    const header = page.locator(".lsf-th.lsf-show-source");
    check(await waitUntil(async () => (await header.innerText({ timeout: 1000 })).trim() === "Source"),
      'the Data Manager\'s last column ("{ }", View Task Source) is headed "Source"', await header.innerText().catch((error) => error.message));
    await shot(page, "15-data-manager-source-column.png");
    await link.down();
    // Leave nothing dialing a relay that is gone.
    const removed = await send(page, "DELETE", `/api/storages/pachyderm/${source}`);
    check(removed.status === 204, `deleting the relayed storage answered ${removed.status}`);
  });
}
