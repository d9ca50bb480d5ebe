/*!
 * bayeuxhub.js - the browser Bayeux 1.0 client of bayeuxhub.
 *
 * Plain JavaScript, no dependencies, no build step. Works in any browser with
 * fetch and Promise. It defines the global `BayeuxHub` (or module.exports under
 * CommonJS) with one class, `BayeuxHub.Client`, which speaks two transports
 * of Bayeux 1.0: `websocket` (JSON arrays of messages in text frames, on the
 * same URL with ws: or wss:) and `long-polling` (JSON arrays POSTed as
 * application/json). The handshake goes over HTTP; when the server offers
 * `websocket` (and the browser has WebSocket) the client opens a socket and
 * uses it from then on, else, or when the upgrade fails, it long-polls. A
 * socket that closes is opened again; if that fails the client continues
 * over long-polling with the same clientId, and tries WebSocket again at its
 * next handshake.
 *
 * API
 * ---
 *   var client = new BayeuxHub.Client(url, options)
 *       url      endpoint, e.g. '/cometd' (relative URLs are resolved against the page)
 *       options  {
 *         appendMessageTypeToURL: false, // post to url + '/handshake', '/connect', ... instead of url
 *         minBackoff: 500,               // first retry delay (ms) when the server is unreachable
 *         maxBackoff: 10000,             // cap of the exponential backoff (ms)
 *         maxNetworkDelay: 10000,        // extra time (ms) a request may take before it is aborted
 *         connectTimeout: 30000,         // long-poll hold time (ms) until the server advises one
 *         transports: ['websocket', 'long-polling'], // the transports to use, in order of preference
 *         debug: false                   // log traffic with console.debug
 *       }
 *
 *   client.connect()                     handshake, then keep a /meta/connect long poll open.
 *                                        Returns a Promise of the handshake reply.
 *   client.disconnect()                  send /meta/disconnect and stop. Promise of the reply.
 *   client.subscribe(channel, listener [, callback])
 *                                        listener(message) gets every message delivered on channel
 *                                        (a name, '/a/*' or '/a/**'). Returns a Promise of the
 *                                        /meta/subscribe reply (rejected if unsuccessful);
 *                                        callback(reply) is called in every case.
 *                                        Subscriptions survive re-handshakes: the client
 *                                        subscribes again by itself.
 *   client.unsubscribe(channel [, listener] [, callback])
 *                                        remove one listener (or all of the channel's); when none
 *                                        is left /meta/unsubscribe is sent. Promise of the reply.
 *   client.publish(channel, data [, callback])
 *                                        Promise of the publish acknowledgement.
 *   client.batch(fn)                     messages sent while fn runs go in one HTTP request.
 *                                        client.startBatch() / client.endBatch() do the same.
 *   client.addExtension(ext)             ext.outgoing(message) / ext.incoming(message) may change
 *   client.removeExtension(ext)          the message in place, return a new one, or return null
 *                                        to drop it.
 *   client.addListener(channel, fn)      local listener, no subscription sent; works for
 *   client.removeListener(channel, fn)   '/meta/handshake', '/meta/connect', ... too.
 *   client.on(event, fn) / client.off(event, fn)
 *        'state'   fn(state, previous)  state is 'disconnected', 'connecting', 'connected'
 *                                        or 'reconnecting'
 *        'message' fn(message)          every incoming message, after the extensions
 *        'handshake' fn(reply)          every handshake reply
 *   client.state                         current state (see above); client.isConnected()
 *   client.clientId                      id given by the last successful handshake, or null
 *   client.transport                     'websocket' or 'long-polling' once connected, else null
 *        'transport' fn(name)           (an event) the transport changed
 *
 * Messages that carry an `id` get their reply matched by that id. A message
 * with `data` on a non-meta channel is a delivery and goes to the listeners; a
 * publish acknowledgement has no `data`.
 *
 * The client honours the server's advice: `reconnect` ('retry', 'handshake',
 * 'none'), `interval` and `timeout`. When the server forgets the client (error
 * 402, or advice reconnect 'handshake') it handshakes again and re-subscribes
 * every subscription. While the server cannot be reached it retries with an
 * exponential backoff (minBackoff doubling up to maxBackoff); messages sent
 * meanwhile wait in a queue and go out once it is connected again.
 *
 * Example
 * -------
 *   var client = new BayeuxHub.Client('/cometd');
 *   client.on('state', function (s) { document.title = s; });
 *   client.subscribe('/chat/demo', function (m) { console.log(m.data.user, m.data.chat); });
 *   client.connect().then(function () {
 *     return client.publish('/chat/demo', {user: 'ann', chat: 'hello'});
 *   });
 *   client.batch(function () {
 *     client.publish('/chat/demo', {user: 'ann', chat: 'one'});
 *     client.publish('/chat/demo', {user: 'ann', chat: 'two'});
 *   });
 */
