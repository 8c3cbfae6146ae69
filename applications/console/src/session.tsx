// Who is logged in: the session token (api.ts) and what `GET /sessions/current` says of
// it — the user, their grants and branches, which decide what the console offers. Logging out
// deletes the session on the server too.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { SESSION_ENDED, allows, api, setToken, token } from "./api";

/** The logged-in user as the console knows them. */
export interface Who {
  user: string;
  grants: string[];
  /** The branches whose bookings and stock they see (what a branch picker offers). */
  branches: string[];
}

interface SessionValue {
  who: Who | null;
  /** Whether the first check of a kept token is still running. */
  checking: boolean;
  login: (user: string, password: string) => Promise<number>;
  logout: () => Promise<void>;
  can: (grant: string) => boolean;
}

const SessionContext = createContext<SessionValue | null>(null);

/** Provides the session to the pages. */
export function SessionProvider({ children }: { children: ReactNode }) {
  const [who, setWho] = useState<Who | null>(null);
  const [checking, setChecking] = useState(token() !== null);

  const load = useCallback(
    () =>
      api.GET("/api/v1/sessions/current").then(({ data }) => {
        setWho(data ? { user: data.user, grants: data.grants, branches: data.branches } : null);
        setChecking(false);
      }),
    [],
  );

  useEffect(() => {
    if (token()) void load();
    const ended = () => setWho(null);
    window.addEventListener(SESSION_ENDED, ended);
    return () => window.removeEventListener(SESSION_ENDED, ended);
  }, [load]);

  const value = useMemo<SessionValue>(
    () => ({
      who,
      checking,
      async login(user, password) {
        const { data, response } = await api.POST("/api/v1/sessions", { body: { user, password } });
        if (data) {
          setToken(data.token);
          await load();
        }
        return response.status;
      },
      async logout() {
        await api.DELETE("/api/v1/sessions/current");
        setToken(null);
        setWho(null);
      },
      can: (grant) => (who ? allows(who.grants, grant) : false),
    }),
    [who, checking, load],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

/** The session, inside SessionProvider. */
export function useSession(): SessionValue {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside SessionProvider");
  return s;
}
