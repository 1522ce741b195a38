// @vitest-environment jsdom
import { act, createElement } from "react";
import { type Root, createRoot } from "react-dom/client";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  STATUS_ID,
  type CardStorage,
  ago,
  cardStatus,
  duration,
  exportLines,
  parseTime,
  watchLines,
} from "../src/runtime/card-status";

const NOW = Date.parse("2026-12-07T13:00:00Z");
const COMMIT = "1f0c2a9b3d4e4f5a8b6c7d8e9f0a1b2c";
const SOURCE: CardStorage = {
  id: 4,
  type: "pachyderm",
  project: 3,
  repo: "frames",
  branch: "master",
  pach_project: "default",
  watch_commits: true,
  meta: {
    watching: true,
    watch_since: "2026-12-07 12:55:00.512345+00:00",
    watch_last_event: "2026-12-07 12:59:30.004211+00:00",
    watch_last_commit: COMMIT,
    watch_last_error: null,
  },
};
const TARGET: CardStorage = { id: 7, type: "pachyderm", project: 3, repo: "labels", branch: "master", meta: { pending_exports: 0, last_export_error: null } };

// Label Studio 1.23's storage card, reduced to what is read: its `storage` and `target` props and
// the "Sync Storage" button inside a box of its own.
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

type Props = { storage: Record<string, unknown>; target: string };
let root: Root | null = null;
async function renderCards(cards: Props[]) {
  if (!root) {
    const container = document.createElement("div");
    document.body.appendChild(container);
    root = createRoot(container);
  }
  await act(async () => {
    root!.render(createElement("div", null, ...cards.map((props, index) => createElement(Card, { ...props, key: index }))));
  });
}

