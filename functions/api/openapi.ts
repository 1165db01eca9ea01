import * as z from "zod";
import { routes } from "./routes.ts";

const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});

const schema = (type: z.ZodType, io: "input" | "output") =>
  z.toJSONSchema(type, { target: "openapi-3.0", io, unrepresentable: "any" });

/** The OpenAPI document, generated from the same zod schemas the handlers validate with. */
export function openApiDocument() {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const parameters: unknown[] = [...route.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
      name,
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    if (route.query) {
      const query = schema(route.query, "input") as {
        properties?: Record<string, unknown>;
        required?: string[];
      };
      for (const [name, property] of Object.entries(query.properties ?? {})) {
        parameters.push({
          name,
          in: "query",
          required: query.required?.includes(name) ?? false,
          schema: property,
        });
      }
    }
    if (route.method === "POST" && route.path === "/requests") {
      parameters.push({
        name: "Idempotency-Key",
        in: "header",
        required: false,
        schema: { type: "string", maxLength: 255 },
      });
    }
    const errors = Object.fromEntries(
      ["400", "401", "403", "404", "409", "413", "415", "429"].map((status) => [
        status,
        { description: "Error", content: { "application/json": { schema: schema(ErrorBody, "output") } } },
      ]),
    );
    paths[route.path] ??= {};
    (paths[route.path] as Record<string, unknown>)[route.method.toLowerCase()] = {
      summary: route.summary,
      security: route.auth ? [{ jwt: [] }] : [],
      parameters,
      ...(route.body
        ? {
            requestBody: {
              required: route.path === "/requests",
              content: { "application/json": { schema: schema(route.body, "input") } },
            },
          }
        : {}),
      responses: {
        [String(route.status)]: {
          description: "OK",
          content: { "application/json": { schema: schema(route.response, "output") } },
        },
        ...errors,
      },
    };
  }
  return {
    openapi: "3.0.3",
    info: { title: "access-broker", version: "1" },
    components: { securitySchemes: { jwt: { type: "http", scheme: "bearer", bearerFormat: "JWT" } } },
    paths,
  };
}
