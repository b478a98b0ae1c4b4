// The send-to-friend form after a step of the campaign's own landing template (a quiz, a game):
// hidden until the visitor presses a button or link carrying data-fluister-step-done, or the
// "Skip this step" button, always shown beside it. Without JavaScript the form is simply there.
(function () {
  "use strict";
  var form = document.querySelector("[data-reveal='after-step']");
  var skip = document.querySelector("[data-step-skip]");
  // A page without the step never hides its form: there would be nothing to press.
  if (!form || !skip || !document.querySelector("[data-fluister-step-done]")) return;

  function reveal() {
    if (!form.hidden) return;
    form.hidden = false;
    skip.hidden = true;
    var heading = form.querySelector("h2");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }

  form.hidden = true;
  skip.hidden = false;
  skip.querySelector("button").addEventListener("click", reveal);
  // Delegated: the step's buttons and links are the marketer's markup, wherever they put them.
  // A button's or a link's click also comes from the keyboard (Enter, or Space on a button).
  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target.closest("[data-fluister-step-done]") : null;
    if (target) reveal();
  });
})();