function server(answers: Record<string, () => unknown>) {
  const calls: string[] = [];
  const fetcher = async (url: string, init: RequestInit) => {
    calls.push(`${init.method ?? "GET"} ${url}`);
    const answer = answers[url];
    return answer
      ? new Response(JSON.stringify(answer()), { status: 200, headers: { "Content-Type": "application/json" } })
      : new Response("{}", { status: 404 });
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

const boxes = () => Array.from(document.querySelectorAll<HTMLElement>(`[data-testid="${STATUS_ID}"]`));
const text = (testid: string) => document.querySelector<HTMLElement>(`[data-testid="${testid}"]`)?.textContent ?? null;

beforeAll(() => {
  (globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
});

afterEach(async () => {
  if (root) await act(async () => root!.unmount());
  root = null;
  document.body.innerHTML = "";
});

describe("the words", () => {
  it("reads the server's times and says how long ago", () => {
    expect(parseTime("2026-12-07 12:55:00.512345+00:00")).toBe(Date.parse("2026-12-07T12:55:00.512Z"));
    expect(parseTime("2026-12-07T12:55:00Z")).toBe(Date.parse("2026-12-07T12:55:00Z"));
    expect(parseTime("soon")).toBeNull();
    expect(parseTime(null)).toBeNull();
    expect([0, 59, 60, 3599, 3600, 86_399, 86_400, 3 * 86_400].map(duration)).toEqual(["0 s", "59 s", "1 min", "59 min", "1 h", "23 h", "1 day", "3 days"]);
    expect(ago("2026-12-07 12:57:00+00:00", NOW)).toBe("3 min ago");
  });

  it("a watching source: where, since when, the last commit seen; the watcher's reason while it has one", () => {
    expect(watchLines(SOURCE, NOW).map((line) => line.text)).toEqual([
      "Watching default/frames@master since 4 min ago",
      "Last commit seen: 1f0c2a9, 30 s ago",
    ]);
    const noCommit = { ...SOURCE, pach_project: "vision", meta: { ...SOURCE.meta, watch_last_commit: null, watch_last_event: null } };
    expect(watchLines(noCommit, NOW).map((line) => line.text)).toEqual(["Watching vision/frames@master since 4 min ago"]);
    const failing = { ...SOURCE, meta: { ...SOURCE.meta, watch_last_error: "cannot reach pachd at grpc://127.0.0.1:1" } };
    const lines = watchLines(failing, NOW);
    expect(lines[2]).toEqual({ text: "Not following the branch: cannot reach pachd at grpc://127.0.0.1:1", testid: "pachyderm-watch-error", error: true });
    expect(watchLines({ ...SOURCE, watch_commits: false }, NOW)).toEqual([]);
    expect(watchLines({ ...SOURCE, meta: { watching: false } }, NOW)).toEqual([]);
  });

  it("a target: the changes waiting and the oldest, the last export error; nothing when none wait", () => {
    expect(exportLines(TARGET, NOW)).toEqual([]);
    expect(exportLines({ ...TARGET, meta: { pending_exports: 1, oldest_pending_seconds: 12.4 } }, NOW).map((line) => line.text)).toEqual([
      "1 annotation change waiting to be exported, oldest 12 s ago",
    ]);
    const failing = { ...TARGET, meta: { pending_exports: 3, oldest_pending_seconds: 95, last_export_error: "3 annotation changes not exported yet: pachd unreachable." } };
    expect(exportLines(failing, NOW).map((line) => line.text)).toEqual([
      "3 annotation changes waiting to be exported, oldest 1 min ago",
      "Last export error: 3 annotation changes not exported yet: pachd unreachable.",
    ]);
    expect(exportLines({ ...TARGET, meta: { pending_exports: 0, last_export_error: "The annotations were exported, but not every export format: x." } }, NOW)).toHaveLength(1);
  });
});

describe("the lines on the cards", () => {
  it("uses the meta of Label Studio's list, under the Sync Storage row, and asks nothing", async () => {
    const { fetcher, calls } = server({});
    await renderCards([
      { storage: { ...SOURCE, title: "Frames" }, target: "import" },
      { storage: { ...TARGET, title: "Labels" }, target: "export" },
      { storage: { id: 9, type: "s3", title: "S3", meta: { pending_exports: 4 } }, target: "export" },
    ]);
    const status = cardStatus(document, fetcher, () => NOW);
    expect(status.scan()).toBe(1);
    expect(boxes()).toHaveLength(1);
    expect(boxes()[0].previousElementSibling?.className).toBe("sync");
    expect(boxes()[0].dataset.storageId).toBe("4");
    expect(text("pachyderm-watching")).toBe("Watching default/frames@master since 4 min ago");
    expect(text("pachyderm-watch-last-commit")).toBe("Last commit seen: 1f0c2a9, 30 s ago");
    status.scan();
    expect(boxes()).toHaveLength(1);
    expect(calls).toEqual([]);
  });

  it("asks the plugin's list once per project and kind when the meta is missing", async () => {
    const { fetcher, calls } = server({
      "/api/storages/export/pachyderm?project=3": () => [
        { ...TARGET, meta: { pending_exports: 2, oldest_pending_seconds: 7 } },
        { ...TARGET, id: 8, meta: { pending_exports: 0, last_export_error: "pachd <b>down</b>" } },
      ],
      "/api/storages/pachyderm?project=3": () => [SOURCE],
    });
    await renderCards([
      { storage: { ...TARGET, meta: undefined, title: "A" }, target: "export" },
      { storage: { ...TARGET, id: 8, meta: {}, title: "B" }, target: "export" },
      { storage: { ...SOURCE, meta: {}, title: "C" }, target: "import" },
    ]);
    const status = cardStatus(document, fetcher, () => NOW);
    expect(status.scan()).toBe(0);
    await until(() => boxes().length === 3, "three cards with lines");
    expect(calls.sort()).toEqual(["GET /api/storages/export/pachyderm?project=3", "GET /api/storages/pachyderm?project=3"]);
    expect(text("pachyderm-pending-exports")).toBe("2 annotation changes waiting to be exported, oldest 7 s ago");
    const error = document.querySelector<HTMLElement>('[data-testid="pachyderm-export-error"]')!;
    expect(error.textContent).toBe("Last export error: pachd <b>down</b>");
    expect(error.querySelector("b")).toBeNull();
    expect(text("pachyderm-watching")).toBe("Watching default/frames@master since 4 min ago");
  });

  it("refreshes with one request per project and kind; redraws when Label Studio draws the card again", async () => {
    let pending = 2;
    const { fetcher, calls } = server({
      "/api/storages/export/pachyderm?project=3": () => [
        { ...TARGET, meta: { pending_exports: pending, oldest_pending_seconds: 40 } },
        { ...TARGET, id: 8, meta: { pending_exports: 0 } },
      ],
    });
    await renderCards([
      { storage: { ...TARGET, title: "A" }, target: "export" },
      { storage: { ...TARGET, id: 8, title: "B" }, target: "export" },
    ]);
    const status = cardStatus(document, fetcher, () => NOW);
    status.scan();
    expect(boxes()).toHaveLength(0);
    await status.refresh();
    expect(calls).toEqual(["GET /api/storages/export/pachyderm?project=3"]);
    expect(text("pachyderm-pending-exports")).toBe("2 annotation changes waiting to be exported, oldest 40 s ago");
    pending = 0;
    await status.refresh();
    expect(calls).toHaveLength(2);
    expect(boxes()).toHaveLength(0);
    // Label Studio's list again (e.g. after a sync): a new storage object carrying its meta.
    await renderCards([
      { storage: { ...TARGET, meta: { pending_exports: 5, oldest_pending_seconds: 3600 }, title: "A" }, target: "export" },
      { storage: { ...TARGET, id: 8, title: "B" }, target: "export" },
    ]);
    status.scan();
    expect(text("pachyderm-pending-exports")).toBe("5 annotation changes waiting to be exported, oldest 1 h ago");
    expect(calls).toHaveLength(2);
  });

  it("shows the watcher's reason while it is set, and removes the lines when there is nothing to say", async () => {
    const { fetcher } = server({});
    const failing = { ...SOURCE, meta: { ...SOURCE.meta, watching: true, watch_last_error: "cannot reach pachd at grpc://127.0.0.1:1" } };
    await renderCards([{ storage: { ...failing, title: "Frames" }, target: "import" }]);
    const status = cardStatus(document, fetcher, () => NOW);
    status.scan();
    expect(text("pachyderm-watch-error")).toBe("Not following the branch: cannot reach pachd at grpc://127.0.0.1:1");
    await renderCards([{ storage: { ...SOURCE, watch_commits: false, title: "Frames" }, target: "import" }]);
    status.scan();
    expect(boxes()).toHaveLength(0);
  });
});
