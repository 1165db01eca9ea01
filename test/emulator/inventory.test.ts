import { describe, expect, it } from "vitest";
import { InventoryError, loadInventory, parseInventory } from "../../local/emulator/inventory.ts";
import { DEMO_INVENTORY } from "./helpers.ts";

describe("the demo inventory", () => {
  const inventory = loadInventory(DEMO_INVENTORY);

  it("computes endpoint DNS names, ARN and availability zone", () => {
    const endpoint = inventory.endpoints.find((e) => e.id === "eice-0demo00000000001");
    expect(endpoint).toMatchObject({
      dnsName: "eice-0demo00000000001.ec2-instance-connect-endpoint.us-east-1.amazonaws.com",
      fipsDnsName: "eice-0demo00000000001.fips.ec2-instance-connect-endpoint.us-east-1.amazonaws.com",
      arn: "arn:aws:ec2:us-east-1:111122223333:instance-connect-endpoint/eice-0demo00000000001",
      availabilityZone: "us-east-1a",
      state: "create-complete",
      tags: {},
    });
  });

  it("derives stable AIDA/AROA ids from the ARN", () => {
    const account = inventory.accounts.find((a) => a.id === "111122223333");
    const role = account?.roles.find((r) => r.name === "access-broker");
    expect(role?.arn).toBe("arn:aws:iam::111122223333:role/access-broker");
    expect(role?.id).toMatch(/^AROA[A-Z2-7]{17}$/);
    const again = loadInventory(DEMO_INVENTORY).accounts.find((a) => a.id === "111122223333");
    expect(again?.roles.find((r) => r.name === "access-broker")?.id).toBe(role?.id);
    const other = inventory.accounts
      .find((a) => a.id === "444455556666")
      ?.roles.find((r) => r.name === "access-broker");
    expect(other?.id).not.toBe(role?.id);
    const user = inventory.accounts[0]?.users[0];
    expect(user?.id).toMatch(/^AIDA[A-Z2-7]{17}$/);
  });

  it("fills instance defaults", () => {
    const stopped = inventory.instances.find((i) => i.id === "i-0deadbeef00000005");
    expect(stopped).toMatchObject({
      state: "stopped",
      platform: "linux",
      ports: {},
      instanceType: "t3.micro",
    });
    expect(inventory.instances.find((i) => i.id === "i-0a1b2c3d4e5f60718")?.ports).toEqual({
      "22": "demo-sshd",
    });
  });
});

describe("invalid inventories", () => {
  const base = `
accounts:
  - id: "111122223333"
    users:
      - name: a
        accessKeys: [{ id: AKIAAAAAAAAAAAAAAAAA, secret: secret-a-1 }]
`;
  it.each([
    ["a bad account id", `accounts: [{ id: "1234" }]`, /accounts\[0\]\.id: must be a 12-digit/],
    [
      "a duplicate access key",
      `${base}      - name: b\n        accessKeys: [{ id: AKIAAAAAAAAAAAAAAAAA, secret: secret-b-1 }]\n`,
      /duplicate access key 'AKIAAAAAAAAAAAAAAAAA'/,
    ],
    [
      "a malformed policy",
      `${base}        policies:\n          p: { Statement: { Effect: Allow, Action: "*" } }\n`,
      /accounts\[0\]\.users\[0\]\.policies\.p: .*resources/,
    ],
    ["a bad instance id", `instances: [{ id: "instance-1", account: "111122223333" }]`, /instances\[0\]\.id/],
    [
      "an unknown field",
      `endpoints: [{ id: eice-1, account: "111122223333", region: us-east-1, vpcId: vpc-1, subnetId: subnet-1, colour: red }]`,
      /colour/,
    ],
    ["YAML that does not parse", "accounts: [", /not valid YAML/],
  ])("names the path and the reason for %s", (_label, text, message) => {
    expect(() => parseInventory(text, "test.yaml")).toThrow(InventoryError);
    expect(() => parseInventory(text, "test.yaml")).toThrow(message);
  });
});
