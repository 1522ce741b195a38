import { describe, expect, it } from "vitest";
import pachydermDefault, { pachydermProvider } from "../src/pachyderm";
import type { FieldDefinition, StorageTarget } from "../src/types/common";
import { initialValues, stepErrors, stepFields } from "./support/wizard-model";

const ID = "3f1c2a9be07d4c3e9a2b5d6e7f801234";

function field(name: string, target: StorageTarget = "import"): FieldDefinition {
  const found = stepFields(pachydermProvider, target).find((entry) => entry.name === name);
  if (!found) throw new Error(`no ${name} field for ${target}`);
  return found;
}

/** The messages a schema reports for a value ([] when valid). */
function messages(definition: FieldDefinition, value: unknown): string[] {
  const result = definition.schema.safeParse(value);
  return result.success ? [] : result.error.issues.map((issue) => issue.message);
}

describe("provider identity", () => {
  it("is the 'pachyderm' storage type", () => {
    expect(pachydermProvider.name).toBe("pachyderm");
    expect(pachydermProvider.title).toBe("Pachyderm");
    expect(pachydermProvider.description).toMatch(/Pachyderm repo/);
    expect(typeof pachydermProvider.icon).toBe("function");
    expect(pachydermDefault).toBe(pachydermProvider);
  });

  it("lays out every visible field exactly once and names only known fields", () => {
    const names = new Set(pachydermProvider.fields.map((entry) => entry.name));
    const laidOut = pachydermProvider.layout.flatMap((row) => row.fields);
    expect(new Set(laidOut).size).toBe(laidOut.length);
    for (const name of laidOut) expect(names).toContain(name);
    const visible = pachydermProvider.fields.filter((entry) => entry.type !== "hidden").map((entry) => entry.name);
    expect([...new Set(visible)].sort()).toEqual([...laidOut].sort());
  });

  it("gives each field name one definition", () => {
    const names = pachydermProvider.fields.map((entry) => entry.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it("leaves title and can_delete_objects to the wizard, which adds them for every provider", () => {
    const names = pachydermProvider.fields.map((entry) => entry.name);
    expect(names).not.toContain("title");
    expect(names).not.toContain("can_delete_objects");
  });

  it("has no pre-signed URL option, only a hidden presign=false", () => {
    const presign = field("presign");
    expect(presign.type).toBe("hidden");
    expect(presign.schema.parse(undefined)).toBe(false);
    expect(pachydermProvider.fields.map((entry) => entry.name)).not.toContain("presign_ttl");
  });

  it("shows the same fields per target as the REST API has", () => {
    const byTarget = (target: StorageTarget) => stepFields(pachydermProvider, target).map((entry) => entry.name);
    expect(byTarget("import")).toEqual([
      "pachd_address",
      "auth_token",
      "pach_project",
      "repo",
      "branch",
      "commit",
      "watch_commits",
      "changed_files",
      "predictions_repo",
      "predictions_branch",
      "predictions_path",
      "predictions_match",
      "regex_filter",
      "use_blob_urls",
      "recursive_scan",
      "presign",
    ]);
    expect(byTarget("export")).toEqual([
      "pachd_address",
      "auth_token",
      "pach_project",
      "repo",
      "branch",
      "promote_to",
      "prefix",
      "export_formats",
    ]);
  });
});

describe("watch_commits", () => {
  const watch = field("watch_commits");

  it("is a source storage's toggle, off unless turned on", () => {
    expect(watch).toMatchObject({ type: "toggle", target: "import", label: "Sync automatically when new commits land" });
    expect(watch.required).toBeUndefined();
    expect(watch.schema.parse(undefined)).toBe(false);
    expect(initialValues(pachydermProvider).watch_commits).toBe(false);
    expect(stepFields(pachydermProvider, "export").map((entry) => entry.name)).not.toContain("watch_commits");
  });

  it("takes true and false, and nothing else", () => {
    expect(messages(watch, true)).toEqual([]);
    expect(messages(watch, false)).toEqual([]);
    expect(messages(watch, "yes")).not.toEqual([]);
  });

  it("passes the connection step either way, and null (unset) too", () => {
    const base = { title: "src", pachd_address: "grpc://localhost:30650", repo: "images" };
    for (const value of [true, false, null]) {
      expect(stepErrors(pachydermProvider, { target: "import" }, { ...base, watch_commits: value })).toEqual({});
    }
  });
});

describe("changed_files", () => {
  const changed = field("changed_files");

  it("is a source storage's select: keep (the default) or new_version", () => {
    expect(changed).toMatchObject({ type: "select", target: "import" });
    expect(changed.options?.map((option) => option.value)).toEqual(["keep", "new_version"]);
    expect(changed.schema.parse(undefined)).toBe("keep");
    expect(stepFields(pachydermProvider, "export").map((entry) => entry.name)).not.toContain("changed_files");
  });

  it("takes the two values and nothing else", () => {
    expect(messages(changed, "keep")).toEqual([]);
    expect(messages(changed, "new_version")).toEqual([]);
    expect(messages(changed, "sometimes")).not.toEqual([]);
    expect(messages(changed, true)).not.toEqual([]);
  });
});

describe("predictions (source storages)", () => {
  const repo = field("predictions_repo");
  const branch = field("predictions_branch");
  const path = field("predictions_path");
  const match = field("predictions_match");
  const base = { title: "src", pachd_address: "grpc://localhost:30650", repo: "images" };

  it("are four optional source storage fields, off by default", () => {
    for (const entry of [repo, branch, path, match]) {
      expect(entry.target).toBe("import");
      expect(entry.required).toBeUndefined();
      expect(entry.visibleWhen).toBeUndefined();
      expect(entry.label).toMatch(/^Predictions? |^Which predictions commit$/);
    }
    expect(repo).toMatchObject({ type: "text", label: "Predictions repo (optional)" });
    expect(repo.placeholder).toMatch(/empty: no predictions/);
    expect(repo.schema.parse(undefined)).toBe("");
    expect(branch.schema.parse(undefined)).toBe("master");
    expect(path).toMatchObject({ type: "text", placeholder: "{dir}/{stem}.json" });
    expect(path.schema.parse(undefined)).toBe("{dir}/{stem}.json");
    expect(match).toMatchObject({ type: "select" });
    expect(match.schema.parse(undefined)).toBe("commit_set");
    expect(match.schema.parse("")).toBe("commit_set"); // a storage saved before the field existed
    const exportNames = stepFields(pachydermProvider, "export").map((entry) => entry.name);
    for (const name of ["predictions_repo", "predictions_branch", "predictions_path", "predictions_match"]) {
      expect(exportNames).not.toContain(name);
    }
  });

  it("say what they mean in Pachyderm's words", () => {
    expect(repo.description).toMatch(/pipeline's output repo/);
    for (const entry of [branch, path, match]) expect(entry.description).toMatch(/Used only with a predictions repo/);
    expect(path.description).toMatch(/\{dir\}, \{stem\}, \{ext\} and \{path\}/);
    expect(match.options?.map((option) => option.value)).toEqual(["commit_set", "branch_head"]);
    expect(match.description).toMatch(/output of exactly the task's commit/);
    expect(match.description).toMatch(/head of the predictions branch, for predictions a script writes/);
  });

  it("are the last two rows of the layout", () => {
    expect(pachydermProvider.layout.slice(-2)).toEqual([
      { fields: ["predictions_repo", "predictions_branch"] },
      { fields: ["predictions_path", "predictions_match"] },
    ]);
  });

  it("take empty or letters, digits, _ and - as repo and branch", () => {
    for (const value of ["", "detections", "model_v2", "out-1"]) {
      expect(messages(repo, value)).toEqual([]);
      expect(messages(branch, value)).toEqual([]);
    }
    for (const value of ["my repo", "a/b", "a.b", "é"]) {
      expect(messages(repo, value)).toEqual([`"${value}" is not a repo name: letters, digits, "_" and "-" only`]);
      expect(messages(branch, value)).toEqual([`"${value}" is not a branch name: letters, digits, "_" and "-" only`]);
    }
  });

  it("take a path with the four placeholders only, and no ..", () => {
    for (const value of ["{dir}/{stem}.json", "{path}.json", "preds/{dir}/{stem}.{ext}.json"]) {
      expect(messages(path, value)).toEqual([]);
    }
    expect(messages(path, "")).toEqual([]); // empty: the default path, as on the server
    expect(messages(path, "{dir}/{name}.json")).toEqual(["Unknown placeholder {name}: use {dir}, {stem}, {ext}, {path}"]);
    expect(messages(path, "predictions.json")).toEqual([
      "Use at least one placeholder ({dir}, {stem}, {ext}, {path}), else every task reads the same file",
    ]);
    expect(messages(path, "{stem:>8}.json")[0]).toMatch(/^Placeholders take no format spec/);
    expect(messages(path, "{dir}/../{stem}.json")).toEqual([
      'The path must stay inside the predictions repo: no ".." path elements',
    ]);
    expect(messages(path, "{stem")[0]).toMatch(/is not a path template/);
  });

  it("take the two match values and nothing else", () => {
    expect(messages(match, "commit_set")).toEqual([]);
    expect(messages(match, "branch_head")).toEqual([]);
    expect(messages(match, "latest")).not.toEqual([]);
  });

  it("pass the connection step with or without a predictions repo, and report each field's message", () => {
    expect(stepErrors(pachydermProvider, { target: "import" }, base)).toEqual({});
    const on = {
      ...base,
      predictions_repo: "detections",
      predictions_branch: "master",
      predictions_path: "{dir}/{stem}.json",
      predictions_match: "branch_head",
    };
    expect(stepErrors(pachydermProvider, { target: "import" }, on)).toEqual({});
    expect(
      stepErrors(pachydermProvider, { target: "import" }, {
        ...on,
        predictions_repo: "my repo",
        predictions_branch: "a/b",
        predictions_path: "{name}.json",
        predictions_match: "latest",
      }),
    ).toEqual({
      predictions_repo: '"my repo" is not a repo name: letters, digits, "_" and "-" only',
      predictions_branch: '"a/b" is not a branch name: letters, digits, "_" and "-" only',
      predictions_path: "Unknown placeholder {name}: use {dir}, {stem}, {ext}, {path}",
      predictions_match: expect.any(String),
    });
  });
});

describe("pachd_address", () => {
  const address = field("pachd_address");

  it("is a required text field with the documented placeholder", () => {
    expect(address).toMatchObject({ type: "text", required: true, placeholder: "grpc://localhost:30650" });
    expect(address.target).toBeUndefined();
  });

  it("accepts every supported form", () => {
    for (const value of ["localhost", "localhost:30650", "grpc://localhost:30650", "grpcs://pachd:443", "[::1]:30650"]) {
      expect(messages(address, value)).toEqual([]);
    }
  });

  it.each([
    [undefined, "Enter the pachd address, for example grpc://localhost:30650"],
    [null, "Enter the pachd address, for example grpc://localhost:30650"],
    ["", "Enter the pachd address, for example grpc://localhost:30650"],
    ["http://pachd:30650", "pachd speaks gRPC: write grpc://host:port, or grpcs://host:port for TLS, instead of http://"],
    ["pachd:70000", "The port must be from 1 to 65535; 70000 is out of range"],
    ["pachd:0", "The port must be from 1 to 65535; 0 is out of range"],
    ["pachd:port", 'The port must be a number from 1 to 65535, not "port"'],
    ["grpc://pachd:30650/x", 'Remove "/x": a pachd address is only a host and a port'],
  ])("rejects %j", (value, message) => {
    expect(messages(address, value)).toEqual([message]);
  });
});

describe("auth_token", () => {
  const token = field("auth_token");

  it("is an optional secret, masked and kept by the wizard when unchanged", () => {
    expect(token).toMatchObject({ type: "password", accessKey: true, autoComplete: "new-password" });
    expect(token.required).toBeUndefined();
    expect(token.schema.parse(undefined)).toBe("");
  });

  it("accepts a token and the wizard's mask for a stored one", () => {
    expect(messages(token, "0123456789abcdef")).toEqual([]);
    expect(messages(token, "••••••••••••••••")).toEqual([]);
  });

  it("rejects whitespace", () => {
    expect(messages(token, "abc\n")).toEqual(["Remove the spaces or line breaks from the token"]);
  });
});

describe("pach_project", () => {
  const project = field("pach_project");

  it("defaults to 'default' and is optional", () => {
    expect(project.type).toBe("text");
    expect(project.required).toBeUndefined();
    expect(project.schema.parse(undefined)).toBe("default");
    expect(messages(project, "")).toEqual([]);
  });

  it.each([
    ["ml team", 'Project names may only contain letters, digits, "_" and "-" (found spaces)'],
    ["-ml", "Project names must start with a letter or a digit"],
    ["p".repeat(52), "Project names are at most 51 characters; this one has 52"],
  ])("rejects %j", (value, message) => {
    expect(messages(project, value)).toEqual([message]);
  });
});

describe("repo", () => {
  const repo = field("repo");

  it("is a required text field with the documented placeholder", () => {
    expect(repo).toMatchObject({ type: "text", required: true, placeholder: "images" });
    expect(messages(repo, "images")).toEqual([]);
  });

  it.each([
    [undefined, "Enter the name of the Pachyderm repo"],
    ["", "Enter the name of the Pachyderm repo"],
    ["  ", "Enter the name of the Pachyderm repo"],
    ["default/images", 'Enter only the repo name; the part before "/" goes in the Project field'],
    ["images@master", 'Enter only the repo name; the part after "@" goes in the Branch (or Commit) field'],
    ["my.images", 'Repo names may only contain letters, digits, "_" and "-" (found ".")'],
  ])("rejects %j", (value, message) => {
    expect(messages(repo, value)).toEqual([message]);
  });
});

describe("branch", () => {
  const branch = field("branch");

  it("defaults to 'master', is optional and is the same field for both targets", () => {
    expect(branch.schema.parse(undefined)).toBe("master");
    expect(branch.required).toBeUndefined();
    expect(field("branch", "export")).toBe(branch);
    expect(branch.description).toMatch(/created on the first write/);
  });

  it.each([
    ["master^1", "Enter a plain branch name; ancestry such as master^1 is not supported here"],
    ["a/b", 'Branch names may only contain letters, digits, "_" and "-" (found "/")'],
    [
      ID,
      "This is a commit id, not a branch name: pachd never reads it as a branch. To pin a commit, use the Commit field of a source storage",
    ],
  ])("rejects %j", (value, message) => {
    expect(messages(branch, value)).toEqual([message]);
  });
});

describe("promote_to", () => {
  const promote = field("promote_to", "export");

  it("is a target storage's optional branch, empty (no rounds) by default, laid out right after the branch", () => {
    expect(promote).toMatchObject({ type: "text", target: "export", label: "Promote to (optional)" });
    expect(promote.placeholder).toBe("e.g. master (empty: no labeling rounds)");
    expect(promote.required).toBeUndefined();
    expect(promote.schema.parse(undefined)).toBe("");
    expect(stepFields(pachydermProvider, "import").map((entry) => entry.name)).not.toContain("promote_to");
    const rows = pachydermProvider.layout.map((row) => row.fields);
    const branchRow = rows.findIndex((fields) => fields.includes("branch"));
    expect(rows[branchRow + 1]).toEqual(["promote_to"]);
  });

  it.each(["", "master", "release_2", "pipeline-in"])("accepts %j", (value) => {
    expect(messages(promote, value)).toEqual([]);
  });

  it.each(["master^1", "a/b", "two words", "labels@master"])("rejects %j", (value) => {
    expect(messages(promote, value)).toEqual([`"${value}" is not a branch name: letters, digits, "_" and "-" only (e.g. master)`]);
  });
});

describe("commit", () => {
  const commit = field("commit");

  it("is optional, empty by default and for source storages only", () => {
    expect(commit.target).toBe("import");
    expect(commit.schema.parse(undefined)).toBe("");
    expect(messages(commit, ID)).toEqual([]);
    expect(stepFields(pachydermProvider, "export").map((entry) => entry.name)).not.toContain("commit");
  });

  it.each([
    ["master", /^Enter a commit id \(32 hex characters/],
    ["abc", /^A commit id has 32 hex characters; this one has 3$/],
    [ID.toUpperCase(), /^Write the commit id in lowercase/],
  ])("rejects %j", (value, message) => {
    const found = messages(commit, value);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(message);
  });
});

describe("prefix (target storages)", () => {
  const prefix = field("prefix", "export");

  it("is an optional visible field, only for target storages", () => {
    expect(prefix).toMatchObject({ type: "text", target: "export" });
    expect(prefix.schema.parse(undefined)).toBe("");
    expect(messages(prefix, "labels/v1")).toEqual([]);
  });

  it("rejects a path leaving the repo", () => {
    expect(messages(prefix, "../x")).toEqual([
      'The prefix is a folder inside the repo, so it cannot contain ".." to step outside it',
    ]);
  });
});

describe("import settings kept by the wizard's own step", () => {
  it("regex_filter: hidden, empty by default, rejects what neither Python nor JavaScript compiles", () => {
    const regex = field("regex_filter");
    expect(regex.type).toBe("hidden");
    expect(regex.schema.parse(undefined)).toBe("");
    expect(messages(regex, "(?P<name>x)")).toEqual([]);
    expect(messages(regex, "[abc")).toEqual(["Invalid regular expression: Unterminated character class"]);
  });

  it("use_blob_urls: hidden, off by default (files hold task JSON), as in Label Studio", () => {
    const blobs = field("use_blob_urls");
    expect(blobs.type).toBe("hidden");
    expect(blobs.schema.parse(undefined)).toBe(false);
    expect(messages(blobs, true)).toEqual([]);
    expect(messages(blobs, "yes")).toHaveLength(1);
  });

  it("recursive_scan: hidden, on by default", () => {
    const recursive = field("recursive_scan");
    expect(recursive.type).toBe("hidden");
    expect(recursive.schema.parse(undefined)).toBe(true);
  });
});

describe("the connection step, validated the way the wizard does it", () => {
  const good = {
    title: "Raw images",
    pachd_address: "grpc://localhost:30650",
    auth_token: "",
    pach_project: "default",
    repo: "images",
    branch: "master",
    commit: "",
    regex_filter: "",
    use_blob_urls: true,
    recursive_scan: true,
    presign: false,
  };

  it("starts from Pachyderm's defaults", () => {
    expect(initialValues(pachydermProvider)).toEqual({
      auth_token: "",
      pach_project: "default",
      branch: "master",
      commit: "",
      prefix: "",
      export_formats: "",
      regex_filter: "",
      use_blob_urls: false,
      recursive_scan: true,
      presign: false,
      promote_to: "",
      watch_commits: false,
      changed_files: "keep",
      predictions_repo: "",
      predictions_branch: "master",
      predictions_path: "{dir}/{stem}.json",
      predictions_match: "commit_set",
    });
  });

  it("passes a complete source storage", () => {
    expect(stepErrors(pachydermProvider, { target: "import" }, good)).toEqual({});
  });

  it("reports each field's own message", () => {
    const errors = stepErrors(
      pachydermProvider,
      { target: "import" },
      { ...good, pachd_address: "localhost:99999", repo: "", branch: "a b", commit: "head" },
    );
    expect(errors).toEqual({
      pachd_address: "The port must be from 1 to 65535; 99999 is out of range",
      repo: "Enter the name of the Pachyderm repo",
      branch: 'Branch names may only contain letters, digits, "_" and "-" (found spaces)',
      commit: expect.stringMatching(/^Enter a commit id/),
    });
  });

  it("accepts null for optional values, as the API returns them", () => {
    expect(
      stepErrors(pachydermProvider, { target: "import" }, { ...good, pach_project: null, commit: null, auth_token: null }),
    ).toEqual({});
  });

  it("keeps a stored token: in edit mode the masked or missing token is fine", () => {
    const { auth_token: _ignored, ...withoutToken } = good;
    expect(stepErrors(pachydermProvider, { target: "import", editMode: true }, withoutToken)).toEqual({});
    expect(
      stepErrors(pachydermProvider, { target: "import", editMode: true }, { ...good, auth_token: "••••••••••••••••" }),
    ).toEqual({});
  });

  it("passes a target storage, with the wizard's can_delete_objects", () => {
    const target = {
      title: "Labels",
      pachd_address: "pachd:30650",
      pach_project: "default",
      repo: "labels",
      branch: "annotations",
      prefix: "ls/",
      can_delete_objects: true,
    };
    expect(stepErrors(pachydermProvider, { target: "export" }, target)).toEqual({});
    expect(stepErrors(pachydermProvider, { target: "export" }, { ...target, prefix: "../up" })).toEqual({
      prefix: 'The prefix is a folder inside the repo, so it cannot contain ".." to step outside it',
    });
  });
});
