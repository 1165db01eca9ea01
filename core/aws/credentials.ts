import { AssumeRoleCommand, type AssumeRoleCommandInput, STSClient } from "@aws-sdk/client-sts";

// Re-exported for AwsClients, which loads this module (and so STS) on first use only.
export { STSClient };

/** What an SDK client or a SigV4 signer needs; structurally the SDK's AwsCredentialIdentity. */
export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export type CredentialsProvider = () => Promise<Credentials>;

/** Refresh a cached role session this long before it expires, so no call starts on dying credentials. */
export const REFRESH_BEFORE_EXPIRY_MS = 5 * 60_000;

/** Calls STS AssumeRole and returns the temporary credentials (throws when STS returns none). */
export async function assumeRole(sts: STSClient, input: AssumeRoleCommandInput): Promise<Credentials> {
  const { Credentials: issued } = await sts.send(new AssumeRoleCommand(input));
  if (!issued?.AccessKeyId || !issued.SecretAccessKey || !issued.SessionToken || !issued.Expiration)
    throw new Error(`STS returned no credentials for ${input.RoleArn}`);
  return {
    accessKeyId: issued.AccessKeyId,
    secretAccessKey: issued.SecretAccessKey,
    sessionToken: issued.SessionToken,
    expiration: issued.Expiration,
  };
}

/**
 * Role sessions shared by every client of the process: one AssumeRole per role until 5 minutes before the
 * session expires, and concurrent callers wait for the same AssumeRole instead of each making one.
 */
export class RoleSessions {
  private readonly cache = new Map<string, { credentials: Credentials; refreshAt: number }>();
  private readonly inFlight = new Map<string, Promise<Credentials>>();

  constructor(
    private readonly sts: STSClient,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async get(roleArn: string, sessionName: string): Promise<Credentials> {
    const key = `${roleArn}|${sessionName}`;
    const hit = this.cache.get(key);
    if (hit && this.clock().getTime() < hit.refreshAt) return hit.credentials;
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const started = assumeRole(this.sts, { RoleArn: roleArn, RoleSessionName: sessionName })
      .then((credentials) => {
        const expires = credentials.expiration?.getTime() ?? this.clock().getTime();
        this.cache.set(key, { credentials, refreshAt: expires - REFRESH_BEFORE_EXPIRY_MS });
        return credentials;
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, started);
    return started;
  }
}
