/* Bundled with the plugin (the page's Content-Security-Policy allows no inline script).
 *
 * Run links open in the top window. Airflow shows this page in an iframe sandboxed
 * without allow-top-navigation, where a target="_top" link is dead; the page and
 * Airflow's UI share an origin, so the click is replayed on a link in the top document.
 * Only http(s) and relative URLs are followed (the server renders nothing else as a link).
 */
(function () {
  "use strict";

  function safeUrl(href) {
    try {
      var url = new URL(href, document.baseURI);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  document.addEventListener("click", function (event) {
    var link = event.target && event.target.closest ? event.target.closest("a[data-lore-top]") : null;
    if (!link || window.top === window || event.defaultPrevented) return;
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    var href = safeUrl(link.getAttribute("href") || "");
    var topDocument;
    try {
      topDocument = window.top.document;
    } catch (e) {
      return; // another origin embeds the page: the browser decides
    }
    event.preventDefault();
    if (!href) return;
    var replay = topDocument.createElement("a");
    replay.href = href;
    replay.rel = "noopener";
    topDocument.body.appendChild(replay);
    replay.click();
    replay.remove();
  });
})();
