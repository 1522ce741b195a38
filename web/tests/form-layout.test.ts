/**
 * The server-driven (legacy) storage form must offer the same fields, under the
 * same API names, as the wizard provider, and treat the token as a secret.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { pachydermProvider } from "../src/pachyderm";
import { stepFields } from "./support/wizard-model";

interface LegacyField {
  type: string;
  name: string;
  required?: boolean;
  skipAutofill?: boolean;
  protectedValue?: boolean;
  validators?: string[];
  value?: unknown;
  options?: { value: unknown; label: string }[];
}

type Row = { fields?: (LegacyField | null)[]; columns?: { fields: (LegacyField | null)[] }[] };

const layout = parse(
  readFileSync(new URL("../../label_studio_pachyderm/form_layout.yml", import.meta.url), "utf8"),
) as Record<"ImportStorage" | "ExportStorage", Row[]>;

function fields(kind: "ImportStorage" | "ExportStorage"): LegacyField[] {
  return layout[kind]
    .flatMap((row) => row.fields ?? (row.columns ?? []).flatMap((column) => column.fields))
    .filter((field): field is LegacyField => field !== null);
}

function byName(kind: "ImportStorage" | "ExportStorage", name: string): LegacyField {
  const found = fields(kind).find((field) => field.name === name);
  if (!found) throw new Error(`${kind} has no ${name}`);
  return found;
}

describe("form_layout.yml", () => {
  it("has the API's import fields, and the wizard's", () => {
    const names = fields("ImportStorage").map((field) => field.name);
    expect(names).toEqual([
      "title",
      "pachd_address",
      "auth_token",
      "pach_project",
      "repo",
      "branch",
      "commit",
      "prefix",
      "regex_filter",
      "use_blob_urls",
      "recursive_scan",
      "watch_commits",
      "changed_files",
      "predictions_repo",
      "predictions_branch",
      "predictions_path",
      "predictions_match",
    ]);
    const wizard = stepFields(pachydermProvider, "import")
      .map((field) => field.name)
      .filter((name) => name !== "presign");
    for (const name of wizard) expect(names).toContain(name);
  });

  it("has the API's export fields, and the wizard's", () => {
    const names = fields("ExportStorage").map((field) => field.name);
    expect(names).toEqual([
      "title",
      "pachd_address",
      "auth_token",
      "pach_project",
      "repo",
      "branch",
      "promote_to",
      "prefix",
      "export_formats",
      "can_delete_objects",
    ]);
    for (const field of stepFields(pachydermProvider, "export")) expect(names).toContain(field.name);
  });

  it("never echoes the token and keeps it when unchanged", () => {
    for (const kind of ["ImportStorage", "ExportStorage"] as const) {
      expect(byName(kind, "auth_token")).toMatchObject({ type: "password", skipAutofill: true, protectedValue: true });
    }
  });

  it("offers no pre-signed URL option", () => {
    const names = [...fields("ImportStorage"), ...fields("ExportStorage")].map((field) => field.name);
    expect(names).not.toContain("presign");
    expect(names).not.toContain("presign_ttl");
  });

  it("uses Pachyderm's defaults", () => {
    expect(byName("ImportStorage", "pach_project").value).toBe("default");
    expect(byName("ImportStorage", "branch").value).toBe("master");
    expect(byName("ImportStorage", "recursive_scan")).toMatchObject({ type: "toggle", value: true });
    expect(byName("ExportStorage", "can_delete_objects").type).toBe("toggle");
  });

  it("offers watching on source storages only, off by default", () => {
    expect(byName("ImportStorage", "watch_commits")).toMatchObject({
      type: "toggle",
      value: false,
      label: "Sync automatically when new commits land",
    });
    expect(fields("ExportStorage").map((field) => field.name)).not.toContain("watch_commits");
  });

  it("offers the changed-files rule on source storages only, keep by default", () => {
    expect(byName("ImportStorage", "changed_files")).toMatchObject({ type: "select", value: "keep" });
    expect(byName("ImportStorage", "changed_files").options?.map((option) => option.value)).toEqual([
      "keep",
      "new_version",
    ]);
    expect(fields("ExportStorage").map((field) => field.name)).not.toContain("changed_files");
  });

  it("offers predictions on source storages only, with the wizard's defaults and choices", () => {
    const wizard = (name: string) => stepFields(pachydermProvider, "import").find((field) => field.name === name);
    for (const name of ["predictions_repo", "predictions_branch", "predictions_path", "predictions_match"]) {
      expect(byName("ImportStorage", name).type).toBe(wizard(name)?.type);
      expect(fields("ExportStorage").map((field) => field.name)).not.toContain(name);
    }
    expect(byName("ImportStorage", "predictions_match").value).toBe(wizard("predictions_match")?.schema.parse(undefined));
    expect(byName("ImportStorage", "predictions_match").options?.map((option) => option.value)).toEqual(
      wizard("predictions_match")?.options?.map((option) => option.value),
    );
    expect((byName("ImportStorage", "predictions_path") as LegacyField & { placeholder?: string }).placeholder).toBe(
      wizard("predictions_path")?.schema.parse(undefined),
    );
  });

  it("requires the address and the repo", () => {
    for (const kind of ["ImportStorage", "ExportStorage"] as const) {
      expect(byName(kind, "pachd_address").required).toBe(true);
      expect(byName(kind, "repo").required).toBe(true);
    }
  });

  it("has no browser-side validators: Label Studio 1.23's fail on empty fields or refuse Python regexes", () => {
    for (const field of [...fields("ImportStorage"), ...fields("ExportStorage")]) {
      expect(field.validators, field.name).toBeUndefined();
    }
  });

  it("describes the export branch as created on first write", () => {
    const text = readFileSync(new URL("../../label_studio_pachyderm/form_layout.yml", import.meta.url), "utf8");
    expect(text).toMatch(/created on the first write/);
  });
});
