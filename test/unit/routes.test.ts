import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { openApiDocument } from "../../functions/api/openapi.ts";
import { routes } from "../../functions/api/routes.ts";

const infra = readFileSync(new URL("../../infra/api.ts", import.meta.url), "utf8");
const quoted = (name: string) =>
  [...(infra.match(new RegExp(`const ${name} = \\[([^\\]]*)\\]`))?.[1] ?? "").matchAll(/"([^"]+)"/g)].map(
    (match) => match[1],
  );

describe("the route table is the single source", () => {
  it("matches the routes API Gateway is given in infra/api.ts, with the same auth", () => {
    const handled = routes.map((route) => `${route.method} ${route.path}`);
    expect([...quoted("publicRoutes"), ...quoted("protectedRoutes")].sort()).toEqual(
      [...handled, "GET /openapi.json"].sort(),
    );
    const publicOnes = routes.filter((route) => !route.auth).map((route) => `${route.method} ${route.path}`);
    expect(quoted("publicRoutes").sort()).toEqual([...publicOnes, "GET /openapi.json"].sort());
  });

  it("documents every route, its body and its parameters in OpenAPI", () => {
    const document = openApiDocument();
    for (const route of routes) {
      const operation = (document.paths[route.path] as Record<string, any>)?.[route.method.toLowerCase()];
      expect(operation, `${route.method} ${route.path}`).toBeDefined();
      expect(operation.security).toEqual(route.auth ? [{ jwt: [] }] : []);
    }
    const create = (document.paths["/requests"] as Record<string, any>).post;
    expect(create.requestBody.content["application/json"].schema.required).toEqual(
      expect.arrayContaining(["instanceId", "method", "durationSeconds", "reason"]),
    );
    expect(create.requestBody.content["application/json"].schema.additionalProperties).toBe(false);
    const list = (document.paths["/requests"] as Record<string, any>).get;
    expect(list.parameters.map((parameter: { name: string }) => parameter.name)).toEqual(
      expect.arrayContaining(["status", "mine", "pendingForMe", "limit", "cursor"]),
    );
    const trail = (document.paths["/audit/trail"] as Record<string, any>).get;
    const parameters = Object.fromEntries(
      trail.parameters.map((parameter: { name: string; schema: unknown }) => [
        parameter.name,
        parameter.schema,
      ]),
    );
    expect(Object.keys(parameters).sort()).toEqual(
      ["classification", "cursor", "from", "instance", "limit", "to", "user"].sort(),
    );
    expect(parameters.instance).toMatchObject({ type: "string", pattern: expect.any(String) });
    expect(parameters.user.description).toContain("correlated to that person's grants");
    expect(trail.summary).toMatch(/user \(an email.*\).*instance/);
    const audit = (document.paths["/audit/events"] as Record<string, any>).get;
    const auditParameters = Object.fromEntries(
      audit.parameters.map((parameter: { name: string; schema: unknown }) => [
        parameter.name,
        parameter.schema,
      ]),
    );
    expect(Object.keys(auditParameters).sort()).toEqual(
      ["cursor", "from", "instance", "limit", "order", "requestId", "to", "user"].sort(),
    );
    expect(auditParameters.user).toMatchObject({ type: "string", format: "email" });
    expect(auditParameters.user.description).toContain("data.requester");
    expect(auditParameters.instance).toMatchObject({ type: "string", pattern: expect.any(String) });
    expect(auditParameters.instance.description).toContain("data.instanceId");
    expect(audit.summary).toMatch(/filtered by time, user and instance/);
  });
});
