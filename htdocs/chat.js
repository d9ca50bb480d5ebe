/*
 * chat.js - the bayeuxhub chat demo (index.html).
 *
 * Channel /chat/demo, message data {user, chat} like the POE::Component::Server::Bayeux
 * demo; join and leave announcements are {user, join: true} and {user, leave: true}.
 * Every chat message or event is one child element of #log. All user text goes
 * through textContent, never innerHTML.
 */
(function () {
  'use strict';

  var CHANNEL = '/chat/demo';
  var $ = function (id) { return document.getElementById(id); };
  var log = $('log');
  var empty = $('empty');
  var nameInput = $('name');
  var messageInput = $('message');
  var sendButton = $('send');
  var statusEl = $('status');
  var composer = $('composer');

  // ?transport=long-polling (or websocket) limits the client to one
  // transport; by default it uses WebSocket when it can.
  var only = new URLSearchParams(window.location.search).get('transport');
  var client = new BayeuxHub.Client('/cometd', only ? {transports: only.split(',')} : {});
  window.chatClient = client; // handy for debugging from the console

  // ---- token -----------------------------------------------------------------

  // On a hub that requires tokens, open the page as /#token=<JWT> (from
  // `bayeuxhub token --sub alice`, or your login page). The token is kept
  // for this tab only (sessionStorage), taken off the address bar, and sent
  // in every handshake as ext.auth.token. A fragment never reaches the
  // server's logs or other sites' Referer headers.
  var token = (function () {
    var fromHash = new URLSearchParams(window.location.hash.slice(1)).get('token');
    try {
      if (fromHash) {
        window.sessionStorage.setItem('bayeuxhub.token', fromHash);
        window.history.replaceState(null, '', window.location.pathname + window.location.search);
      }
      return fromHash || window.sessionStorage.getItem('bayeuxhub.token') || '';
    } catch (e) {
      return fromHash || '';
    }
  }());
  if (token) {
    client.addExtension({
      outgoing: function (message) {
        if (message.channel === '/meta/handshake') {
          message.ext = message.ext || {};
          message.ext.auth = {token: token};
        }
        return message;
      }
    });
  }

  // tokenName is the display name a token suggests: its info.name, else
  // its subject. It is only a default for the name field; the hub checks
  // the token itself.
  function tokenName() {
    try {
      var part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      var claims = JSON.parse(atob(part + '==='.slice((part.length + 3) % 4)));
      return String((claims.info && claims.info.name) || claims.sub || '');
    } catch (e) {
      return '';
    }
  }

  client.on('handshake', function (reply) {
    if (!reply.successful) {
      addSystem('The hub refused this page: ' + (reply.error || 'handshake failed') +
        (token ? '' : ' (open the page as /#token=<your token>)'), 'error');
    }
  });

  // ---- name ------------------------------------------------------------------

  function storedName() {
    try {
      return window.localStorage.getItem('bayeuxhub.name') || '';
    } catch (e) {
      return '';
    }
  }

  function storeName(name) {
    try {
      window.localStorage.setItem('bayeuxhub.name', name);
    } catch (e) { /* private mode */ }
  }

  // A returning visitor joins under the stored name as soon as the page is
  // connected; a first-time visitor joins once a name is entered (or with the
  // first message sent), so nobody sees a stream of guest names.
  nameInput.value = storedName() || tokenName();
  var announcedName = null; // the name others have been told about with a join
  var subscribed = false;

  function announceJoin() {
    if (announcedName === null && subscribed && nameInput.value.trim()) {
      announcedName = currentName();
      client.publish(CHANNEL, {user: announcedName, join: true}).catch(function () {});
    }
  }

  function currentName() {
    var name = nameInput.value.replace(/\s+/g, ' ').trim();
    return name || 'anonymous';
  }

  nameInput.addEventListener('change', function () {
    var name = currentName();
    storeName(nameInput.value.trim() ? name : '');
    if (announcedName === null) {
      announceJoin();
    } else if (announcedName !== name && client.isConnected()) {
      var old = announcedName;
      announcedName = name;
      client.batch(function () {
        client.publish(CHANNEL, {user: old, leave: true});
        client.publish(CHANNEL, {user: name, join: true});
      });
    }
  });
  nameInput.addEventListener('keydown', function (e) {
    if (e.key === 'Enter') {
      e.preventDefault();
      nameInput.blur();
      messageInput.focus();
    }
  });

  // ---- log -------------------------------------------------------------------

  function pad(n) {
    return n < 10 ? '0' + n : String(n);
  }

  function timeText(d) {
    return pad(d.getHours()) + ':' + pad(d.getMinutes());
  }

  // hue gives every name its own stable colour.
  function hue(name) {
    var h = 0;
    for (var i = 0; i < name.length; i++) {
      h = (h * 31 + name.charCodeAt(i)) % 360;
    }
    return h;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function nearBottom() {
    var scroller = document.scrollingElement || document.documentElement;
    var box = log.parentNode;
    if (box.scrollHeight > box.clientHeight + 4 && getComputedStyle(box).overflowY !== 'visible') {
      return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    }
    return scroller.scrollHeight - scroller.scrollTop - window.innerHeight < 80;
  }

  function append(node) {
    var stick = nearBottom();
    log.appendChild(node);
    empty.hidden = true;
    if (stick) {
      var box = log.parentNode;
      box.scrollTop = box.scrollHeight;
      node.scrollIntoView({block: 'end'});
    }
    if (document.hidden) {
      unread++;
      document.title = '(' + unread + ') bayeuxhub chat';
    }
  }

  var unread = 0;
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) {
      unread = 0;
      document.title = 'bayeuxhub chat';
    }
  });

  function addChat(user, text, mine) {
    var now = new Date();
    var li = el('li', 'msg' + (mine ? ' mine' : ''));
    li.style.setProperty('--hue', hue(user));
    var avatar = el('span', 'avatar', user.charAt(0).toUpperCase() || '?');
    avatar.setAttribute('aria-hidden', 'true');
    var bubble = el('div', 'bubble');
    var meta = el('div', 'meta');
    meta.appendChild(el('span', 'user', user));
    var time = el('time', 'time', timeText(now));
    time.dateTime = now.toISOString();
    meta.appendChild(time);
    bubble.appendChild(meta);
    bubble.appendChild(el('p', 'text', text));
    li.appendChild(avatar);
    li.appendChild(bubble);
    append(li);
  }

  function addSystem(text, kind) {
    var now = new Date();
    var li = el('li', 'system' + (kind ? ' ' + kind : ''));
    li.appendChild(el('span', 'text', text));
    var time = el('time', 'time', timeText(now));
    time.dateTime = now.toISOString();
    li.appendChild(time);
    append(li);
  }

  // ---- incoming --------------------------------------------------------------

  function onChat(message) {
    var data = message.data;
    if (!data || typeof data !== 'object') {
      return;
    }
    var user = data.user === undefined || data.user === null ? 'anonymous' : String(data.user);
    if (data.join) {
      addSystem(user + ' joined', 'join');
    } else if (data.leave) {
      addSystem(user + ' left', 'leave');
    } else if (data.chat !== undefined && data.chat !== null) {
      addChat(user, String(data.chat), user === currentName());
    }
  }

  client.subscribe(CHANNEL, onChat).then(function () {
    subscribed = true;
    announceJoin();
  }, function (err) {
    addSystem('Could not subscribe to ' + CHANNEL + ': ' + err.message, 'error');
  });

  // ---- connection state ------------------------------------------------------

  var everConnected = false;
  client.on('state', function (state, previous) {
    statusEl.textContent = state;
    statusEl.setAttribute('data-state', state);
    document.body.setAttribute('data-connection', state);
    if (state === 'reconnecting' && previous === 'connected') {
      addSystem('Connection lost, reconnecting\u2026', 'warn');
    } else if (state === 'connected' && everConnected && previous !== 'connected') {
      addSystem('Reconnected', 'ok');
    } else if (state === 'disconnected' && everConnected) {
      addSystem('Disconnected', 'warn');
    }
    if (state === 'connected') {
      everConnected = true;
    }
  });

  // ---- sending ---------------------------------------------------------------

  function send() {
    var text = messageInput.value.replace(/\s+$/, '');
    if (!text.trim()) {
      messageInput.focus();
      return;
    }
    var name = currentName();
    if (announcedName === null && subscribed) {
      announcedName = name;
      client.publish(CHANNEL, {user: name, join: true}).catch(function () {});
    } else if (announcedName !== null && announcedName !== name) {
      // Name edited but never committed with change: announce it now.
      var old = announcedName;
      announcedName = name;
      storeName(name);
      client.batch(function () {
        client.publish(CHANNEL, {user: old, leave: true}).catch(function () {});
        client.publish(CHANNEL, {user: name, join: true}).catch(function () {});
      });
    }
    messageInput.value = '';
    autosize();
    messageInput.focus();
    client.publish(CHANNEL, {user: name, chat: text}).catch(function (err) {
      addSystem('Not delivered: \u201c' + text + '\u201d (' + err.message + ')', 'error');
    });
  }

  composer.addEventListener('submit', function (e) {
    e.preventDefault();
    send();
  });
  messageInput.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });

  function autosize() {
    messageInput.style.height = 'auto';
    messageInput.style.height = Math.min(messageInput.scrollHeight, 160) + 'px';
  }
  messageInput.addEventListener('input', autosize);

  // ---- leaving ---------------------------------------------------------------

  var left = false;
  window.addEventListener('pagehide', function () {
    if (left || !client.isConnected()) {
      return;
    }
    left = true;
    client.batch(function () {
      client.publish(CHANNEL, {user: announcedName || currentName(), leave: true}).catch(function () {});
      client.disconnect();
    });
  });

  sendButton.disabled = false;
  client.connect().catch(function (err) {
    addSystem('The server refused the connection: ' + err.message, 'error');
  });
  (nameInput.value ? messageInput : nameInput).focus();
}());
