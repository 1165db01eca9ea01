import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { Config } from "../policy/index.ts";
import type { Credentials, CredentialsProvider, RoleSessions } from "./credentials.ts";

/**
 * The one retry policy for every AWS call the broker makes. The SDK's standard strategy retries throttling
 * (ThrottlingException, 429, …) and transient/5xx errors with exponential backoff and full jitter, under a
 * per-client retry quota, and never retries client errors (AccessDenied, InvalidArgs, NotFound…).
 * Six attempts ride out a burst of throttling (~0.5 s · 2^n jittered delays) within a Lambda's budget.
 */
export const RETRY = { maxAttempts: 6, retryMode: "standard" } as const;

/**
 * The one place AWS clients are built. Endpoints come from the SDK's own settings
 * (`AWS_ENDPOINT_URL_DYNAMODB` etc.), so the local runtime and tests use the production code path.
 */
export function documentClient(config: DynamoDBClientConfig = {}): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient({ maxAttempts: 5, ...config }), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
}

/** How the broker reaches AWS: nothing in Lambda (SDK defaults); the emulator URL and keys locally. */
export interface AwsConnection {
  /** One endpoint for every service (the local emulator); else the SDK's `AWS_ENDPOINT_URL*` settings. */
  endpoint?: string;
  /** The broker's own identity; else the SDK's default chain (the Lambda role). */
  credentials?: Credentials | CredentialsProvider;
  /** Region for the global/home services (STS for the broker's own identity, IAM, Scheduler). */
  homeRegion?: string;
  /** Overrides RETRY.maxAttempts (tests that inject faults on purpose). */
  maxAttempts?: number;
  clock?: () => Date;
}

type Accounts = Config["settings"]["aws"]["accounts"];

/** An SDK v3 client class (EC2Client, STSClient, …). */
export type ClientClass<T> = new (config: ClientSettings) => T;

export interface ClientSettings {
  region: string;
  maxAttempts: number;
  retryMode: string;
  endpoint?: string;
  credentials?: Credentials | CredentialsProvider;
}

/**
 * Clients for every account and region the policy names, built once each and reused for the life of the
 * process. Calls in a target account run as that account's broker role (`brokerRoleArn`), assumed through
 * STS from the broker's own identity with session name `access-broker` and cached until 5 minutes before
 * it expires.
 *
 * Adapters name the client class they need, so each SDK package is imported only by the adapter that uses
 * it (core/aws/index.ts loads those on first use: a cold start that serves no AWS-backed route does not
 * read or parse the SDK, EC2's client alone being ~0.5 MB minified).
 */
export class AwsClients {
  private readonly byClass = new Map<unknown, Map<string, { destroy(): void }>>();
  private roleSessions: Promise<RoleSessions> | undefined;
  readonly homeRegion: string;

  constructor(
    private readonly accounts: Accounts,
    private readonly connection: AwsConnection = {},
  ) {
    this.homeRegion = connection.homeRegion ?? process.env.AWS_REGION ?? "us-east-1";
  }

  /** Settings every client shares: region, the one retry policy, the endpoint override. */
  private settings(region: string, credentials?: Credentials | CredentialsProvider): ClientSettings {
    return {
      region,
      maxAttempts: this.connection.maxAttempts ?? RETRY.maxAttempts,
      retryMode: RETRY.retryMode,
      ...(this.connection.endpoint ? { endpoint: this.connection.endpoint } : {}),
      ...(credentials ? { credentials } : {}),
    };
  }

  private cached<T extends { destroy(): void }>(Client: ClientClass<T>, key: string, build: () => T): T {
    let clients = this.byClass.get(Client);
    if (!clients) {
      clients = new Map();
      this.byClass.set(Client, clients);
    }
    let client = clients.get(key) as T | undefined;
    if (!client) {
      client = build();
      clients.set(key, client);
    }
    return client;
  }

  /** A client acting as the broker's own identity (Lambda role; the broker IAM user locally). */
  asSelf<T extends { destroy(): void }>(Client: ClientClass<T>, region = this.homeRegion): T {
    return this.cached(
      Client,
      `self|${region}`,
      () => new Client(this.settings(region, this.connection.credentials)),
    );
  }

  /** A client acting as the broker role of `account` (throws for accounts the policy has no roles for). */
  inAccount<T extends { destroy(): void }>(Client: ClientClass<T>, account: string, region: string): T {
    const credentials = this.brokerCredentials(account);
    return this.cached(Client, `${account}|${region}`, () => new Client(this.settings(region, credentials)));
  }

  private entry(account: string) {
    const entry = this.accounts[account];
    if (!entry) throw new Error(`No settings.aws.accounts entry for account ${account}`);
    return entry;
  }

  brokerRoleArn(account: string): string {
    return this.entry(account).brokerRoleArn;
  }

  signerRoleArn(account: string): string {
    return this.entry(account).signerRoleArn;
  }

  /** Credentials of the broker role in `account`, refreshed 5 minutes before they expire. */
  brokerCredentials(account: string): CredentialsProvider {
    const roleArn = this.brokerRoleArn(account);
    return async () => (await this.sessions()).get(roleArn, "access-broker");
  }

  private sessions(): Promise<RoleSessions> {
    this.roleSessions ??= (async () => {
      const { RoleSessions, STSClient } = await import("./credentials.ts");
      return new RoleSessions(this.asSelf(STSClient), this.connection.clock);
    })();
    return this.roleSessions;
  }

  destroy(): void {
    for (const clients of this.byClass.values()) for (const client of clients.values()) client.destroy();
    this.byClass.clear();
    this.roleSessions = undefined;
  }
}

let processClients: AwsClients | undefined;

/** The process-wide clients of a Lambda (built on first use, SDK defaults for endpoint and identity). */
export function awsClientsFor(accounts: Accounts): AwsClients {
  processClients ??= new AwsClients(accounts);
  return processClients;
}
