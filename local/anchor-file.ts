import { appendFile, mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Anchor, AnchorStore } from "../core/audit/anchor.ts";

/**
 * Audit anchors for the local runtime: one JSON line per anchored chain head, appended to a file under the
 * data directory, outside DynamoDB Local's files. Deleting or rolling back the table leaves it behind, so
 * `access audit verify` can tell. (In AWS the same port is an S3 bucket with Object Lock.)
 */
export class FileAnchorStore implements AnchorStore {
  constructor(readonly location: string) {}

  async append(anchor: Anchor): Promise<void> {
    await mkdir(dirname(this.location), { recursive: true });
    await appendFile(this.location, `${JSON.stringify(anchor)}\n`, { mode: 0o600 });
  }

  async latest(): Promise<Anchor | undefined> {
    let text: string;
    try {
      text = await readFile(this.location, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
    let latest: Anchor | undefined;
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      try {
        const anchor = JSON.parse(line) as Anchor;
        if (typeof anchor.seq === "number" && (!latest || anchor.seq > latest.seq)) latest = anchor;
      } catch {
        // A torn last line (a crash mid-append) is skipped; earlier anchors still count.
      }
    }
    return latest;
  }
}
