// "Copy" buttons (templates/pages/_copy.html): each copies the text of the element its
// data-copy names. The buttons are rendered hidden, so without JavaScript none is shown and the
// text is simply there to select. Where the browser has no clipboard API, or refuses it (an
// insecure origin, a denied permission), the text is selected instead and the status says so.
function textOf(target) {
  return target instanceof HTMLInputElement ? target.value : target.textContent.trim();
}

function selectText(target) {
  if (target instanceof HTMLInputElement) {
    target.focus();
    target.select();
    return;
  }
  const range = document.createRange();
  range.selectNodeContents(target);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

async function copy(button, target, status) {
  status.textContent = "";
  try {
    if (!navigator.clipboard || typeof navigator.clipboard.writeText !== "function") {
      throw new Error("no clipboard API");
    }
    await navigator.clipboard.writeText(textOf(target));
    status.textContent = button.dataset.copied;
  } catch {
    selectText(target);
    status.textContent = button.dataset.byHand;
  }
}

for (const button of document.querySelectorAll("button[data-copy]")) {
  const target = document.getElementById(button.dataset.copy);
  const status = document.getElementById(button.dataset.status);
  if (target && status) {
    button.hidden = false;
    button.addEventListener("click", () => copy(button, target, status));
  }
}
