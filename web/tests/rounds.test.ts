// @vitest-environment jsdom
import { act, createElement } from "react";
import { type Root, createRoot } from "react-dom/client";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  PANEL_ID,
  type PromoteOutcome,
  type RoundEntry,
  type TargetStorage,
  cardStorageOf,
  confirmText,
  outcomeLine,
  refusalLine,
  roundAction,
  roundLine,
  roundsPanels,
} from "../src/runtime/rounds";

const ROUND_1 = "1f0c2a9b3d4e4f5a8b6c7d8e9f0a1b2c";
const ROUND_2 = "9a8b7c6d5e4f4a3b8c2d1e0f9a8b7c6d";
const STORAGE: TargetStorage = { id: 7, type: "pachyderm", project: 3, repo: "labels", branch: "staging", pach_project: "default", promote_to: "master" };

const card = (round: number, annotations: number) => ({ round, annotations, labels: { Red: annotations } });
const ROUNDS = {
  promote_to: "master",
  current: ROUND_1,
  rounds: [
    { commit: ROUND_2, current: false, started: "2026-12-07T13:40:00+00:00", card: card(2, 3) },
    { commit: ROUND_1, current: true, started: "2026-12-07T12:00:00+00:00", card: card(1, 1) },
  ],
};

// Label Studio 1.23's storage card, reduced to what the panel reads: its `storage` and `target`
// props, and the "Sync Storage" button inside a box of its own.
function Card({ storage }: { storage: Record<string, unknown>; target: string }) {
  return createElement(
    "div",
    { className: "card" },
    createElement("h3", null, String(storage.title ?? "Untitled")),
    createElement(
      "div",
      { className: "sync" },
      createElement("div", { className: "mt-base" }, createElement("button", { "aria-label": "Sync Storage" }, "Sync Storage")),
    ),
  );
}

let root: Root | null = null;
async function renderCards(cards: { storage: Record<string, unknown>; target: string }[]) {
  const container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
  await act(async () => {
    root!.render(createElement("div", null, ...cards.map((props, index) => createElement(Card, { ...props, key: index }))));
  });
}

interface Call {
  url: string;
  method: string;
  body: unknown;
  headers: Record<string, string>;
}

/** A stand-in for the plugin's API: answers by path, records every request. */
function server(answers: Record<string, (call: Call) => { status: number; body: unknown }>) {
  const calls: Call[] = [];
  const fetcher = async (url: string, init: RequestInit) => {
    const call = {
      url,
      method: init.method ?? "GET",
      body: init.body ? JSON.parse(String(init.body)) : undefined,
      headers: (init.headers ?? {}) as Record<string, string>,
    };
    calls.push(call);
    const key = `${call.method} ${url}`;
    const answer = answers[key]?.(call) ?? { status: 404, body: { detail: "Not found." } };
    return new Response(JSON.stringify(answer.body), { status: answer.status, headers: { "Content-Type": "application/json" } });
  };
  return { fetcher, calls };
}

