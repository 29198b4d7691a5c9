// relaybox status page: refreshes the live part of the page every few
// seconds without a full reload. The page works without it. It fetches the
// same URL and swaps the server-rendered <main>, so every string is still
// escaped by the server; nothing here builds HTML from data.
(function () {
  'use strict';
  var secs = parseInt(document.body.getAttribute('data-refresh') || '0', 10);
  var note = document.getElementById('refresh-note');
  // Drop ?done=... so reloading does not show an old notice again.
  if (location.search.indexOf('done=') >= 0 && history.replaceState) {
    var q = new URLSearchParams(location.search);
    ['done', 'id', 'n'].forEach(function (k) { q.delete(k); });
    var s = q.toString();
    history.replaceState(null, '', location.pathname + (s ? '?' + s : '') + location.hash);
  }
  if (!secs || !window.fetch || !window.DOMParser) return;
  function say(text) { if (note) note.textContent = text; }
  say('updates itself every ' + secs + 's');
  var busy = false;
  function tick() {
    var live = document.getElementById('live');
    if (busy || document.hidden || !live) return;
    // Keep still while someone selects text (copying an id) or has the
    // keyboard focus on a button in the part that would be replaced.
    var sel = window.getSelection && window.getSelection();
    if ((sel && !sel.isCollapsed) || live.contains(document.activeElement)) return;
    busy = true;
    fetch(location.pathname + location.search, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) {
        if (r.status === 404) throw new Error('it is gone from the spool (delivered or deleted)');
        if (r.status === 401) throw new Error('the relay wants the admin password again; reload the page');
        if (!r.ok) throw new Error('the relay answered ' + r.status);
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var fresh = doc.getElementById('live');
        if (!fresh) throw new Error('unexpected answer');
        live.replaceWith(document.adoptNode(fresh));
        document.title = doc.title;
        say('updated ' + new Date().toLocaleTimeString());
      })
      .catch(function (e) { say('not updated: ' + (e && e.message ? e.message : 'relay unreachable')); })
      .then(function () { busy = false; });
  }
  setInterval(tick, secs * 1000);
})();
