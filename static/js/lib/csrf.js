// The CSRF token the server puts in <meta name="csrf-token"> (templates/base.html): every
// POST a page script makes carries it as X-CSRFToken, as every form carries it as a field.

/** The page's CSRF token ("" when the page has none). */
export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

/** ``headers`` with the X-CSRFToken header added. */
export function withCsrf(headers = {}) {
  const token = csrfToken();
  return token ? { ...headers, "X-CSRFToken": token } : { ...headers };
}
