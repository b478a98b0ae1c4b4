// Phones share through the system's own share sheet: offer it where the browser has one.
const button = document.querySelector("[data-web-share]");
if (button && typeof navigator.share === "function") {
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.share({ title: button.dataset.title, text: button.dataset.text, url: button.dataset.url });
    } catch {
      // The person closed the sheet, or the browser refused: the link above is still there to copy.
    }
  });
}
