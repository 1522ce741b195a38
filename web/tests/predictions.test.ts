/**
 * The predictions path template: the same verdicts as the server's `template_problem`
 * (label_studio_pachyderm/imports/predictions.py), so the wizard refuses what a save would.
 * The expected kinds below are what the server's function answers for each template.
 */
import { describe, expect, it } from "vitest";
import { predictionPath, predictionsNameProblem, predictionsPathProblem } from "../src/pachyderm/predictions";

type Kind = null | "parse" | "unknown" | "spec" | "none" | "dotdot" | "empty";

const SERVER: Record<string, Kind> = {
  "{dir}/{stem}.json": null,
  "{path}.json": null,
  "preds/{dir}/{stem}.{ext}.json": null,
  "{stem}": null,
  "{{literal}}/{stem}.json": null,
  "{stem:}.json": null,
  "{{{stem}}}": null,
  "/{stem}": null,
  "{dir}/": null,
  "a/{dir}/b": null,
  "{dir}/.{stem}": null,
  "{dir}/..x/{stem}.json": null,
  "{dir}/{name}.json": "unknown",
  "{}.json": "unknown",
  "{0}.json": "unknown",
  "{dir.x}": "unknown",
  "{dir[0]}": "unknown",
  "{stem:>8}.json": "spec",
  "{stem!r}.json": "spec",
  "{stem:{x}}": "spec",
  "predictions.json": "none",
  "{dir}/../{stem}.json": "dotdot",
  "..\\{stem}.json": "dotdot",
  "{stem": "parse",
  "{stem}}": "parse",
  "stem}": "parse",
  "{": "parse",
  "}": "parse",
  "{stem!}": "parse",
  "{stem!rx}": "parse",
  "{stem{x}}": "parse",
  // Empty means the default path, on the server too.
  "": null,
};

function kind(template: string): Kind {
  const problem = predictionsPathProblem(template);
  if (problem === null) return null;
  if (problem.startsWith("Enter ")) return "empty";
  if (problem.includes("is not a path template")) return "parse";
  if (problem.startsWith("Unknown placeholder")) return "unknown";
  if (problem.startsWith("Placeholders take no format spec")) return "spec";
  if (problem.startsWith("Use at least one placeholder")) return "none";
  if (problem.includes('no ".." path elements')) return "dotdot";
  throw new Error(`unexpected message ${problem}`);
}

describe("predictions path template", () => {
  for (const [template, expected] of Object.entries(SERVER)) {
    it(`${JSON.stringify(template)}: ${expected ?? "accepted"}`, () => {
      expect(kind(template)).toBe(expected);
    });
  }

  it("names the unknown placeholder and the known ones", () => {
    expect(predictionsPathProblem("{dir}/{name}.json")).toBe(
      "Unknown placeholder {name}: use {dir}, {stem}, {ext}, {path}",
    );
  });

  it("fills the placeholders as the server does", () => {
    expect(predictionPath("{dir}/{stem}.json", "cats/1.jpg")).toBe("cats/1.json");
    expect(predictionPath("{path}.json", "/cats/1.jpg")).toBe("cats/1.jpg.json");
    expect(predictionPath("out/{stem}.{ext}.json", "1.jpg")).toBe("out/1.jpg.json");
    expect(predictionPath("{dir}/{stem}.json", "top.png")).toBe("top.json");
    expect(predictionPath("{{x}}/{stem}", "a/b.png")).toBe("{x}/b");
  });
});

describe("predictions repo and branch names", () => {
  it("take empty or letters, digits, _ and -", () => {
    for (const name of ["", "detections", "out_2", "a-b"]) expect(predictionsNameProblem("repo", name)).toBeNull();
    expect(predictionsNameProblem("repo", "my repo")).toBe('"my repo" is not a repo name: letters, digits, "_" and "-" only');
    expect(predictionsNameProblem("branch", "feature/x")).toMatch(/is not a branch name/);
    expect(predictionsNameProblem("branch", "a.b")).toMatch(/is not a branch name/);
  });
});
