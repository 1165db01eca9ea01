import type { Info } from "./schema.ts";

/** The local port `access tunnel` is told to listen on for a remote port (clear of privileged ports). */
export function localPortFor(port: number): number {
  if (port === 22) return 2222;
  if (port === 3389) return 13389;
  return port < 1024 ? port + 10_000 : port;
}

/**
 * The exact command that connects with this grant: the `access` CLI for broker grants, the AWS CLI with
 * the requester's own credentials for IAM grant mode. Slack's messages and the web app both show it.
 */
export function connectCommand(
  item: Pick<Info, "grantId" | "grantMode" | "instanceId" | "method" | "osUser" | "port">,
): string {
  const port = item.method === "rdp" ? 3389 : (item.port ?? 22);
  if (item.grantMode === "iam") {
    if (item.method === "ssh")
      return `aws ec2-instance-connect ssh --instance-id ${item.instanceId} --os-user ${item.osUser ?? "ec2-user"}`;
    return `aws ec2-instance-connect open-tunnel --instance-id ${item.instanceId} --remote-port ${port} --local-port ${localPortFor(port)}`;
  }
  if (item.method === "ssh") return `access ssh ${item.grantId}`;
  return `access tunnel ${item.grantId} --local-port ${localPortFor(port)}`;
}
