import { useEffect, useState } from "preact/hooks";
import { type DevUser, devSignIn, devUsers, oidcSignIn } from "../auth.ts";
import { ErrorNote } from "../components/ui.tsx";
import { navigate } from "../router.ts";

const ROLES: Record<string, string> = {
  dev: "requester",
  "sre-leads": "approver",
  security: "auditor",
};

function DevPicker({ next }: { next: string }) {
  const [users, setUsers] = useState<DevUser[]>();
  const [chosen, setChosen] = useState("");
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    devUsers()
      .then((list) => {
        setUsers(list);
        setChosen((current) => current || list[0]?.email || "");
      })
      .catch(setError);
  }, []);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      await devSignIn(chosen);
      navigate(next.startsWith("/") && next !== "/signin" ? next : "/", true);
    } catch (caught) {
      setError(caught);
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} aria-describedby="dev-note">
      <p id="dev-note" class="hint">
        Local runtime: tokens come from the dev issuer. Pick one of the demo directory's people.
      </p>
      <fieldset>
        <legend>Sign in as</legend>
        {users?.map((user) => (
          <label class="choice" key={user.email}>
            <input
              type="radio"
              name="user"
              value={user.email}
              checked={chosen === user.email}
              onChange={() => setChosen(user.email)}
            />
            <span>
              <strong>{user.name ?? user.email}</strong> {user.email}
              <span class="hint">
                {" "}
                ·{" "}
                {user.groups.map((group) => `${group}${ROLES[group] ? ` (${ROLES[group]})` : ""}`).join(", ")}
              </span>
            </span>
          </label>
        ))}
        {users === undefined && !error ? <p aria-busy="true">Loading users…</p> : null}
      </fieldset>
      <ErrorNote error={error} />
      <button type="submit" disabled={!chosen || busy}>
        Sign in
      </button>
    </form>
  );
}

export function SignIn({ next }: { next: string }) {
  const auth = __WEB_CONFIG__.auth;
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    document.title = "Sign in · access-broker";
  }, []);
  return (
    <main id="main" class="signin">
      <h1>access-broker</h1>
      <p>Just-in-time, approved, audited access to EC2 instances.</p>
      {auth.kind === "dev" ? (
        <DevPicker next={next} />
      ) : (
        <>
          <button type="button" onClick={() => oidcSignIn(auth, next).catch(setError)}>
            Sign in with {new URL(auth.issuer).host}
          </button>
          <ErrorNote error={error} />
        </>
      )}
    </main>
  );
}
