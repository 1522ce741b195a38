import { describe, expect, it } from "vitest";
import { exportFormatsProblem, formatNames } from "../src/pachyderm/formats";
import { exportFormatsSchema } from "../src/pachyderm/schemas";

describe("export formats", () => {
  it.each([["", []], ["COCO", ["COCO"]], [" COCO, YOLO ,", ["COCO", "YOLO"]], [["VOC", "JSON_MIN"], ["VOC", "JSON_MIN"]]])(
    "reads %j as %j",
    (value, names) => {
      expect(formatNames(value)).toEqual(names);
      expect(exportFormatsProblem(value)).toBeNull();
    },
  );

  it.each([
    ["coco", '"coco" is not a format name: use Label Studio\'s names, comma-separated, e.g. COCO, YOLO'],
    ["COCO YOLO", '"COCO YOLO" is not a format name: use Label Studio\'s names, comma-separated, e.g. COCO, YOLO'],
    ["COCO, YOLO, COCO", "COCO is listed twice"],
    [["YOLO", "YOLO"], "YOLO is listed twice"],
  ])("rejects %j", (value, message) => {
    expect(exportFormatsProblem(value)).toBe(message);
  });

  it("defaults to none and refuses other types", () => {
    expect(exportFormatsSchema.parse(undefined)).toBe("");
    expect(exportFormatsSchema.safeParse(3).success).toBe(false);
  });
});
