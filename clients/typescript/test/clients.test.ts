// createClients covers every service the contracts define for clients, and nothing internal.
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

import type { DescService } from "@bufbuild/protobuf";

import { SERVICES, createClients } from "../dist/clients.js";

const GEN = fileURLToPath(new URL("../dist/gen/tradingmesh/", import.meta.url));

async function generatedModules(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith("_pb.js"))
    .map((e) => join(e.parentPath ?? e.path, e.name))
    .sort();
}

function isService(value: unknown): value is DescService {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { kind?: unknown }).kind === "service"
  );
}

describe("createClients", () => {
  test("has a client for every generated service but the internal ones", async () => {
    const modules = await generatedModules(GEN);
    const generated: string[] = [];
    for (const file of modules) {
      const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
      generated.push(...Object.values(module).filter(isService).map((s) => s.typeName));
    }
    const publicServices = generated.filter((name) => !name.endsWith("InternalService")).sort();

    assert.ok(modules.length > 0, `no generated modules under ${relative(process.cwd(), GEN)}`);
    assert.ok(publicServices.includes("tradingmesh.oms.v1.OrderService"));
    assert.deepEqual(Object.values(SERVICES).map((s) => s.typeName).sort(), publicServices);
  });

  test("gives each service a typed client with its methods", () => {
    const tm = createClients({ baseUrl: "http://edge.test" });

    for (const [name, service] of Object.entries(SERVICES)) {
      const client = tm[name as keyof typeof SERVICES] as unknown as Record<string, unknown>;
      for (const method of service.methods) {
        assert.equal(typeof client[method.localName], "function", `${name}.${method.localName}`);
      }
    }
    assert.equal(typeof tm.orders.placeOrder, "function");
    assert.equal(typeof tm.pricing.streamQuotes, "function");
  });
});
