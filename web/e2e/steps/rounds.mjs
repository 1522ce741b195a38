/**
 * Labeling rounds, from the storage card: on the demo project, a second target storage writes
 * the demo's labels repo on a working branch (labels@staging) and promotes to labels@master, the
 * branch pipelines read. With one more annotation submitted, the card's "Promote round" asks
 * first (naming both branches), then says "Round N promoted: labels@master now at <commit>
 * (K annotations)"; the rounds API and pfs agree that labels@master holds that round commit.
 * A second round, promoted the same way, lists round 1 with "Roll back to this round": clicked and
 * confirmed, labels@master holds round 1 again.
 *
 * The storage uses the demo target's folder, so labels@master keeps the same files once
 * promoted; the annotation goes on the task the demo step labeled, so the demo still counts
 * the same tasks to label on its next start. The storage is deleted at the end.
 *
 * @param ctx the walkthrough's context (see walkthrough.spec.mjs); ctx.ids.demo is the demo
 *   project and its labeled task (steps/demo-project.mjs).
 */
import { nextResponse, bodyText, sessionRequest as send, storageCard } from "../lib/browser.mjs";
import { waitUntil } from "../lib/wait.mjs";

const TITLE = "Rounds: labels@staging to master";
const WORKING = "staging";
const PROMOTE_TO = "master";

