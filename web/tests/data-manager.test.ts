// @vitest-environment jsdom
import { afterEach, describe, expect, it } from "vitest";
import { LABEL_ID, TEXTS, nameSourceColumn, watchSourceColumn } from "../src/runtime/data-manager";

// Label Studio 1.23's Data Manager header row, its last cells as it draws them.
const HEADER = `
  <div class="lsf-table__head">
    <div class="lsf-table__cell lsf-th"><div class="lsf-table__cell-content lsf-th-content">Pachyderm version</div></div>
    <div class="lsf-table__cell lsf-th lsf-show-source" style="width: 44px; max-width: 44px;"><div style="width: 44px;"></div></div>
  </div>
  <div class="lsf-table-row"><span class="lsf-table__cell lsf-show-source"><button>{ }</button></span></div>`;

afterEach(() => {
  document.body.innerHTML = "";
});

const headerCell = () => document.querySelector(".lsf-th.lsf-show-source") as HTMLElement;

describe("nameSourceColumn", () => {
  it('writes "Source" in the empty header of the { } column, with a tooltip, once', () => {
    document.body.innerHTML = HEADER;
    expect(headerCell().textContent).toBe("");
    expect(nameSourceColumn(document)).toBe(1);
    expect(headerCell().textContent).toBe(TEXTS.label);
    expect(headerCell().getAttribute("title")).toMatch(/^View Task Source/);
    expect(nameSourceColumn(document)).toBe(0);
    expect(document.querySelectorAll(`[data-testid="${LABEL_ID}"]`)).toHaveLength(1);
    // The rows' cells are left as they are.
    expect(document.querySelector(".lsf-table-row")?.textContent).toBe("{ }");
  });

  it("leaves a header that has words of its own", () => {
    document.body.innerHTML = HEADER.replace('<div style="width: 44px;"></div>', '<div style="width: 44px;">Src</div>');
    expect(nameSourceColumn(document)).toBe(0);
    expect(headerCell().textContent).toBe("Src");
  });
});

describe("watchSourceColumn", () => {
  it("names a table drawn later", async () => {
    const stop = watchSourceColumn(document);
    const holder = document.createElement("div");
    document.body.appendChild(holder);
    holder.innerHTML = HEADER;
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(headerCell().textContent).toBe(TEXTS.label);
    stop();
  });
});
