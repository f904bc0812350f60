// The browser's own script, beside htmx: every htmx request carries the session's CSRF token, an
// error answer is shown in the message area (the server names the problem there), and the page's
// live parts refresh when the server's change events say that memories changed.
(function () {
  const body = document.body;
  htmx.config.responseHandling = [
    {code: "204", swap: false},
    {code: "[23]..", swap: true},
    {code: "[45]..", swap: true, error: true},
  ];
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = body.dataset.csrf;
  });
  const events = body.dataset.events;
  if (events && window.EventSource) {
    const source = new EventSource(events);
    source.onmessage = function (e) {
      htmx.trigger(body, "memories-changed", JSON.parse(e.data));
    };
  }
})();
