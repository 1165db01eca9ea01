import { render } from "preact";
import type { View } from "../../core/policy/view.ts";
import { ApiError, type CreateInput, type RequestInfo } from "../src/api.ts";
import { RequestForm } from "../src/pages/request-form.tsx";

/**
 * Mounts the request form alone for component tests (test/web/): the policy view comes from the test, and
 * `submit` records what the form would send instead of calling the API, or refuses it like the API does.
 */
interface Harness {
  view: View;
  submitted: Array<{ input: CreateInput; key: string }>;
  created?: RequestInfo;
  /** When set, the next submit is refused with this API error body. */
  refuse?: { status: number; code: string; message: string; details?: unknown };
}

const harness = (globalThis as unknown as { harness: Harness }).harness;
harness.submitted = [];

async function submit(input: CreateInput, key: string): Promise<RequestInfo> {
  harness.submitted.push({ input, key });
  const refusal = harness.refuse;
  if (refusal) {
    harness.refuse = undefined;
    throw new ApiError(refusal.status, refusal.code, refusal.message, refusal.details);
  }
  return { id: "req_harness", status: "pending", ...input } as unknown as RequestInfo;
}

const root = document.getElementById("app");
if (root)
  render(
    <RequestForm
      view={harness.view}
      submit={submit}
      onCreated={(item) => {
        harness.created = item;
      }}
    />,
    root,
  );
