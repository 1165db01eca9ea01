import type { ComponentChildren, ComponentType } from "preact";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, setUnauthorizedHandler } from "./api.ts";
import { AppContext, type AppState, appState } from "./app-context.ts";
import { CALLBACK_PATH, oidcCallback } from "./auth.ts";
import { ErrorNote } from "./components/ui.tsx";
import { Inbox } from "./pages/inbox.tsx";
import { MyAccess } from "./pages/my-access.tsx";
import { RequestDetail } from "./pages/request-detail.tsx";
import { RequestPage } from "./pages/request-form.tsx";
import { SignIn } from "./pages/sign-in.tsx";
import { navigate, onLinkClick, useLocation } from "./router.ts";
import { session } from "./session.ts";
import "./styles.css";

// Auditors' pages are their own chunks: an approver's inbox never downloads the charts.
const loadAudit = () => import("./pages/audit.tsx").then((module) => module.Audit);
const loadReports = () => import("./pages/reports.tsx").then((module) => module.Reports);

function Lazy({ load }: { load: () => Promise<ComponentType> }) {
  const [loaded, setLoaded] = useState<{ Page: ComponentType; load: typeof load }>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    load()
      .then((Page) => setLoaded({ Page, load }))
      .catch(setError);
  }, [load]);
  if (error) return <ErrorNote error={error} />;
  if (!loaded || loaded.load !== load) return <p aria-busy="true">Loading…</p>;
  return <loaded.Page />;
}

interface NavItem {
  href: string;
  label: string;
  show: (state: AppState) => boolean;
}

const NAV: NavItem[] = [
  { href: "/inbox", label: "Inbox", show: (state) => state.approver },
  { href: "/request", label: "Request access", show: (state) => state.requester },
  { href: "/access", label: "My access", show: () => true },
  { href: "/audit", label: "Audit", show: (state) => state.auditor },
  { href: "/reports", label: "Reports", show: (state) => state.auditor },
];

function home(state: AppState) {
  return state.approver ? "/inbox" : state.requester ? "/request" : state.auditor ? "/audit" : "/access";
}

function Layout({ state, path, children }: { state: AppState; path: string; children: ComponentChildren }) {
  const signOut = () => {
    session.clear();
    navigate("/signin");
  };
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a href="/" class="brand">
          access-broker
        </a>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((item) => item.show(state)).map((item) => (
              <li key={item.href}>
                <a href={item.href} aria-current={path.startsWith(item.href) ? "page" : undefined}>
                  {item.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span data-testid="signed-in-as">{state.profile.email}</span>
          <button type="button" class="link" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}

function Page({ path, state }: { path: string; state: AppState }) {
  if (path === "/inbox") return <Inbox />;
  if (path === "/request") return <RequestPage />;
  if (path === "/access") return <MyAccess />;
  if (path === "/audit") return <Lazy load={loadAudit} />;
  if (path === "/reports") return <Lazy load={loadReports} />;
  const detail = /^\/requests\/(req_[0-9a-z]+)$/.exec(path);
  if (detail?.[1]) return <RequestDetail id={detail[1]} />;
  return (
    <>
      <h1>Not found</h1>
      <p>
        There is no page at <code>{path}</code>. <a href={home(state)}>Go to your start page</a>.
      </p>
    </>
  );
}

const TITLES: Record<string, string> = {
  "/inbox": "Inbox",
  "/request": "Request access",
  "/access": "My access",
  "/audit": "Audit",
  "/reports": "Reports",
  "/signin": "Sign in",
};

function App() {
  const location = useLocation();
  const path = location.pathname;
  const [state, setState] = useState<AppState | undefined>();
  const [error, setError] = useState<unknown>();
  const signedIn = session.get();

  useEffect(() => {
    setUnauthorizedHandler(() => {
      session.clear();
      setState(undefined);
      navigate(`/signin?next=${encodeURIComponent(location.pathname)}`, true);
    });
  }, []);

  useEffect(() => {
    document.title = `${TITLES[path] ?? "access-broker"} · access-broker`;
    // Move focus to the new page's content so keyboard and screen-reader users start there.
    if (state && path !== "/signin") document.getElementById("main")?.focus({ preventScroll: true });
  }, [path, state !== undefined]);

  useEffect(() => {
    if (path === CALLBACK_PATH && __WEB_CONFIG__.auth.kind === "oidc") {
      oidcCallback(__WEB_CONFIG__.auth)
        .then((next) => navigate(next, true))
        .catch(setError);
      return;
    }
    if (!signedIn) {
      if (path !== "/signin") navigate(`/signin?next=${encodeURIComponent(path)}`, true);
      return;
    }
    if (state && state.profile.email === signedIn.email) return;
    Promise.all([api.me(), api.policy()])
      .then(([profile, policy]) => setState(appState(profile, policy)))
      .catch(setError);
  }, [path, signedIn?.token]);

  if (path === CALLBACK_PATH)
    return error ? <ErrorNote error={error} /> : <p aria-busy="true">Signing in…</p>;
  if (path === "/signin" || !signedIn) return <SignIn next={location.searchParams.get("next") ?? "/"} />;
  if (error) return <ErrorNote error={error} />;
  if (!state)
    return (
      <p class="loading" aria-busy="true">
        Loading…
      </p>
    );
  if (path === "/") {
    navigate(home(state), true);
    return null;
  }
  return (
    <AppContext.Provider value={state}>
      <Layout state={state} path={path}>
        <Page path={path} state={state} />
      </Layout>
    </AppContext.Provider>
  );
}

document.addEventListener("click", onLinkClick);
const root = document.getElementById("app");
if (root) render(<App />, root);
