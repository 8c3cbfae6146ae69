// The typed API client: openapi-fetch over the types openapi-typescript generates from the
// kernel's own OpenAPI document (generated/schema.d.ts, from openapi.json), so a change of
// the API that breaks the console breaks `tsc`. The session token lives in sessionStorage
// (one tab, gone with it); a 401 on any call ends the session in the console too.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "../generated/schema";

/** The API's named schemas (Session, MenuList, Form, WorkList, …). */
export type Schemas = components["schemas"];
/** A bilingual label as the kernel stores it. */
export type Label = Schemas["Label"];
/** The one error shape of every 4xx/5xx. */
export type ErrorBody = Schemas["ErrorBody"];

const TOKEN_KEY = "erpos.token";

/** The session token, if logged in. */
export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keeps (or, with null, forgets) the session token. */
export function setToken(value: string | null): void {
  if (value === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
}

/** Fired when the server no longer knows the session (expired, logged out elsewhere). */
export const SESSION_ENDED = "erpos:session-ended";

const bearer: Middleware = {
  onRequest({ request }) {
    const t = token();
    if (t) request.headers.set("Authorization", `Bearer ${t}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401 && token()) {
      setToken(null);
      window.dispatchEvent(new Event(SESSION_ENDED));
    }
    return response;
  },
};

/**
 * `fetch`, with a lost network answered like the API answers a failure (503 in the one
 * error shape), so every page shows it where it shows errors instead of throwing.
 */
async function reaching(request: Request): Promise<Response> {
  try {
    return await fetch(request);
  } catch {
    const body: ErrorBody = {
      error: { code: "storage_unavailable", message: "the server cannot be reached; check the network", details: [] },
    };
    return new Response(JSON.stringify(body), { status: 503, headers: { "content-type": "application/json" } });
  }
}

/** The client every page uses. */
export const api = createClient<paths>({ baseUrl: "", fetch: reaching });
api.use(bearer);

/** GETs `path` with the session as a blob URL (an <img> cannot send the token itself). */
export async function blobUrl(path: string): Promise<string> {
  const t = token();
  const res = await fetch(path, { headers: t ? { Authorization: `Bearer ${t}` } : {} });
  if (!res.ok) throw new Error(`${res.status} ${path}`);
  return URL.createObjectURL(await res.blob());
}

/** The message of an error body, or of anything thrown. */
export function messageOf(e: unknown): string {
  if (e && typeof e === "object" && "error" in e) {
    const body = e as ErrorBody;
    const details = body.error.details.map((d) => `${d.path}: ${d.message}`).join("; ");
    return details ? `${body.error.message} (${details})` : body.error.message;
  }
  return e instanceof Error ? e.message : String(e);
}

/**
 * Whether `grants` allow `wanted` (`records:patient:create`): an exact grant, `admin`, or
 * one with `*` in place of a part (`records:*:create`, `services:*:*`), as the kernel
 * reads them. Only for what to offer: the API still refuses what is not allowed.
 */
export function allows(grants: readonly string[], wanted: string): boolean {
  if (grants.includes("admin")) return true;
  const want = wanted.split(":");
  return grants.some((g) => {
    const have = g.split(":");
    return have.length === want.length && have.every((part, i) => part === "*" || part === want[i]);
  });
}