(function (root, factory) {
  'use strict';
  var api = factory();
  if (typeof module === 'object' && module.exports) {
    module.exports = api;
  } else {
    root.BayeuxHub = api;
  }
}(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  var STATES = ['disconnected', 'connecting', 'connected', 'reconnecting'];

  function isMeta(channel) {
    return typeof channel === 'string' && channel.indexOf('/meta/') === 0;
  }

  // channelMatches reports whether channel (a plain name) is matched by
  // pattern (a name or a trailing-wildcard pattern '/a/*' or '/a/**').
  function channelMatches(pattern, channel) {
    if (pattern === channel) {
      return true;
    }
    var p = pattern.split('/');
    var last = p[p.length - 1];
    if (last !== '*' && last !== '**') {
      return false;
    }
    var c = channel.split('/');
    var prefix = p.length - 1;
    if (last === '*' && c.length !== p.length) {
      return false;
    }
    if (last === '**' && c.length < p.length) {
      return false;
    }
    for (var i = 0; i < prefix; i++) {
      if (p[i] !== c[i]) {
        return false;
      }
    }
    return c[c.length - 1] !== '';
  }

  function mergeAdvice(target, advice) {
    if (!advice || typeof advice !== 'object') {
      return;
    }
    var lp = advice['long-polling'];
    var keys = ['reconnect', 'interval', 'timeout'];
    for (var i = 0; i < keys.length; i++) {
      var k = keys[i];
      if (advice[k] !== undefined) {
        target[k] = advice[k];
      }
      if (lp && typeof lp === 'object' && lp[k] !== undefined) {
        target[k] = lp[k];
      }
    }
  }

  function Client(url, options) {
    if (!(this instanceof Client)) {
      return new Client(url, options);
    }
    options = options || {};
    this.url = url || '/cometd';
    this.options = {
      appendMessageTypeToURL: !!options.appendMessageTypeToURL,
      minBackoff: options.minBackoff || 500,
      maxBackoff: options.maxBackoff || 10000,
      maxNetworkDelay: options.maxNetworkDelay || 10000,
      connectTimeout: options.connectTimeout || 30000,
      transports: (options.transports || ['websocket', 'long-polling']).slice(),
      debug: !!options.debug
    };
    this.transport = null;
    this.state = 'disconnected';
    this.clientId = null;
    this.advice = {reconnect: 'retry', interval: 0, timeout: this.options.connectTimeout};

    this._nextId = 0;
    this._handlers = {};        // event name -> [fn]
    this._channels = {};        // channel or pattern -> {listeners: [fn], pending: [{resolve, reject, cb}]}
    this._localListeners = {};  // channel or pattern -> [fn]
    this._extensions = [];
    this._callbacks = {};       // message id -> {resolve, reject, cb, message}
    this._queue = [];           // messages waiting for a connection
    this._batch = [];           // messages queued inside batch()
    this._batchDepth = 0;
    this._active = false;       // connect() called and not disconnected
    this._handshaken = false;   // a clientId is believed valid
    this._connecting = false;   // a /meta/connect is outstanding
    this._timer = null;
    this._backoff = 0;
    this._generation = 0;       // bumped on every handshake, stale replies are ignored
    this._connectAbort = null;
    this._firstConnect = true;
    this._ws = null;            // the open WebSocket, when the transport is websocket
    this._wsConnectId = null;   // id of the /meta/connect outstanding on the socket
    this._wsConnectTimer = null;
  }

  Client.STATES = STATES;
  Client.channelMatches = channelMatches;

  var proto = Client.prototype;

  // ---- events -------------------------------------------------------------

  proto.on = function (event, fn) {
    (this._handlers[event] = this._handlers[event] || []).push(fn);
    return this;
  };

  proto.off = function (event, fn) {
    var list = this._handlers[event];
    if (list) {
      var i = list.indexOf(fn);
      if (i >= 0) {
        list.splice(i, 1);
      }
    }
    return this;
  };

  proto._emit = function (event) {
    var args = Array.prototype.slice.call(arguments, 1);
    var list = (this._handlers[event] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try {
        list[i].apply(this, args);
      } catch (e) {
        this._logError(e);
      }
    }
  };

  proto._logError = function (e) {
    if (typeof console !== 'undefined' && console.error) {
      console.error('bayeuxhub:', e);
    }
  };

  proto._debug = function () {
    if (this.options.debug && typeof console !== 'undefined') {
      console.debug.apply(console, ['bayeuxhub:'].concat(Array.prototype.slice.call(arguments)));
    }
  };

  proto._setState = function (state) {
    if (this.state !== state) {
      var previous = this.state;
      this.state = state;
      this._debug('state', previous, '->', state);
      this._emit('state', state, previous);
    }
  };

  proto.isConnected = function () {
    return this.state === 'connected';
  };

  // ---- extensions and local listeners -------------------------------------

  proto.addExtension = function (ext) {
    this._extensions.push(ext);
    return this;
  };

  proto.removeExtension = function (ext) {
    var i = this._extensions.indexOf(ext);
    if (i >= 0) {
      this._extensions.splice(i, 1);
    }
    return this;
  };

  proto._applyExtensions = function (hook, message) {
    var exts = hook === 'incoming' ? this._extensions.slice().reverse() : this._extensions;
    for (var i = 0; i < exts.length && message; i++) {
      var fn = exts[i][hook];
      if (typeof fn === 'function') {
        try {
          var result = fn.call(exts[i], message);
          if (result === null || result === false) {
            return null;
          }
          if (result && typeof result === 'object') {
            message = result;
          }
        } catch (e) {
          this._logError(e);
        }
      }
    }
    return message;
  };

  proto.addListener = function (channel, fn) {
    (this._localListeners[channel] = this._localListeners[channel] || []).push(fn);
    return this;
  };

  proto.removeListener = function (channel, fn) {
    var list = this._localListeners[channel];
    if (list) {
      var i = list.indexOf(fn);
      if (i >= 0) {
        list.splice(i, 1);
      }
      if (!list.length) {
        delete this._localListeners[channel];
      }
    }
    return this;
  };

  // ---- public operations --------------------------------------------------

  proto.connect = function () {
    var self = this;
    if (this._active) {
      return this._handshakePromise || Promise.resolve();
    }
    this._active = true;
    this._firstConnect = true;
    this._backoff = 0;
    this._setState('connecting');
    this._handshakePromise = new Promise(function (resolve, reject) {
      self._handshakeWaiter = {resolve: resolve, reject: reject};
    });
    this._handshakePromise.catch(function () {});
    this._handshake();
    return this._handshakePromise;
  };

  // handshake is an alias of connect, as in other Bayeux clients.
  proto.handshake = proto.connect;

  proto.disconnect = function () {
    var self = this;
    var wasHandshaken = this._handshaken && this.clientId;
    var clientId = this.clientId;
    this._active = false;
    this._handshaken = false;
    this._clearTimer();
    if (this._connectAbort) {
      this._connectAbort.abort();
      this._connectAbort = null;
    }
    this._failAll(this._queue, 'disconnected');
    this._queue = [];
    this._generation++;
    this.clientId = null;
    this._setState('disconnected');
    if (!wasHandshaken) {
      return Promise.resolve({channel: '/meta/disconnect', successful: true});
    }
    // Messages of an open batch go in the same request as the disconnect, so
    // client.batch(function () { publish(...); disconnect(); }) sends one request.
    var messages = this._batch;
    this._batch = [];
    var message = {channel: '/meta/disconnect', clientId: clientId, id: this._newId()};
    messages.push(message);
    for (var i = 0; i < messages.length; i++) {
      messages[i].clientId = clientId;
    }
    var done = new Promise(function (resolve) {
      self._callbacks[message.id] = {resolve: resolve, reject: resolve, message: message};
      self._post(messages, {keepalive: true}).catch(function () {
        resolve({channel: '/meta/disconnect', successful: false, error: 'network failure'});
      });
    });
    return done.then(function (reply) {
      self._closeWebSocket();
      return reply;
    });
  };

  proto.subscribe = function (channel, listener, callback) {
    var self = this;
    if (typeof channel !== 'string' || channel.charAt(0) !== '/') {
      throw new Error('bayeuxhub: bad channel ' + channel);
    }
    var record = this._channels[channel];
    var first = !record;
    if (first) {
      record = this._channels[channel] = {listeners: [], pending: [], subscribed: false, inflight: false};
    }
    if (typeof listener === 'function') {
      record.listeners.push(listener);
    }
    var promise = new Promise(function (resolve, reject) {
      var waiter = {resolve: resolve, reject: reject, cb: callback};
      if (record.subscribed && !first) {
        // Already subscribed on the server: nothing to send.
        var reply = {channel: '/meta/subscribe', subscription: channel, successful: true};
        self._settle(waiter, reply);
        return;
      }
      record.pending.push(waiter);
      if (self._handshaken && !record.inflight) {
        self._sendSubscribe([channel]);
      }
      // Otherwise the subscribe goes out after the (next) successful handshake.
    });
    if (typeof callback === 'function') {
      promise.catch(function () {});
    }
    return promise;
  };

  proto.unsubscribe = function (channel, listener, callback) {
    var self = this;
    if (typeof listener !== 'function') {
      callback = callback || listener;
      listener = null;
    }
    var record = this._channels[channel];
    var promise;
    if (!record) {
      promise = Promise.resolve({channel: '/meta/unsubscribe', subscription: channel, successful: true});
    } else {
      if (listener) {
        var i = record.listeners.indexOf(listener);
        if (i >= 0) {
          record.listeners.splice(i, 1);
        }
      } else {
        record.listeners = [];
      }
      if (record.listeners.length) {
        promise = Promise.resolve({channel: '/meta/unsubscribe', subscription: channel, successful: true});
      } else {
        delete this._channels[channel];
        var reply = {channel: '/meta/unsubscribe', subscription: channel, successful: false, error: 'unsubscribed'};
        for (var j = 0; j < record.pending.length; j++) {
          this._settle(record.pending[j], {channel: '/meta/subscribe', subscription: channel, successful: false, error: 'unsubscribed'});
        }
        if (this._handshaken && record.subscribed) {
          promise = this._request({channel: '/meta/unsubscribe', subscription: channel});
        } else {
          reply.successful = true;
          delete reply.error;
          promise = Promise.resolve(reply);
        }
      }
    }
    if (typeof callback === 'function') {
      promise.then(callback, callback);
      promise.catch(function () {});
    }
    return promise;
  };

  proto.publish = function (channel, data, callback) {
    if (typeof channel !== 'string' || channel.charAt(0) !== '/' || isMeta(channel)) {
      throw new Error('bayeuxhub: cannot publish to ' + channel);
    }
    var promise = this._request({channel: channel, data: data === undefined ? null : data});
    if (typeof callback === 'function') {
      promise.then(callback, callback);
      promise.catch(function () {});
    }
    return promise;
  };

  proto.startBatch = function () {
    this._batchDepth++;
  };

  proto.endBatch = function () {
    if (this._batchDepth > 0) {
      this._batchDepth--;
    }
    if (this._batchDepth === 0 && this._batch.length) {
      var messages = this._batch;
      this._batch = [];
      this._sendNow(messages);
    }
  };

  proto.batch = function (fn) {
    this.startBatch();
    try {
      return fn.call(this, this);
    } finally {
      this.endBatch();
    }
  };

  // ---- internals: requests ------------------------------------------------

  proto._newId = function () {
    this._nextId++;
    return String(this._nextId);
  };

  proto._clearTimer = function () {
    if (this._timer) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  };

  proto._schedule = function (fn, delay) {
    var self = this;
    this._clearTimer();
    this._timer = setTimeout(function () {
      self._timer = null;
      fn.call(self);
    }, Math.max(0, delay || 0));
  };

  proto._nextBackoff = function () {
    this._backoff = this._backoff ? Math.min(this._backoff * 2, this.options.maxBackoff) : this.options.minBackoff;
    return this._backoff;
  };

  proto._settle = function (waiter, reply) {
    if (!waiter) {
      return;
    }
    if (typeof waiter.cb === 'function') {
      try {
        waiter.cb(reply);
      } catch (e) {
        this._logError(e);
      }
    }
    if (reply && reply.successful === false) {
      var err = new Error(reply.error || 'unsuccessful');
      err.message_ = reply;
      err.reply = reply;
      waiter.reject(err);
    } else {
      waiter.resolve(reply);
    }
  };

  // _request sends one non-connect message, returning a Promise of its reply.
  proto._request = function (message) {
    var self = this;
    message.id = this._newId();
    return new Promise(function (resolve, reject) {
      self._callbacks[message.id] = {resolve: resolve, reject: reject, message: message};
      self._send(message);
    });
  };

  // _send queues a message for the current batch, or for the connection when
  // the client is not connected yet, or sends it now.
  proto._send = function (message) {
    if (!this._active || !this._handshaken || this.state === 'reconnecting') {
      this._queue.push(message);
      return;
    }
    if (this._batchDepth > 0) {
      this._batch.push(message);
      return;
    }
    this._sendNow([message]);
  };

  proto._sendNow = function (messages) {
    if (!this._active || !this._handshaken) {
      Array.prototype.push.apply(this._queue, messages);
      return;
    }
    for (var i = 0; i < messages.length; i++) {
      messages[i].clientId = this.clientId;
    }
    this._post(messages, {});
  };

  proto._flushQueue = function () {
    if (!this._queue.length) {
      return;
    }
    var messages = this._queue;
    this._queue = [];
    this._sendNow(messages);
  };

  proto._sendSubscribe = function (channels) {
    var self = this;
    this.startBatch();
    try {
      channels.forEach(function (channel) {
        var message = {channel: '/meta/subscribe', subscription: channel, id: self._newId()};
        if (self._channels[channel]) {
          self._channels[channel].inflight = true;
        }
        self._callbacks[message.id] = {message: message, subscribe: channel};
        self._send(message);
      });
    } finally {
      this.endBatch();
    }
  };

  proto._endpoint = function (messages) {
    var url = this.url;
    if (this.options.appendMessageTypeToURL && messages.length === 1 && isMeta(messages[0].channel)) {
      url = url.replace(/\/+$/, '') + messages[0].channel.substring(5);
    }
    return url;
  };

  // _post sends messages in one HTTP request. It resolves with the parsed
  // reply array and rejects on network errors, timeouts and non-JSON answers.
  proto._post = function (messages, opts) {
    var self = this;
    var generation = this._generation;
    var outgoing = [];
    for (var i = 0; i < messages.length; i++) {
      var m = this._applyExtensions('outgoing', messages[i]);
      if (m) {
        outgoing.push(m);
      } else if (messages[i].id && this._callbacks[messages[i].id]) {
        this._failMessage(messages[i], 'dropped by extension');
      }
    }
    if (!outgoing.length) {
      return Promise.resolve([]);
    }
    if (this._ws && !opts.http) {
      return this._wsSend(outgoing);
    }
    var controller = typeof AbortController !== 'undefined' ? new AbortController() : null;
    var isConnect = outgoing.length === 1 && outgoing[0].channel === '/meta/connect';
    var limit = this.options.maxNetworkDelay + (isConnect ? (Number(this.advice.timeout) || 0) : 0);
    var timer = setTimeout(function () {
      if (controller) {
        controller.abort();
      }
    }, limit);
    if (isConnect) {
      this._connectAbort = controller;
    }
    this._debug('>>', outgoing);
    var body = JSON.stringify(outgoing);
    var p = fetch(this._endpoint(outgoing), {
      method: 'POST',
      headers: {'Content-Type': 'application/json;charset=UTF-8'},
      body: body,
      credentials: 'same-origin',
      cache: 'no-store',
      keepalive: !!opts.keepalive && body.length < 60000,
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      return response.text().then(function (text) {
        var replies;
        try {
          replies = text ? JSON.parse(text) : [];
        } catch (e) {
          throw new Error('HTTP ' + response.status + ': not JSON');
        }
        if (!Array.isArray(replies)) {
          replies = [replies];
        }
        if (!response.ok && !replies.length) {
          throw new Error('HTTP ' + response.status);
        }
        return replies;
      });
    });
    return p.then(function (replies) {
      clearTimeout(timer);
      if (generation === self._generation || !isConnect) {
        self._debug('<<', replies);
        self._receive(replies, outgoing);
      }
      return replies;
    }, function (err) {
      clearTimeout(timer);
      self._debug('!!', err && err.message);
      if (!isConnect) {
        self._failAll(outgoing, err && err.message ? err.message : 'network failure');
      }
      throw err;
    });
  };

  // ---- internals: the websocket transport ---------------------------------

  proto._wsURL = function () {
    var base = typeof location !== 'undefined' ? location.href : undefined;
    var u = new URL(this.url, base);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.href;
  };

  proto._setTransport = function (name) {
    if (this.transport !== name) {
      this.transport = name;
      this._debug('transport', name);
      this._emit('transport', name);
    }
  };

  // _wsSend writes messages as one frame. Replies and deliveries come in
  // through _wsMessage, so the Promise resolves at once.
  proto._wsSend = function (outgoing) {
    var self = this;
    var ws = this._ws;
    for (var i = 0; i < outgoing.length; i++) {
      var m = outgoing[i];
      if (m.id !== undefined && this._callbacks[m.id]) {
        this._callbacks[m.id].ws = ws;
      }
      if (m.channel === '/meta/connect') {
        // A connect is held up to the advised timeout; a socket that does
        // not answer it in time is dead.
        this._wsConnectId = m.id;
        var limit = this.options.maxNetworkDelay + (m.advice && m.advice.timeout === 0 ? 0 : (Number(this.advice.timeout) || 0));
        clearTimeout(this._wsConnectTimer);
        this._wsConnectTimer = setTimeout(function () {
          if (self._ws === ws) {
            self._debug('!! no /meta/connect reply on the socket');
            ws.close();
          }
        }, limit);
      }
    }
    this._debug('>>', outgoing);
    try {
      ws.send(JSON.stringify(outgoing));
    } catch (e) {
      return Promise.reject(e);
    }
    return Promise.resolve([]);
  };

  // _openWebSocket opens a socket to the server; callback(ok) tells whether
  // it opened (then it is the transport).
  proto._openWebSocket = function (callback) {
    var self = this;
    var settled = false;
    var ws;
    try {
      ws = new WebSocket(this._wsURL());
    } catch (e) {
      callback(false);
      return;
    }
    var timer = setTimeout(function () {
      if (!settled) {
        settled = true;
        ws.onopen = ws.onclose = ws.onerror = ws.onmessage = null;
        try {
          ws.close();
        } catch (e) { /* already closed */ }
        callback(false);
      }
    }, this.options.maxNetworkDelay);
    ws.onopen = function () {
      if (settled) {
        return;
      }
      settled = true;
      clearTimeout(timer);
      if (!self._active) {
        ws.close();
        callback(false);
        return;
      }
      self._ws = ws;
      self._setTransport('websocket');
      callback(true);
    };
    ws.onerror = function () { /* onclose follows */ };
    ws.onclose = function (event) {
      clearTimeout(timer);
      if (!settled) {
        settled = true;
        self._debug('!! websocket upgrade failed', event && event.code);
        callback(false);
        return;
      }
      self._wsClosed(ws, event);
    };
    ws.onmessage = function (event) {
      self._wsMessage(ws, event.data);
    };
  };

  proto._wsMessage = function (ws, data) {
    if (ws !== this._ws) {
      return;
    }
    var replies;
    try {
      replies = JSON.parse(data);
    } catch (e) {
      this._logError(new Error('websocket frame is not JSON'));
      return;
    }
    if (!Array.isArray(replies)) {
      replies = [replies];
    }
    var fresh = [];
    for (var i = 0; i < replies.length; i++) {
      var m = replies[i];
      // A reply to a connect abandoned by a re-handshake is stale.
      if (m && m.channel === '/meta/connect' && m.id !== undefined && m.id !== this._wsConnectId) {
        continue;
      }
      fresh.push(m);
    }
    this._debug('<<', fresh);
    this._receive(fresh, []);
  };

  // _wsClosed handles a socket that closed after it opened: requests sent on
  // it fail, and the client opens a new one, or long-polls if it cannot.
  proto._wsClosed = function (ws, event) {
    var self = this;
    if (ws !== this._ws) {
      return;
    }
    this._debug('!! websocket closed', event && event.code);
    this._ws = null;
    this._wsConnectId = null;
    clearTimeout(this._wsConnectTimer);
    for (var id in this._callbacks) {
      if (Object.prototype.hasOwnProperty.call(this._callbacks, id) && this._callbacks[id].ws === ws) {
        var cb = this._callbacks[id];
        if (cb.connect) {
          delete this._callbacks[id];
        } else if (!cb.handshake) {
          this._failMessage(cb.message, 'connection closed');
        }
      }
    }
    if (!this._active) {
      return;
    }
    this._connecting = false;
    if (this.state === 'connected') {
      this._setState('reconnecting');
    }
    var generation = this._generation;
    this._schedule(function () {
      self._openWebSocket(function (ok) {
        if (generation !== self._generation || !self._active) {
          return;
        }
        if (!ok) {
          self._setTransport('long-polling'); // the same clientId, over HTTP
        }
        self._startConnect(0);
      });
    }, this._nextBackoff());
  };

  proto._closeWebSocket = function () {
    var ws = this._ws;
    this._ws = null;
    this._wsConnectId = null;
    clearTimeout(this._wsConnectTimer);
    if (ws) {
      try {
        ws.close(1000);
      } catch (e) { /* already closed */ }
    }
  };

  // _chooseTransport picks the transport after a successful handshake:
  // websocket when both sides have it and the socket opens, else
  // long-polling. done() runs once the choice is made.
  proto._chooseTransport = function (offered, done) {
    var self = this;
    var generation = this._generation;
    var want = this.options.transports.indexOf('websocket') >= 0 &&
      (offered || []).indexOf('websocket') >= 0 && typeof WebSocket === 'function';
    if (this._ws || !want) {
      if (!this._ws) {
        this._setTransport('long-polling');
      }
      done();
      return;
    }
    this._openWebSocket(function (ok) {
      if (generation !== self._generation) {
        return;
      }
      if (!ok) {
        self._setTransport('long-polling');
      }
      done();
    });
  };

  proto._failMessage = function (message, reason) {
    var cb = message.id && this._callbacks[message.id];
    if (!cb) {
      return;
    }
    if (cb.subscribe) {
      // A failed subscribe is retried after the next handshake, not failed.
      delete this._callbacks[message.id];
      if (this._channels[cb.subscribe]) {
        this._channels[cb.subscribe].inflight = false;
      }
      return;
    }
    delete this._callbacks[message.id];
    this._settle(cb, {channel: message.channel, id: message.id, successful: false, error: reason, failure: true});
  };

  proto._failAll = function (messages, reason) {
    for (var i = 0; i < messages.length; i++) {
      if (messages[i].channel !== '/meta/handshake' && messages[i].channel !== '/meta/connect') {
        this._failMessage(messages[i], reason);
      }
    }
  };

  // ---- internals: incoming ------------------------------------------------

  proto._receive = function (replies, sent) {
    var answered = {};
    for (var i = 0; i < replies.length; i++) {
      var message = replies[i];
      if (!message || typeof message !== 'object') {
        continue;
      }
      message = this._applyExtensions('incoming', message);
      if (!message) {
        continue;
      }
      if (message.id !== undefined) {
        answered[message.id] = true;
      }
      this._emit('message', message);
      this._dispatchLocal(message);
      var channel = message.channel;
      if (isMeta(channel)) {
        this._handleMeta(message);
      } else if (message.data !== undefined) {
        this._deliver(message);
      } else {
        this._handleAck(message);
      }
    }
    // Requests without a reply (a server may skip publish acks) are done.
    for (var j = 0; j < sent.length; j++) {
      var m = sent[j];
      if (m.id && !answered[m.id] && !isMeta(m.channel) && this._callbacks[m.id]) {
        var cb = this._callbacks[m.id];
        delete this._callbacks[m.id];
        this._settle(cb, {channel: m.channel, id: m.id, successful: true});
      }
    }
  };

  proto._dispatchLocal = function (message) {
    for (var pattern in this._localListeners) {
      if (Object.prototype.hasOwnProperty.call(this._localListeners, pattern) &&
          channelMatches(pattern, message.channel)) {
        var list = this._localListeners[pattern].slice();
        for (var i = 0; i < list.length; i++) {
          try {
            list[i].call(this, message);
          } catch (e) {
            this._logError(e);
          }
        }
      }
    }
  };

  proto._deliver = function (message) {
    for (var pattern in this._channels) {
      if (Object.prototype.hasOwnProperty.call(this._channels, pattern) &&
          channelMatches(pattern, message.channel)) {
        var list = this._channels[pattern].listeners.slice();
        for (var i = 0; i < list.length; i++) {
          try {
            list[i].call(this, message);
          } catch (e) {
            this._logError(e);
          }
        }
      }
    }
  };

  proto._handleAck = function (message) {
    var cb = message.id !== undefined ? this._callbacks[message.id] : null;
    if (cb) {
      delete this._callbacks[message.id];
      this._settle(cb, message);
    }
  };

  proto._handleMeta = function (message) {
    switch (message.channel) {
      case '/meta/handshake':
        this._handshakeReply(message);
        break;
      case '/meta/connect':
        this._connectReply(message);
        break;
      case '/meta/subscribe':
        this._subscribeReply(message);
        break;
      default: {
        if (message.advice) {
          mergeAdvice(this.advice, message.advice);
        }
        var cb = message.id !== undefined ? this._callbacks[message.id] : null;
        if (cb) {
          delete this._callbacks[message.id];
          this._settle(cb, message);
        }
        if (message.successful === false && this._isUnknownClient(message)) {
          this._rehandshake();
        }
      }
    }
  };

  proto._isUnknownClient = function (message) {
    var error = typeof message.error === 'string' ? message.error : '';
    return error.indexOf('402') === 0 || (message.advice && message.advice.reconnect === 'handshake');
  };

  // ---- internals: handshake and connect loop ------------------------------

  proto._handshake = function () {
    var self = this;
    if (!this._active) {
      return;
    }
    this._handshaken = false;
    this._generation++;
    this._clearTimer();
    var message = {
      channel: '/meta/handshake',
      version: '1.0',
      minimumVersion: '1.0',
      supportedConnectionTypes: this._types(),
      advice: {timeout: this.options.connectTimeout, interval: 0},
      id: this._newId()
    };
    this._callbacks[message.id] = {message: message, handshake: true};
    this._post([message], {http: true}).catch(function () {
      delete self._callbacks[message.id];
      if (!self._active || self._handshaken) {
        return;
      }
      self._setState(self._firstConnect ? 'connecting' : 'reconnecting');
      self._schedule(self._handshake, Math.max(self._nextBackoff(), Number(self.advice.interval) || 0));
    });
  };

  // _types lists the connection types offered at handshake.
  proto._types = function () {
    var out = [];
    for (var i = 0; i < this.options.transports.length; i++) {
      var t = this.options.transports[i];
      if (t === 'long-polling' || (t === 'websocket' && typeof WebSocket === 'function')) {
        out.push(t);
      }
    }
    return out.length ? out : ['long-polling'];
  };

  proto._rehandshake = function () {
    if (!this._active) {
      return;
    }
    this._wsConnectId = null; // a reply to the held connect is stale now
    this._handshaken = false;
    this.clientId = null;
    for (var channel in this._channels) {
      if (Object.prototype.hasOwnProperty.call(this._channels, channel)) {
        this._channels[channel].subscribed = false;
        this._channels[channel].inflight = false;
      }
    }
    if (this._connectAbort) {
      this._connectAbort.abort();
      this._connectAbort = null;
    }
    this._connecting = false;
    if (this.state === 'connected') {
      this._setState('reconnecting');
    }
    this._schedule(this._handshake, Number(this.advice.interval) || 0);
  };

  proto._handshakeReply = function (message) {
    if (message.id !== undefined) {
      delete this._callbacks[message.id];
    }
    mergeAdvice(this.advice, message.advice);
    this._emit('handshake', message);
    if (!this._active) {
      return;
    }
    if (message.successful && message.clientId) {
      this.clientId = message.clientId;
      this._handshaken = true;
      this._backoff = 0;
      if (this._handshakeWaiter) {
        this._handshakeWaiter.resolve(message);
        this._handshakeWaiter = null;
      }
      // Subscribe every channel again (or for the first time), in one request
      // together with whatever was queued meanwhile.
      // The first /meta/connect goes out once those are answered, so that
      // 'connected' means the subscriptions are in place again.
      var messages = [];
      for (var channel in this._channels) {
        if (Object.prototype.hasOwnProperty.call(this._channels, channel)) {
          var record = this._channels[channel];
          record.subscribed = false;
          record.inflight = true;
          var sub = {channel: '/meta/subscribe', subscription: channel, id: this._newId()};
          this._callbacks[sub.id] = {message: sub, subscribe: channel};
          messages.push(sub);
        }
      }
      messages = messages.concat(this._queue, this._batch);
      this._queue = [];
      this._batch = [];
      this._connecting = false;
      var self = this;
      var generation = this._generation;
      var start = function () {
        if (generation === self._generation) {
          self._startConnect(0);
        }
      };
      var clientId = this.clientId;
      this._chooseTransport(message.supportedConnectionTypes, function () {
        if (messages.length) {
          for (var i = 0; i < messages.length; i++) {
            messages[i].clientId = clientId;
          }
          self._post(messages, {}).then(start, start);
        } else {
          start();
        }
      });
      return;
    }
    // Unsuccessful handshake.
    var reconnect = this.advice.reconnect;
    if (message.advice && message.advice.reconnect) {
      reconnect = message.advice.reconnect;
    }
    if (reconnect === 'none') {
      if (this._handshakeWaiter) {
        this._handshakeWaiter.reject(Object.assign(new Error(message.error || 'handshake refused'), {reply: message}));
        this._handshakeWaiter = null;
      }
      this._stop();
      return;
    }
    this._setState(this._firstConnect ? 'connecting' : 'reconnecting');
    this._schedule(this._handshake, Math.max(this._nextBackoff(), Number(this.advice.interval) || 0));
  };

  proto._stop = function () {
    this._closeWebSocket();
    this._active = false;
    this._handshaken = false;
    this._clearTimer();
    this._failAll(this._queue, 'disconnected');
    this._queue = [];
    this._setState('disconnected');
  };

  proto._startConnect = function (delay) {
    this._schedule(this._connect, delay);
  };

  proto._connect = function () {
    var self = this;
    if (!this._active || !this._handshaken || this._connecting) {
      return;
    }
    this._connecting = true;
    var generation = this._generation;
    var message = {
      channel: '/meta/connect',
      clientId: this.clientId,
      connectionType: this._ws ? 'websocket' : 'long-polling',
      id: this._newId()
    };
    if (this._firstConnect || this.state !== 'connected') {
      // Ask the server to answer at once, so the state is known quickly.
      message.advice = {timeout: 0};
    }
    this._callbacks[message.id] = {message: message, connect: true};
    this._post([message], {}).catch(function () {
      delete self._callbacks[message.id];
      if (generation !== self._generation) {
        return;
      }
      self._connecting = false;
      self._connectAbort = null;
      if (!self._active) {
        return;
      }
      self._setState(self._firstConnect ? 'connecting' : 'reconnecting');
      var delay = Math.max(self._nextBackoff(), Number(self.advice.interval) || 0);
      if (self.advice.reconnect === 'handshake') {
        self._schedule(self._rehandshake, delay);
      } else {
        self._startConnect(delay);
      }
    });
  };

  proto._connectReply = function (message) {
    if (message.id !== undefined) {
      delete this._callbacks[message.id];
    }
    this._connecting = false;
    this._connectAbort = null;
    clearTimeout(this._wsConnectTimer);
    mergeAdvice(this.advice, message.advice);
    if (!this._active) {
      return;
    }
    var interval = Number(this.advice.interval) || 0;
    if (message.successful) {
      this._backoff = 0;
      this._firstConnect = false;
      this._setState('connected');
      this._flushQueue();
      if (this.advice.reconnect === 'none') {
        this._stop();
        return;
      }
      if (this.advice.reconnect === 'handshake') {
        this._rehandshake();
        return;
      }
      this._startConnect(interval);
      return;
    }
    var reconnect = (message.advice && message.advice.reconnect) || this.advice.reconnect;
    if (this._isUnknownClient(message)) {
      reconnect = 'handshake';
    }
    if (reconnect === 'none') {
      this._stop();
    } else if (reconnect === 'handshake') {
      this._rehandshake();
    } else {
      this._setState(this._firstConnect ? 'connecting' : 'reconnecting');
      this._startConnect(Math.max(interval, this._nextBackoff()));
    }
  };

  proto._subscribeReply = function (message) {
    var cb = message.id !== undefined ? this._callbacks[message.id] : null;
    if (message.id !== undefined) {
      delete this._callbacks[message.id];
    }
    mergeAdvice(this.advice, message.advice);
    var channels = [];
    if (cb && cb.subscribe) {
      channels = [cb.subscribe];
    } else if (Array.isArray(message.subscription)) {
      channels = message.subscription;
    } else if (typeof message.subscription === 'string') {
      channels = [message.subscription];
    }
    for (var i = 0; i < channels.length; i++) {
      var record = this._channels[channels[i]];
      if (!record) {
        continue;
      }
      record.subscribed = !!message.successful;
      record.inflight = false;
      var pending = record.pending;
      record.pending = [];
      var reply = {};
      for (var k in message) {
        if (Object.prototype.hasOwnProperty.call(message, k)) {
          reply[k] = message[k];
        }
      }
      reply.subscription = channels[i];
      for (var j = 0; j < pending.length; j++) {
        this._settle(pending[j], reply);
      }
    }
    if (message.successful === false && this._isUnknownClient(message)) {
      this._rehandshake();
    }
  };

  return {Client: Client, channelMatches: channelMatches, version: '1.0'};
}));
