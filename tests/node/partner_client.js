// A partner broker's Node client, as the README tells partners to write one: every file of
// proto/ loaded with @grpc/proto-loader (protobufjs), then calls through the edge (Envoy) with
// @grpc/grpc-js over TLS. tests/integration/test_partner_tools.py runs it against the real stack
// and checks what it prints: one JSON object on stdout.
//
// Environment: TM_EDGE_ADDRESS (host:port), TM_EDGE_CA_FILE (the stack's CA, PEM),
// TM_DEMO_USERNAME, TM_DEMO_PASSWORD, TM_DEMO_ACCOUNT_ID. Exits 1 with the error on stderr.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const REPO = path.resolve(__dirname, "..", "..");
const INCLUDE_DIRS = [path.join(REPO, "proto"), path.join(REPO, "third_party", "proto")];
const DEADLINE_MS = 20000;

function protoFiles(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return protoFiles(full);
      return entry.name.endsWith(".proto") ? [full] : [];
    })
    .sort();
}

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

// Options as most Node partners use them: field names as written in the protos, 64-bit integers
// and enums as strings, default values present.
const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: INCLUDE_DIRS,
};

function loadEveryFile() {
  const files = protoFiles(path.join(REPO, "proto")).map((f) =>
    path.relative(path.join(REPO, "proto"), f),
  );
  // One file at a time first, so that a failure names the file that cannot be loaded.
  for (const file of files) {
    try {
      protoLoader.loadSync(file, LOADER_OPTIONS);
    } catch (error) {
      throw new Error(`@grpc/proto-loader cannot load ${file}: ${error.message}`);
    }
  }
  return { files, definition: protoLoader.loadSync(files, LOADER_OPTIONS) };
}

function servicesOf(definition) {
  // A service's entry maps its method names to method definitions (with a `path`).
  return Object.keys(definition)
    .filter((name) => {
      const entry = definition[name];
      return entry && !entry.format && Object.values(entry).some((m) => m && m.path);
    })
    .sort();
}

function unary(client, method, request, metadata) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + DEADLINE_MS);
    client[method](request, metadata, { deadline }, (error, response) => {
      resolve(error ? { code: error.code, details: error.details } : { code: 0, response });
    });
  });
}

async function main() {
  const { files, definition } = loadEveryFile();
  const api = grpc.loadPackageDefinition(definition);
  const credentials = grpc.credentials.createSsl(fs.readFileSync(env("TM_EDGE_CA_FILE")));
  const address = env("TM_EDGE_ADDRESS");
  const auth = new api.tradingmesh.account.v1.AuthService(address, credentials);
  const pricing = new api.tradingmesh.pricing.v1.PricingService(address, credentials);
  try {
    const login = await unary(
      auth,
      "Login",
      { username: env("TM_DEMO_USERNAME"), password: env("TM_DEMO_PASSWORD") },
      new grpc.Metadata(),
    );
    if (login.code !== 0) throw new Error(`Login: ${login.code} ${login.details}`);
    const request = { account_id: env("TM_DEMO_ACCOUNT_ID"), page_size: 500 };
    const anonymous = await unary(pricing, "ListInstruments", request, new grpc.Metadata());
    const signedIn = new grpc.Metadata();
    signedIn.set("authorization", `Bearer ${login.response.access_token}`);
    const listed = await unary(pricing, "ListInstruments", request, signedIn);
    if (listed.code !== 0) throw new Error(`ListInstruments: ${listed.code} ${listed.details}`);
    const report = {
      files,
      services: servicesOf(definition),
      login: {
        token_type: login.response.token_type,
        has_access_token: login.response.access_token.length > 0,
        has_refresh_token: login.response.refresh_token.length > 0,
      },
      list_instruments_without_token: { code: anonymous.code },
      instruments: listed.response.instruments.map((i) => ({
        symbol: i.symbol,
        asset_class: i.asset_class,
        digits: i.digits,
        contract_size: i.contract_size,
        min_lot: i.min_lot,
      })),
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    auth.close();
    pricing.close();
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
