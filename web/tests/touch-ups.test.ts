// @vitest-environment jsdom
import { afterEach, describe, expect, it } from "vitest";
import {
  TEXTS,
  type WizardView,
  applyTouchUps,
  previewWarning,
  storageLocation,
  undoTouchUps,
} from "../src/runtime/touch-ups";

// The parts of Label Studio 1.23's wizard markup the touch-ups read, as it renders them.
const WIZARD = `
  <div class="modal">
    <h2>Add Target Storage</h2><div>Import your data from cloud storage providers</div>
    <input name="repo" placeholder="images">
    <div><h2>Configure Import Settings &amp; Preview Data</h2><p>Set up filters</p></div>
    <div data-testid="select-trigger-use_blob_urls">Tasks - Treat each JSON, JSONL, or Parquet as one or more task definitions per file</div>
    <input name="regex_filter" placeholder=".*\\.(json|jsonl|parquet)$ - imports task definitions">
    <span>Common filters:</span><button type="button">JSON</button><button type="button">JSONL</button>
    <button type="button">Parquet</button><button type="button">All Tasks Files</button>
    <div><label>Bucket Prefix (optional)</label><p>Specify the folder path within your bucket where your files are located</p>
      <input name="prefix" placeholder="path/to/files/ or leave empty for root"></div>
    <div class="grid">
      <div><div>cats/1.png</div><div><span>5 minutes ago</span><span class="mx-0.5">•</span><span>1.2 KB</span></div></div>
      <div><div>... preview limit reached ...</div><div><span></span><span class="mx-0.5">•</span><span></span></div></div>
    </div>
    <div><p>Storage Location</p><p>Not specified</p></div>
  </div>`;

function render(): Element {
  document.body.innerHTML = WIZARD;
  return document.body.firstElementChild as Element;
}

const view = (over: Partial<WizardView> = {}): WizardView => ({
  provider: "pachyderm",
  target: "import",
  formData: { pach_project: "default", repo: "images", branch: "master", prefix: "", use_blob_urls: false },
  previewKeys: null,
  ...over,
});

const text = (root: Element) => root.textContent?.replace(/\s+/g, " ") ?? "";
const visible = (root: Element, label: string) =>
  Array.from(root.querySelectorAll<HTMLElement>("button")).find((b) => b.textContent === label)?.style.display !== "none";

afterEach(() => {
  document.body.innerHTML = "";
});

describe("storageLocation", () => {
  it("names project/repo@branch:/prefix, a pinned commit instead of the branch", () => {
    expect(storageLocation({ pach_project: "vision", repo: "frames", branch: "dev", prefix: "/cam1/" })).toBe("vision/frames@dev:/cam1/");
    expect(storageLocation({ repo: "images", commit: "a".repeat(32), branch: "master" })).toBe(`default/images@${"a".repeat(32)}:/`);
    expect(storageLocation({ repo: "images", branch: "" })).toBe("default/images@master:/");
  });
});

describe("previewWarning", () => {
  it("warns when Tasks would read media files, and says which method fits", () => {
    const message = previewWarning(view({ previewKeys: ["a.png", "b.json", null] }));
    expect(message).toContain("1 of the 2 listed files are not task files (.json or .jsonl)");
    expect(message).toContain('choose Import Method "Files"');
    expect(previewWarning(view({ previewKeys: ["a.png"] }))).toContain("None of the listed files is a task file");
  });

  it("stays quiet for task files, for Files, for targets and before a preview", () => {
    expect(previewWarning(view({ previewKeys: ["a.json", "b.JSONL"] }))).toBeNull();
    expect(previewWarning(view({ previewKeys: ["a.png"], formData: { use_blob_urls: true } }))).toBeNull();
    expect(previewWarning(view({ previewKeys: ["a.png"], target: "export" }))).toBeNull();
    expect(previewWarning(view())).toBeNull();
  });
});

