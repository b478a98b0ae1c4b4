/* Fluister's send-to-friend button for a brand's own site (docs/embedding.md):

     <script src="https://FLUISTER/embed.js" data-fluister-campaign="SLUG" async></script>

   data-fluister-mode: "button" (the default: a button that opens the form in a dialog),
   "inline" (the form where the script is) or "share" (a bar of share buttons).

   Plain JavaScript without dependencies, for a strict Content-Security-Policy on the host page:
   no eval, no inline script, no style attribute (styles are set through element.style, which a
   CSP allows). It asks the server whether this page's origin may show the campaign's form
   (embed.json answers with CORS for the campaign's listed origins only), else says why in the
   console and shows nothing. The browser enforces the same list on the frame (frame-ancestors).

   Messages from the frame count only when both their origin and their source are the frame;
   each forward or share becomes a "fluister:forward" / "fluister:share" event on the document,
   with counts and kinds only (never a contact). */
(function () {
  "use strict";
  var MODES = ["button", "inline", "share"];
  var KINDS = ["email-address", "phone-number", "other"];
  var counter = 0;

  function complain(text) {
    if (window.console) window.console.error("Fluister: " + text);
  }

  function styled(tag, styles) {
    var element = document.createElement(tag);
    for (var name in styles) element.style[name] = styles[name];
    return element;
  }

  function start(script) {
    if (script.getAttribute("data-fluister-started")) return;
    script.setAttribute("data-fluister-started", "1");
    var slug = script.getAttribute("data-fluister-campaign");
    var mode = script.getAttribute("data-fluister-mode") || "button";
    var server = new URL(script.src, window.location.href).origin;
    if (!slug) return complain('the script has no data-fluister-campaign="…": nothing is shown.');
    if (MODES.indexOf(mode) < 0) return complain('data-fluister-mode is "button", "inline" or "share", not "' + mode + '".');
    var address = server + "/c/" + encodeURIComponent(slug) + "/embed.json?mode=" + mode;
    window
      .fetch(address, { credentials: "omit", mode: "cors" })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.detail || "HTTP " + response.status);
          return body;
        });
      })
      .then(
        function (config) {
          if (String(config.frame).indexOf(server + "/") !== 0) throw new Error("unexpected frame address");
          show(script, mode, server, slug, config);
        },
        function (error) {
          complain(
            "the send-to-friend form of campaign \"" + slug + "\" is not shown on " + window.location.origin +
              ": " + error.message + ". A campaign lists the sites that may embed it in its settings."
          );
        }
      );
  }

  function show(script, mode, server, slug, config) {
    var frame = styled("iframe", { border: "0", width: "100%", height: mode === "share" ? "8rem" : "34rem" });
    frame.title = config.title;
    frame.className = "fluister-frame";
    var place = styled("div", {});
    place.className = "fluister fluister-" + mode;
    script.parentNode.insertBefore(place, script.nextSibling);
    var dialog = null;
    var listen = { frame: frame, server: server, slug: slug, inline: mode !== "button" };
    if (mode === "button") {
      dialog = dialogFor(place, frame, config, server);
      listen.dialog = dialog;
    } else {
      frame.src = config.frame;
      place.appendChild(frame);
    }
    window.addEventListener("message", function (event) {
      heard(event, listen);
    });
  }

  function dialogFor(place, frame, config, server) {
    counter += 1;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "fluister-button";
    button.textContent = config.button;
    button.setAttribute("aria-haspopup", "dialog");
    var dialog = styled("dialog", { width: "min(40rem, 94vw)", maxHeight: "92vh", padding: "0", border: "0", borderRadius: "0.5rem" });
    dialog.className = "fluister-dialog";
    dialog.lang = config.lang;
    var heading = styled("h2", { font: "600 1.1rem/1.3 system-ui, sans-serif", margin: "0", flex: "1" });
    heading.id = "fluister-dialog-title-" + counter;
    heading.textContent = config.title;
    dialog.setAttribute("aria-labelledby", heading.id);
    var close = document.createElement("button");
    close.type = "button";
    close.className = "fluister-close";
    close.textContent = config.close;
    var bar = styled("div", { display: "flex", alignItems: "center", gap: "1rem", padding: "0.75rem 1rem" });
    bar.appendChild(heading);
    bar.appendChild(close);
    // Focus stays in the dialog: past its last element it comes back to the first, and back.
    var first = sentinel(function () {
      ask(frame, server, { type: "focus", last: true });
    });
    var last = sentinel(function () {
      close.focus();
    });
    [first, bar, frame, last].forEach(function (part) {
      dialog.appendChild(part);
    });
    place.appendChild(button);
    place.appendChild(dialog);
    button.addEventListener("click", function () {
      if (!frame.src) frame.src = config.frame;
      dialog.showModal();
      ask(frame, server, { type: "focus" });
    });
    close.addEventListener("click", function () {
      dialog.close();
    });
    dialog.addEventListener("close", function () {
      button.focus();
    });
    return dialog;
  }

  function sentinel(onFocus) {
    var element = document.createElement("span");
    element.tabIndex = 0;
    element.addEventListener("focus", onFocus);
    return element;
  }

  function ask(frame, server, message) {
    message.fluister = 1;
    // The frame may move the focus within itself only once it has it (browsers refuse a
    // cross-origin frame that takes the focus on its own).
    if (message.type === "focus") frame.focus();
    if (frame.contentWindow) frame.contentWindow.postMessage(message, server);
  }

  function heard(event, listen) {
    // Only the frame itself, from the server's origin: a message from anyone else is ignored.
    if (event.origin !== listen.server || event.source !== listen.frame.contentWindow) return;
    var data = event.data;
    if (!data || data.fluister !== 1) return;
    if (data.type === "ready" && listen.dialog && listen.dialog.open) ask(listen.frame, listen.server, { type: "focus", soft: true });
    if (data.type === "height" && listen.inline && data.height > 0) listen.frame.style.height = Math.min(data.height, 4000) + "px";
    if (data.type === "height" && !listen.inline && data.height > 0) listen.frame.style.height = Math.min(data.height, window.innerHeight * 0.8) + "px";
    if (data.type === "close" && listen.dialog && listen.dialog.open) listen.dialog.close();
    if (data.type === "forward" && data.friends >= 0 && data.friends <= 50) {
      var kinds = [].concat(data.kinds).filter(function (kind) {
        return KINDS.indexOf(kind) >= 0;
      });
      announce("fluister:forward", { campaign: listen.slug, friends: Math.floor(data.friends), kinds: kinds });
    }
    if (data.type === "share" && /^[a-z]{1,16}$/.test(data.channel)) {
      announce("fluister:share", { campaign: listen.slug, channel: data.channel });
    }
  }

  function announce(name, detail) {
    document.dispatchEvent(new window.CustomEvent(name, { detail: detail, bubbles: true }));
  }

  var scripts = document.querySelectorAll("script[data-fluister-campaign]");
  for (var index = 0; index < scripts.length; index += 1) start(scripts[index]);
})();
