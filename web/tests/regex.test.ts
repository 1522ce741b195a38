import { describe, expect, it } from "vitest";
import { pythonToJavaScript, regexFilterProblem } from "../src/pachyderm/regex";

describe("regexFilterProblem accepts", () => {
  it.each([
    ["", "no filter"],
    [".*\\.(jpe?g|png)$", "valid in both dialects"],
    ["^images/.+\\.json$", "valid in both dialects"],
    ["(?<year>\\d{4})/", "JavaScript named group (the server decides)"],
    ["(?P<year>\\d{4})/(?P=year)", "Python named group and backreference"],
    ["(?i).*\\.JPG$", "Python global inline flag"],
    ["(?i:cat|dog)\\.png", "Python scoped flag"],
    ["\\Aimages/.*\\Z", "Python \\A and \\Z anchors"],
    ["(?>abc)+d", "Python atomic group"],
    ["a++b", "Python possessive quantifier"],
    ["x{2}+y", "Python possessive counted quantifier"],
    ["(a)?(?(1)b|c)", "Python conditional"],
    ["img(?#the images)/.*", "Python comment"],
    ["[]a]+", "a leading ] in a class is literal"],
    ["[^]a]+", "a leading ] in a negated class is literal"],
  ])("%j (%s)", (pattern) => {
    expect(regexFilterProblem(pattern)).toBeNull();
  });
});

describe("regexFilterProblem rejects what neither dialect compiles", () => {
  it.each([
    ["*.jpg", '"*.jpg" looks like a file glob, but this is a regular expression: for example .*\\.jpg$ matches names ending in .jpg (Nothing to repeat)'],
    ["?.png", '"?.png" looks like a file glob, but this is a regular expression: for example .*\\.jpg$ matches names ending in .jpg (Nothing to repeat)'],
    ["images/(unclosed", "Invalid regular expression: Unterminated group"],
    ["[abc", "Invalid regular expression: Unterminated character class"],
    ["a{2,1}", "Invalid regular expression: Numbers out of order in {} quantifier"],
    ["x(?i)y", "Invalid regular expression: Invalid group"],
    ["(?P<1bad>x)", "Invalid regular expression: Invalid group"],
    ["\\", "Invalid regular expression: \\ at end of pattern"],
  ])("%j", (pattern, message) => {
    expect(regexFilterProblem(pattern)).toBe(message);
  });
});

describe("pythonToJavaScript", () => {
  it.each([
    ["(?P<n>a)(?P=n)", "(?<n>a)\\k<n>"],
    ["(?ims)abc", "abc"],
    ["(?i:a)(?-i:b)", "(?:a)(?:b)"],
    ["\\Aabc\\Z", "^abc$"],
    ["[\\A]", "[\\A]"],
    ["a*+b?+c++d{1,2}+", "a*b?c+d{1,2}"],
    ["\\*+", "\\*+"],
    ["[*+]+", "[*+]+"],
    ["(?>x)", "(?:x)"],
    ["(?(1)a|b)", "(?:a|b)"],
    ["a(?#note)b", "ab"],
    ["[]x]", "[\\]x]"],
  ])("%j -> %j", (python, javascript) => {
    expect(pythonToJavaScript(python)).toBe(javascript);
  });
});
