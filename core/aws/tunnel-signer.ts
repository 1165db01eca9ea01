import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import type { SignedTunnel, TunnelRequest, TunnelSigner } from "../access/index.ts";
import type { AwsClients } from "./clients.ts";
import { assumeRole, type Credentials, STSClient } from "./credentials.ts";
import { rethrowAws } from "./errors.ts";
import { Sha256 } from "./sha256.ts";

export { Sha256 };

/** RFC 3986 encoding, as SigV4's canonical query uses it. */
function encode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export interface OpenTunnelUrl {
  credentials: Credentials;
  /** The endpoint's region (the credential scope), not parsed from the DNS name. */
  region: string;
  dnsName: string;
  endpointId: string;
  remotePort: number;
  privateIp: string;
  maxTunnelDuration?: number;
  signingDate?: Date;
  /** Seconds; the AWS CLI uses 60. */
  expiresIn?: number;
}

/** botocore's order of the SigV4 query parameters; X-Amz-Signature goes last. */
const AUTH_ORDER = [
  "X-Amz-Algorithm",
  "X-Amz-Credential",
  "X-Amz-Date",
  "X-Amz-Expires",
  "X-Amz-SignedHeaders",
  "X-Amz-Security-Token",
  "X-Amz-Signature",
];

/**
 * Presigns `wss://<dns>/openTunnel?…` exactly as the AWS CLI does (protocols.md §1.1–1.2): GET, service
 * `ec2-instance-connect`, the endpoint's region, only `host` signed, the empty-body payload hash, 60 s,
 * and the session token in the query when the credentials are temporary.
 */
export async function presignOpenTunnel(input: OpenTunnelUrl): Promise<string> {
  const signer = new SignatureV4({
    service: "ec2-instance-connect",
    region: input.region,
    credentials: {
      accessKeyId: input.credentials.accessKeyId,
      secretAccessKey: input.credentials.secretAccessKey,
      ...(input.credentials.sessionToken ? { sessionToken: input.credentials.sessionToken } : {}),
    },
    sha256: Sha256,
    uriEscapePath: true,
  });
  const operation: [string, string][] = [
    ["instanceConnectEndpointId", input.endpointId],
    ["remotePort", String(input.remotePort)],
    ["privateIpAddress", input.privateIp],
  ];
  if (input.maxTunnelDuration !== undefined)
    operation.push(["maxTunnelDuration", String(input.maxTunnelDuration)]);
  const request = new HttpRequest({
    method: "GET",
    protocol: "wss:",
    hostname: input.dnsName,
    path: "/openTunnel",
    query: Object.fromEntries(operation),
    headers: { host: input.dnsName },
  });
  const signed = await signer.presign(request, {
    expiresIn: input.expiresIn ?? 60,
    ...(input.signingDate ? { signingDate: input.signingDate } : {}),
  });
  const query = signed.query as Record<string, string>;
  const pairs = [
    ...operation.map(([name]) => name),
    ...AUTH_ORDER.filter((name) => name in query),
    ...Object.keys(query).filter(
      (name) => !AUTH_ORDER.includes(name) && !operation.some(([op]) => op === name),
    ),
  ].map((name) => `${encode(name)}=${encode(String(query[name]))}`);
  return `wss://${input.dnsName}/openTunnel?${pairs.join("&")}`;
}

/**
 * Access.TunnelSigner: assumes the account's signer role as its broker role (role chaining, ≤ 1 h) with the
 * grant's session name, SourceIdentity and inline session policy, then presigns the URL with that session.
 * The URL carries the session token: it is returned, never logged.
 */
export class StsTunnelSigner implements TunnelSigner {
  constructor(private readonly aws: AwsClients) {}

  async sign(request: TunnelRequest): Promise<SignedTunnel> {
    let credentials: Credentials;
    try {
      // STS as the account's broker role: the caller the signer role trusts (role chaining, ≤ 1 h).
      credentials = await assumeRole(this.aws.inAccount(STSClient, request.account, request.region), {
        RoleArn: this.aws.signerRoleArn(request.account),
        RoleSessionName: request.session.sessionName,
        SourceIdentity: request.session.sourceIdentity,
        DurationSeconds: request.session.durationSeconds,
        Policy: request.session.policy,
      });
    } catch (error) {
      return rethrowAws(error, `AssumeRole of the tunnel signer in ${request.account}`);
    }
    const expiresIn = 60;
    const url = await presignOpenTunnel({
      credentials,
      region: request.region,
      dnsName: request.dnsName,
      endpointId: request.endpointId,
      remotePort: request.remotePort,
      privateIp: request.privateIp,
      maxTunnelDuration: request.maxTunnelDuration,
      signingDate: request.signingDate,
      expiresIn,
    });
    return {
      url,
      expiresAt: new Date(Math.floor(request.signingDate.getTime() / 1000) * 1000 + expiresIn * 1000),
      accessKeyId: credentials.accessKeyId,
      sessionExpiresAt: credentials.expiration,
    };
  }
}
