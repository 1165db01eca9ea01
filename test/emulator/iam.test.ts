import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import {
  DeleteRolePolicyCommand,
  DeleteUserPolicyCommand,
  GetRolePolicyCommand,
  type IAMClient,
  ListRolePoliciesCommand,
  ListUserPoliciesCommand,
  PutRolePolicyCommand,
  PutUserPolicyCommand,
  paginateListRolePolicies,
} from "@aws-sdk/client-iam";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RunningEmulator } from "../../local/emulator/server.ts";
import {
  ALICE,
  admin,
  brokerSession,
  clients,
  MALLORY,
  rejection,
  startTestEmulator,
  trail,
} from "./helpers.ts";

let emulator: RunningEmulator;
let iam: IAMClient;

beforeAll(async () => {
  emulator = await startTestEmulator();
});
afterAll(() => emulator.close());
beforeEach(async () => {
  await admin(emulator.url, "reset", {});
  iam = clients(emulator.url, await brokerSession(emulator.url)).iam;
});

/** A policy of roughly `size` characters (whitespace excluded), allowing a harmless action. */
function sized(size: number) {
  const base = {
    Version: "2012-10-17",
    Statement: [{ Sid: "", Effect: "Allow", Action: "ec2:DescribeImages", Resource: "*" }],
  };
  const filler = size - JSON.stringify(base).length;
  (base.Statement[0] as { Sid: string }).Sid = "S".repeat(Math.max(0, filler));
  return JSON.stringify(base);
}

