import { readFileSync } from "node:fs";
import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { ICON_SHAPES, PachydermIcon, iconSvgDocument } from "../src/pachyderm/icon";
import { createElement as shimCreateElement, setElementTag } from "../src/runtime/react-shim";

const SHIPPED_SVG = new URL("../../label_studio_pachyderm/static/label_studio_pachyderm/pachyderm.svg", import.meta.url);

describe("PachydermIcon", () => {
  it("renders an accessible SVG that takes the grid's sizing class", () => {
    const markup = renderToStaticMarkup(createElement(PachydermIcon, { className: "w-8 h-8" }));
    expect(markup).toMatch(/^<svg /);
    expect(markup).toContain('class="w-8 h-8"');
    expect(markup).toContain('aria-label="Pachyderm"');
    expect(markup).toContain('stroke-linecap="round"');
    expect(markup.match(/<(path|circle) /g)).toHaveLength(ICON_SHAPES.length);
  });

  it("is shipped as a standalone file with the same drawing", () => {
    expect(readFileSync(SHIPPED_SVG, "utf8")).toBe(iconSvgDocument());
  });
});

describe("react-shim", () => {
  it("builds elements the page's React renders, with the tag learned from a live element", () => {
    const live = createElement("div") as unknown as { $$typeof: symbol };
    setElementTag(live.$$typeof);
    const element = shimCreateElement("span", { key: 1, className: "x" }, "a", shimCreateElement("b", null, "c"));
    expect(element.key).toBe("1");
    expect(renderToStaticMarkup(element as never)).toBe('<span class="x">a<b>c</b></span>');
  });

  it("renders the icon through the shim too", () => {
    const element = shimCreateElement(PachydermIcon, { className: "w-8" });
    expect(renderToStaticMarkup(element as never)).toMatch(/^<svg [^>]*class="w-8"/);
  });
});
