import { useEffect, useRef, useState } from "react";

import type { Notification } from "@tradingmesh/sdk/gen/tradingmesh/notification/v1/notification_pb";
import { NotificationSeverity } from "@tradingmesh/sdk/gen/tradingmesh/notification/v1/notification_pb";

import { ErrorReason, hasReason } from "@tradingmesh/sdk";

import { tm } from "../api.js";
import { timeText } from "../lib/format.js";
import { userError } from "../lib/reasons.js";
import { useStream } from "../useStream.js";

const TOAST_MS = 6000;
const KEEP = 100;

const severityClass = (s: NotificationSeverity) =>
  s === NotificationSeverity.CRITICAL ? "danger" : s === NotificationSeverity.WARNING ? "warn" : "info";

/** A bell with the unread count, a list with mark-read, and toasts for new notifications. */
export function Notifications({ enabled }: { enabled: boolean }) {
  const [items, setItems] = useState<readonly Notification[]>([]);
  const [toasts, setToasts] = useState<readonly Notification[]>([]);
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const [unread, setUnread] = useState(0);
  const caughtUp = useRef(false);
  const known = useRef(new Set<string>());
  const lastId = useRef<string | undefined>(undefined);
  const panel = useRef<HTMLDivElement | null>(null);

  // The recent list and the unread count; the stream then adds new ones.
  useEffect(() => {
    if (!enabled) return undefined;
    let cancelled = false;
    void tm.notifications
      .listNotifications({ pageSize: 50 })
      .then((response) => {
        if (cancelled) return;
        for (const n of response.notifications) known.current.add(n.id);
        setItems((list) => {
          const known = new Set(list.map((n) => n.id));
          return [...list, ...response.notifications.filter((n) => !known.has(n.id))].slice(0, KEEP);
        });
        setUnread(Number(response.unreadCount));
      })
      .catch(() => {
        // The stream still brings new notifications.
      });
    return () => {
      cancelled = true;
    };
  }, [enabled]);

  useStream(
    "notifications",
    enabled,
    (signal) => {
      caughtUp.current = false;
      return tm.notifications.streamNotifications(
        lastId.current === undefined
          ? { kinds: [] }
          : { kinds: [], resume: { case: "afterId", value: lastId.current } },
        { signal },
      );
    },
    (message) => {
      const event = message.event;
      if (event.case === "caughtUp") {
        caughtUp.current = true;
      } else if (event.case === "notification") {
        const n = event.value;
        lastId.current = n.id;
        const isNew = !known.current.has(n.id);
        known.current.add(n.id);
        setItems((list) => [n, ...list.filter((x) => x.id !== n.id)].slice(0, KEEP));
        if (isNew && !n.read) setUnread((u) => u + 1);
        if (caughtUp.current && !n.read) {
          setToasts((list) => [...list, n].slice(-4));
          setTimeout(() => setToasts((list) => list.filter((x) => x.id !== n.id)), TOAST_MS);
        }
      }
    },
    [],
    (error) => {
      // The last id is no longer known (e.g. too old): reopen without a resume point.
      if (hasReason(error, ErrorReason.NOT_FOUND)) lastId.current = undefined;
    },
  );

  useEffect(() => {
    if (!open) return undefined;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") setOpen(false);
    };
    window.addEventListener("keydown", onKey);
    panel.current?.focus();
    return () => window.removeEventListener("keydown", onKey);
  }, [open]);

  async function markRead(ids: string[] | "all"): Promise<void> {
    try {
      const response = await tm.notifications.markNotificationsRead(
        ids === "all" ? { all: true, ids: [] } : { ids, all: false },
      );
      setUnread(Number(response.unreadCount));
      setItems((list) => list.map((n) => (ids === "all" || ids.includes(n.id) ? { ...n, read: true } : n)));
      setError(undefined);
    } catch (e) {
      setError(userError(e).message);
    }
  }

  return (
    <div className="notifications">
      <button
        type="button"
        className="ghost bell"
        aria-expanded={open}
        aria-controls="notification-panel"
        aria-label={`Notifications, ${unread} unread`}
        onClick={() => setOpen((o) => !o)}
      >
        <svg className="bell-icon" viewBox="0 0 24 24" width="16" height="16" aria-hidden="true">
          <path
            fill="currentColor"
            d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2Z"
          />
        </svg>
        <span className="label">Notifications</span>
        <span className={`count ${unread > 0 ? "unread" : ""}`} aria-hidden="true">
          {unread}
        </span>
      </button>
      {open && (
        <div className="notification-panel" id="notification-panel" ref={panel} tabIndex={-1} role="region" aria-label="Notification list">
          <div className="panel-head">
            <h2>Notifications</h2>
            <button type="button" className="small" disabled={unread === 0} onClick={() => void markRead("all")}>
              Mark all read
            </button>
          </div>
          {error !== undefined && <p className="error" role="alert">{error}</p>}
          {items.length === 0 ? (
            <p className="muted empty">No notifications</p>
          ) : (
            <ul>
              {items.map((n) => (
                <li key={n.id} className={`${severityClass(n.severity)} ${n.read ? "read" : "unread"}`}>
                  <div>
                    <strong>{n.title}</strong>
                    <p>{n.body}</p>
                    <time className="muted">{timeText(n.createTime)}</time>
                  </div>
                  {!n.read && (
                    <button type="button" className="small ghost" onClick={() => void markRead([n.id])} aria-label={`Mark "${n.title}" read`}>
                      Mark read
                    </button>
                  )}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      <div className="toasts" aria-live="polite">
        {toasts.map((n) => (
          <div key={n.id} className={`toast ${severityClass(n.severity)}`}>
            <strong>{n.title}</strong>
            <span>{n.body}</span>
            <button type="button" className="small ghost" aria-label="Dismiss notification" onClick={() => setToasts((l) => l.filter((x) => x.id !== n.id))}>
              ×
            </button>
          </div>
        ))}
      </div>
    </div>
  );
}