describe("inline policies (IAM grant mode)", () => {
  it("puts, lists, gets and deletes a time-boxed role policy that takes effect at once", async () => {
    const aliceEc2 = clients(emulator.url, ALICE).ec2;
    expect((await rejection(aliceEc2.send(new DescribeInstancesCommand({})))).name).toBe(
      "UnauthorizedOperation",
    );

    const end = new Date(emulator.core.now().getTime() + 10 * 60_000).toISOString();
    const document = JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Action: "ec2:DescribeInstances",
          Resource: "*",
          Condition: { DateLessThan: { "aws:CurrentTime": end } },
        },
      ],
    });
    await iam.send(
      new PutRolePolicyCommand({
        RoleName: "alice",
        PolicyName: "access-broker-grant-1",
        PolicyDocument: document,
      }),
    );
    const listed = await iam.send(new ListRolePoliciesCommand({ RoleName: "alice" }));
    expect(listed.PolicyNames).toEqual(["access-broker-grant-1"]);
    expect(listed.IsTruncated).toBe(false);
    const got = await iam.send(
      new GetRolePolicyCommand({ RoleName: "alice", PolicyName: "access-broker-grant-1" }),
    );
    expect(got.RoleName).toBe("alice");
    expect(decodeURIComponent(got.PolicyDocument ?? "")).toBe(document);

    const reservations = (await aliceEc2.send(new DescribeInstancesCommand({}))).Reservations ?? [];
    expect(reservations.length).toBeGreaterThan(0);
    // Inert after its end time even though it still exists.
    await admin(emulator.url, "clock", { advanceSeconds: 11 * 60 });
    const late = clients(emulator.url, ALICE).ec2;
    late.config.systemClockOffset = 11 * 60_000;
    expect((await rejection(late.send(new DescribeInstancesCommand({})))).name).toBe("UnauthorizedOperation");
    await admin(emulator.url, "clock", { offsetSeconds: 0 });

    await iam.send(new DeleteRolePolicyCommand({ RoleName: "alice", PolicyName: "access-broker-grant-1" }));
    expect((await iam.send(new ListRolePoliciesCommand({ RoleName: "alice" }))).PolicyNames).toEqual([]);
    const gone = await rejection(
      iam.send(new DeleteRolePolicyCommand({ RoleName: "alice", PolicyName: "access-broker-grant-1" })),
    );
    expect(gone.name).toBe("NoSuchEntityException");
    expect(gone.$metadata.httpStatusCode).toBe(404);
  });

  it("manages user policies too", async () => {
    const document = JSON.stringify({
      Statement: { Effect: "Allow", Action: "ec2:DescribeImages", Resource: "*" },
    });
    await iam.send(
      new PutUserPolicyCommand({ UserName: "auditor", PolicyName: "extra", PolicyDocument: document }),
    );
    expect((await iam.send(new ListUserPoliciesCommand({ UserName: "auditor" }))).PolicyNames).toEqual([
      "extra",
      "lookup",
    ]);
    await iam.send(new DeleteUserPolicyCommand({ UserName: "auditor", PolicyName: "extra" }));
    expect((await iam.send(new ListUserPoliciesCommand({ UserName: "auditor" }))).PolicyNames).toEqual([
      "lookup",
    ]);
  });

  it("pages ListRolePolicies with MaxItems and Marker", async () => {
    for (const name of ["c", "a", "b"]) {
      await iam.send(
        new PutRolePolicyCommand({ RoleName: "alice", PolicyName: name, PolicyDocument: sized(100) }),
      );
    }
    const first = await iam.send(new ListRolePoliciesCommand({ RoleName: "alice", MaxItems: 2 }));
    expect(first).toMatchObject({ PolicyNames: ["a", "b"], IsTruncated: true });
    const names: string[] = [];
    for await (const page of paginateListRolePolicies({ client: iam, pageSize: 1 }, { RoleName: "alice" })) {
      names.push(...(page.PolicyNames ?? []));
    }
    expect(names).toEqual(["a", "b", "c"]);
  });

  it("enforces the aggregate size quotas, ignoring whitespace (role 10,240; user 2,048)", async () => {
    // Whitespace does not count: a pretty-printed 10,000-character policy fits.
    const pretty = sized(10_000).replace("{", `{${" \n\t".repeat(200)}`);
    expect(pretty.length).toBeGreaterThan(10_240);
    await iam.send(
      new PutRolePolicyCommand({ RoleName: "alice", PolicyName: "big", PolicyDocument: pretty }),
    );
    const over = await rejection(
      iam.send(
        new PutRolePolicyCommand({ RoleName: "alice", PolicyName: "more", PolicyDocument: sized(300) }),
      ),
    );
    expect(over.name).toBe("LimitExceededException");
    expect(over.message).toMatch(/10240/);
    // Replacing a policy counts its new size, not both.
    await iam.send(
      new PutRolePolicyCommand({ RoleName: "alice", PolicyName: "big", PolicyDocument: sized(10_240) }),
    );

    // The auditor already holds a ~100-character policy.
    const user = await rejection(
      iam.send(
        new PutUserPolicyCommand({ UserName: "auditor", PolicyName: "x", PolicyDocument: sized(2000) }),
      ),
    );
    expect(user.name).toBe("LimitExceededException");
    await iam.send(
      new PutUserPolicyCommand({ UserName: "auditor", PolicyName: "x", PolicyDocument: sized(1900) }),
    );

    const events = await trail(emulator.url, "PutRolePolicy");
    expect(events.find((e) => e.errorCode)).toMatchObject({
      errorCode: "LimitExceededException",
      eventSource: "iam.amazonaws.com",
      awsRegion: "us-east-1",
      readOnly: false,
    });
  });

  it.each([
    ["a 131,073-character document", { PolicyDocument: " ".repeat(131_073) }, "ValidationError"],
    [
      "a document that is not a policy",
      { PolicyDocument: '{"Statement": 1}' },
      "MalformedPolicyDocumentException",
    ],
    [
      "a document that is not JSON",
      { PolicyDocument: "Allow everything" },
      "MalformedPolicyDocumentException",
    ],
    ["a policy name with a slash", { PolicyName: "a/b" }, "ValidationError"],
    ["a 129-character policy name", { PolicyName: "p".repeat(129) }, "ValidationError"],
    ["a role that does not exist", { RoleName: "nobody" }, "NoSuchEntityException"],
  ])("refuses %s", async (_label, input, name) => {
    const error = await rejection(
      iam.send(
        new PutRolePolicyCommand({
          RoleName: "alice",
          PolicyName: "p",
          PolicyDocument: sized(100),
          ...input,
        }),
      ),
    );
    expect(error.name).toBe(name);
  });

  it("authorizes IAM calls against the caller's own policies", async () => {
    const mallory = await rejection(
      clients(emulator.url, MALLORY).iam.send(
        new PutUserPolicyCommand({ UserName: "mallory", PolicyName: "escalate", PolicyDocument: sized(100) }),
      ),
    );
    expect(mallory.name).toBe("AccessDenied");
    expect(mallory.message).toMatch(/iam:PutUserPolicy on resource: arn:aws:iam::123456789012:user\/mallory/);
    const alice = await rejection(
      clients(emulator.url, ALICE).iam.send(new ListRolePoliciesCommand({ RoleName: "alice" })),
    );
    expect(alice.name).toBe("AccessDenied");
  });
});
