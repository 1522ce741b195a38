import { describe, expect, it } from "vitest";
import { commitIdProblem, isCommitIdShape } from "../src/pachyderm/commit";

const ID = "3f1c2a9be07d4c3e9a2b5d6e7f801234";

describe("commitIdProblem", () => {
  it.each(["", ID])("accepts %j", (value) => {
    expect(commitIdProblem(value)).toBeNull();
  });

  const notAnId =
    "Enter a commit id (32 hex characters, as pachctl list commit shows it). Branch names and ancestry such as master^1 are not accepted here; use the Branch field for a branch";

  it.each([
    [` ${ID}`, "Remove the spaces or line breaks from the commit id"],
    [`${ID}\n`, "Remove the spaces or line breaks from the commit id"],
    ["3f1c2a9b-e07d-4c3e-9a2b-5d6e7f801234", "Remove the dashes: Pachyderm writes commit ids as 32 characters without dashes"],
    ["master", notAnId],
    ["master^1", notAnId],
    [`${ID}^`, notAnId],
    ["labels-v2", notAnId],
    ["3f1c2a9b.e07d", "A commit id contains only the hex characters 0-9 and a-f"],
    ["3f1c2a9b", "A commit id has 32 hex characters; this one has 8"],
    [`${ID}00`, "A commit id has 32 hex characters; this one has 34"],
    [ID.toUpperCase(), "Write the commit id in lowercase, as pachctl shows it"],
    ["3f1c2a9be07d5c3e9a2b5d6e7f801234", 'This is not a Pachyderm commit id: the 13th character of every commit id is "4"'],
    ["3F1C2A9BE07D5C3E9A2B5D6E7F801234", 'This is not a Pachyderm commit id: the 13th character of every commit id is "4"'],
  ])("rejects %j", (value, message) => {
    expect(commitIdProblem(value)).toBe(message);
  });
});

describe("isCommitIdShape", () => {
  it("matches only pachd's commit id shape", () => {
    expect(isCommitIdShape(ID)).toBe(true);
    expect(isCommitIdShape(ID.toUpperCase())).toBe(false);
    expect(isCommitIdShape(ID.slice(1))).toBe(false);
    expect(isCommitIdShape("master")).toBe(false);
  });
});
