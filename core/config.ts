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

export const settings = {
  /** Policy file: `ACCESS_CONFIG`, default ./access.yaml. */
  configPath: () => getStringFromEnv("ACCESS_CONFIG", DEFAULT_CONFIG_PATH),
  tableName: () => getStringFromEnv("ACCESS_TABLE_NAME"),
};
