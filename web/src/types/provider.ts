/**
 * Stands in for Label Studio's
 * `@humansignal/app-common/blocks/StorageProviderForm/types/provider` module,
 * which is where Label Studio's own providers import `ProviderConfig` from.
 * tsconfig, vitest and esbuild map that module path here, so `pachyderm.ts`
 * keeps the exact import line it needs inside Label Studio's source tree.
 */
export type { FieldDefinition, MessageDefinition, ProviderConfig, StorageTarget } from "./common";
