import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { describe, expect, it } from "vitest";
import { AuthFailure } from "../../local/emulator/contract.ts";
import { NodeSha256, type SignedRequest, type SigningKey, verifySigV4 } from "../../local/emulator/sigv4.ts";
import { queryRecord } from "../../local/emulator/wire.ts";

// protocols.md §1.2: aws-cli tests/functional/ec2instanceconnect/test_opentunnel.py::test_single_connection_mode
const CLI_HOST = "eice-123.ec2-instance-connect-endpoint.us-west-2.amazonaws.com";
const CLI_SIGNATURE = "3a56740422a5b9aebd22d860b7a30c729e459a6f71a83bc0de3a2b44b7353f28";
const CLI_QUERY =
  "instanceConnectEndpointId=eice-123&remotePort=22&privateIpAddress=10.0.0.0&maxTunnelDuration=1" +
  "&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=access_key%2F20200101%2Fus-west-2%2Fec2-instance-connect%2Faws4_request" +
  `&X-Amz-Date=20200101T010101Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=${CLI_SIGNATURE}`;
const CLI_TIME = new Date("2020-01-01T01:01:01Z");

const cliKeys = (id: string): SigningKey | undefined =>
  id === "access_key" ? { secretAccessKey: "secret_key" } : undefined;

function cliRequest(query = CLI_QUERY, overrides: Partial<SignedRequest> = {}): SignedRequest {
  return {
    method: "GET",
    host: CLI_HOST,
    path: "/openTunnel",
    query: queryRecord(new URLSearchParams(query)),
    headers: { host: CLI_HOST, "user-agent": "aws-cli/2" },
    body: undefined,
    presigned: true,
    maxExpiresSeconds: 60,
    ...overrides,
  };
}

function failure(fn: () => unknown): AuthFailure {
  try {
    fn();
  } catch (error) {
    if (error instanceof AuthFailure) return error;
    throw error;
  }
  throw new Error("expected an AuthFailure");
}

const withParam = (name: string, value: string | undefined) => {
  const params = new URLSearchParams(CLI_QUERY);
  if (value === undefined) params.delete(name);
  else params.set(name, value);
  return params.toString();
};

