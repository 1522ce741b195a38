/**
 * Local equivalents of the types Label Studio 1.23's Cloud Storage wizard
 * (`StorageProviderForm`) reads from a provider config.
 *
 * Label Studio's own definitions are type-only, so they are not in the shipped
 * source maps; these are reconstructed from how the wizard uses each property
 * (field renderer, form state, schema assembly, provider grid). They exist so
 * `tsc --noEmit` can check our provider against the same shape outside Label
 * Studio's source tree. Keep them a faithful description, never a wish list:
 * a property the wizard does not read does not belong here.
 */
import type { ComponentType, ReactNode } from "react";
import type { ZodTypeAny } from "zod";

/** Which storage a field belongs to; a field without one is shown for both. */
export type StorageTarget = "import" | "export";

/** Field kinds the wizard's field renderer knows; anything else renders an error. */
export type FieldType = "text" | "password" | "textarea" | "number" | "counter" | "select" | "toggle" | "hidden";

/**
 * A condition on another field's value. A function receives that value and the
 * whole form; an array (visibleWhen only) means "any of these values".
 */
export interface FieldCondition {
  field: string;
  value: unknown | ((value: unknown, formData: Record<string, unknown>) => boolean);
}

export interface SelectOption {
  value: string;
  label: string;
}

export interface FieldDefinition {
  /** Key in the request body sent to the storage API. */
  name: string;
  type: FieldType;
  label?: string;
  description?: string;
  placeholder?: string;
  /** Shows the required marker; the wizard also adds a "<label> is required" check. */
  required?: boolean;
  /** Validates the value on blur and on "Next"/"Save"; `.default()` also supplies the initial value. */
  schema: ZodTypeAny;
  target?: StorageTarget;
  /**
   * A secret. In edit mode the wizard shows a mask instead of the stored value,
   * makes the field optional and leaves it out of the request unless retyped.
   */
  accessKey?: boolean;
  autoComplete?: string;
  min?: number;
  max?: number;
  step?: number;
  options?: SelectOption[];
  /** Disabled unless the condition holds. */
  dependsOn?: FieldCondition;
  /** Hidden unless the condition holds. */
  visibleWhen?: FieldCondition;
  readOnly?: boolean;
  /** `false`: editing this field keeps a passed connection check valid. */
  resetConnection?: boolean;
  /** Initial value that wins over the schema's default. */
  defaultValue?: unknown | (() => unknown);
  /** CSS `grid-column` value for the field's cell in its layout row. */
  gridCols?: number | string;
}

/** Static content (an alert, a note) placed in the layout like a field. */
export interface MessageDefinition {
  name: string;
  type: "message";
  content: ReactNode | ComponentType;
}

export interface LayoutRow {
  /** Names of fields (or messages) shown side by side in one row. */
  fields: string[];
}

export interface ProviderConfig {
  /** Storage type used in API URLs: /api/storages/<name>/... */
  name: string;
  /** Tile and form heading. */
  title: string;
  description: string;
  /** Rendered in the provider grid with `className` sizing it. */
  icon: ComponentType<{ className?: string }>;
  fields: (FieldDefinition | MessageDefinition)[];
  layout: LayoutRow[];
  /** Greys out the tile (used for Enterprise-only providers). */
  disabled?: boolean;
  badge?: ReactNode;
}
