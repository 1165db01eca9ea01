/**
 * Wire-protocol plumbing shared by the built-in services: request classification (SigV4 scope, X-Amz-Target,
 * `Action=`), XML and JSON responses and errors in each protocol's real shape, and `awsService()`, which turns
 * a table of operations into an `EmulatorService` that authenticates, injects faults, runs the operation and
 * records a CloudTrail event for every call it authenticated — allowed or not.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type Authenticated,
  AuthFailure,
  type Caller,
  type ConditionContext,
  type EmulatorCore,
  type EmulatorService,
  type TrailInput,
} from "./contract.ts";
import type { InjectedFault } from "./faults.ts";
import { authFailure, type CredentialScope, claimedScope, type ErrorStyle } from "./sigv4.ts";

// ---------------------------------------------------------------------------------------------------------
// XML

export type XmlValue = string | number | boolean | Date | null | undefined | XmlObject | XmlValue[];
export interface XmlObject {
  [name: string]: XmlValue;
}

// XML 1.0 cannot carry most C0 controls at all, escaped or not.
// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point.
const XML_INVALID = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

export function escapeXml(text: string): string {
  return text
    .replace(XML_INVALID, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

const isoSeconds = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, "Z");

function xmlValue(name: string, value: XmlValue): string {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.map((entry) => xmlValue(name, entry)).join("");
  if (value instanceof Date) return `<${name}>${isoSeconds(value)}</${name}>`;
  if (typeof value === "object") return `<${name}>${xmlElements(value)}</${name}>`;
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

/**
 * Children of an element: `{ a: "x", list: { item: [1, 2] } }` → `<a>x</a><list><item>1</item><item>2</item></list>`.
 * Arrays repeat their key; undefined and null are left out; Dates become ISO 8601 (seconds).
 */
export function xmlElements(object: XmlObject): string {
  return Object.entries(object)
    .map(([name, value]) => xmlValue(name, value))
    .join("");
}