export async function roundsSteps(ctx) {
  const { page, api, step, check, expect, note, shot, pfs } = ctx;
  const { project, task } = ctx.ids.demo;
  let storage;
  let folder = "";
  let round1;

  const exportedAnnotations = (branch) => {
    try {
      const path = `${folder ? `/${folder.replace(/^\/+|\/+$/g, "")}` : ""}/${task}.json`;
      return (JSON.parse(pfs("get-file", `labels@${branch}:${path}`)).annotations ?? []).length;
    } catch {
      return -1;
    }
  };
  /** One more annotation on the demo's labeled task (its first box again); waits until both target storages exported it. */
  const annotateOnce = async () => {
    const existing = await api(`/api/tasks/${task}/annotations`);
    expect(existing.length >= 1, `task ${task} has the demo step's annotation`, existing);
    const posted = await send(page, "POST", `/api/tasks/${task}/annotations`, { result: existing[0].result, lead_time: 1 });
    expect(posted.status === 201, `submitting an annotation answered ${posted.status}`, posted.text.slice(0, 300));
    const annotations = existing.length + 1;
    // Both target storages export it by themselves (auto-export). The demo's own commits on
    // labels@master first, so nothing lands on master after the promote.
    expect(await waitUntil(async () => exportedAnnotations(PROMOTE_TO) === annotations, 90_000),
      `the demo's target storage exported the annotation to labels@${PROMOTE_TO}`, exportedAnnotations(PROMOTE_TO));
    expect(await waitUntil(async () => exportedAnnotations(WORKING) === annotations, 90_000),
      `the rounds storage exported it to labels@${WORKING}`, exportedAnnotations(WORKING));
    return annotations;
  };
  /** Clicks the panel's confirm button; returns the promote's answer (fails unless 200). */
  const confirmPromote = async (name) => {
    const [answer] = await Promise.all([
      nextResponse(page, "POST", new RegExp(`^/api/storages/export/pachyderm/${storage.id}/promote/?$`)),
      panel().getByRole("button", { name, exact: true }).click(),
    ]);
    const text = await bodyText(answer);
    expect(answer.status() === 200, `the promote answered ${answer.status()}`, text.slice(0, 500));
    return { outcome: JSON.parse(text), sent: JSON.parse(answer.request().postData() ?? "{}") };
  };
  const said = () => panel().locator('[data-testid="pachyderm-promote-outcome"]');
  const plural = (count) => `${count} annotation${count === 1 ? "" : "s"}`;
  const card = () => storageCard(page, TITLE);
  const panel = () => card().locator('[data-testid="pachyderm-rounds"]');

  await step(`a target storage on the demo's labels repo: annotations to labels@${WORKING}, promoted to labels@${PROMOTE_TO}; one more annotation`, async () => {
    const targets = await api(`/api/storages/export/pachyderm?project=${project}`);
    const demoTarget = targets.find((entry) => entry.repo === "labels");
    expect(demoTarget, "the demo project has its target storage on labels", targets);
    folder = demoTarget.prefix ?? "";
    const saved = await send(page, "POST", "/api/storages/export/pachyderm", {
      project, title: TITLE, pachd_address: demoTarget.pachd_address, repo: "labels", branch: WORKING,
      promote_to: PROMOTE_TO, prefix: folder, can_delete_objects: false,
    });
    expect(saved.status === 201, `saving the target storage answered ${saved.status}`, saved.text.slice(0, 400));
    storage = JSON.parse(saved.text);
    expect(storage.promote_to === PROMOTE_TO && storage.branch === WORKING, `the storage says branch ${WORKING}, promote_to ${PROMOTE_TO}`, storage);
    const synced = await send(page, "POST", `/api/storages/export/pachyderm/${storage.id}/sync`, {});
    expect(synced.status === 200, `sync answered ${synced.status}`, synced.text.slice(0, 300));
    await ctx.waitForSync(`/api/storages/export/pachyderm/${storage.id}`, "the rounds target storage");
    const annotations = await annotateOnce();
    const rounds = await api(`/api/storages/export/pachyderm/${storage.id}/rounds`);
    expect(rounds.rounds.length === 0, "no round yet", rounds);
    note(`storage ${storage.id} on labels@${WORKING} (folder "${folder}"), promote to labels@${PROMOTE_TO}; task ${task} has ${annotations} annotations`);
  });

  await step(`the card's "Promote round": asked first, then "Round 1 promoted: labels@${PROMOTE_TO} now at <commit>"; labels@${PROMOTE_TO} holds the round`, async () => {
    await page.goto(`${ctx.base}/projects/${project}/settings/storage`);
    await card().waitFor({ timeout: 30_000 });
    await panel().waitFor({ timeout: 30_000 });
    check(await waitUntil(async () => (await panel().getByText("No round yet.").count()) === 1), "the card says there is no round yet",
      await panel().innerText().catch((error) => error.message));
    await panel().getByRole("button", { name: "Promote round" }).click();
    const question = panel().locator('[data-testid="pachyderm-promote-question"]');
    await question.waitFor({ timeout: 10_000 });
    const asked = await question.innerText();
    expect(asked.includes(`labels@${PROMOTE_TO}`) && asked.includes(`labels@${WORKING}`), "the question names both branches", asked);
    check((await panel().getByText(/^Also move the input branch \(labeled\)/).count()) === 1, 'the question offers "Also move the input branch"');
    await card().scrollIntoViewIfNeeded();
    await shot(page, "16-card-promote-confirm.png");

    const { outcome, sent } = await confirmPromote("Promote");
    expect(sent.with_inputs === false && !sent.commit, "the request asked for a new round, without moving the inputs", sent);
    const expected = `Round 1 promoted: labels@${PROMOTE_TO} now at ${outcome.commit.slice(0, 7)} (${plural(outcome.round.annotations)})`;
    check(await waitUntil(async () => (await said().innerText({ timeout: 1000 })) === expected), `the card says "${expected}"`,
      await said().innerText().catch((error) => error.message));
    const annotations = (await api(`/api/tasks/${task}/annotations`)).length;
    check(outcome.round.annotations === annotations, `the round holds the project's ${annotations} annotations`, outcome.round);
    // The rounds list is read again: the new round, marked as what labels@master holds.
    const current = panel().locator(`[data-testid="pachyderm-round"][data-commit="${outcome.commit}"]`);
    check(await waitUntil(async () => (await current.innerText({ timeout: 1000 })).includes(`now labels@${PROMOTE_TO}`)),
      `the card lists round 1 as what labels@${PROMOTE_TO} holds`, await panel().innerText().catch((error) => error.message));
    await shot(page, "17-card-round-promoted.png");

    const rounds = await api(`/api/storages/export/pachyderm/${storage.id}/rounds`);
    expect(rounds.current === outcome.commit && rounds.rounds[0]?.commit === outcome.commit && rounds.rounds[0]?.current === true,
      `GET rounds: labels@${PROMOTE_TO} (current) is the round commit`, rounds);
    const head = pfs("list-commit", `labels@${PROMOTE_TO}`, "-n", "1");
    expect(head.includes(outcome.commit), `pfs list-commit labels@${PROMOTE_TO}: its head is the round commit`, head);
    check(exportedAnnotations(PROMOTE_TO) === annotations, `labels@${PROMOTE_TO} holds task ${task}'s ${annotations} annotations`, exportedAnnotations(PROMOTE_TO));
    note(`shown: ${await said().innerText().catch(() => "")}; moved ${outcome.moved.map((move) => `${move.branch} ${move.from?.slice(0, 7) ?? "-"} -> ${move.to.slice(0, 7)}`).join(", ")}`);
    round1 = outcome.commit;
  });

  await step(`round 2 promoted from the card, then "Roll back to this round" on round 1: labels@${PROMOTE_TO} holds round 1 again`, async () => {
    const annotations = await annotateOnce();
    await page.reload();
    await panel().waitFor({ timeout: 30_000 });
    await panel().getByRole("button", { name: "Promote round" }).click();
    const { outcome: second } = await confirmPromote("Promote");
    expect(second.round.round === 2 && second.round.annotations === annotations && second.commit !== round1,
      `a second round, with the ${annotations} annotations`, second.round);
    check(await waitUntil(async () => (await said().innerText({ timeout: 1000 })).startsWith(`Round 2 promoted: labels@${PROMOTE_TO} now at ${second.commit.slice(0, 7)}`)),
      "the card says round 2 is promoted", await said().innerText().catch((error) => error.message));

    // The list has both rounds now; round 1 offers the roll back.
    const older = panel().locator(`[data-testid="pachyderm-round"][data-commit="${round1}"]`);
    await older.getByRole("button", { name: "Roll back to this round" }).waitFor({ timeout: 30_000 });
    await older.getByRole("button", { name: "Roll back to this round" }).click();
    const asked = await panel().locator('[data-testid="pachyderm-promote-question"]').innerText({ timeout: 10_000 });
    expect(asked.includes(`round 1 (commit ${round1.slice(0, 7)}`), "the question names round 1 and its commit", asked);
    const { outcome: back, sent } = await confirmPromote("Roll back");
    expect(sent.commit === round1, "the roll back sent round 1's commit", sent);
    const expected = `Rolled back to round 1: labels@${PROMOTE_TO} now at ${round1.slice(0, 7)} (${plural(back.round.annotations)})`;
    check(await waitUntil(async () => (await said().innerText({ timeout: 1000 })) === expected), `the card says "${expected}"`,
      await said().innerText().catch((error) => error.message));
    check(await waitUntil(async () => (await older.innerText({ timeout: 1000 })).includes(`now labels@${PROMOTE_TO}`)),
      `the card lists round 1 as what labels@${PROMOTE_TO} holds again`, await panel().innerText().catch((error) => error.message));
    // Round 2 is newer than the round labels@master holds now: it is offered again, not as a roll back.
    const newer = panel().locator(`[data-testid="pachyderm-round"][data-commit="${second.commit}"]`);
    check(await waitUntil(async () => (await newer.getByRole("button", { name: "Promote this round again" }).count()) === 1),
      'the card offers round 2 as "Promote this round again"', await newer.innerText().catch((error) => error.message));
    await shot(page, "18-card-rolled-back.png");
    const rounds = await api(`/api/storages/export/pachyderm/${storage.id}/rounds`);
    expect(rounds.current === round1 && rounds.rounds.length === 2 && rounds.rounds[1].current === true,
      `GET rounds: labels@${PROMOTE_TO} is round 1 again`, rounds);
    expect(pfs("list-commit", `labels@${PROMOTE_TO}`, "-n", "1").includes(round1), `pfs: labels@${PROMOTE_TO}'s head is round 1's commit`);
    note(`shown: ${await said().innerText().catch(() => "")}`);

    // Leave the demo's labels@master holding every annotation (round 2), and no second target storage.
    const forward = await send(page, "POST", `/api/storages/export/pachyderm/${storage.id}/promote`, { commit: second.commit });
    check(forward.status === 200 && JSON.parse(forward.text).commit === second.commit, `promoting round 2 again answered ${forward.status}`, forward.text.slice(0, 300));
    const removed = await send(page, "DELETE", `/api/storages/export/pachyderm/${storage.id}`);
    check(removed.status === 204, `deleting the rounds storage answered ${removed.status}`);
  });
}
