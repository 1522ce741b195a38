/**
 * A model of how Label Studio 1.23's wizard validates the "Configure
 * Connection" step, so tests can check our schemas in the setting they run in.
 * Written from the wizard's observable rules, not from its code:
 * - the step validates "title", then (target storages) "can_delete_objects",
 *   then the provider's fields for the target (a field without a target counts
 *   for both; "message" entries are not fields);
 * - a field is required when it says `required: true`;
 * - a secret (`accessKey`) is optional in edit mode, whatever else it says;
 * - a required plain string schema gets a min-length-1 check with
 *   "<label> is required"; any other required schema gets a not-null check;
 * - a field that is not required also accepts null (what the API returns for
 *   unset values);
 * - the parse result is only used for its errors, keyed by field name.
 */
import { z } from "zod";
import type { FieldDefinition, ProviderConfig, StorageTarget } from "../../src/types/common";

export interface StepOptions {
  target: StorageTarget;
  editMode?: boolean;
}

export function stepFields(provider: ProviderConfig, target: StorageTarget): FieldDefinition[] {
  return provider.fields.filter(
    (field): field is FieldDefinition => field.type !== "message" && (!field.target || field.target === target),
  );
}

function wizardFieldSchema(field: FieldDefinition, editMode: boolean): z.ZodTypeAny {
  if (field.accessKey && editMode) return field.schema.optional();
  if (field.required === true) {
    return field.schema instanceof z.ZodString
      ? field.schema.min(1, `${field.label} is required`)
      : field.schema.refine((value: unknown) => value !== undefined && value !== null, `${field.label} is required`);
  }
  return field.schema.nullable().optional();
}

export function stepSchema(provider: ProviderConfig, { target, editMode = false }: StepOptions) {
  const shape: Record<string, z.ZodTypeAny> = { title: z.string().min(1, "Storage title is required") };
  if (target === "export") shape.can_delete_objects = z.boolean().default(false);
  for (const field of stepFields(provider, target)) shape[field.name] = wizardFieldSchema(field, editMode);
  return z.object(shape);
}

/** Field name -> message, as the wizard would show them; empty when the step passes. */
export function stepErrors(
  provider: ProviderConfig,
  options: StepOptions,
  formData: Record<string, unknown>,
): Record<string, string> {
  const result = stepSchema(provider, options).safeParse(formData);
  if (result.success) return {};
  const errors: Record<string, string> = {};
  for (const issue of result.error.issues) errors[issue.path.join(".")] = issue.message;
  return errors;
}

/** The initial form values the wizard derives from field defaults. */
export function initialValues(provider: ProviderConfig): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const field of provider.fields) {
    if (field.type === "message") continue;
    if (field.defaultValue !== undefined) {
      values[field.name] = typeof field.defaultValue === "function" ? field.defaultValue() : field.defaultValue;
      continue;
    }
    const parsed = field.schema.safeParse(undefined);
    if (parsed.success && parsed.data !== undefined) values[field.name] = parsed.data;
  }
  return values;
}
