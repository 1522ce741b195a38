import { describe, expect, it } from "vitest";
import { DEFAULT_PACHD_PORT, pachdAddressProblem, parsePachdAddress } from "../src/pachyderm/address";

describe("parsePachdAddress accepts", () => {
  it.each([
    ["localhost", { host: "localhost", port: DEFAULT_PACHD_PORT, tls: false }],
    ["localhost:30650", { host: "localhost", port: 30650, tls: false }],
    ["grpc://localhost:30650", { host: "localhost", port: 30650, tls: false }],
    ["grpcs://pachd.example.com:443", { host: "pachd.example.com", port: 443, tls: true }],
    ["GRPCS://pachd.example.com", { host: "pachd.example.com", port: DEFAULT_PACHD_PORT, tls: true }],
    ["grpc://pachd", { host: "pachd", port: DEFAULT_PACHD_PORT, tls: false }],
    ["10.0.0.5:1", { host: "10.0.0.5", port: 1, tls: false }],
    ["pachd.pachyderm.svc.cluster.local:65535", { host: "pachd.pachyderm.svc.cluster.local", port: 65535, tls: false }],
    ["local_pfs:30650", { host: "local_pfs", port: 30650, tls: false }],
    ["[::1]:30650", { host: "::1", port: 30650, tls: false }],
    ["grpcs://[2001:db8::7]", { host: "2001:db8::7", port: DEFAULT_PACHD_PORT, tls: true }],
    ["  grpc://localhost:30650  ", { host: "localhost", port: 30650, tls: false }],
  ])("%s", (input, address) => {
    expect(parsePachdAddress(input)).toEqual({ ok: true, address });
    expect(pachdAddressProblem(input)).toBeNull();
  });
});

describe("parsePachdAddress rejects", () => {
  it.each([
    ["", "Enter the pachd address, for example grpc://localhost:30650"],
    ["   ", "Enter the pachd address, for example grpc://localhost:30650"],
    ["grpc://local host:30650", "The address cannot contain spaces"],
    ["http://localhost:30650", "pachd speaks gRPC: write grpc://host:port, or grpcs://host:port for TLS, instead of http://"],
    ["https://pachd.example.com", "pachd speaks gRPC: write grpc://host:port, or grpcs://host:port for TLS, instead of https://"],
    ["unix:///var/run/pachd.sock", 'Unsupported scheme "unix://": use grpc://, grpcs:// (TLS) or plain host:port'],
    ["://localhost", '"://localhost" does not start with a valid scheme; use grpc://host:port or grpcs://host:port'],
    ["grpc://user:secret@localhost:30650", 'Leave credentials out of the address ("user@" found); put a token in the Auth token field'],
    ["grpc://localhost:30650/", 'Remove "/": a pachd address is only a host and a port'],
    ["grpc://localhost:30650/api", 'Remove "/api": a pachd address is only a host and a port'],
    ["localhost:30650?tls=1", 'Remove "?tls=1": a pachd address is only a host and a port'],
    ["grpc://", "The host is missing; for example grpc://localhost:30650"],
    [":30650", 'The host is missing before ":"; for example grpc://localhost:30650'],
    ["localhost:", 'The port is missing after ":"; pachd listens on 30650 unless configured otherwise'],
    ["localhost:pachd", 'The port must be a number from 1 to 65535, not "pachd"'],
    ["localhost:-1", 'The port must be a number from 1 to 65535, not "-1"'],
    ["localhost:0", "The port must be from 1 to 65535; 0 is out of range"],
    ["localhost:65536", "The port must be from 1 to 65535; 65536 is out of range"],
    ["300.1.1.1:30650", '"300.1.1.1" is not a valid IPv4 address: each part must be 0-255'],
    ["30650", '"30650" looks like a port without a host; write it as host:port, for example localhost:30650'],
    ["bad..host", '"bad..host" is not a valid host name: use letters, digits, "-" and "." (for example pachd.example.com)'],
    ["-pachd:30650", '"-pachd" is not a valid host name: use letters, digits, "-" and "." (for example pachd.example.com)'],
    ["pach*d", '"pach*d" is not a valid host name: use letters, digits, "-" and "." (for example pachd.example.com)'],
    ["::1:30650", "Put an IPv6 address in brackets, for example [::1]:30650"],
    ["[::1:30650", 'The IPv6 address is missing its closing "]" (write it as [::1]:30650)'],
    ["[zz::1]:30650", '"zz::1" is not a valid IPv6 address'],
    ["[::1]30650", 'Unexpected "30650" after the IPv6 address; write [addr]:port'],
    ["[::1]:99999", "The port must be from 1 to 65535; 99999 is out of range"],
  ])("%j", (input, message) => {
    expect(parsePachdAddress(input)).toEqual({ ok: false, message });
    expect(pachdAddressProblem(input)).toBe(message);
  });
});