describe("OpenTunnel presign test vector (AWS CLI)", () => {
  it("smithy's presigner reproduces the CLI's signature", async () => {
    const signer = new SignatureV4({
      service: "ec2-instance-connect",
      region: "us-west-2",
      credentials: { accessKeyId: "access_key", secretAccessKey: "secret_key" },
      sha256: NodeSha256,
    });
    const signed = await signer.presign(
      new HttpRequest({
        method: "GET",
        protocol: "wss:",
        hostname: CLI_HOST,
        path: "/openTunnel",
        headers: { host: CLI_HOST },
        query: {
          instanceConnectEndpointId: "eice-123",
          remotePort: "22",
          privateIpAddress: "10.0.0.0",
          maxTunnelDuration: "1",
        },
      }),
      { expiresIn: 60, signingDate: CLI_TIME },
    );
    expect(signed.query?.["X-Amz-Signature"]).toBe(CLI_SIGNATURE);
  });

  it("accepts the CLI's presigned URL at its signing time and within 60 s", () => {
    for (const offset of [0, 30_000, 60_000]) {
      const verified = verifySigV4(cliRequest(), {
        now: new Date(CLI_TIME.getTime() + offset),
        lookup: cliKeys,
      });
      expect(verified).toMatchObject({
        accessKeyId: "access_key",
        region: "us-west-2",
        service: "ec2-instance-connect",
      });
    }
  });

  it.each([
    ["instanceConnectEndpointId", "eice-124"],
    ["remotePort", "3389"],
    ["privateIpAddress", "10.0.0.1"],
    ["maxTunnelDuration", "3600"],
    ["maxTunnelDuration", undefined],
    ["X-Amz-Date", "20200101T010102Z"],
    ["X-Amz-Expires", "59"],
    ["X-Amz-Credential", "access_key/20200101/us-east-1/ec2-instance-connect/aws4_request"],
    ["X-Amz-SignedHeaders", "host;user-agent"],
    ["X-Amz-Signature", CLI_SIGNATURE.replace(/^3/, "4")],
    ["extra", "1"],
  ])("rejects the URL with %s tampered (%s)", (name, value) => {
    const error = failure(() =>
      verifySigV4(cliRequest(withParam(name, value)), { now: CLI_TIME, lookup: cliKeys }),
    );
    expect(error.code).toBe("InvalidSignatureException");
  });

  it("rejects another host, path or method", () => {
    for (const overrides of [
      { host: "eice-999.ec2-instance-connect-endpoint.us-west-2.amazonaws.com" },
      { path: "/opentunnel" },
      { method: "POST" },
    ]) {
      const error = failure(() =>
        verifySigV4(cliRequest(CLI_QUERY, overrides), { now: CLI_TIME, lookup: cliKeys }),
      );
      expect(error.code).toBe("InvalidSignatureException");
    }
  });

  it("rejects the URL after X-Amz-Date + X-Amz-Expires and before its date", () => {
    const late = failure(() =>
      verifySigV4(cliRequest(), { now: new Date(CLI_TIME.getTime() + 61_000), lookup: cliKeys }),
    );
    expect(late.code).toBe("InvalidSignatureException");
    expect(late.message).toMatch(/Signature expired/);
    const early = failure(() =>
      verifySigV4(cliRequest(), { now: new Date(CLI_TIME.getTime() - 301_000), lookup: cliKeys }),
    );
    expect(early.message).toMatch(/not yet current/);
  });

  it("rejects X-Amz-Expires above the caller's maximum even when correctly signed", async () => {
    const signer = new SignatureV4({
      service: "ec2-instance-connect",
      region: "us-west-2",
      credentials: { accessKeyId: "access_key", secretAccessKey: "secret_key" },
      sha256: NodeSha256,
    });
    const signed = await signer.presign(
      new HttpRequest({
        method: "GET",
        hostname: CLI_HOST,
        path: "/openTunnel",
        headers: { host: CLI_HOST },
        query: { remotePort: "22" },
      }),
      { expiresIn: 3600, signingDate: CLI_TIME },
    );
    const request = cliRequest(new URLSearchParams(signed.query as Record<string, string>).toString());
    expect(failure(() => verifySigV4(request, { now: CLI_TIME, lookup: cliKeys })).code).toBe(
      "AuthorizationQueryParametersError",
    );
    expect(
      verifySigV4({ ...request, maxExpiresSeconds: 3600 }, { now: CLI_TIME, lookup: cliKeys }).service,
    ).toBe("ec2-instance-connect");
  });

  it("rejects an unknown access key and a wrong secret", () => {
    expect(failure(() => verifySigV4(cliRequest(), { now: CLI_TIME, lookup: () => undefined })).code).toBe(
      "UnrecognizedClientException",
    );
    const wrong = failure(() =>
      verifySigV4(cliRequest(), { now: CLI_TIME, lookup: () => ({ secretAccessKey: "not_the_secret" }) }),
    );
    expect(wrong.code).toBe("InvalidSignatureException");
  });
});

