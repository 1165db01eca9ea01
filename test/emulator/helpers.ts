/** Shared set-up for the emulator tests: the demo world (plus test principals) and SDK clients pointed at it. */
import { readFileSync } from "node:fs";
import { CloudTrailClient } from "@aws-sdk/client-cloudtrail";
import { EC2Client } from "@aws-sdk/client-ec2";
import { IAMClient } from "@aws-sdk/client-iam";
import { AssumeRoleCommand, type AssumeRoleCommandInput, STSClient } from "@aws-sdk/client-sts";
import { parse } from "yaml";
import { buildInventory, type EmulatorInventory } from "../../local/emulator/inventory.ts";
import { type EmulatorOptions, type RunningEmulator, startEmulator } from "../../local/emulator/server.ts";

export const DEMO_INVENTORY = new URL("../../local/demo/inventory.yaml", import.meta.url).pathname;

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export const BROKER: Credentials = {
  accessKeyId: "AKIAEMULATORBROKER01",
  secretAccessKey: "emulator-broker-secret-do-not-use-in-aws",
};
export const MALLORY: Credentials = {
  accessKeyId: "AKIAEMULATORMALLORY1",
  secretAccessKey: "emulator-mallory-secret",
};
export const ALICE: Credentials = {
  accessKeyId: "AKIAEMULATORALICE001",
  secretAccessKey: "emulator-alice-secret",
};
/** Added by `testInventory()`: may call LookupEvents in 111122223333 and 123456789012. */
export const AUDITOR: Credentials = {
  accessKeyId: "AKIAEMULATORAUDITOR1",
  secretAccessKey: "emulator-auditor-secret",
};
export const BROKER_AUDITOR: Credentials = {
  accessKeyId: "AKIAEMULATORAUDITOR2",
  secretAccessKey: "emulator-auditor-secret2",
};

export const TARGET = "111122223333";
export const BROKER_ROLE = `arn:aws:iam::${TARGET}:role/access-broker`;
export const SIGNER_ROLE = `arn:aws:iam::${TARGET}:role/access-broker-tunnel-signer`;

const lookupPolicy = {
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Action: "cloudtrail:LookupEvents", Resource: "*" }],
};

/** The demo inventory plus an auditor user in each of the two main accounts. */
export function testInventory(mutate?: (document: any) => void): EmulatorInventory {
  const document = parse(readFileSync(DEMO_INVENTORY, "utf8"));
  const target = document.accounts.find((a: any) => a.id === TARGET);
  target.users = [
    ...(target.users ?? []),
    {
      name: "auditor",
      accessKeys: [{ id: AUDITOR.accessKeyId, secret: AUDITOR.secretAccessKey }],
      policies: { lookup: lookupPolicy },
    },
  ];
  const broker = document.accounts.find((a: any) => a.id === "123456789012");
  broker.users.push({
    name: "auditor",
    accessKeys: [{ id: BROKER_AUDITOR.accessKeyId, secret: BROKER_AUDITOR.secretAccessKey }],
    policies: { lookup: lookupPolicy },
  });
  mutate?.(document);
  return buildInventory(document, "test inventory");
}

export function startTestEmulator(options: Partial<EmulatorOptions> = {}): Promise<RunningEmulator> {
  return startEmulator({ inventory: testInventory(), ...options });
}

const common = (url: string, credentials: Credentials, region: string) => ({
  endpoint: url,
  region,
  credentials,
  maxAttempts: 1,
});

export function clients(url: string, credentials: Credentials, region = "us-east-1") {
  return {
    sts: new STSClient(common(url, credentials, region)),
    ec2: new EC2Client(common(url, credentials, region)),
    iam: new IAMClient(common(url, credentials, region)),
    cloudtrail: new CloudTrailClient(common(url, credentials, region)),
  };
}

/** AssumeRole through the SDK; returns credentials ready for another client. */
export async function assumeRole(
  url: string,
  credentials: Credentials,
  input: Partial<AssumeRoleCommandInput> & { RoleArn: string },
  region = "us-east-1",
): Promise<Credentials> {
  const { Credentials: issued } = await clients(url, credentials, region).sts.send(
    new AssumeRoleCommand({ RoleSessionName: "test-session", ...input }),
  );
  if (!issued?.AccessKeyId || !issued.SecretAccessKey || !issued.SessionToken)
    throw new Error("no credentials");
  return {
    accessKeyId: issued.AccessKeyId,
    secretAccessKey: issued.SecretAccessKey,
    sessionToken: issued.SessionToken,
  };
}

/** user → access-broker role in 111122223333 (what the broker does before everything else). */
export function brokerSession(url: string, sessionName = "broker"): Promise<Credentials> {
  return assumeRole(url, BROKER, { RoleArn: BROKER_ROLE, RoleSessionName: sessionName });
}

export async function admin(url: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(`${url}/_emulator/${path}`, {
    method: body === undefined ? "GET" : "POST",
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${text}`);
  return text === "" ? undefined : JSON.parse(text);
}

/** The trail records so far, optionally of one event name. */
export async function trail(url: string, eventName?: string): Promise<any[]> {
  const { Records } = await admin(url, "trail");
  return eventName === undefined ? Records : Records.filter((r: any) => r.eventName === eventName);
}

/** The error a promise rejects with (fails the test if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to fail");
}
