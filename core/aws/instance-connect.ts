import { EC2InstanceConnectClient, SendSSHPublicKeyCommand } from "@aws-sdk/client-ec2-instance-connect";
import type { KeyPusher } from "../access/index.ts";
import { AppError, ConflictError, InputError, NotFoundError } from "../error.ts";
import type { AwsClients } from "./clients.ts";
import { errorName, rethrowAws } from "./errors.ts";

/**
 * Access.KeyPusher: SendSSHPublicKey as the broker role of the instance's account. Throttling and 5xx are
 * retried by the SDK (core/aws/clients.ts RETRY); what remains is mapped to the product's errors, with
 * fixed messages (AWS's may quote the key).
 */
export class EicKeyPusher implements KeyPusher {
  constructor(private readonly aws: AwsClients) {}

  async send(input: Parameters<KeyPusher["send"]>[0]): Promise<{ requestId: string }> {
    try {
      const client = this.aws.inAccount(EC2InstanceConnectClient, input.account, input.region);
      const response = await client.send(
        new SendSSHPublicKeyCommand({
          InstanceId: input.instanceId,
          InstanceOSUser: input.osUser,
          SSHPublicKey: input.publicKey,
        }),
      );
      const requestId = response.RequestId ?? response.$metadata.requestId;
      if (!response.Success || !requestId) throw new Error("SendSSHPublicKey did not report success");
      return { requestId };
    } catch (error) {
      switch (errorName(error)) {
        case "EC2InstanceNotFoundException":
          throw new NotFoundError("target.not_found", `${input.instanceId} was not found`);
        case "EC2InstanceStateInvalidException":
          throw new ConflictError("target.not_running", `${input.instanceId} is not running`);
        case "EC2InstanceUnavailableException":
          throw new AppError(
            "throttled",
            "target.unavailable",
            `${input.instanceId} is unavailable; retry in a minute`,
            {
              cause: error,
            },
          );
        case "InvalidArgsException":
          throw new InputError("key.rejected", "EC2 Instance Connect rejected the key or the OS user");
        default:
          return rethrowAws(error, `SendSSHPublicKey to ${input.instanceId}`);
      }
    }
  }
}
