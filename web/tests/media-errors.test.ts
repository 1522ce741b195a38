// @vitest-environment jsdom
import { afterEach, describe, expect, it } from "vitest";
import { NOTE_ID, explainMediaError, mediaErrorLine, pfsUriOf, watchMediaErrors } from "../src/runtime/media-errors";

const BASE = "http://ls.example:8080/projects/1/data?task=2";
const PFS_URI = "pfs://default/images@8bd680dfeb33400ea0c7c28d04eb140a/green-wide.png";
const PROXY = `/tasks/2/resolve/?fileuri=${btoa(PFS_URI)}`;
const DETAIL =
  "cannot reach pachd at grpc://localhost:30771: failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:30771: Connection refused";

// Label Studio 1.23's ERR_LOADING_HTTP box, as its editor draws it for an image that did not load.
const box = (url: string) => `
  <div data-testid="error:http">
    <p>There was an issue loading URL from <code>$image</code> value</p>
    <p>Things to look out for: <ul><li>URL is valid</li>
      <li>The static server has wide-open CORS, <a href="https://labelstud.io/guide/storage.html#Troubleshoot-CORS-and-access-problems" target="_blank">more on that here</a></li></ul></p>
    <p>Technical description: <code></code><br />URL: <code><a href="${url}" target="_blank">${url}</a></code></p>
  </div>`;

/** A stand-in for the storage proxy: answers every request with `status` and, unless 2xx, `{error, detail}`. */
function proxy(status: number, detail: string | null = DETAIL) {
  const asked: { url: string; init: RequestInit }[] = [];
  const fetcher = async (url: string, init: RequestInit) => {
    asked.push({ url, init });
    const body = status < 300 ? "x" : JSON.stringify({ error: "Storage stream failed while proxying data", detail });
    return new Response(body, { status, headers: { "Content-Type": status < 300 ? "image/png" : "application/json" } });
  };
  return { fetcher, asked };
}

afterEach(() => {
  document.body.innerHTML = "";
});

describe("pfsUriOf", () => {
  it("reads the pfs:// file of a task's or a project's proxy URL, and nothing else", () => {
    expect(pfsUriOf(PROXY, BASE)).toBe(PFS_URI);
    expect(pfsUriOf(`/projects/1/resolve?fileuri=${btoa(PFS_URI)}`, BASE)).toBe(PFS_URI);
    expect(pfsUriOf(`/tasks/2/resolve/?fileuri=${btoa("s3://bucket/a.png")}`, BASE)).toBeNull();
    expect(pfsUriOf("https://example.com/a.png", BASE)).toBeNull();
    expect(pfsUriOf("/tasks/2/resolve/?fileuri=%%%", BASE)).toBeNull();
  });
});

describe("mediaErrorLine", () => {
  it("says Pachyderm is unreachable, names the address, and what to do", () => {
    expect(mediaErrorLine(424, DETAIL)).toBe(
      "Pachyderm is unreachable: cannot reach pachd at grpc://localhost:30771: failed to connect to all addresses. " +
        "The file is still in Pachyderm: reload the task once pachd answers again.",
    );
  });
  it("gives any other reason as the proxy gave it, and a 2xx as pachd being back", () => {
    expect(mediaErrorLine(424, "file '/a.png' not found in repo 'images'")).toBe(
      "Pachyderm could not serve this file: file '/a.png' not found in repo 'images'",
    );
    expect(mediaErrorLine(403, null)).toBe("Pachyderm could not serve this file (the storage proxy answered 403).");
    expect(mediaErrorLine(206, null)).toMatch(/answers again: reload the task/);
  });
});

describe("explainMediaError", () => {
  it("writes the reason into the editor's box: a first line and the technical description", async () => {
    document.body.innerHTML = box(PROXY);
    const { fetcher, asked } = proxy(424);
    expect(await explainMediaError(document.body.firstElementChild as Element, fetcher, BASE)).toBe(true);
    const note = document.getElementById(NOTE_ID);
    expect(note?.textContent).toMatch(/^Pachyderm is unreachable: cannot reach pachd at grpc:\/\/localhost:30771/);
    expect(note?.getAttribute("role")).toBe("alert");
    expect(document.body.textContent).toContain(`Technical description: ${DETAIL}`);
    // One byte asked, with the session's cookies.
    expect(asked).toHaveLength(1);
    expect(asked[0].url).toBe(new URL(PROXY, BASE).href);
    expect((asked[0].init.headers as Record<string, string>).Range).toBe("bytes=0-0");
    expect(asked[0].init.credentials).toBe("same-origin");
  });

  it("leaves a box of another storage as the editor drew it, and asks nothing", async () => {
    const other = `/tasks/2/resolve/?fileuri=${btoa("s3://bucket/a.png")}`;
    document.body.innerHTML = box(other);
    const before = document.body.innerHTML;
    const { fetcher, asked } = proxy(424);
    expect(await explainMediaError(document.body.firstElementChild as Element, fetcher, BASE)).toBe(false);
    expect(document.body.innerHTML).toBe(before);
    expect(asked).toHaveLength(0);
  });
});

describe("watchMediaErrors", () => {
  it("explains a box drawn later, filled after it was added, once", async () => {
    const { fetcher, asked } = proxy(424);
    const stop = watchMediaErrors(document, fetcher);
    const holder = document.createElement("div");
    document.body.appendChild(holder);
    holder.innerHTML = '<div data-testid="error:http"></div>';
    await new Promise((resolve) => setTimeout(resolve, 20));
    const drawn = document.createElement("div");
    drawn.innerHTML = box(PROXY);
    (holder.firstElementChild as Element).innerHTML = (drawn.firstElementChild as Element).innerHTML;
    const deadline = Date.now() + 5000;
    while (!document.getElementById(NOTE_ID) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(document.getElementById(NOTE_ID)?.textContent).toContain("Pachyderm is unreachable");
    holder.appendChild(document.createElement("span")); // another change on the page
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(asked).toHaveLength(1);
    expect(document.querySelectorAll(`#${NOTE_ID}`)).toHaveLength(1);
    stop();
  });
});