async function until(condition: () => boolean, what: string) {
  for (let attempt = 0; attempt < 2000; attempt += 1) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const panel = () => document.querySelector<HTMLElement>(`[data-testid="${PANEL_ID}"]`);
const byTestId = (id: string) => document.querySelector<HTMLElement>(`[data-testid="${id}"]`);
const click = (id: string) => byTestId(id)!.click();

beforeAll(() => {
  (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
});

afterEach(async () => {
  if (root) await act(async () => root!.unmount());
  root = null;
  document.body.innerHTML = "";
  document.cookie = "csrftoken=; expires=Thu, 01 Jan 1970 00:00:00 GMT";
});

describe("the words", () => {
  it("names the branch that moves and the working branch before a promote", () => {
    expect(confirmText(STORAGE)).toBe(
      "Promote a round: every annotation submitted so far is committed to labels@staging as a round, and labels@master is moved to it. Pipelines reading labels@master see this round.",
    );
    expect(confirmText({ ...STORAGE, pach_project: "vision" })).toContain("vision/labels@master");
    expect(confirmText(STORAGE, ROUNDS.rounds[1] as RoundEntry)).toBe(
      "Roll back: move labels@master to round 1 (commit 1f0c2a9 on labels@staging)? Pipelines reading labels@master see that round's annotations again.",
    );
  });

  it("says which round, where the branch is now and how many annotations it holds", () => {
    const outcome: PromoteOutcome = {
      commit: ROUND_2,
      rollback: false,
      moved: [{ branch: "default/labels@master", from: ROUND_1, to: ROUND_2 }],
      round: card(2, 3),
    };
    expect(outcomeLine(STORAGE, outcome)).toBe("Round 2 promoted: labels@master now at 9a8b7c6 (3 annotations)");
    expect(outcomeLine(STORAGE, { ...outcome, round: card(1, 1), commit: ROUND_1, rollback: true })).toBe(
      "Rolled back to round 1: labels@master now at 1f0c2a9 (1 annotation)",
    );
    const withInputs = { ...outcome, moved: [...outcome.moved, { branch: "default/images@labeled", from: null, to: ROUND_1 }] };
    expect(outcomeLine(STORAGE, withInputs)).toBe(
      "Round 2 promoted: labels@master now at 9a8b7c6 (3 annotations); also moved images@labeled to 1f0c2a9",
    );
  });

  it("gives the server's reason when nothing moved: the 400's field message, a 409's or 503's detail", () => {
    const lsError = {
      id: "x",
      status_code: 400,
      detail: "Validation error",
      validation_errors: { promote_to: ['This target storage has no "Promote to" branch: set one to use rounds'] },
    };
    expect(refusalLine(400, lsError)).toBe('Not promoted: This target storage has no "Promote to" branch: set one to use rounds');
    expect(refusalLine(409, { detail: "another promote of default/labels@staging is running; try again when it has finished", moved: [] })).toBe(
      "Not promoted: another promote of default/labels@staging is running; try again when it has finished",
    );
    expect(refusalLine(503, { detail: "cannot reach pachd at grpc://localhost:1; nothing was moved" }, true)).toBe(
      "Not rolled back: cannot reach pachd at grpc://localhost:1; nothing was moved",
    );
    expect(refusalLine(502, null)).toBe("Not promoted: Label Studio answered 502");
  });

  it("lists a round by number, short commit, annotations and start", () => {
    expect(roundLine(ROUNDS.rounds[0] as RoundEntry)).toBe("Round 2 · 9a8b7c6 · 3 annotations · 2026-12-07 13:40");
    expect(roundLine({ commit: ROUND_1, current: false, started: null, card: {} })).toBe("Round ? · 1f0c2a9 · annotations");
  });
});

describe("the card's storage", () => {
  it("is read off the props of the card around its Sync Storage button", async () => {
    await renderCards([{ storage: { ...STORAGE, title: "Rounds" }, target: "export" }]);
    const found = cardStorageOf(document.querySelector('button[aria-label="Sync Storage"]')!);
    expect(found?.target).toBe("export");
    expect(found?.storage).toMatchObject({ id: 7, promote_to: "master" });
    expect(cardStorageOf(document.createElement("button"))).toBeNull();
  });
});

describe("the panel", () => {
  const roundsAnswer = () => ({ status: 200, body: ROUNDS });

  it("shows only on a Pachyderm target storage with promote_to, and lists its rounds", async () => {
    const { fetcher, calls } = server({ "GET /api/storages/export/pachyderm/7/rounds": roundsAnswer });
    await renderCards([
      { storage: { ...STORAGE, title: "Rounds" }, target: "export" },
      { storage: { ...STORAGE, id: 8, promote_to: "", title: "No rounds" }, target: "export" },
      { storage: { ...STORAGE, id: 9, title: "A source" }, target: "import" },
      { storage: { id: 10, type: "s3", promote_to: "master", title: "S3" }, target: "export" },
    ]);
    const panels = roundsPanels(document, fetcher);
    expect(panels.scan()).toBe(1);
    expect(document.querySelectorAll(`[data-testid="${PANEL_ID}"]`)).toHaveLength(1);
    expect(panel()!.dataset.storageId).toBe("7");
    // Right after the Sync Storage button's row, inside the card.
    expect(panel()!.previousElementSibling?.className).toBe("sync");
    expect(panel()!.parentElement?.className).toBe("card");
    await until(() => document.querySelectorAll('[data-testid="pachyderm-round"]').length === 2, "the rounds");
    const items = Array.from(document.querySelectorAll<HTMLElement>('[data-testid="pachyderm-round"]'));
    // Round 2 is newer than the current round 1 (a roll back happened): it is promoted again, not rolled back to.
    expect(items[0].textContent).toBe("Round 2 · 9a8b7c6 · 3 annotations · 2026-12-07 13:40Promote this round again");
    expect(items[1].textContent).toBe("Round 1 · 1f0c2a9 · 1 annotation · 2026-12-07 12:00 · now labels@master");
    expect(items[1].querySelector("button")).toBeNull();
    expect(calls.map((call) => `${call.method} ${call.url}`)).toEqual(["GET /api/storages/export/pachyderm/7/rounds"]);
    // A second scan (any change on the page) keeps the one panel and asks nothing again.
    panels.scan();
    expect(document.querySelectorAll(`[data-testid="${PANEL_ID}"]`)).toHaveLength(1);
    expect(calls).toHaveLength(1);
  });

  it("asks first, then promotes with the CSRF token and says what moved", async () => {
    document.cookie = "csrftoken=tok123";
    const after = {
      ...ROUNDS,
      current: ROUND_2,
      rounds: ROUNDS.rounds.map((entry) => ({ ...entry, current: entry.commit === ROUND_2 })),
    };
    let promoted = false;
    const { fetcher, calls } = server({
      "GET /api/storages/export/pachyderm/7/rounds": () => ({ status: 200, body: promoted ? after : ROUNDS }),
      "POST /api/storages/export/pachyderm/7/promote": () => {
        promoted = true;
        return {
          status: 200,
          body: { commit: ROUND_2, rollback: false, moved: [{ branch: "default/labels@master", from: ROUND_1, to: ROUND_2 }], round: card(2, 3), promoted_at: "now" },
        };
      },
    });
    await renderCards([{ storage: { ...STORAGE, title: "Rounds" }, target: "export" }]);
    roundsPanels(document, fetcher).scan();
    await until(() => byTestId("pachyderm-round") !== null, "the rounds");

    click("pachyderm-promote");
    expect(byTestId("pachyderm-promote-question")!.textContent).toContain("labels@master is moved to it");
    expect(byTestId("pachyderm-promote-question")!.textContent).toContain("labels@staging");
    expect(byTestId("pachyderm-promote-confirm")!.textContent).toContain("Also move the input branch (labeled)");
    expect(calls.filter((call) => call.method === "POST")).toHaveLength(0);
    const inputs = byTestId("pachyderm-promote-with-inputs") as HTMLInputElement;
    inputs.click();
    expect(inputs.checked).toBe(true);
    click("pachyderm-promote-confirm-button");

    await until(() => byTestId("pachyderm-promote-outcome") !== null, "the outcome");
    expect(byTestId("pachyderm-promote-outcome")!.textContent).toBe("Round 2 promoted: labels@master now at 9a8b7c6 (3 annotations)");
    const post = calls.find((call) => call.method === "POST")!;
    expect(post.body).toEqual({ with_inputs: true, inputs_branch: "labeled" });
    expect(post.headers["X-CSRFToken"]).toBe("tok123");
    // The rounds are read again: round 2 is now the current one.
    await until(() => document.querySelector('[data-testid="pachyderm-round"] strong')?.closest("li")?.dataset.commit === ROUND_2, "the new current round");
  });

  it("rolls back to an older round with its commit", async () => {
    const { fetcher, calls } = server({
      "GET /api/storages/export/pachyderm/7/rounds": () => ({
        status: 200,
        body: { ...ROUNDS, current: ROUND_2, rounds: ROUNDS.rounds.map((entry) => ({ ...entry, current: entry.commit === ROUND_2 })) },
      }),
      "POST /api/storages/export/pachyderm/7/promote": () => ({
        status: 200,
        body: { commit: ROUND_1, rollback: true, moved: [{ branch: "default/labels@master", from: ROUND_2, to: ROUND_1 }], round: card(1, 1) },
      }),
    });
    await renderCards([{ storage: { ...STORAGE, title: "Rounds" }, target: "export" }]);
    roundsPanels(document, fetcher).scan();
    await until(() => byTestId("pachyderm-round-rollback") !== null, "the rollback action");
    click("pachyderm-round-rollback");
    expect(byTestId("pachyderm-promote-question")!.textContent).toContain("move labels@master to round 1 (commit 1f0c2a9");
    click("pachyderm-promote-cancel");
    expect(byTestId("pachyderm-promote-confirm")).toBeNull();
    click("pachyderm-round-rollback");
    click("pachyderm-promote-confirm-button");
    await until(() => byTestId("pachyderm-promote-outcome") !== null, "the outcome");
    expect(byTestId("pachyderm-promote-outcome")!.textContent).toBe("Rolled back to round 1: labels@master now at 1f0c2a9 (1 annotation)");
    expect(calls.find((call) => call.method === "POST")!.body).toEqual({ with_inputs: false, inputs_branch: "labeled", commit: ROUND_1 });
  });

  it("after a roll back, offers the newer round as \"Promote this round again\", the older one as a roll back", async () => {
    const ROUND_3 = "3c3c2a9b3d4e4f5a8b6c7d8e9f0a1b2c";
    const list = {
      promote_to: "master",
      current: ROUND_2,
      rounds: [
        { commit: ROUND_3, current: false, started: null, card: card(3, 5) },
        { commit: ROUND_2, current: true, started: null, card: card(2, 3) },
        { commit: ROUND_1, current: false, started: null, card: card(1, 1) },
      ],
    };
    const { fetcher, calls } = server({
      "GET /api/storages/export/pachyderm/7/rounds": () => ({ status: 200, body: list }),
      "POST /api/storages/export/pachyderm/7/promote": () => ({
        status: 200,
        body: { commit: ROUND_3, rollback: false, moved: [{ branch: "default/labels@master", from: ROUND_2, to: ROUND_3 }], round: card(3, 5) },
      }),
    });
    await renderCards([{ storage: { ...STORAGE, title: "Rounds" }, target: "export" }]);
    roundsPanels(document, fetcher).scan();
    await until(() => document.querySelectorAll('[data-testid="pachyderm-round"]').length === 3, "the rounds");
    const labels = Array.from(document.querySelectorAll<HTMLElement>('[data-testid="pachyderm-round"]')).map(
      (item) => item.querySelector("button")?.textContent ?? null,
    );
    expect(labels).toEqual(["Promote this round again", null, "Roll back to this round"]);
    click("pachyderm-round-again");
    expect(byTestId("pachyderm-promote-question")!.textContent).toBe(
      "Promote again: move labels@master to round 3 (commit 3c3c2a9 on labels@staging)? Pipelines reading labels@master see that round's annotations again.",
    );
    expect(byTestId("pachyderm-promote-confirm-button")!.textContent).toBe("Promote");
    click("pachyderm-promote-confirm-button");
    await until(() => byTestId("pachyderm-promote-outcome") !== null, "the outcome");
    expect(byTestId("pachyderm-promote-outcome")!.textContent).toBe("Round 3 promoted: labels@master now at 3c3c2a9 (5 annotations)");
    expect(calls.find((call) => call.method === "POST")!.body).toEqual({ with_inputs: false, inputs_branch: "labeled", commit: ROUND_3 });
  });

  it("labels by position relative to the current round; none current: every round rolls back", () => {
    const entry = (commit: string, current: boolean) => ({ commit, current, started: null, card: {} });
    const rounds = [entry("c", false), entry("b", true), entry("a", false)];
    expect([0, 1, 2].map((index) => roundAction(rounds, index))).toEqual(["again", "current", "rollback"]);
    const none = [entry("b", false), entry("a", false)];
    expect([0, 1].map((index) => roundAction(none, index))).toEqual(["rollback", "rollback"]);
  });

  it("shows a refusal's reason as text, never as markup", async () => {
    const { fetcher } = server({
      "GET /api/storages/export/pachyderm/7/rounds": roundsAnswer,
      "POST /api/storages/export/pachyderm/7/promote": () => ({
        status: 503,
        body: { detail: "cannot reach pachd at <img src=x onerror=alert(1)>; nothing was moved", moved: [] },
      }),
    });
    await renderCards([{ storage: { ...STORAGE, title: "Rounds" }, target: "export" }]);
    roundsPanels(document, fetcher).scan();
    click("pachyderm-promote");
    click("pachyderm-promote-confirm-button");
    await until(() => byTestId("pachyderm-promote-outcome") !== null, "the outcome");
    const outcome = byTestId("pachyderm-promote-outcome")!;
    expect(outcome.textContent).toBe("Not promoted: cannot reach pachd at <img src=x onerror=alert(1)>; nothing was moved");
    expect(outcome.getAttribute("role")).toBe("alert");
    expect(panel()!.querySelector("img")).toBeNull();
  });

  it("takes promote_to from the plugin's list when Label Studio's list has none", async () => {
    const { fetcher, calls } = server({
      "GET /api/storages/export/pachyderm?project=3": () => ({ status: 200, body: [{ ...STORAGE }, { ...STORAGE, id: 8, promote_to: "" }] }),
      "GET /api/storages/export/pachyderm/7/rounds": roundsAnswer,
    });
    const { promote_to: _none, ...withoutPromote } = STORAGE;
    await renderCards([
      { storage: { ...withoutPromote, title: "Rounds" }, target: "export" },
      { storage: { ...withoutPromote, id: 8, title: "No rounds" }, target: "export" },
    ]);
    roundsPanels(document, fetcher).scan();
    await until(() => panel() !== null, "the panel");
    await until(() => byTestId("pachyderm-round") !== null, "the rounds");
    expect(document.querySelectorAll(`[data-testid="${PANEL_ID}"]`)).toHaveLength(1);
    expect(calls.filter((call) => call.url.includes("?project=3"))).toHaveLength(1);
  });

  it("says so when the rounds cannot be read", async () => {
    const { fetcher } = server({
      "GET /api/storages/export/pachyderm/7/rounds": () => ({ status: 503, body: { detail: "cannot reach pachd at grpc://localhost:1" } }),
    });
    await renderCards([{ storage: { ...STORAGE, title: "Rounds" }, target: "export" }]);
    roundsPanels(document, fetcher).scan();
    await until(() => byTestId("pachyderm-rounds-error") !== null, "the error");
    expect(byTestId("pachyderm-rounds-error")!.textContent).toBe("Rounds not shown: cannot reach pachd at grpc://localhost:1");
    expect(byTestId("pachyderm-promote")).not.toBeNull();
  });
});
