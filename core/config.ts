/**
 * Runtime settings that come from the environment, read once when first asked for and validated
 * there, so a misconfigured function fails on its first invocation with a clear message.
 */
export function getStringFromEnv(name: string, fallback?: string): string {
  const value = process.env[name]?.trim();
  if (value) return value;
  if (fallback !== undefined) return fallback;
  throw new Error(`Environment variable ${name} is required`);
}

export const DEFAULT_CONFIG_PATH = "access.yaml";
/** Where deployments ship the compiled policy inside the function bundle. */
export const COMPILED_CONFIG_PATH = "access.json";

export const settings = {
  /** Compiled policy file in Lambda: `ACCESS_CONFIG`, default ./access.json. */
  compiledConfigPath: () => getStringFromEnv("ACCESS_CONFIG", COMPILED_CONFIG_PATH),
  tableName: () => getStringFromEnv("ACCESS_TABLE_NAME"),
  /**
   * Per-grant expiry schedules (EventBridge Scheduler) when both ARNs are set; otherwise none, and the
   * sweeper alone settles grants (the local runtime).
   */
  scheduler: () => {
    const targetArn = process.env.ACCESS_SCHEDULER_TARGET_ARN?.trim();
    const roleArn = process.env.ACCESS_SCHEDULER_ROLE_ARN?.trim();
    if (!targetArn || !roleArn) return undefined;
    return { targetArn, roleArn, group: getStringFromEnv("ACCESS_SCHEDULER_GROUP", "default") };
  },
  /**
   * The Slack worker function (async invokes). infra sets it only on the functions that hand Slack work off
   * (API, Slack endpoints), and only when the stage has a Slack app; unset or empty means "notify inline, if
   * at all" (worker, sweeper, expire).
   */
  slackWorker: () => process.env.ACCESS_SLACK_WORKER?.trim() || undefined,
  /** The S3 bucket (Object Lock, compliance mode) that audit chain heads are anchored in; unset: none. */
  anchorBucket: () => process.env.ACCESS_ANCHOR_BUCKET?.trim() || undefined,
};
