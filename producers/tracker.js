/*! shopstream tracker v1 — dependency-free browser snippet; docs/tracker.md, schema docs/events.md.
 *
 *   <script src="/static/tracker.js"></script>
 *   <script>
 *     shopstream.init({ endpoint: "https://collect.example.com/v1/events", writeKey: "shop-key-0001",
 *                       userId: "u-42" });
 *     shopstream.track("view", "sku-1", { price: 19.99, category: "toys" });
 *     shopstream.impressions(sessionList, "session", ["sku-2", "sku-7"], { requestId: "r-1" }); // items shown
 *     shopstream.click(sessionList, "session", "sku-7", 1, { requestId: "r-1" });              // the click's view
 *   </script>
 *
 * Events are batched and POSTed as a JSON array with Content-Type text/plain: a CORS-safelisted type,
 * so neither fetch nor sendBeacon needs a preflight, and the collector decodes any non-NDJSON body as
 * JSON whatever its content type. The site's write key goes in the URL (a header would need a preflight). When the page is hidden or left, what is queued goes out with
 * navigator.sendBeacon, which the browser delivers after the page is gone. Nothing here ever throws
 * into the page: tracking must not break a shop.
 */
(function (root) {
  "use strict";

  var SESSION_KEY = "shopstream.session";
  var SESSION_IDLE_MS = 30 * 60 * 1000;
  // Browsers cap the bodies of keepalive fetches and beacons in flight at 64 KiB per page.
  var MAX_PAYLOAD_BYTES = 60000;
  var MAX_EVENTS_PER_REQUEST = 500; // the collector's default SHOPSTREAM_MAX_EVENTS_PER_REQUEST
  var MAX_QUEUE = 2000; // when the collector is down for long, drop the oldest rather than grow
  var RETRY_BASE_MS = 500;
  var RETRY_MAX_MS = 30000;

  var config = { endpoint: null, userId: null, batchSize: 20, flushIntervalMs: 2000, debug: false };
  var queue = [];
  var sending = false;
  var attempt = 0;
  var timer = null;
  var memorySession = null; // when sessionStorage is unavailable (sandboxed iframes, strict privacy modes)
  var listening = false;
  var stats = { sent: 0, beacons: 0, retries: 0, dropped: 0, lastStatus: null };

  function warn(message, error) {
    if (config.debug && root.console) root.console.warn("[shopstream] " + message, error || "");
  }

  function safe(fn) {
    return function () {
      try {
        return fn.apply(this, arguments);
      } catch (error) {
        warn("internal error", error);
        return undefined;
      }
    };
  }

  function uuid() {
    var c = root.crypto;
    if (c && typeof c.randomUUID === "function") {
      try {
        return c.randomUUID(); // only in secure contexts (https, localhost)
      } catch (ignored) { /* fall through */ }
    }
    var bytes = new Array(16);
    var random = c && typeof c.getRandomValues === "function" ? c.getRandomValues(new Uint8Array(16)) : null;
    for (var i = 0; i < 16; i++) bytes[i] = random ? random[i] : Math.floor(Math.random() * 256);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // RFC 4122 version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = "";
    for (i = 0; i < 16; i++) {
      hex += (bytes[i] + 0x100).toString(16).slice(1);
      if (i === 3 || i === 5 || i === 7 || i === 9) hex += "-";
    }
    return hex;
  }

  function readSession() {
    try {
      var stored = JSON.parse(root.sessionStorage.getItem(SESSION_KEY) || "null");
      if (stored && typeof stored.id === "string") return stored;
    } catch (ignored) {
      return memorySession;
    }
    return null;
  }

  function writeSession(session) {
    memorySession = session;
    try {
      root.sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    } catch (ignored) { /* memory only */ }
  }

  /** The session id, rolled over after 30 minutes without an event (touch=true records activity). */
  function sessionId(touch) {
    var now = Date.now();
    var session = readSession();
    if (!session || now - session.last > SESSION_IDLE_MS) session = { id: uuid(), last: now };
    else if (touch) session.last = now;
    writeSession(session);
    return session.id;
  }

  function number(value, integer) {
    if (typeof value === "string" && value.trim() !== "") value = Number(value);
    if (typeof value !== "number" || !isFinite(value)) return undefined;
    return integer ? Math.round(value) : value;
  }

  function track(type, itemId, fields) {
    if (itemId === undefined || itemId === null) return warn("track(" + type + ") without an item id");
    fields = fields || {};
    var event = {
      event_id: uuid(),
      ts: Date.now() / 1000,
      session_id: sessionId(true),
      type: String(type),
      item_id: String(itemId)
    };
    if (config.userId) event.user_id = String(config.userId);
    var price = number(fields.price, false);
    var quantity = number(fields.quantity, true);
    if (price !== undefined) event.price = price;
    if (quantity !== undefined) event.quantity = quantity;
    if (fields.category !== undefined && fields.category !== null) event.category = String(fields.category);
    if (fields.properties && typeof fields.properties === "object") event.properties = fields.properties;
    if (fields.list && typeof fields.list === "object") event.list = fields.list;
    queue.push(event);
    if (queue.length > MAX_QUEUE) stats.dropped += queue.splice(0, queue.length - MAX_QUEUE).length;
    if (queue.length >= config.batchSize) flush();
    else schedule(config.flushIntervalMs);
  }

  /** The event's ``list`` field (docs/events.md) from a served list's value (docs/redis-keys.md). */
  function listRef(list, surface, position, options) {
    list = list || {};
    var ref = { surface: String(surface), strategy: String(list.strategy || list.model || "unknown").slice(0, 64) };
    var propensity = number(list.propensity, false);
    if (propensity !== undefined && propensity > 0 && propensity <= 1) ref.propensity = propensity;
    var rank = number(position, true);
    if (rank !== undefined && rank >= 0 && rank <= 1000) ref.position = rank;
    if (options && options.requestId) ref.request_id = String(options.requestId).slice(0, 128);
    return ref;
  }

  /** One impression per item shown from a served list, in the order shown. */
  function impressions(list, surface, itemIds, options) {
    for (var i = 0; itemIds && i < itemIds.length; i++) {
      track("impression", itemIds[i], { list: listRef(list, surface, i, options) });
    }
  }

  /** The view of an item opened from a served list (a click); options may carry price and category. */
  function click(list, surface, itemId, position, options) {
    options = options || {};
    track("view", itemId, { price: options.price, category: options.category,
      list: listRef(list, surface, position, options) });
  }

  function schedule(delayMs) {
    if (timer === null && root.setTimeout) {
      timer = root.setTimeout(function () {
        timer = null;
        flush();
      }, delayMs);
    }
  }

  /** Take the head of the queue as one request body within the count and byte limits. */
  function takeBody() {
    var events = [];
    var bytes = 2;
    while (queue.length && events.length < MAX_EVENTS_PER_REQUEST) {
      var size = JSON.stringify(queue[0]).length * 3 + 1; // UTF-8 upper bound, so no encoder is needed
      if (events.length && bytes + size > MAX_PAYLOAD_BYTES) break;
      events.push(queue.shift());
      bytes += size;
    }
    return events;
  }

  function retryable(status) {
    return status === 0 || status === 429 || status >= 500; // 0: network error, collector unreachable
  }

  /** Send queued events with fetch, one request at a time; retry 503s and network errors with backoff. */
  function flush() {
    if (sending || !queue.length || !config.endpoint || typeof root.fetch !== "function") return;
    if (timer !== null) {
      root.clearTimeout(timer);
      timer = null;
    }
    var events = takeBody();
    sending = true;
    var done = safe(function (status) {
      sending = false;
      stats.lastStatus = status;
      if (retryable(status)) {
        queue = events.concat(queue); // event ids make a resend after a lost answer harmless
        var backoff = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * Math.pow(2, attempt));
        attempt += 1;
        stats.retries += 1;
        warn("collector answered " + status + "; retrying in " + backoff + " ms");
        schedule(backoff * (0.5 + Math.random() / 2));
        return;
      }
      attempt = 0;
      if (status >= 400) {
        stats.dropped += events.length; // a 4xx will not get better by resending
        warn("collector rejected a batch with " + status);
      } else {
        stats.sent += events.length;
      }
      if (queue.length >= config.batchSize) flush();
      else if (queue.length) schedule(config.flushIntervalMs);
    });
    root.fetch(config.endpoint, {
      method: "POST",
      body: JSON.stringify(events),
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      keepalive: true,
      credentials: "omit",
      mode: "cors"
    }).then(function (response) {
      done(response.status);
    }, function () {
      done(0);
    });
  }

  /** The page is going away: hand everything queued to the browser, which sends it after unload. */
  function flushOnExit() {
    if (!config.endpoint || !queue.length) return;
    if (timer !== null) {
      root.clearTimeout(timer);
      timer = null;
    }
    var nav = root.navigator;
    while (queue.length) {
      var events = takeBody();
      var body = JSON.stringify(events);
      var queued = false;
      if (nav && typeof nav.sendBeacon === "function") {
        try {
          queued = nav.sendBeacon(config.endpoint, new Blob([body], { type: "text/plain;charset=UTF-8" }));
        } catch (ignored) { /* e.g. a blocked endpoint */ }
      }
      if (queued) {
        stats.beacons += 1;
        stats.sent += events.length;
      } else if (typeof root.fetch === "function") {
        root.fetch(config.endpoint, { method: "POST", body: body, keepalive: true, credentials: "omit",
          headers: { "Content-Type": "text/plain;charset=UTF-8" } }).catch(function () {});
      }
    }
  }

  function listen() {
    if (listening || !root.addEventListener) return;
    listening = true;
    var doc = root.document;
    if (doc && doc.addEventListener) {
      doc.addEventListener("visibilitychange", safe(function () {
        if (doc.visibilityState === "hidden") flushOnExit();
      }));
    }
    // pagehide, not unload: unload is unreliable on mobile and keeps pages out of the back/forward cache.
    root.addEventListener("pagehide", safe(flushOnExit));
  }

  function init(options) {
    options = options || {};
    if (!options.endpoint) return warn("init() needs an endpoint");
    config.endpoint = String(options.endpoint);
    if (options.writeKey) {
      config.endpoint += (config.endpoint.indexOf("?") < 0 ? "?" : "&") + "key=" +
        encodeURIComponent(String(options.writeKey));
    }
    config.userId = options.userId ? String(options.userId) : null;
    config.batchSize = Math.max(1, number(options.batchSize, true) || 20);
    config.flushIntervalMs = Math.max(0, number(options.flushIntervalMs, true) || 2000);
    config.debug = !!options.debug;
    listen();
    if (queue.length) schedule(0); // events tracked before init
  }

  var api = {
    init: safe(init),
    track: safe(track),
    impressions: safe(impressions),
    click: safe(click),
    /** Set or clear the user id after a log-in or log-out; later events carry it. */
    identify: safe(function (userId) {
      config.userId = userId ? String(userId) : null;
    }),
    flush: safe(flush),
    sessionId: safe(function () {
      return sessionId(false);
    }),
    stats: safe(function () {
      return { sent: stats.sent, beacons: stats.beacons, retries: stats.retries, dropped: stats.dropped,
        lastStatus: stats.lastStatus, queued: queue.length };
    })
  };

  root.shopstream = api;
  if (typeof module === "object" && module && module.exports) module.exports = api;
})(typeof window !== "undefined" ? window : this);
