import { describe, expect, it } from "vitest";
import { PROJECT_NAME_MAX, branchNameProblem, projectNameProblem, repoNameProblem } from "../src/pachyderm/names";

const CHARSET = (kind: string, found: string) =>
  `${kind} names may only contain letters, digits, "_" and "-" (found ${found})`;

describe("projectNameProblem", () => {
  it.each(["", "default", "ml-team", "Team_2", "7days", "a".repeat(PROJECT_NAME_MAX)])("accepts %j", (name) => {
    expect(projectNameProblem(name)).toBeNull();
  });

  it.each([
    ["my project", CHARSET("Project", "spaces")],
    ["team/a", CHARSET("Project", '"/"')],
    ["a.b.c", CHARSET("Project", '"."')],
    ["tab\there", CHARSET("Project", "tabs or line breaks")],
    ["a".repeat(PROJECT_NAME_MAX + 1), `Project names are at most ${PROJECT_NAME_MAX} characters; this one has 52`],
    ["-team", "Project names must start with a letter or a digit"],
    ["_team", "Project names must start with a letter or a digit"],
  ])("rejects %j", (name, message) => {
    expect(projectNameProblem(name)).toBe(message);
  });
});

describe("repoNameProblem", () => {
  it.each(["images", "raw-data", "Repo_1", "-edge", "x"])("accepts %j", (name) => {
    expect(repoNameProblem(name)).toBeNull();
  });

  it.each([
    ["default/images", 'Enter only the repo name; the part before "/" goes in the Project field'],
    ["images@master", 'Enter only the repo name; the part after "@" goes in the Branch (or Commit) field'],
    ["my images", CHARSET("Repo", "spaces")],
    ["imágenes", CHARSET("Repo", '"á"')],
    ["a.b:c", CHARSET("Repo", '".", ":"')],
  ])("rejects %j", (name, message) => {
    expect(repoNameProblem(name)).toBe(message);
  });
});

describe("branchNameProblem", () => {
  it.each(["", "master", "labels-v2", "feature_x", "abc123", "0123456789ab5def0123456789abcdef"])(
    "accepts %j",
    (name) => {
      expect(branchNameProblem(name)).toBeNull();
    },
  );

  it.each([
    ["master^1", "Enter a plain branch name; ancestry such as master^1 is not supported here"],
    ["master~2", "Enter a plain branch name; ancestry such as master^1 is not supported here"],
    ["release/1", CHARSET("Branch", '"/"')],
    ["v1.2", CHARSET("Branch", '"."')],
    ["my branch", CHARSET("Branch", "spaces")],
    [
      "0123456789ab4def0123456789abcdef",
      "This is a commit id, not a branch name: pachd never reads it as a branch. To pin a commit, use the Commit field of a source storage",
    ],
  ])("rejects %j", (name, message) => {
    expect(branchNameProblem(name)).toBe(message);
  });
});
