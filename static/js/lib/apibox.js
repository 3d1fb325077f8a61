// The "API" box of a module page: copy buttons and a real example request.
import { $ } from "./util.js";
import { withCsrf } from "./csrf.js";

/** ``root`` is the <details> box; ``predictUrl`` the endpoint the JSON example posts to. */
export function initApiBox(root, predictUrl) {
  root.querySelectorAll(".copy-button").forEach((btn) => {
    btn.addEventListener("click", async () => {
      const text = $(btn.dataset.copy).textContent;
      try {
        await navigator.clipboard.writeText(text);
        btn.textContent = "Copied";
      } catch {
        const range = document.createRange();
        range.selectNodeContents($(btn.dataset.copy));
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
        btn.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => { btn.textContent = "Copy"; }, 2000);
    });
  });
  root.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && root.open) { root.open = false; root.querySelector("summary").focus(); }
  });
  const tryButton = root.querySelector("#api-try");
  if (!tryButton) return;
  tryButton.addEventListener("click", async () => {
    const out = $("api-response");
    const note = $("api-response-note");
    const body = $("curl-json").textContent.match(/-d '([\s\S]+)'\s*$/)[1];
    out.textContent = "Sending…";
    try {
      const res = await fetch(predictUrl, {
        method: "POST", body, headers: withCsrf({ "Content-Type": "application/json", Accept: "application/json" }),
      });
      out.textContent = `HTTP ${res.status}\n${JSON.stringify(await res.json(), null, 2)}`;
      note.textContent = "The real response from this server to the JSON example above (the run is recorded in History).";
    } catch (err) {
      out.textContent = `The request failed: ${err.message}`;
    }
  });
}
