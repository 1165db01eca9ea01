import { describe, expect, it } from "vitest";
import { presignOpenTunnel } from "../../core/aws/tunnel-signer.ts";

const HOST = "eice-123.ec2-instance-connect-endpoint.us-west-2.amazonaws.com";

describe("presignOpenTunnel", () => {
  it("reproduces the AWS CLI's test vector (test_opentunnel.py::test_single_connection_mode)", async () => {
    const url = await presignOpenTunnel({
      credentials: { accessKeyId: "access_key", secretAccessKey: "secret_key" },
      region: "us-west-2",
      dnsName: HOST,
      endpointId: "eice-123",
      remotePort: 22,
      privateIp: "10.0.0.0",
      maxTunnelDuration: 1,
      signingDate: new Date("2020-01-01T01:01:01Z"),
      expiresIn: 60,
    });
    expect(url).toBe(
      `wss://${HOST}/openTunnel?instanceConnectEndpointId=eice-123&remotePort=22&privateIpAddress=10.0.0.0` +
        "&maxTunnelDuration=1&X-Amz-Algorithm=AWS4-HMAC-SHA256" +
        "&X-Amz-Credential=access_key%2F20200101%2Fus-west-2%2Fec2-instance-connect%2Faws4_request" +
        "&X-Amz-Date=20200101T010101Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host" +
        "&X-Amz-Signature=3a56740422a5b9aebd22d860b7a30c729e459a6f71a83bc0de3a2b44b7353f28",
    );
  });

  it("carries the session token of temporary credentials, signs only host, and defaults to 60 s", async () => {
    const url = new URL(
      await presignOpenTunnel({
        credentials: {
          accessKeyId: "ASIAEXAMPLE",
          secretAccessKey: "secret",
          sessionToken: "tok/en+with=chars",
        },
        region: "us-east-1",
        dnsName: HOST,
        endpointId: "eice-123",
        remotePort: 3389,
        privateIp: "2001:db8::5",
        signingDate: new Date("2026-11-21T10:00:00Z"),
      }),
    );
    expect(url.searchParams.get("X-Amz-Security-Token")).toBe("tok/en+with=chars");
    expect(url.searchParams.get("X-Amz-SignedHeaders")).toBe("host");
    expect(url.searchParams.get("X-Amz-Expires")).toBe("60");
    expect(url.searchParams.get("privateIpAddress")).toBe("2001:db8::5");
    expect(url.search).toContain("privateIpAddress=2001%3Adb8%3A%3A5");
    // Operation parameters first, the signature last, as botocore builds the URL.
    expect([...url.searchParams.keys()][0]).toBe("instanceConnectEndpointId");
    expect([...url.searchParams.keys()].at(-1)).toBe("X-Amz-Signature");
    expect(url.searchParams.has("maxTunnelDuration")).toBe(false);
  });
});
