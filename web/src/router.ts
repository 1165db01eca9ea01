import { useEffect, useState } from "preact/hooks";

/** Client-side navigation with the History API; the server answers every page URL with index.html. */
export function navigate(to: string, replace = false) {
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  dispatchEvent(new PopStateEvent("popstate"));
}

export function useLocation(): URL {
  const [location, setLocation] = useState(() => new URL(window.location.href));
  useEffect(() => {
    const update = () => setLocation(new URL(window.location.href));
    addEventListener("popstate", update);
    return () => removeEventListener("popstate", update);
  }, []);
  return location;
}

/** Same-origin links navigate in place (keeping modifier-clicks for new tabs). */
export function onLinkClick(event: MouseEvent) {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey)
    return;
  const anchor = (event.target as Element | null)?.closest?.("a");
  if (!anchor || anchor.target || anchor.hasAttribute("download")) return;
  const href = anchor.getAttribute("href");
  if (!href?.startsWith("/")) return;
  event.preventDefault();
  navigate(href);
}
