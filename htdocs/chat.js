/*
 * chat.js - the bayeuxhub chat demo (index.html).
 *
 * Room /chat/demo (or /chat/<room> with ?room=<room>), message data
 * {user, chat, at} like the POE::Component::Server::Bayeux demo (at: the
 * sender's clock, in ms); a page announces its name once per tab with
 * {user, join: true} and a new name with {user, rename: <old name>}.
 * Every chat message or event is one child element of #log. All user text
 * goes through textContent, never innerHTML.
 *
 * History: the hub keeps the room's last messages (the default rules of the
 * standalone bayeuxhub: the last 100 of each /chat/** room). The page
 * subscribes with the replay extension, ext.replay {"<room>": <replay id>}:
 * -2 (everything kept) on a first visit, else the last replay id it showed.
 * That id, its epoch and the messages shown are kept in sessionStorage for
 * the tab, so that a reload shows the same log and then exactly what it
 * missed, and a reconnect asks for what came meanwhile: nothing missed,
 * nothing twice. The hub refuses an id it no longer keeps (400): the page
 * then asks for everything kept (-2), shows what it had not shown, and
 * says that some messages may be missing.
 *
 * Presence: the hub tracks who is subscribed to the room. The page asks
 * /service/presence who is there once it is subscribed, and follows the
 * join and leave events on /bayeuxhub/presence<room>. A member with a
 * token is shown by its info.name (or user id); an anonymous one by a short
 * opaque id, since the hub can vouch for no typed name.
 */
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };
  var ROOM = (function () {
    var room = new URLSearchParams(window.location.search).get('room');
    return room && /^[A-Za-z0-9_-]{1,40}$/.test(room) ? room : 'demo';
  }());
  var CHANNEL = '/chat/' + ROOM;
  var PRESENCE = '/bayeuxhub/presence' + CHANNEL;
  var KEEP = 200; // chat messages kept in sessionStorage for a reload

  var log = $('log');
  var empty = $('empty');
  var nameInput = $('name');
  var messageInput = $('message');
  var sendButton = $('send');
  var statusEl = $('status');
  var composer = $('composer');
  var onlineList = $('online');
  var onlineCount = $('online-count');
  var onlineNote = $('online-note');
  $('channel-name').textContent = CHANNEL;

  // ?transport=long-polling (or websocket) limits the client to one
  // transport; by default it uses WebSocket when it can.
  var only = new URLSearchParams(window.location.search).get('transport');
  var client = new BayeuxHub.Client('/cometd', only ? {transports: only.split(',')} : {});
  window.chatClient = client; // handy for debugging from the console

  // ---- storage ---------------------------------------------------------------

  function storageGet(store, key) {
    try {
      return window[store].getItem(key);
    } catch (e) {
      return null;
    }
  }

  function storageSet(store, key, value) {
    try {
      window[store].setItem(key, value);
      return true;
    } catch (e) { /* private mode, or full */
      return false;
    }
  }

  // ---- token -----------------------------------------------------------------

  // On a hub that requires tokens, open the page as /#token=<JWT> (from
  // `bayeuxhub token --sub alice`, or your login page). The token is kept
  // for this tab only (sessionStorage), taken off the address bar, and sent
  // in every handshake as ext.auth.token. A fragment never reaches the
  // server's logs or other sites' Referer headers.
  var token = (function () {
    var fromHash = new URLSearchParams(window.location.hash.slice(1)).get('token');
    if (fromHash) {
      storageSet('sessionStorage', 'bayeuxhub.token', fromHash);
      try {
        window.history.replaceState(null, '', window.location.pathname + window.location.search);
      } catch (e) { /* keep going */ }
    }
    return fromHash || storageGet('sessionStorage', 'bayeuxhub.token') || '';
  }());

  // tokenClaims are the token's claims, read without checking it: only
  // for a default name and to find oneself in the online list. The hub
  // checks the token itself.
  var tokenClaims = (function () {
    try {
      var part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      var claims = JSON.parse(atob(part + '==='.slice((part.length + 3) % 4)));
      return claims && typeof claims === 'object' ? claims : {};
    } catch (e) {
      return {};
    }
  }());

  function tokenName() {
    var info = tokenClaims.info;
    return String((info && typeof info === 'object' && info.name) || tokenClaims.sub || '');
  }

  // ---- what this tab has shown of the room -----------------------------------

  // room is kept in sessionStorage under bayeuxhub.room.<channel>:
  // {epoch, id}: the replay position of the last message shown; items:
  // the last KEEP chat messages shown; announced: the name told to the room.
  var roomKey = 'bayeuxhub.room.' + CHANNEL;
  var room = (function () {
    var saved = null;
    try {
      saved = JSON.parse(storageGet('sessionStorage', roomKey) || 'null');
    } catch (e) { /* start afresh */ }
    if (!saved || typeof saved !== 'object') {
      saved = {};
    }
    return {
      epoch: typeof saved.epoch === 'string' ? saved.epoch : null,
      id: typeof saved.id === 'number' && isFinite(saved.id) ? saved.id : null,
      items: Array.isArray(saved.items) ? saved.items.slice(-KEEP) : [],
      announced: typeof saved.announced === 'string' ? saved.announced : null
    };
  }());

  var saveTimer = null;
  function saveRoom(now) {
    if (saveTimer) {
      clearTimeout(saveTimer);
      saveTimer = null;
    }
    if (!now) {
      saveTimer = setTimeout(function () { saveRoom(true); }, 0);
      return;
    }
    while (!storageSet('sessionStorage', roomKey, JSON.stringify(room)) && room.items.length) {
      room.items = room.items.slice(Math.floor(room.items.length / 2) + 1);
    }
  }

  // ---- name ------------------------------------------------------------------

  function storedName() {
    return storageGet('localStorage', 'bayeuxhub.name') || '';
  }

  function storeName(name) {
    storageSet('localStorage', 'bayeuxhub.name', name);
  }

  // A returning visitor joins under the stored name as soon as the page is
  // connected; a first-time visitor joins once a name is entered (or with the
  // first message sent), so nobody sees a stream of guest names. The join is
  // told once per tab: a reload does not tell it again.
  nameInput.value = storedName() || tokenName();
  var subscribed = false;

  function currentName() {
    var name = nameInput.value.replace(/\s+/g, ' ').trim();
    return name || 'anonymous';
  }

  function announce(force) {
    if (!subscribed || (!force && !nameInput.value.trim())) {
      return;
    }
    var name = currentName();
    if (room.announced === name) {
      return;
    }
    var data = room.announced === null ? {user: name, join: true} : {user: name, rename: room.announced};
    room.announced = name;
    saveRoom();
    client.publish(CHANNEL, data).catch(function () {});
  }

  nameInput.addEventListener('change', function () {
    storeName(nameInput.value.trim() ? currentName() : '');
    announce(false);
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

  function timeEl(ms) {
    var d = new Date(ms);
    var time = el('time', 'time', timeText(d));
    time.dateTime = d.toISOString();
    return time;
  }

  function nearBottom() {
    var scroller = document.scrollingElement || document.documentElement;
    var box = log.parentNode;
    if (box.scrollHeight > box.clientHeight + 4 && getComputedStyle(box).overflowY !== 'visible') {
      return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    }
    return scroller.scrollHeight - scroller.scrollTop - window.innerHeight < 80;
  }

  function append(node, quiet) {
    var stick = nearBottom();
    log.appendChild(node);
    empty.hidden = true;
    if (stick) {
      var box = log.parentNode;
      box.scrollTop = box.scrollHeight;
      node.scrollIntoView({block: 'end'});
    }
    if (document.hidden && !quiet) {
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

  // addChat shows a chat message; earlier marks one sent before it was
  // shown (kept by the hub, or by this tab across a reload). at is when it
  // was sent, by the sender's clock, if known.
  function addChat(user, text, at, earlier) {
    var li = el('li', 'msg' + (user === currentName() ? ' mine' : '') + (earlier ? ' earlier' : ''));
    li.style.setProperty('--hue', hue(user));
    var avatar = el('span', 'avatar', user.charAt(0).toUpperCase() || '?');
    avatar.setAttribute('aria-hidden', 'true');
    var bubble = el('div', 'bubble');
    var meta = el('div', 'meta');
    meta.appendChild(el('span', 'user', user));
    if (at !== null) {
      meta.appendChild(timeEl(at));
    }
    bubble.appendChild(meta);
    bubble.appendChild(el('p', 'text', text));
    li.appendChild(avatar);
    li.appendChild(bubble);
    append(li, earlier);
  }

  function addSystem(text, kind) {
    var li = el('li', 'system' + (kind ? ' ' + kind : ''));
    li.appendChild(el('span', 'text', text));
    li.appendChild(timeEl(Date.now()));
    append(li);
  }

  function addDivider(text) {
    append(el('li', 'divider', text), true);
  }

  // sentAt is a message's "at" when it is a plausible time, else null.
  function sentAt(data) {
    var at = data.at;
    return typeof at === 'number' && isFinite(at) && at > 946684800000 && at < 32503680000000 ? at : null;
  }

  // ---- replay ----------------------------------------------------------------

  // The hub answers ext.replay in the handshake when it keeps history.
  var replayServed = false;
  // The replay id the next subscribe to the room asks for, when it is not
  // the one of the last message shown: -2 after the hub refused that one,
  // -1 (none) if it refused -2 too.
  var forced = null;
  // catchUp is the replaying subscribe in progress: the messages it brings
  // are earlier ones. The hub sends them as soon as it has answered the
  // subscribe, before it handles the client's next request, so the
  // catch-up ends at the first /meta/connect reply after the subscribe's
  // reply (the hub answers a connect with what it queued, and a socket
  // gets deliveries before it), or at the answer to the presence question
  // sent after it, when that cannot overtake them: on a socket, or over
  // long-polling with a connect already held (which the hub answers with
  // them) rather than one still to be sent.
  var catchUp = null;
  var catchUps = 0;
  var replayAsked = null; // the replay id of the last subscribe: window.chatState
  window.chatState = {
    channel: CHANNEL,
    replayAsked: function () { return replayAsked; },
    position: function () { return {epoch: room.epoch, id: room.id}; }
  };

  function replayFor() {
    if (!replayServed) {
      return -1;
    }
    if (forced !== null) {
      return forced;
    }
    return room.id !== null ? room.id : -2;
  }

  // showRoomState puts where the page is with the room on <body
  // data-room>: "joining" (not subscribed), "catching-up" (earlier
  // messages coming) or "live".
  function showRoomState() {
    document.body.setAttribute('data-room', !subscribed ? 'joining' : catchUp ? 'catching-up' : 'live');
  }

  function endCatchUp() {
    catchUp = null;
    showRoomState();
  }

  client.addExtension({
    outgoing: function (message) {
      if (message.channel === '/meta/handshake' && token) {
        message.ext = message.ext || {};
        message.ext.auth = {token: token};
      } else if (message.channel === '/meta/subscribe' && message.subscription === CHANNEL) {
        var id = replayFor();
        replayAsked = id;
        if (id !== -1) {
          message.ext = message.ext || {};
          var replay = {};
          replay[CHANNEL] = id;
          message.ext.replay = replay;
          catchUp = {id: message.id, asked: id, replied: false, byAnswer: false, shown: 0};
        } else {
          catchUp = null;
        }
      }
      return message;
    },
    incoming: function (message) {
      switch (message.channel) {
        case '/meta/handshake':
          replayServed = !!(message.successful && message.ext && message.ext.replay === true);
          break;
        case '/meta/connect':
          if (catchUp && catchUp.replied) {
            endCatchUp();
          }
          break;
        case '/meta/subscribe':
          if (message.subscription === CHANNEL || (catchUp && message.id === catchUp.id)) {
            roomSubscribeReply(message);
          } else if (message.subscription === PRESENCE && !message.successful) {
            presenceUnavailable();
          }
          break;
      }
      return message;
    }
  });

  client.on('handshake', function (reply) {
    if (!reply.successful) {
      addSystem('The hub refused this page: ' + (reply.error || 'handshake failed') +
        (token ? '' : ' (open the page as /#token=<your token>)'), 'error');
    }
  });

  // replayRefused reports whether a failed subscribe reply is the hub's
  // refusal of the replay asked for (400: not in the retained history, or
  // too large to send at once).
  function replayRefused(reply) {
    var error = reply && typeof reply.error === 'string' ? reply.error : '';
    return error.indexOf('400:') === 0 && /Replay (id|of)/.test(error);
  }

  function roomSubscribeReply(reply) {
    var asked = catchUp && reply.id === catchUp.id ? catchUp.asked : replayAsked;
    if (reply.successful) {
      if (catchUp && reply.id === catchUp.id) {
        catchUp.replied = true;
        catchUp.byAnswer = client.transport === 'websocket' || client.isConnected();
      }
      forced = null;
      subscribed = true;
      showRoomState();
      announce(false);
      askPresence();
      return;
    }
    subscribed = false;
    endCatchUp();
    if (!replayRefused(reply) || asked === -1) {
      return;
    }
    if (asked === -2) {
      forced = -1;
      addSystem('The hub keeps more of this room than it can send at once: showing new messages only.', 'warn');
    } else {
      forced = -2;
      addSystem('The hub no longer keeps every message sent since the last one shown here: ' +
        'showing what it keeps; some may be missing.', 'warn');
    }
    // Subscribe again once the client has taken this reply in.
    setTimeout(function () {
      client.subscribe(CHANNEL).catch(function () {});
    }, 0);
  }

  // ---- incoming --------------------------------------------------------------

  var shownEarlier = 0; // earlier messages shown so far by this page

  function onChat(message) {
    var data = message.data;
    var ext = message.ext;
    var earlier = !!catchUp;
    if (ext && typeof ext.replayId === 'number' && typeof ext.replayEpoch === 'string') {
      if (ext.replayEpoch === room.epoch && room.id !== null && ext.replayId <= room.id) {
        return; // shown already
      }
      room.epoch = ext.replayEpoch;
      room.id = ext.replayId;
      saveRoom();
    }
    if (!data || typeof data !== 'object') {
      return;
    }
    var user = data.user === undefined || data.user === null ? 'anonymous' : String(data.user);
    if (data.join || data.rename !== undefined) {
      // Announcements are news only when they are new.
      if (!earlier) {
        addSystem(data.join ? user + ' joined' : String(data.rename) + ' is now ' + user, 'join');
      }
    } else if (data.chat !== undefined && data.chat !== null) {
      var text = String(data.chat);
      var at = sentAt(data);
      if (earlier && catchUp.shown++ === 0) {
        addDivider(shownEarlier || catchUps > 1 ? 'Sent while you were away' : 'Earlier messages');
      }
      if (earlier) {
        shownEarlier++;
      }
      addChat(user, text, earlier ? at : Date.now(), earlier);
      room.items.push({user: user, chat: text, at: earlier ? at : Date.now()});
      if (room.items.length > KEEP) {
        room.items.splice(0, room.items.length - KEEP);
      }
      saveRoom();
    }
  }

  // What this tab showed before a reload comes back first.
  if (room.items.length) {
    addDivider('Earlier messages');
    for (var i = 0; i < room.items.length; i++) {
      var item = room.items[i];
      if (item && typeof item === 'object') {
        addChat(String(item.user), String(item.chat), sentAt(item), true);
        shownEarlier++;
      }
    }
  }

  // ---- who is online ---------------------------------------------------------

  var members = {};        // key -> member, as the presence answer gives them
  var presenceAsk = null;  // {events: []} while a presence question is out
  var presenceOff = false;

  function memberKey(m) {
    return m.user ? 'u:' + m.user : 'a:' + m.anonymous;
  }

  function memberName(m) {
    if (m.user) {
      var info = m.info;
      var name = info && typeof info === 'object' && typeof info.name === 'string' ? info.name.trim() : '';
      return (name || String(m.user)).slice(0, 60);
    }
    return 'guest ' + String(m.anonymous || '').slice(0, 6);
  }

  function renderOnline() {
    var keys = Object.keys(members).sort(function (a, b) {
      var x = members[a], y = members[b];
      if (!!x.user !== !!y.user) {
        return x.user ? -1 : 1;
      }
      var nx = memberName(x).toLowerCase(), ny = memberName(y).toLowerCase();
      return nx < ny ? -1 : nx > ny ? 1 : 0;
    });
    while (onlineList.firstChild) {
      onlineList.removeChild(onlineList.firstChild);
    }
    keys.forEach(function (key) {
      var m = members[key];
      var name = memberName(m);
      var you = !!m.user && m.user === tokenClaims.sub;
      var li = el('li', 'member' + (m.user ? ' user' : ' guest') + (you ? ' you' : ''));
      li.setAttribute('data-member', key);
      li.style.setProperty('--hue', hue(name));
      var avatar = el('span', 'avatar', m.user ? name.charAt(0).toUpperCase() || '?' : '?');
      avatar.setAttribute('aria-hidden', 'true');
      li.appendChild(avatar);
      li.appendChild(el('span', 'name', name));
      if (you) {
        li.appendChild(el('span', 'tag', 'you'));
      }
      if (!m.user) {
        li.title = 'An anonymous visitor (an opaque id from the hub)';
      }
      onlineList.appendChild(li);
    });
    onlineCount.textContent = presenceOff ? '' : String(keys.length);
  }

  function presenceEvent(data) {
    if (!data || typeof data !== 'object' || data.channel !== CHANNEL || (!data.user && !data.anonymous)) {
      return;
    }
    var key = memberKey(data);
    if (data.action === 'join') {
      members[key] = {user: data.user, anonymous: data.anonymous, info: data.info};
    } else if (data.action === 'leave') {
      delete members[key];
    }
  }

  client.subscribe(PRESENCE, function (message) {
    if (presenceAsk) {
      presenceAsk.events.push(message.data);
    }
    presenceEvent(message.data);
    renderOnline();
  }).catch(function () {
    presenceUnavailable();
  });

  // The answer comes as a message on /service/presence: the members then,
  // to which the events that came meanwhile apply again, in order (each
  // says who is there or not, so what they said before the answer holds
  // again).
  client.addListener('/service/presence', function (message) {
    var data = message.data;
    if (catchUp && catchUp.replied && catchUp.byAnswer) {
      endCatchUp();
    }
    if (!data || typeof data !== 'object' || data.channel !== CHANNEL || !Array.isArray(data.members)) {
      return;
    }
    members = {};
    data.members.forEach(function (m) {
      if (m && typeof m === 'object' && (m.user || m.anonymous)) {
        members[memberKey(m)] = {user: m.user, anonymous: m.anonymous, info: m.info};
      }
    });
    var events = presenceAsk ? presenceAsk.events : [];
    presenceAsk = null;
    events.forEach(presenceEvent);
    presenceOff = false;
    onlineNote.hidden = false;
    renderOnline();
  });

  function askPresence() {
    presenceAsk = {events: []};
    client.publish('/service/presence', {channel: CHANNEL}).catch(function (err) {
      presenceAsk = null;
      if (err && err.reply && typeof err.reply.error === 'string') {
        presenceUnavailable();
      }
    });
  }

  function presenceUnavailable() {
    presenceOff = true;
    members = {};
    renderOnline();
    onlineNote.textContent = 'This hub does not say who is in the room.';
    onlineNote.hidden = false;
  }

  // ---- the room --------------------------------------------------------------

  client.subscribe(CHANNEL, onChat).catch(function (err) {
    if (!replayRefused(err.reply)) {
      addSystem('Could not subscribe to ' + CHANNEL + ': ' + err.message, 'error');
    }
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
    } else if (state === 'disconnected') {
      subscribed = false;
      showRoomState();
    }
  });
  client.on('handshake', function (reply) {
    // A new session: the client subscribes again.
    subscribed = false;
    showRoomState();
    if (reply.successful) {
      catchUps++;
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
    storeName(name);
    announce(true);
    messageInput.value = '';
    autosize();
    messageInput.focus();
    client.publish(CHANNEL, {user: name, chat: text, at: Date.now()}).catch(function (err) {
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

  // Leaving ends the session at once, so that the others' online lists
  // drop this page now rather than when the hub gives up on it.
  window.addEventListener('pagehide', function () {
    saveRoom(true);
    if (client.isConnected()) {
      client.disconnect();
    }
  });

  renderOnline();
  showRoomState();
  sendButton.disabled = false;
  client.connect().catch(function (err) {
    addSystem('The server refused the connection: ' + err.message, 'error');
  });
  (nameInput.value ? messageInput : nameInput).focus();
}());
