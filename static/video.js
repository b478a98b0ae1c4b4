// A landing page's hero video (templates/pages/_video.html): the play counted once per page
// view, a provider's player loaded only when the visitor presses play, and the send-to-friend
// form revealed at the video's end (or when the visitor skips it) when the campaign asks for it.
(function () {
  "use strict";
  var figure = document.querySelector("[data-video]");
  if (!figure) return;
  var stamp = figure.getAttribute("data-play-stamp");
  var playUrl = figure.getAttribute("data-play-url");
  var counted = false;

  function countPlay() {
    if (counted || !stamp) return;
    counted = true;
    var body = new URLSearchParams();
    body.set("stamp", stamp);
    if (navigator.sendBeacon && navigator.sendBeacon(playUrl, body)) return;
    fetch(playUrl, { method: "POST", body: body, credentials: "same-origin", keepalive: true }).catch(function () {});
  }

  // The form waits for the video only with JavaScript, and a visible "Skip the video" button
  // always lets the visitor have it at once.
  var form = document.querySelector("[data-reveal='after-video']");
  var skip = figure.querySelector("[data-skip-video]");
  function reveal() {
    if (!form || !form.hidden) return;
    form.hidden = false;
    if (skip) skip.hidden = true;
    var heading = form.querySelector("h2");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }
  if (form && skip) {
    form.hidden = true;
    skip.hidden = false;
    skip.addEventListener("click", reveal);
  }

  var video = figure.querySelector("video");
  if (video) {
    video.addEventListener("play", countPlay);
    video.addEventListener("ended", reveal);
  }

  var facade = figure.querySelector("[data-player]");
  if (!facade) return;
  var button = facade.querySelector("[data-play-button]");
  var link = facade.querySelector("[data-play-link]");
  button.hidden = false;
  link.hidden = true;
  button.addEventListener("click", function () {
    countPlay();
    var frame = document.createElement("iframe");
    var player = facade.getAttribute("data-player");
    var origin = new URL(player).origin;
    frame.src = player;
    frame.title = facade.getAttribute("data-title");
    frame.allow = "autoplay; fullscreen; picture-in-picture; encrypted-media";
    frame.allowFullscreen = true;
    // The provider needs to know which site embeds it; only our origin, never the page's path.
    frame.referrerPolicy = "strict-origin";
    // Ask the player to tell us when the video ends (YouTube's and Vimeo's postMessage APIs).
    frame.addEventListener("load", function () {
      var hello = origin.indexOf("vimeo") >= 0
        ? { method: "addEventListener", value: "ended" }
        : { event: "listening", id: "fluister" };
      frame.contentWindow.postMessage(JSON.stringify(hello), origin);
    });
    window.addEventListener("message", function (event) {
      if (event.origin !== origin || event.source !== frame.contentWindow) return;
      var data;
      try {
        data = typeof event.data === "string" ? JSON.parse(event.data) : event.data;
      } catch (error) {
        return;
      }
      if (!data) return;
      var youtubeEnded = (data.event === "onStateChange" && data.info === 0) ||
        (data.event === "infoDelivery" && data.info && data.info.playerState === 0);
      if (youtubeEnded || data.event === "ended" || data.event === "finish") reveal();
    });
    facade.replaceChildren(frame);
    frame.focus();
  });
})();
