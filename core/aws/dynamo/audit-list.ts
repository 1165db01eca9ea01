import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { Audit } from "../../audit/index.ts";
import type { AuditFilter } from "../../audit/store.ts";
import type { Page } from "../../util/page.ts";
import { Condition, type KeyRange, listFiltered } from "./filtered-list.ts";
import { INDEX, SEQ_WIDTH, withoutKeys } from "./keys.ts";

/**
 * The audit log as a list (`GET /audit/events`, reports): loaded by DynamoStore.list on first use, so that
 * functions that only append to the chain (the sweeper, the trail functions) do not carry it.
 */

const SEQ_SK = new RegExp(`^SEQ#\\d{${SEQ_WIDTH}}$`);

/** Where the records are read: one request's (by sequence), a time range (by `at#seq`), or all (by sequence). */
function auditRange(filter: AuditFilter): KeyRange & { timeInKey: boolean } {
  const record = (key: Record<string, string>) => key.pk === "AUDIT" && SEQ_SK.test(key.sk ?? "");
  const seqOf = (key: Record<string, string>) => (key.sk ?? "").slice("SEQ#".length);
  if (filter.subject) {
    const pk = `SUBJ#${filter.subject}`;
    return {
      index: INDEX.byOwner,
      expression: "gsi1pk = :pk",
      values: { ":pk": pk },
      attributes: ["pk", "sk", "gsi1pk", "gsi1sk"],
      holds: (key) => record(key) && key.gsi1pk === pk && key.gsi1sk === seqOf(key),
      timeInKey: false,
    };
  }
  if (filter.from || filter.to) {
    const from = filter.from ?? "0";
    const to = `${filter.to ?? "9"}#~`;
    return {
      index: INDEX.byTime,
      expression: "gsi4pk = :pk AND gsi4sk BETWEEN :from AND :to",
      values: { ":pk": "AUDIT", ":from": from, ":to": to },
      attributes: ["pk", "sk", "gsi4pk", "gsi4sk"],
      holds: (key) =>
        record(key) &&
        key.gsi4pk === "AUDIT" &&
        (key.gsi4sk ?? "").endsWith(`#${seqOf(key)}`) &&
        (key.gsi4sk ?? "") >= from &&
        (key.gsi4sk ?? "") <= to,
      timeInKey: true,
    };
  }
  return {
    index: undefined,
    expression: "pk = :pk AND begins_with(sk, :seq)",
    values: { ":pk": "AUDIT", ":seq": "SEQ#" },
    attributes: ["pk", "sk"],
    holds: record,
    timeInKey: false,
  };
}

/** The filter's user and instance (and, off the time index, its time range): `matches` in core/audit/store.ts. */
function auditCondition(filter: AuditFilter, timeInKey: boolean): Condition {
  const condition = new Condition();
  const at = () => condition.path("at");
  if (!timeInKey && filter.from) condition.parts.push(`${at()} >= ${condition.value("atFrom", filter.from)}`);
  if (!timeInKey && filter.to) condition.parts.push(`${at()} <= ${condition.value("atTo", filter.to)}`);
  if (filter.user) {
    const email = condition.value("email", filter.user.email);
    const any = [
      `${condition.path("actor")} = ${email}`,
      `${condition.path("data", "requester")} = ${email}`,
      `${condition.path("data", "sourceIdentity")} = ${email}`,
    ];
    if (filter.user.principals.length > 0)
      any.push(
        ...condition.anyIn(
          [condition.path("data", "principal"), condition.path("data", "principalArn")],
          "principal",
          filter.user.principals,
        ),
      );
    condition.parts.push(`(${any.join(" OR ")})`);
  }
  if (filter.instance)
    condition.parts.push(
      `${condition.path("data", "instanceId")} = ${condition.value("instance", filter.instance)}`,
    );
  return condition;
}

/**
 * Audit records by the key range `filter` picks, with its user and instance (and a subject's time range) as
 * a FilterExpression, at most `budget` index entries read per call.
 */
export function listAudit(
  client: DynamoDBDocumentClient,
  table: string,
  filter: AuditFilter,
  page: { limit: number; cursor?: string; budget: number },
): Promise<Page<Audit.Info>> {
  const range = auditRange(filter);
  return listFiltered(
    client,
    table,
    range,
    auditCondition(filter, range.timeInKey),
    { ...page, ascending: filter.order === "asc" },
    withoutKeys<Audit.Info>,
  );
}