describe("applyTouchUps", () => {
  it("corrects a Pachyderm target's subtitle and repo placeholder, and offers no Parquet", () => {
    const root = render();
    applyTouchUps(root, view({ target: "export" }));
    expect(text(root)).toContain(TEXTS.targetSubtitle);
    expect(text(root)).not.toContain("Import your data");
    expect(root.querySelector('input[name="repo"]')?.getAttribute("placeholder")).toBe("labels");
    expect(text(root)).toContain(TEXTS.tasksOption);
    expect(root.querySelector('[data-testid="select-trigger-use_blob_urls"]')?.textContent).not.toMatch(/parquet/i);
    expect(root.querySelector('input[name="regex_filter"]')?.getAttribute("placeholder")).toBe(TEXTS.tasksPlaceholder);
    expect(visible(root, "Parquet")).toBe(false);
    expect(visible(root, "All Tasks Files")).toBe(false);
    expect(visible(root, "JSONL")).toBe(true);
  });

  it("keeps a source's subtitle, fills the review step's location, shows and clears the preview warning", () => {
    const root = render();
    applyTouchUps(root, view({ previewKeys: ["cats/1.png"], formData: { repo: "images", branch: "master", prefix: "cats" } }));
    expect(text(root)).toContain("Import your data from cloud storage providers");
    expect(text(root)).toContain("Storage Locationdefault/images@master:/cats");
    expect(text(root)).not.toContain("Not specified");
    const warning = root.querySelector('[data-testid="pachyderm-preview-warning"]');
    expect(warning?.getAttribute("role")).toBe("alert");
    expect(warning?.parentElement?.querySelector("h2")?.textContent).toContain("Import Settings");

    applyTouchUps(root, view({ previewKeys: ["cats/1.png"], formData: { use_blob_urls: true } }));
    expect(root.querySelector('[data-testid="pachyderm-preview-warning"]')).toBeNull();
  });

  it("speaks of a path prefix in the repo, not of a bucket, on a source's import settings step", () => {
    const root = render();
    applyTouchUps(root, view({ formData: { pach_project: "vision", repo: "frames", branch: "dev" } }));
    expect(text(root)).not.toMatch(/bucket/i);
    expect(text(root)).toContain("Path prefix in the repo (optional)");
    expect(text(root)).toContain("The path in vision/frames@dev whose files are imported, e.g. cats/ (empty: the whole repo)");
    expect(root.querySelector('input[name="prefix"]')?.getAttribute("placeholder")).toBe("path/in/the/repo/ (empty: the whole repo)");
    // Another branch typed on the connection step: the words follow it.
    applyTouchUps(root, view({ formData: { repo: "frames", commit: "c".repeat(32) } }));
    expect(text(root)).toContain(`The path in default/frames@${"c".repeat(32)} whose files are imported`);
  });

  it("says a preview row's time is its commit's, not the file's own, and follows React's redraws", () => {
    const root = render();
    const commit = "8bd680dfeb33400ea0c7c28d04eb140a";
    const previewFiles = [
      { key: "cats/1.png", commit, last_modified: "2026-12-07T12:00:00+00:00" },
      { key: null, last_modified: null },
    ];
    applyTouchUps(root, view({ previewKeys: ["cats/1.png", null], previewFiles, formData: { use_blob_urls: true } }));
    expect(text(root)).toContain("in commit 8bd680df, finished 5 minutes ago•1.2 KB");
    const time = Array.from(root.querySelectorAll("span")).find((span) => span.textContent?.startsWith("in commit"));
    expect(time?.getAttribute("title")).toContain(`Commit ${commit}`);
    // React draws the row again a minute later: the new words are named too, once.
    (time?.firstChild as Text).nodeValue = "6 minutes ago";
    applyTouchUps(root, view({ previewKeys: ["cats/1.png", null], previewFiles, formData: { use_blob_urls: true } }));
    applyTouchUps(root, view({ previewKeys: ["cats/1.png", null], previewFiles, formData: { use_blob_urls: true } }));
    expect(time?.textContent).toBe("in commit 8bd680df, finished 6 minutes ago");
    // Another provider: LS's own words and no title.
    applyTouchUps(root, view({ provider: "s3" }));
    expect(time?.textContent).toBe("5 minutes ago");
    expect(time?.hasAttribute("title")).toBe(false);
  });

  it("is idempotent, and puts everything back for another provider", () => {
    const root = render();
    const before = root.innerHTML;
    applyTouchUps(root, view({ target: "export", previewKeys: ["a.png"] }));
    const once = root.innerHTML;
    applyTouchUps(root, view({ target: "export", previewKeys: ["a.png"] }));
    expect(root.innerHTML).toBe(once);
    applyTouchUps(root, view({ provider: "s3", target: "export" }));
    expect(root.innerHTML).toBe(before);
    undoTouchUps(root);
    expect(root.innerHTML).toBe(before);
  });
});
