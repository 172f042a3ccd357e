// stseg-viz offline point-cloud viewer: plain WebGL 1, no dependencies, no network access.
// Reads the JSON payload from <script id="stseg-data">, draws points with an orbit camera,
// switches colourings (rgb / label / instance / error / embedding) and toggles classes on and off.
// Copyright the stseg developers, MIT licence.
(function () {
  "use strict";

  var statusEl = document.getElementById("status");
  function fail(message) {
    document.body.dataset.status = "error";
    statusEl.textContent = message;
    statusEl.className = "error";
  }
  window.addEventListener("error", function (event) { fail("Error: " + event.message); });

  function decode(b64, Type) {
    var raw = atob(b64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return new Type(bytes.buffer);
  }

  // ---- column-major 4x4 matrices -------------------------------------------------------------
  function perspective(fovy, aspect, near, far) {
    var f = 1 / Math.tan(fovy / 2), nf = 1 / (near - far);
    return [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0, 2 * far * near * nf, 0];
  }
  function lookAt(eye, target, up) {
    var z = normalize(sub(eye, target)), x = normalize(cross(up, z)), y = cross(z, x);
    return [x[0], y[0], z[0], 0, x[1], y[1], z[1], 0, x[2], y[2], z[2], 0,
      -dot(x, eye), -dot(y, eye), -dot(z, eye), 1];
  }
  function multiply(a, b) {
    var out = new Array(16);
    for (var c = 0; c < 4; c++) for (var r = 0; r < 4; r++) {
      var s = 0;
      for (var k = 0; k < 4; k++) s += a[k * 4 + r] * b[c * 4 + k];
      out[c * 4 + r] = s;
    }
    return out;
  }
  function sub(a, b) { return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]; }
  function dot(a, b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
  function cross(a, b) { return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]; }
  function normalize(a) { var n = Math.sqrt(dot(a, a)) || 1; return [a[0] / n, a[1] / n, a[2] / n]; }

  // ---- data -------------------------------------------------------------------------------------
  var data = JSON.parse(document.getElementById("stseg-data").textContent);
  document.getElementById("title").textContent = data.title;
  document.title = data.title + " — stseg viewer";

  var canvas = document.getElementById("view");
  var gl = canvas.getContext("webgl", { preserveDrawingBuffer: true, antialias: false });
  if (!gl) { fail("WebGL is not available in this browser."); return; }

  var VERTEX = [
    "attribute vec3 a_pos; attribute vec3 a_color;",
    "uniform mat4 u_mvp; uniform vec3 u_min; uniform vec3 u_size; uniform float u_point;",
    "varying vec3 v_color;",
    "void main() {",
    "  gl_Position = u_mvp * vec4(u_min + a_pos * u_size, 1.0);",
    "  gl_PointSize = u_point; v_color = a_color;",
    "}"].join("\n");
  var FRAGMENT = [
    "precision mediump float; varying vec3 v_color;",
    "void main() { gl_FragColor = vec4(v_color, 1.0); }"].join("\n");

  function shader(type, source) {
    var s = gl.createShader(type);
    gl.shaderSource(s, source);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  }
  var program = gl.createProgram();
  gl.attachShader(program, shader(gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(program, shader(gl.FRAGMENT_SHADER, FRAGMENT));
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
  gl.useProgram(program);
  var loc = {
    pos: gl.getAttribLocation(program, "a_pos"), color: gl.getAttribLocation(program, "a_color"),
    mvp: gl.getUniformLocation(program, "u_mvp"), min: gl.getUniformLocation(program, "u_min"),
    size: gl.getUniformLocation(program, "u_size"), point: gl.getUniformLocation(program, "u_point")
  };

  var positionBuffer = gl.createBuffer();
  gl.bindBuffer(gl.ARRAY_BUFFER, positionBuffer);
  gl.bufferData(gl.ARRAY_BUFFER, decode(data.positions, Uint16Array), gl.STATIC_DRAW);
  gl.enableVertexAttribArray(loc.pos);
  gl.vertexAttribPointer(loc.pos, 3, gl.UNSIGNED_SHORT, true, 0, 0);
  gl.uniform3fv(loc.min, data.qmin);
  gl.uniform3fv(loc.size, data.qsize);

  var colorBuffers = {};
  function colorBuffer(mode) {
    if (!colorBuffers[mode]) {
      colorBuffers[mode] = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, colorBuffers[mode]);
      gl.bufferData(gl.ARRAY_BUFFER, decode(data.colors[mode], Uint8Array), gl.STATIC_DRAW);
    }
    return colorBuffers[mode];
  }

  // ---- state and camera -------------------------------------------------------------------------
  var modes = Object.keys(data.colors);
  var state = { mode: modes[0], yaw: 0.9, pitch: 0.6, distance: 2.2 * data.radius, point: 2,
    target: data.center.slice(), hidden: {} };

  function draw() {
    // Draw at the device's pixel density (sharp on high-DPI screens); point size scales with it.
    var dpr = window.devicePixelRatio || 1;
    var width = Math.round(canvas.clientWidth * dpr), height = Math.round(canvas.clientHeight * dpr);
    if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
    gl.viewport(0, 0, canvas.width, canvas.height);
    gl.clearColor(0.13, 0.14, 0.16, 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.enable(gl.DEPTH_TEST);
    var cp = Math.cos(state.pitch), eye = [
      state.target[0] + state.distance * cp * Math.cos(state.yaw),
      state.target[1] + state.distance * cp * Math.sin(state.yaw),
      state.target[2] + state.distance * Math.sin(state.pitch)];
    var proj = perspective(0.8, canvas.width / Math.max(canvas.height, 1),
      state.distance / 100, state.distance + 4 * data.radius);
    gl.uniformMatrix4fv(loc.mvp, false, multiply(proj, lookAt(eye, state.target, [0, 0, 1])));
    gl.uniform1f(loc.point, state.point * dpr);
    gl.bindBuffer(gl.ARRAY_BUFFER, colorBuffer(state.mode));
    gl.enableVertexAttribArray(loc.color);
    gl.vertexAttribPointer(loc.color, 3, gl.UNSIGNED_BYTE, true, 0, 0);
    data.groups.forEach(function (group) {
      if (!state.hidden[group.key]) gl.drawArrays(gl.POINTS, group.start, group.count);
    });
  }

  // ---- UI -----------------------------------------------------------------------------------------
  function swatch(color) {
    var s = document.createElement("span");
    s.className = "swatch";
    s.style.background = "rgb(" + color.join(",") + ")";
    return s;
  }

  function legendRow(row, withBox) {
    var line = document.createElement("label");
    line.className = "row";
    if (withBox) {
      var box = document.createElement("input");
      box.type = "checkbox";
      box.checked = !state.hidden[row.key];
      box.dataset.key = row.key;
      box.addEventListener("change", function () { state.hidden[row.key] = !box.checked; draw(); });
      line.appendChild(box);
    }
    line.appendChild(swatch(row.color));
    line.appendChild(document.createTextNode(row.name + " (" + row.count.toLocaleString("en") + ")"));
    return line;
  }

  // Mode-specific rows (e.g. correct / wrong / ignored) first, then one toggle per class.
  function buildLegend() {
    var legend = document.getElementById("legend");
    legend.textContent = "";
    (data.legends[state.mode] || []).forEach(function (row) { legend.appendChild(legendRow(row, false)); });
    if (data.groups.length > 1) {
      var heading = document.createElement("div");
      heading.className = "heading";
      heading.textContent = data.groupTitle;
      legend.appendChild(heading);
      data.groups.forEach(function (group) { legend.appendChild(legendRow(group, true)); });
    }
    document.getElementById("toggles").style.display = data.groups.length > 1 ? "" : "none";
  }

  function setMode(mode) {
    if (modes.indexOf(mode) < 0) return false;
    state.mode = mode;
    var radio = document.querySelector('input[name="color"][value="' + mode + '"]');
    if (radio) radio.checked = true;
    if (location.hash !== "#color=" + mode) history.replaceState(null, "", "#color=" + mode);
    buildLegend();
    draw();
    return true;
  }

  var chooser = document.getElementById("modes");
  ["rgb", "label", "instance", "error", "embedding"].forEach(function (mode) {
    var line = document.createElement("label");
    var radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "color";
    radio.value = mode;
    radio.id = "color-" + mode;
    radio.disabled = modes.indexOf(mode) < 0;
    radio.addEventListener("change", function () { if (radio.checked) setMode(mode); });
    line.appendChild(radio);
    line.appendChild(document.createTextNode(" " + mode));
    if (radio.disabled) line.className = "disabled";
    chooser.appendChild(line);
  });
  function setAll(visible) {
    data.groups.forEach(function (group) { state.hidden[group.key] = !visible; });
    buildLegend();
    draw();
  }
  document.getElementById("show-all").addEventListener("click", function () { setAll(true); });
  document.getElementById("hide-all").addEventListener("click", function () { setAll(false); });
  var pointInput = document.getElementById("point-size");
  pointInput.addEventListener("input", function () { state.point = Number(pointInput.value); draw(); });

  // Orbit with the left button, pan with the right button or shift, zoom with the wheel.
  var drag = null;
  canvas.addEventListener("contextmenu", function (event) { event.preventDefault(); });
  canvas.addEventListener("mousedown", function (event) {
    drag = { x: event.clientX, y: event.clientY, pan: event.button === 2 || event.shiftKey };
  });
  window.addEventListener("mouseup", function () { drag = null; });
  window.addEventListener("mousemove", function (event) {
    if (!drag) return;
    var dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    drag.x = event.clientX; drag.y = event.clientY;
    if (drag.pan) {
      // Move the target in the screen plane: right = forward x z, up = right x forward.
      var k = state.distance / canvas.clientHeight, cp = Math.cos(state.pitch);
      var forward = [-cp * Math.cos(state.yaw), -cp * Math.sin(state.yaw), -Math.sin(state.pitch)];
      var right = normalize(cross(forward, [0, 0, 1])), up = cross(right, forward);
      for (var i = 0; i < 3; i++) state.target[i] += k * (-dx * right[i] + dy * up[i]);
    } else {
      state.yaw -= dx * 0.01;
      state.pitch = Math.max(-1.55, Math.min(1.55, state.pitch + dy * 0.01));
    }
    draw();
  });
  canvas.addEventListener("wheel", function (event) {
    event.preventDefault();
    state.distance *= Math.exp(event.deltaY * 0.001);
    draw();
  }, { passive: false });
  window.addEventListener("resize", draw);
  window.addEventListener("hashchange", function () { setMode(readHash()); });

  function readHash() {
    var match = /color=([a-z]+)/.exec(location.hash);
    return match ? match[1] : null;
  }

  window.stsegViewer = { setMode: setMode, modes: modes, state: state, draw: draw };
  if (!setMode(readHash())) setMode(state.mode);
  statusEl.textContent = data.note;
  document.body.dataset.status = "ready";
})();
