const isProduction = $app.stage === "production";

// Single-table design: requests, grants, pushes, audit records and idempotency keys share one table so
// that a state change and its audit record can be written in one transaction.
export const table = new sst.aws.Dynamo("Table", {
  fields: {
    pk: "string",
    sk: "string",
    gsi1pk: "string",
    gsi1sk: "string",
    gsi2pk: "string",
    gsi2sk: "string",
    gsi3pk: "string",
    gsi3sk: "string",
    gsi4pk: "string",
    gsi4sk: "string",
  },
  primaryIndex: { hashKey: "pk", rangeKey: "sk" },
  globalIndexes: {
    // Requests by requester ("my access") and audit records by subject (history shown to approvers).
    gsi1: { hashKey: "gsi1pk", rangeKey: "gsi1sk" },
    // Requests by status: the approvals inbox and `GET /requests?status=`.
    gsi2: { hashKey: "gsi2pk", rangeKey: "gsi2sk" },
    // Sparse: only items with a due time-based transition (pending timeout, scheduled start, grant end)
    // carry gsi3 keys, so the sweeper's query stays small however large the history grows.
    gsi3: { hashKey: "gsi3pk", rangeKey: "gsi3sk" },
    // Requests by creation time and audit records by time: reports and the audit explorer by period.
    gsi4: { hashKey: "gsi4pk", rangeKey: "gsi4sk" },
  },
  // Only idempotency-key records set it; audit records never do, so TTL cannot erode the hash chain.
  ttl: "expiresAt",
  // The table holds the audit trail: an accidental delete in production would destroy the evidence.
  deletionProtection: isProduction,
  transform: {
    table: (args) => {
      // SST enables it today; pinned here so a change of SST defaults cannot silently drop the backups.
      args.pointInTimeRecovery = { enabled: true };
    },
  },
});

// Audit chain anchors: the sweeper writes each new chain head here as its own object. Object Lock in
// compliance mode means nobody — not the broker's role, not an administrator, not the root user — can
// delete or overwrite an anchor before its retention ends, so a table rolled back or rewritten no longer
// matches its anchors (`access audit verify`). Object Lock can only be enabled when the bucket is created.
export const anchorBucket = new aws.s3.Bucket("AuditAnchors", {
  objectLockEnabled: true,
  forceDestroy: false,
});

new aws.s3.BucketObjectLockConfiguration("AuditAnchorsLock", {
  bucket: anchorBucket.id,
  rule: { defaultRetention: { mode: "COMPLIANCE", days: isProduction ? 2_555 : 1 } },
});

new aws.s3.BucketPublicAccessBlock("AuditAnchorsPrivate", {
  bucket: anchorBucket.id,
  blockPublicAcls: true,
  blockPublicPolicy: true,
  ignorePublicAcls: true,
  restrictPublicBuckets: true,
});
