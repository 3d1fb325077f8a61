// The events page: "select every open event on this page" and a count of the ticked ones.
// Without this script the page still works: tick events, then "Acknowledge selected".
import { count } from "./lib/util.js";

const all = document.getElementById("ev-select-all");
const boxes = [...document.querySelectorAll("input.ev-select")];
const shown = document.getElementById("ack-selected-count");

function update() {
  const ticked = boxes.filter((b) => b.checked).length;
  if (all) {
    all.checked = ticked > 0 && ticked === boxes.length;
    all.indeterminate = ticked > 0 && ticked < boxes.length;
  }
  if (shown) shown.textContent = ticked ? `${count(ticked, "event")} selected` : "";
}

if (all && boxes.length) {
  all.hidden = false;
  all.addEventListener("change", () => {
    for (const b of boxes) b.checked = all.checked;
    update();
  });
}
for (const b of boxes) b.addEventListener("change", update);
update();
