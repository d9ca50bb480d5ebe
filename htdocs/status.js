/*
 * status.js - the live state page (status.html). It subscribes to
 * /bayeuxhub/stats, where the server publishes about once a second
 * {clients, channels, published, delivered, handshakes, publishRate, deliverRate, uptime},
 * and draws a sparkline of the rates on a canvas.
 */
(function () {
  'use strict';

  var CHANNEL = '/bayeuxhub/stats';
  var SAMPLES = 60;
  var $ = function (id) { return document.getElementById(id); };
  var statusEl = $('status');
  var canvas = $('sparkline');
  var deliver = [];
  var publish = [];
  var lastUpdate = 0;

  var client = new BayeuxHub.Client('/cometd');
  window.statusClient = client;

  var intFmt = typeof Intl !== 'undefined' ? new Intl.NumberFormat() : null;
  function int(n) {
    n = Number(n) || 0;
    return intFmt ? intFmt.format(Math.round(n)) : String(Math.round(n));
  }
  function rate(n) {
    n = Number(n) || 0;
    if (n >= 100) {
      return int(n);
    }
    return n.toFixed(n >= 10 ? 1 : 2).replace(/\.?0+$/, '') || '0';
  }
  function duration(seconds) {
    seconds = Math.max(0, Math.floor(Number(seconds) || 0));
    var d = Math.floor(seconds / 86400);
    var h = Math.floor(seconds % 86400 / 3600);
    var m = Math.floor(seconds % 3600 / 60);
    var s = seconds % 60;
    var p = function (x) { return x < 10 ? '0' + x : String(x); };
    if (d) {
      return d + 'd ' + p(h) + 'h';
    }
    if (h) {
      return h + 'h ' + p(m) + 'm';
    }
    if (m) {
      return m + 'm ' + p(s) + 's';
    }
    return s + 's';
  }
  function set(id, text) {
    var node = $(id);
    if (node.textContent !== text) {
      node.textContent = text;
    }
  }

  function onStats(message) {
    var s = message.data || {};
    set('clients', int(s.clients));
    set('channels', int(s.channels));
    set('published', int(s.published));
    set('delivered', int(s.delivered));
    set('handshakes', int(s.handshakes));
    set('publishRate', rate(s.publishRate));
    set('deliverRate', rate(s.deliverRate));
    set('uptime', duration(s.uptime));
    lastUpdate = Date.now();
    set('updated', 'updated just now');
    deliver.push(Number(s.deliverRate) || 0);
    publish.push(Number(s.publishRate) || 0);
    if (deliver.length > SAMPLES) {
      deliver.shift();
      publish.shift();
    }
    var peak = Math.max.apply(null, deliver);
    set('peak', '(peak ' + rate(peak) + '/s)');
    draw();
  }

  setInterval(function () {
    if (lastUpdate) {
      var age = Math.round((Date.now() - lastUpdate) / 1000);
      set('updated', age < 2 ? 'updated just now' : 'last update ' + age + 's ago');
    }
  }, 1000);

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
  }

  function draw() {
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth || 600;
    var h = canvas.clientHeight || 140;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    var ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var max = Math.max(1, Math.max.apply(null, deliver.concat(publish))) * 1.15;
    var top = 6, bottom = h - 4;
    var step = w / (SAMPLES - 1);
    var x0 = w - (deliver.length - 1) * step;

    // Grid lines.
    ctx.strokeStyle = cssVar('--border');
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (var g = 0; g <= 3; g++) {
      var gy = Math.round(top + (bottom - top) * g / 3) + 0.5;
      ctx.moveTo(0, gy);
      ctx.lineTo(w, gy);
    }
    ctx.stroke();

    function y(v) {
      return bottom - (bottom - top) * v / max;
    }
    function line(values, colour, fill) {
      if (!values.length) {
        return;
      }
      ctx.beginPath();
      for (var i = 0; i < values.length; i++) {
        var x = x0 + i * step;
        if (i === 0) {
          ctx.moveTo(x, y(values[i]));
        } else {
          ctx.lineTo(x, y(values[i]));
        }
      }
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2;
      ctx.lineJoin = 'round';
      ctx.stroke();
      if (fill) {
        ctx.lineTo(x0 + (values.length - 1) * step, bottom);
        ctx.lineTo(x0, bottom);
        ctx.closePath();
        var grad = ctx.createLinearGradient(0, top, 0, bottom);
        grad.addColorStop(0, colour + '55');
        grad.addColorStop(1, colour + '00');
        ctx.fillStyle = grad;
        ctx.fill();
      }
      var lx = x0 + (values.length - 1) * step;
      ctx.beginPath();
      ctx.arc(Math.min(lx, w - 3), y(values[values.length - 1]), 3, 0, Math.PI * 2);
      ctx.fillStyle = colour;
      ctx.fill();
    }
    line(deliver, '#06b6d4', true);
    line(publish, '#5b5ef0', false);
  }
  window.addEventListener('resize', draw);

  client.on('state', function (state) {
    statusEl.textContent = state;
    statusEl.setAttribute('data-state', state);
  });
  client.subscribe(CHANNEL, onStats);
  client.connect();
  draw();
}());
