import { createApi } from "./api/app.ts";
import { depsFromEnv } from "./deps.ts";

export const handler = createApi(depsFromEnv);
