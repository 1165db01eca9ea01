// The trail's modules, to be imported as a namespace: `import * as Trail from "…/trail/index.ts"`. There is
// deliberately no `export * as Trail` here: esbuild cannot tree-shake a namespace re-exported by name, so
// `import { Trail }` would put every trail module (the log reader, the backfill…) into each function that
// touches one of them (the sweeper's cold start was 19 KB larger for it).
export {
  type Alert,
  type AlertDeps,
  type AlertSink,
  alertOf,
  type DispatchResult,
  dispatchAlerts,
  logSink,
} from "./alerts.ts";
export {
  type BackfillDeps,
  type BackfillOptions,
  type BackfillResult,
  backfill,
  backfillAll,
  checkpointKey,
  isThrottle,
  type LookupEventsApi,
  type LookupPage,
  type Scope,
  scopesOf,
} from "./backfill.ts";
export {
  correlate,
  DEFAULT_TUNNEL_SECONDS,
  type Lookup,
  PUSH_MATCH_MS,
  samePrincipal,
  WINDOW_SKEW_MS,
  windowOf,
} from "./correlate.ts";
export {
  type FileReport,
  type ImportOptions,
  type ImportSummary,
  importFiles,
  importSources,
  type LogSource,
  listLogFiles,
  type Sink,
  type SourceReport,
  type StreamReport,
} from "./files.ts";
export {
  addResults,
  type Deps,
  emptyResult,
  type IngestOptions,
  type IngestResult,
  ingest,
  LookupCache,
  RECORRELATE_LOOKBACK_MS,
  type RecorrelateResult,
  recorrelate,
} from "./ingest.ts";
export { type MaintainDeps, type MaintainResult, maintain } from "./maintain.ts";
export { contentId, identityOf, isInstanceConnect, keyFingerprint, normalize } from "./normalize.ts";
export { emptyStats, LogFileError, type ScanStats, scanLog } from "./reader.ts";
export * from "./schema.ts";
export {
  EVENTBRIDGE_DETAIL_TYPE,
  EventBridgeEvent,
  fromEventBridge,
  importObjects,
  type ObjectReport,
  objectsOf,
  receive,
  type S3Object,
} from "./sources.ts";
export type { Checkpoint, ObservationFilter, RecordResult, TrailStore } from "./store.ts";
