/**
 * pachd addresses as the plugin's server side accepts them:
 * `host`, `host:port`, `grpc://host:port` and `grpcs://host:port` (TLS).
 * A missing port means pachd's default, 30650. IPv6 hosts go in brackets.
 *
 * Checking the shape here saves a round trip whose only answer would be a
 * connection error far less specific than "the port is out of range".
 */

export const DEFAULT_PACHD_PORT = 30650;

export interface PachdAddress {
  host: string;
  port: number;
  tls: boolean;
}

export type ParseResult = { ok: true; address: PachdAddress } | { ok: false; message: string };

const EXAMPLE = "grpc://localhost:30650";

// One DNS label: letters, digits, hyphens inside; underscores are tolerated
// because container and compose service names use them.
const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;
const IPV6_BODY = /^[0-9A-Fa-f:.]+$/;

function fail(message: string): ParseResult {
  return { ok: false, message };
}

function hostProblem(host: string): string | null {
  if (IPV4.test(host)) {
    return host.split(".").every((octet) => Number(octet) <= 255)
      ? null
      : `"${host}" is not a valid IPv4 address: each part must be 0-255`;
  }
  if (/^\d+$/.test(host)) {
    return `"${host}" looks like a port without a host; write it as host:port, for example localhost:${host}`;
  }
  if (host.length > 253 || !host.split(".").every((label) => HOST_LABEL.test(label))) {
    return `"${host}" is not a valid host name: use letters, digits, "-" and "." (for example pachd.example.com)`;
  }
  return null;
}

function portProblem(port: string): string | null {
  if (port === "") return 'The port is missing after ":"; pachd listens on 30650 unless configured otherwise';
  if (!/^\d+$/.test(port)) return `The port must be a number from 1 to 65535, not "${port}"`;
  const value = Number(port);
  if (value < 1 || value > 65535) return `The port must be from 1 to 65535; ${port} is out of range`;
  return null;
}

/** Splits `host[:port]`, where an IPv6 host is written `[addr]`. */
function splitHostPort(authority: string): { host: string; port?: string; bracketed: boolean } | string {
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close === -1) return `The IPv6 address is missing its closing "]" (write it as [::1]:30650)`;
    const host = authority.slice(1, close);
    const rest = authority.slice(close + 1);
    if (!IPV6_BODY.test(host) || !host.includes(":")) return `"${host}" is not a valid IPv6 address`;
    if (rest === "") return { host, bracketed: true };
    if (!rest.startsWith(":")) return `Unexpected "${rest}" after the IPv6 address; write [addr]:port`;
    return { host, port: rest.slice(1), bracketed: true };
  }
  const colons = authority.split(":").length - 1;
  if (colons > 1) return "Put an IPv6 address in brackets, for example [::1]:30650";
  if (colons === 0) return { host: authority, bracketed: false };
  const [host, port] = authority.split(":");
  return { host, port, bracketed: false };
}

export function parsePachdAddress(input: string): ParseResult {
  const value = input.trim();
  if (value === "") return fail(`Enter the pachd address, for example ${EXAMPLE}`);
  if (/\s/.test(value)) return fail("The address cannot contain spaces");

  let tls = false;
  let authority = value;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value);
  if (scheme) {
    const name = scheme[1].toLowerCase();
    if (name === "http" || name === "https") {
      return fail(`pachd speaks gRPC: write grpc://host:port, or grpcs://host:port for TLS, instead of ${name}://`);
    }
    if (name !== "grpc" && name !== "grpcs") {
      return fail(`Unsupported scheme "${scheme[1]}://": use grpc://, grpcs:// (TLS) or plain host:port`);
    }
    tls = name === "grpcs";
    authority = value.slice(scheme[0].length);
  } else if (value.includes("://")) {
    return fail(`"${value}" does not start with a valid scheme; use grpc://host:port or grpcs://host:port`);
  }

  if (authority.includes("@")) {
    return fail('Leave credentials out of the address ("user@" found); put a token in the Auth token field');
  }
  const extra = /[/?#]/.exec(authority);
  if (extra) {
    return fail(`Remove "${authority.slice(extra.index)}": a pachd address is only a host and a port`);
  }
  if (authority === "") return fail(`The host is missing; for example ${EXAMPLE}`);

  const parts = splitHostPort(authority);
  if (typeof parts === "string") return fail(parts);
  if (parts.host === "") return fail(`The host is missing before ":"; for example ${EXAMPLE}`);
  if (!parts.bracketed) {
    const problem = hostProblem(parts.host);
    if (problem) return fail(problem);
  }
  if (parts.port !== undefined) {
    const problem = portProblem(parts.port);
    if (problem) return fail(problem);
  }
  return {
    ok: true,
    address: { host: parts.host, port: parts.port === undefined ? DEFAULT_PACHD_PORT : Number(parts.port), tls },
  };
}

/** The problem with an address, or null when pachd could be dialled at it. */
export function pachdAddressProblem(input: string): string | null {
  const result = parsePachdAddress(input);
  return result.ok ? null : result.message;
}
