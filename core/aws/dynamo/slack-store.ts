import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import type { MessageKey, MessageRef, SlackStore } from "../../slack/ports.ts";
import { Keys } from "./keys.ts";

/**
 * Slack's items live next to their request (`pk = REQ#<id>`), without index keys, so no list or sweep ever
 * sees them: `SLACK#msg#<key>` holds a posted message's channel and ts (for chat.update), and
 * `SLACK#claim#<marker>` exists once a once-only notification was claimed. PutItem only, like the rest.
 */
export class DynamoSlackStore implements SlackStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async getMessage(requestId: string, key: MessageKey): Promise<MessageRef | undefined> {
    const { Item } = await this.client.send(
      new GetCommand({ TableName: this.table, Key: Keys.slackMessage(requestId, key), ConsistentRead: true }),
    );
    return Item ? { channel: String(Item.channel), ts: String(Item.ts) } : undefined;
  }

  async putMessage(requestId: string, key: MessageKey, ref: MessageRef): Promise<void> {
    await this.client.send(
      new PutCommand({
        TableName: this.table,
        Item: {
          ...Keys.slackMessage(requestId, key),
          channel: ref.channel,
          ts: ref.ts,
          at: new Date().toISOString(),
        },
      }),
    );
  }

  async claim(requestId: string, marker: string): Promise<boolean> {
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...Keys.slackClaim(requestId, marker), at: new Date().toISOString() },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
