import { describe, expect, it } from "vitest";
import { prefixProblem } from "../src/pachyderm/prefix";
import { authTokenProblem } from "../src/pachyderm/token";

describe("prefixProblem", () => {
  it.each(["", "annotations", "/annotations/", "a/b/c", "with space/and-dots.v2", "..hidden", "a/.../b"])(
    "accepts %j",
    (prefix) => {
      expect(prefixProblem(prefix)).toBeNull();
    },
  );

  it.each([
    ["..", 'The prefix is a folder inside the repo, so it cannot contain ".." to step outside it'],
    ["a/../b", 'The prefix is a folder inside the repo, so it cannot contain ".." to step outside it'],
    ["/../etc", 'The prefix is a folder inside the repo, so it cannot contain ".." to step outside it'],
    ["a\tb", "The prefix cannot contain tabs or line breaks"],
    ["a\nb", "The prefix cannot contain tabs or line breaks"],
  ])("rejects %j", (prefix, message) => {
    expect(prefixProblem(prefix)).toBe(message);
  });
});

describe("authTokenProblem", () => {
  it.each(["", "0123456789abcdef0123456789abcdef", "••••••••••••••••"])("accepts %j", (token) => {
    expect(authTokenProblem(token)).toBeNull();
  });

  it.each([" abc", "abc\n", "ab c"])("rejects %j", (token) => {
    expect(authTokenProblem(token)).toBe("Remove the spaces or line breaks from the token");
  });
});
