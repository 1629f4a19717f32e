// Preloaded (node --import) into MCP clients that have no way to send a
// bearer token, such as the conformance suite: every request to LOTUS_URL,
// by fetch or by undici, carries "Authorization: Bearer $LOTUS_TOKEN", as a
// configured client's would.
import { Agent, setGlobalDispatcher } from "undici";

const token = process.env.LOTUS_TOKEN ?? "";
const base = process.env.LOTUS_URL ?? "";
const bearer = `Bearer ${token}`;

const original = globalThis.fetch;
globalThis.fetch = (input, init = {}) => {
  const url = typeof input === "string" ? input : (input?.url ?? String(input));
  if (token && base && url.startsWith(base)) {
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    if (!headers.has("authorization")) headers.set("authorization", bearer);
    init = { ...init, headers };
  }
  return original(input, init);
};

function withToken(headers) {
  if (headers == null) return { authorization: bearer };
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === "authorization") return headers;
    }
    return [...headers, "authorization", bearer];
  }
  if (Object.keys(headers).some((k) => k.toLowerCase() === "authorization")) return headers;
  return { ...headers, authorization: bearer };
}

setGlobalDispatcher(
  new Agent().compose((dispatch) => (opts, handler) => {
    const origin = String(opts.origin ?? "");
    if (token && base && origin && base.startsWith(origin.replace(/\/$/, ""))) {
      opts = { ...opts, headers: withToken(opts.headers) };
    }
    return dispatch(opts, handler);
  }),
);
