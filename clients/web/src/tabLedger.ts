/**
 * The browser's TabLedger (lib/sharedRefresh.ts): the session's last refreshes in IndexedDB,
 * whose transactions every tab of the origin sees in order, so the tab that gets the refresh lock
 * next reads what the last holder bought even before that tab's message reaches it.
 *
 * IndexedDB outlives the tab (sessionStorage does not), so a record holds the new tokens
 * encrypted (AES-GCM) under a key derived from the spent refresh token, and is found by another
 * digest of it: only a tab that held that token can find or open it.
 */

import type { Tokens } from "@tradingmesh/sdk";

import type { Refreshed, TabLedger } from "./lib/sharedRefresh.js";

const STORE = "refreshes";
const RECENT = "recent"; // the one record: the last few refreshes, newest last
const KEPT = 8; // as many as lib/sharedRefresh.ts remembers in memory

type Sealed = {
  readonly id: string;
  readonly iv: Uint8Array<ArrayBuffer>;
  readonly data: ArrayBuffer;
};

export function indexedDbLedger(name: string): TabLedger {
  let opened: Promise<IDBDatabase> | undefined;
  const database = () => {
    opened ??= openDatabase(name).catch((error: unknown) => {
      opened = undefined; // try again at the next refresh
      throw error;
    });
    return opened;
  };
  const recent = async (): Promise<Sealed[]> => {
    const store = (await database()).transaction(STORE, "readonly").objectStore(STORE);
    return ((await request(store.get(RECENT))) as Sealed[] | undefined) ?? [];
  };
  return {
    async get(spent) {
      const { id, key } = await keysOf(spent);
      const sealed = (await recent()).find((record) => record.id === id);
      if (sealed === undefined) return undefined;
      const { iv, data } = sealed;
      const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv }, key, data);
      return JSON.parse(new TextDecoder().decode(plain)) as Tokens;
    },
    async put({ spent, tokens }: Refreshed) {
      const { id, key } = await keysOf(spent);
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const plain = new TextEncoder().encode(JSON.stringify(tokens));
      const data = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, plain);
      // Only the lock's holder writes, so this read and write cannot lose another tab's record.
      const kept = [...(await recent()), { id, iv, data }].slice(-KEPT);
      const write = (await database()).transaction(STORE, "readwrite");
      write.objectStore(STORE).put(kept, RECENT);
      await committed(write); // visible to every tab before the lock passes on
    },
  };
}

async function keysOf(spent: string): Promise<{ id: string; key: CryptoKey }> {
  const digest = async (label: string) =>
    crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${label}:${spent}`));
  const id = Array.from(new Uint8Array(await digest("id")), (b) => b.toString(16).padStart(2, "0"));
  const key = await crypto.subtle.importKey("raw", await digest("key"), "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  return { id: id.join(""), key };
}

function openDatabase(name: string): Promise<IDBDatabase> {
  const opening = indexedDB.open(name, 1);
  opening.onupgradeneeded = () => opening.result.createObjectStore(STORE);
  return request(opening);
}

function request<T>(pending: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    pending.onsuccess = () => resolve(pending.result);
    pending.onerror = () => reject(pending.error ?? new Error("IndexedDB request failed"));
  });
}

function committed(transaction: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = () => reject(transaction.error ?? new Error("IndexedDB write failed"));
    transaction.onabort = () => reject(transaction.error ?? new Error("IndexedDB write aborted"));
  });
}
