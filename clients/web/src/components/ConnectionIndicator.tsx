import { useEffect, useState } from "react";

import { useConnection } from "../connection.js";
import { connectionText } from "../lib/backoff.js";

export function ConnectionIndicator() {
  const state = useConnection();
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (state.kind !== "retrying") return undefined;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, [state]);
  return (
    <span className={`connection ${state.kind}`} role="status" aria-live="polite">
      <span className="dot" aria-hidden="true" />
      {connectionText(state, now)}
    </span>
  );
}