describe("header-signed requests from the SDK signer", () => {
  const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  const now = new Date("2024-05-01T12:00:00Z");
  const body = "Action=GetCallerIdentity&Version=2011-06-15";

  async function sdkSigned(
    options: {
      service?: string;
      token?: string;
      signingDate?: Date;
      extraHeaders?: Record<string, string>;
    } = {},
  ) {
    const service = options.service ?? "sts";
    const signer = new SignatureV4({
      service,
      region: "us-east-1",
      credentials: {
        accessKeyId: "AKIDEXAMPLE00000001",
        secretAccessKey: secret,
        ...(options.token === undefined ? {} : { sessionToken: options.token }),
      },
      sha256: NodeSha256,
    });
    const signed = await signer.sign(
      new HttpRequest({
        method: "POST",
        protocol: "http:",
        hostname: "127.0.0.1",
        port: 4566,
        path: "/",
        query: { a: "b c", list: ["2", "1"] },
        headers: {
          host: "127.0.0.1:4566",
          "content-type": "application/x-www-form-urlencoded; charset=utf-8",
          "user-agent": "aws-sdk-js/3",
          ...options.extraHeaders,
        },
        body,
      }),
      { signingDate: options.signingDate ?? now },
    );
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(signed.headers)) headers[name.toLowerCase()] = value;
    return {
      method: "POST",
      host: "127.0.0.1:4566",
      path: "/",
      query: signed.query as Record<string, string | string[]>,
      headers,
      body: Buffer.from(body),
      presigned: false,
    } satisfies SignedRequest;
  }

  const keys =
    (token?: string, expiresAt?: Date) =>
    (id: string): SigningKey | undefined =>
      id === "AKIDEXAMPLE00000001"
        ? {
            secretAccessKey: secret,
            ...(token === undefined ? {} : { sessionToken: token }),
            ...(expiresAt === undefined ? {} : { expiresAt }),
          }
        : undefined;

  it("accepts a request signed by @smithy/signature-v4, with repeated and spaced query values", async () => {
    const request = await sdkSigned();
    expect(verifySigV4(request, { now, lookup: keys() })).toMatchObject({
      region: "us-east-1",
      service: "sts",
    });
  });

  it("rejects a changed body, header or query (query-protocol codes for STS)", async () => {
    const request = await sdkSigned();
    const cases: SignedRequest[] = [
      { ...request, body: Buffer.from(`${body}&x=1`) },
      { ...request, headers: { ...request.headers, "content-type": "text/plain" } },
      { ...request, query: { ...request.query, a: "b" } },
      { ...request, host: "127.0.0.1:4567" },
    ];
    for (const tampered of cases) {
      expect(failure(() => verifySigV4(tampered, { now, lookup: keys() })).code).toBe(
        "SignatureDoesNotMatch",
      );
    }
  });

  it("chooses error codes by the credential scope's service", async () => {
    const ec2 = await sdkSigned({ service: "ec2" });
    expect(failure(() => verifySigV4(ec2, { now, lookup: () => undefined })).code).toBe("AuthFailure");
    const trail = await sdkSigned({ service: "cloudtrail" });
    expect(failure(() => verifySigV4(trail, { now, lookup: () => undefined })).code).toBe(
      "UnrecognizedClientException",
    );
    const sts = await sdkSigned();
    expect(failure(() => verifySigV4(sts, { now, lookup: () => undefined })).code).toBe(
      "InvalidClientTokenId",
    );
  });

  it("enforces a ±5 minute clock skew", async () => {
    const request = await sdkSigned({ signingDate: new Date(now.getTime() - 6 * 60_000) });
    const error = failure(() => verifySigV4(request, { now, lookup: keys() }));
    expect(error.code).toBe("SignatureDoesNotMatch");
    expect(error.message).toMatch(/Signature expired/);
    const ok = await sdkSigned({ signingDate: new Date(now.getTime() + 4 * 60_000) });
    expect(verifySigV4(ok, { now, lookup: keys() }).service).toBe("sts");
  });

  it("requires the session token of an STS key, and rejects it once the session expired", async () => {
    const token = "IQoJb3JpZ2luX2VjEXAMPLE";
    const signed = await sdkSigned({ token });
    expect(signed.headers["x-amz-security-token"]).toBe(token);
    expect(verifySigV4(signed, { now, lookup: keys(token) }).service).toBe("sts");
    expect(failure(() => verifySigV4(signed, { now, lookup: keys("another-token") })).code).toBe(
      "InvalidClientTokenId",
    );
    const unsigned = await sdkSigned();
    expect(failure(() => verifySigV4(unsigned, { now, lookup: keys(token) })).code).toBe(
      "InvalidClientTokenId",
    );
    expect(failure(() => verifySigV4(signed, { now, lookup: keys(token, now) })).code).toBe("ExpiredToken");
  });

  it("refuses missing and malformed authorization", async () => {
    const request = await sdkSigned();
    const { authorization: _, ...noAuth } = request.headers;
    expect(failure(() => verifySigV4({ ...request, headers: noAuth }, { now, lookup: keys() })).code).toBe(
      "MissingAuthenticationTokenException",
    );
    for (const authorization of [
      "AWS4-HMAC-SHA256 Credential=x",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000001/2024/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00",
      "Basic dXNlcjpwYXNz",
      "",
    ]) {
      const error = failure(() =>
        verifySigV4({ ...request, headers: { ...request.headers, authorization } }, { now, lookup: keys() }),
      );
      expect(error.status).toBeGreaterThanOrEqual(400);
    }
  });
});
