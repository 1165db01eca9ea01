import { createApi } from "./api/app.ts";
import { depsFromEnv } from "./deps.ts";
import { withAnchors } from "./s3-deps.ts";

export const handler = createApi(() => withAnchors(depsFromEnv()));
