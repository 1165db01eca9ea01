import type { Config } from "../policy/index.ts";
import type { AwsClients } from "./clients.ts";
import { Ec2Resolver } from "./ec2.ts";
import { IamPolicyAdapter } from "./iam-grants.ts";
import type { AwsAdapters } from "./index.ts";
import { EicKeyPusher } from "./instance-connect.ts";
import { StsTunnelSigner } from "./tunnel-signer.ts";

/** The AWS adapters themselves; reached only through the lazy facade in ./index.ts. */
export function liveAdapters(config: Config, clients: AwsClients): AwsAdapters {
  return {
    targets: new Ec2Resolver(config, clients),
    keys: new EicKeyPusher(clients),
    tunnels: new StsTunnelSigner(clients),
    iam: new IamPolicyAdapter(clients),
  };
}
