import { useEffect, useState } from "react";

import { onSessionChange, tm } from "./api.js";
import { Login } from "./components/Login.js";
import { Terminal } from "./components/Terminal.js";

export function App() {
  const [signedIn, setSignedIn] = useState(() => tm.session.tokens !== undefined);
  const [notice, setNotice] = useState<string | undefined>(undefined);

  useEffect(
    () =>
      onSessionChange((now) => {
        setSignedIn((was) => {
          if (was && !now) setNotice("Your session has ended. Please sign in again.");
          return now;
        });
      }),
    [],
  );

  async function signOut(): Promise<void> {
    delete document.body.dataset["firstPriceAt"];
    try {
      await tm.signOut();
    } catch {
      // The session is cleared locally either way.
    }
    setNotice(undefined);
    setSignedIn(false);
  }

  return signedIn ? (
    <Terminal onSignOut={() => void signOut()} />
  ) : (
    <Login
      notice={notice}
      onSignedIn={() => {
        setNotice(undefined);
        setSignedIn(true);
      }}
    />
  );
}