export function xmlDocument(root: string, xmlns: string | undefined, children: XmlObject): string {
  const ns = xmlns === undefined ? "" : ` xmlns="${xmlns}"`;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root}${ns}>${xmlElements(children)}</${root}>`;
}

// ---------------------------------------------------------------------------------------------------------
// Errors and responses

/** An error the service answers with (code and status as the real service uses them). */
export class ServiceError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ServiceError";
  }
}

export type Protocol = "query" | "ec2" | "json";

function baseHeaders(requestId: string, contentType: string, body: string): Record<string, string | number> {
  return {
    "Content-Type": contentType,
    "Content-Length": Buffer.byteLength(body),
    "x-amzn-RequestId": requestId,
  };
}

export function sendXml(response: ServerResponse, status: number, requestId: string, body: string): void {
  if (response.headersSent) return;
  response.writeHead(status, baseHeaders(requestId, "text/xml", body));
  response.end(body);
}

export function sendJson(
  response: ServerResponse,
  status: number,
  requestId: string,
  payload: unknown,
  version = "1.1",
  extraHeaders: Record<string, string> = {},
): void {
  if (response.headersSent) return;
  const body = JSON.stringify(payload);
  response.writeHead(status, {
    ...baseHeaders(requestId, `application/x-amz-json-${version}`, body),
    ...extraHeaders,
  });
  response.end(body);
}

/** An error in the protocol's own shape (EC2 `<Response><Errors>`, query `<ErrorResponse>`, JSON `__type`). */
export function sendError(
  response: ServerResponse,
  protocol: Protocol,
  requestId: string,
  error: { status: number; code: string; message: string },
  options: { xmlns?: string; jsonVersion?: string } = {},
): void {
  if (protocol === "json") {
    sendJson(
      response,
      error.status,
      requestId,
      { __type: error.code, message: error.message },
      options.jsonVersion,
      {
        "x-amzn-ErrorType": error.code,
      },
    );
  } else if (protocol === "ec2") {
    sendXml(
      response,
      error.status,
      requestId,
      xmlDocument("Response", undefined, {
        Errors: { Error: { Code: error.code, Message: error.message } },
        RequestID: requestId,
      }),
    );
  } else {
    sendXml(
      response,
      error.status,
      requestId,
      xmlDocument("ErrorResponse", options.xmlns, {
        Error: {
          Type: error.status >= 500 ? "Receiver" : "Sender",
          Code: error.code,
          Message: error.message,
        },
        RequestId: requestId,
      }),
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Request classification

export interface ClassifiedRequest {
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  headers: Record<string, string>;
  scope?: CredentialScope;
  /** X-Amz-Target, for JSON protocols. */
  target?: string;
  /** Query-protocol parameters: form body merged over the URL query (auth parameters left out). */
  params: Map<string, string>;
  contentType: string;
}

const classified = new WeakMap<IncomingMessage, ClassifiedRequest>();

/** Decoded query parameters; repeated keys become arrays. Never throws. */
export function queryRecord(search: URLSearchParams): Record<string, string | string[]> {
  // Null prototype: a parameter named `__proto__` must stay a parameter.
  const out: Record<string, string | string[]> = Object.create(null);
  for (const [key, value] of search) {
    const existing = out[key];
    if (existing === undefined) out[key] = value;
    else out[key] = Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return out;
}

/** Header name → value, lower-case names, repeated headers joined with "," (as SigV4 canonicalizes). */
export function headerRecord(request: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(",") : value;
  }
  return out;
}

export function sourceIp(request: IncomingMessage): string {
  const address = request.socket.remoteAddress ?? "";
  return address.toLowerCase().startsWith("::ffff:") ? address.slice(7) : address;
}

/** Parses method, URL, auth scope, target and query-protocol params once per request. Never throws. */
export function classify(request: IncomingMessage, body: Buffer): ClassifiedRequest {
  const cached = classified.get(request);
  if (cached !== undefined) return cached;
  const rawUrl = request.url ?? "/";
  const questionMark = rawUrl.indexOf("?");
  const path = questionMark < 0 ? rawUrl : rawUrl.slice(0, questionMark);
  const search = new URLSearchParams(questionMark < 0 ? "" : rawUrl.slice(questionMark + 1));
  const query = queryRecord(search);
  const headers = headerRecord(request);
  const contentType = (headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  const params = new Map<string, string>();
  for (const [key, value] of search) if (!key.startsWith("X-Amz-")) params.set(key, value);
  if (contentType === "application/x-www-form-urlencoded" && body.length > 0) {
    for (const [key, value] of new URLSearchParams(body.toString("utf8"))) params.set(key, value);
  }
  const scope = claimedScope({ headers, query });
  const result: ClassifiedRequest = {
    method: (request.method ?? "GET").toUpperCase(),
    path,
    query,
    headers,
    params,
    contentType,
    ...(scope === undefined ? {} : { scope }),
    ...(headers["x-amz-target"] === undefined ? {} : { target: headers["x-amz-target"] }),
  };
  classified.set(request, result);
  return result;
}

/** `Prefix.1`, `Prefix.2`, … in index order (gaps allowed), as the query protocols serialize lists. */
export function queryList(params: Map<string, string>, prefix: string): string[] {
  const entries: [number, string][] = [];
  const pattern = new RegExp(`^${prefix.replace(/[.]/g, "\\.")}\\.(\\d+)$`);
  for (const [key, value] of params) {
    const match = pattern.exec(key);
    if (match?.[1] !== undefined) entries.push([Number(match[1]), value]);
  }
  return entries.sort((a, b) => a[0] - b[0]).map(([, value]) => value);
}

/** EC2's `Filter.N.Name` / `Filter.N.Value.M`. */
export function queryFilters(params: Map<string, string>): { name: string; values: string[] }[] {
  const indexes = new Set<number>();
  for (const key of params.keys()) {
    const match = /^Filter\.(\d+)\.Name$/.exec(key);
    if (match?.[1] !== undefined) indexes.add(Number(match[1]));
  }
  return [...indexes]
    .sort((a, b) => a - b)
    .map((index) => ({
      name: params.get(`Filter.${index}.Name`) ?? "",
      values: queryList(params, `Filter.${index}.Value`),
    }));
}

// ---------------------------------------------------------------------------------------------------------
// Services

/** Where a service's trail events go (the CloudTrail store; `sharedEventID` links copies across accounts). */
export type TrailSink = (input: TrailInput, extra?: { sharedEventID?: string }) => void;

export interface TrailDraft {
  requestParameters: Record<string, unknown> | null;
  responseElements: Record<string, unknown> | null;
  resources?: { accountId: string; type: string; ARN: string }[];
  /** Accounts that log the call: the caller's by default; cross-account calls log in both. */
  accountIds: string[];
}

export interface CallContext {
  core: EmulatorCore;
  auth: Authenticated;
  caller: Caller;
  region: string;
  operation: string;
  requestId: string;
  /** Query protocols: the request parameters. */
  params: Map<string, string>;
  /** JSON protocols: the request body. */
  input: Record<string, unknown>;
  host: string;
  sourceIp: string;
  userAgent?: string;
  trail: TrailDraft;
  /** Throws the service's access-denied error unless the caller's policies allow `action` on `resource`. */
  authorize(action: string, resource: string, context?: ConditionContext): void;
}

export interface OperationSpec {
  readOnly: boolean;
  /** Query: children of `<OpResult>` (STS/IAM) or of `<OpResponse>` (EC2); JSON: the response object. */
  run(context: CallContext): Promise<XmlObject | undefined> | XmlObject | undefined;
}

export interface ServiceSpec {
  /** SigV4 signing name (credential scope service). */
  signingName: string;
  /** CloudTrail eventSource. */
  eventSource: string;
  protocol: Protocol;
  xmlns?: string;
  /**
   * JSON: the X-Amz-Target prefixes before `.<Operation>`. botocore sends the model's full targetPrefix
   * (`com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101`), the JS SDK v3 the service shape name
   * (`CloudTrail_20131101`); AWS accepts both.
   */
  targetPrefixes?: string[];
  jsonVersion?: string;
  operations: Record<string, OperationSpec>;
  /** The region events are logged in (IAM is global: us-east-1). */
  trailRegion?(region: string): string;
  /** The service's access-denied error for a failed authorization. */
  accessDenied(message: string): ServiceError;
  /** How CloudTrail spells this service's error codes (EC2: `Client.<code>`). */
  trailErrorCode?(code: string, status: number): string;
}

/** Throttle and server faults in the protocol's spelling. */
function protocolFault(protocol: Protocol, fault: { status: number; code: string; message: string }) {
  if (fault.code === "ThrottlingException") {
    if (protocol === "ec2")
      return { status: 503, code: "RequestLimitExceeded", message: "Request limit exceeded." };
    if (protocol === "query") return { status: 400, code: "Throttling", message: fault.message };
  }
  if (fault.code === "InternalFailure" && protocol === "ec2")
    return { status: 500, code: "InternalError", message: "An internal error has occurred" };
  return fault;
}

function operationOf(spec: ServiceSpec, request: ClassifiedRequest): string | undefined {
  if (spec.protocol === "json") {
    const target = request.target ?? "";
    const prefix = spec.targetPrefixes?.find((p) => target.startsWith(`${p}.`));
    return prefix === undefined ? undefined : target.slice(prefix.length + 1);
  }
  return request.params.get("Action");
}

/** Does this request belong to `spec`? By SigV4 scope when signed, else by target/Action. */
function claims(spec: ServiceSpec, request: ClassifiedRequest): boolean {
  if (request.scope !== undefined) return request.scope.service === spec.signingName;
  if (spec.protocol === "json")
    return spec.targetPrefixes?.some((p) => request.target?.startsWith(`${p}.`)) === true;
  const action = request.params.get("Action");
  return action !== undefined && Object.hasOwn(spec.operations, action);
}

export interface ServiceDeps {
  recordTrail: TrailSink;
  /** Fault injection, service-aware (`sts:AssumeRole` keys). */
  inject(operation: string, service: string): Promise<InjectedFault | undefined>;
}

/** Builds an EmulatorService from an operation table: the one request pipeline of the built-in services. */
export function awsService(core: EmulatorCore, spec: ServiceSpec, deps: ServiceDeps): EmulatorService {
  const errorOptions = {
    ...(spec.xmlns === undefined ? {} : { xmlns: spec.xmlns }),
    ...(spec.jsonVersion === undefined ? {} : { jsonVersion: spec.jsonVersion }),
  };

  function respond(
    response: ServerResponse,
    operation: string,
    requestId: string,
    result: XmlObject | undefined,
  ) {
    if (spec.protocol === "json") {
      sendJson(response, 200, requestId, result ?? {}, spec.jsonVersion);
    } else if (spec.protocol === "ec2") {
      sendXml(
        response,
        200,
        requestId,
        xmlDocument(`${operation}Response`, spec.xmlns, { requestId, ...result }),
      );
    } else {
      sendXml(
        response,
        200,
        requestId,
        xmlDocument(`${operation}Response`, spec.xmlns, {
          ...(result === undefined ? {} : { [`${operation}Result`]: result }),
          ResponseMetadata: { RequestId: requestId },
        }),
      );
    }
  }

  return {
    async handle(request: IncomingMessage, body: Buffer, response: ServerResponse): Promise<boolean> {
      const classifiedRequest = classify(request, body);
      if (!claims(spec, classifiedRequest)) return false;
      const requestId = randomUUID();
      const fail = (error: { status: number; code: string; message: string }) =>
        sendError(response, spec.protocol, requestId, error, errorOptions);

      const { method } = classifiedRequest;
      if (spec.protocol === "json" ? method !== "POST" : method !== "POST" && method !== "GET") {
        fail({ status: 405, code: "MethodNotAllowed", message: `${method.slice(0, 16)} is not supported` });
        return true;
      }
      const operation = operationOf(spec, classifiedRequest);
      if (operation === undefined || operation === "") {
        if (spec.protocol === "json") {
          fail({ status: 400, code: "UnknownOperationException", message: "Missing X-Amz-Target" });
        } else {
          fail({
            status: 400,
            code: "MissingAction",
            message: "Could not find operation to perform: Action is missing",
          });
        }
        return true;
      }
      const op = Object.hasOwn(spec.operations, operation) ? spec.operations[operation] : undefined;
      if (op === undefined) {
        if (spec.protocol === "json") fail({ status: 400, code: "UnknownOperationException", message: "" });
        else {
          fail({
            status: 400,
            code: "InvalidAction",
            message: `The action ${operation.slice(0, 64)} is not valid for this web service.`,
          });
        }
        return true;
      }

      let input: Record<string, unknown> = {};
      if (spec.protocol === "json") {
        try {
          const parsed: unknown = body.length === 0 ? {} : JSON.parse(body.toString("utf8"));
          if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
            throw new Error("not an object");
          input = parsed as Record<string, unknown>;
        } catch {
          fail({
            status: 400,
            code: "SerializationException",
            message: "Start of structure or map found where not expected.",
          });
          return true;
        }
      }

      let auth: Authenticated;
      if (classifiedRequest.scope === undefined) {
        // Without a readable credential scope the core cannot tell the protocol; answer in ours.
        const style: ErrorStyle =
          spec.protocol === "json" ? "json" : spec.protocol === "ec2" ? "ec2" : "query";
        const signed =
          classifiedRequest.headers.authorization !== undefined ||
          classifiedRequest.query["X-Amz-Signature"] !== undefined;
        fail(
          authFailure(
            style,
            signed ? "incomplete" : "missing",
            "Credential must be <AccessKeyId>/<date>/<region>/<service>/aws4_request",
          ),
        );
        return true;
      }
      try {
        auth = core.authenticate({
          method,
          host: classifiedRequest.headers.host ?? "",
          path: classifiedRequest.path,
          // Repeated query keys stay arrays: the emulator's authenticate() canonicalizes them as SigV4 does.
          query: classifiedRequest.query as Record<string, string>,
          headers: classifiedRequest.headers,
          body,
          presigned:
            classifiedRequest.headers.authorization === undefined &&
            classifiedRequest.query["X-Amz-Signature"] !== undefined,
        });
      } catch (error) {
        if (error instanceof AuthFailure) fail(error);
        else fail({ status: 500, code: "InternalFailure", message: "Authentication failed unexpectedly" });
        return true;
      }

      const caller = auth.caller;
      const trail: TrailDraft = {
        requestParameters: null,
        responseElements: null,
        accountIds: [caller.accountId],
      };
      const userAgent = classifiedRequest.headers["user-agent"];
      const context: CallContext = {
        core,
        auth,
        caller,
        region: auth.region,
        operation,
        requestId,
        params: classifiedRequest.params,
        input,
        host: classifiedRequest.headers.host ?? "",
        sourceIp: sourceIp(request),
        ...(userAgent === undefined ? {} : { userAgent }),
        trail,
        authorize(action, resource, conditions = {}) {
          const decision = core.authorize(caller, action, resource, {
            "aws:SourceIp": sourceIp(request),
            ...conditions,
          });
          if (!decision.allowed) throw spec.accessDenied(decision.message);
        },
      };

      let failure: { status: number; code: string; message: string } | undefined;
      try {
        const fault = await deps.inject(operation, spec.signingName);
        if (fault !== undefined) throw new ServiceError(fault.status, fault.code, fault.message);
        const result = await op.run(context);
        respond(response, operation, requestId, result);
      } catch (error) {
        if (error instanceof ServiceError || error instanceof AuthFailure) {
          failure = protocolFault(spec.protocol, {
            status: error.status,
            code: error.code,
            message: error.message,
          });
        } else {
          process.stderr.write(
            `emulator: ${spec.signingName}:${operation} failed: ${(error as Error)?.stack ?? error}\n`,
          );
          failure = { status: 500, code: "InternalFailure", message: "The request processing has failed." };
        }
        fail(failure);
      }

      const sharedEventID = trail.accountIds.length > 1 ? randomUUID() : undefined;
      for (const accountId of new Set(trail.accountIds)) {
        deps.recordTrail(
          {
            eventSource: spec.eventSource,
            eventName: operation,
            region: spec.trailRegion?.(auth.region) ?? auth.region,
            accountId,
            caller,
            sourceIPAddress: context.sourceIp,
            ...(userAgent === undefined ? {} : { userAgent }),
            requestParameters: trail.requestParameters,
            responseElements: failure === undefined ? trail.responseElements : null,
            requestId,
            ...(failure === undefined
              ? {}
              : {
                  errorCode: spec.trailErrorCode?.(failure.code, failure.status) ?? failure.code,
                  errorMessage: failure.message,
                }),
            ...(trail.resources === undefined ? {} : { resources: trail.resources }),
            readOnly: op.readOnly,
            ...(context.host === "" ? {} : { host: context.host }),
          },
          sharedEventID === undefined ? undefined : { sharedEventID },
        );
      }
      return true;
    },
  };
}
