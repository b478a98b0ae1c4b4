/* The embedded form's side of static/embed.js: it tells the page it is framed on (exactly the
   origin the server checked, data-fluister-host; never "*") how tall it is, that Escape was
   pressed, and what was forwarded or shared: counts and kinds, never a contact. It takes
   orders (focus) from that page only: the message's origin and its source are both checked. */
(function () {
  "use strict";
  var body = document.body;
  var host = body.getAttribute("data-fluister-host");
  if (!host || window.parent === window) return;

  function tell(message) {
    message.fluister = 1;
    window.parent.postMessage(message, host);
  }

  function focusable(within) {
    var all = within.querySelectorAll(
      "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select, textarea, [tabindex]"
    );
    return Array.prototype.filter.call(all, function (element) {
      return element.tabIndex >= 0 && element.getClientRects().length > 0;
    });
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== host || event.source !== window.parent || !event.data || event.data.fluister !== 1) return;
    // A page that put the focus somewhere itself (an error summary) keeps it there.
    var placed = document.activeElement && document.activeElement !== body;
    if (event.data.type === "focus" && !(placed && event.data.soft)) {
      // The first field of the form (past the language switch), or the last element of the page.
      var elements = focusable(document);
      var target = event.data.last ? elements[elements.length - 1] : focusable(document.querySelector("main"))[0];
      if (target) target.focus();
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") tell({ type: "close" });
  });

  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    if (event.target.classList.contains("share-buttons") && button && button.value) {
      tell({ type: "share", channel: button.value });
    }
  });

  var friends = body.getAttribute("data-fluister-forward");
  if (friends) {
    var kinds = (body.getAttribute("data-fluister-kinds") || "").split(",").filter(Boolean);
    tell({ type: "forward", friends: parseInt(friends, 10), kinds: kinds });
  }

  function height() {
    tell({ type: "height", height: Math.ceil(document.documentElement.scrollHeight) });
  }
  if (window.ResizeObserver) new window.ResizeObserver(height).observe(body);
  height();
  tell({ type: "ready" });
})();
