import { CloudTrailClient, LookupEventsCommand } from "@aws-sdk/client-cloudtrail";
import type { LookupEventsApi, LookupPage, Scope } from "../trail/backfill.ts";
import { EIC_EVENT_SOURCE } from "../trail/schema.ts";
import type { AwsClients } from "./clients.ts";

/**
 * LookupEvents as the broker role of each account (its policy allows `cloudtrail:LookupEvents`; the API
 * takes no resource-level permissions), filtered on the one lookup attribute it allows:
 * `EventSource = ec2-instance-connect.amazonaws.com` (protocols.md §3.4). Throttling is left to the caller,
 * which paces itself at 2 TPS per account and region and backs off.
 */
export class CloudTrailLookup implements LookupEventsApi {
  constructor(private readonly clients: AwsClients) {}

  async page(
    scope: Scope,
    input: { start: Date; end: Date; nextToken?: string; maxResults?: number },
  ): Promise<LookupPage> {
    const client = this.clients.inAccount(CloudTrailClient, scope.account, scope.region);
    const output = await client.send(
      new LookupEventsCommand({
        LookupAttributes: [{ AttributeKey: "EventSource", AttributeValue: EIC_EVENT_SOURCE }],
        StartTime: input.start,
        EndTime: input.end,
        MaxResults: input.maxResults ?? 50,
        ...(input.nextToken ? { NextToken: input.nextToken } : {}),
      }),
    );
    return {
      events: (output.Events ?? []).flatMap((event) =>
        event.CloudTrailEvent ? [event.CloudTrailEvent] : [],
      ),
      ...(output.NextToken ? { nextToken: output.NextToken } : {}),
    };
  }
}
