// Telemetry maps (Leaflet, vendored in static/vendor/leaflet). No inline script: the points
// come as JSON in an (auto-escaped) data attribute, which survives htmx swaps.
//   <div class="js-telemetry-map" data-kind="track|fleet" data-points="[{lat, lon, ...}]"
//        data-tile-url="https://.../{z}/{x}/{y}.png" data-attribution="...">
// Without a tile URL the points are drawn on a plain background (CSS class map-plain).
(function () {
  "use strict";

  function readPoints(el) {
    try { return JSON.parse(el.dataset.points || "[]") || []; } catch (e) { return []; }
  }

  function baseMap(el) {
    var map = L.map(el, {
      scrollWheelZoom: false,
      maxZoom: 19,  // clustering needs it even without a tile layer
      attributionControl: !!el.dataset.tileUrl
    });
    if (el.dataset.tileUrl) {
      L.tileLayer(el.dataset.tileUrl, {
        maxZoom: 19,
        attribution: el.dataset.attribution || ""
      }).addTo(map);
    }
    return map;
  }

  function fit(map, latlngs) {
    if (latlngs.length === 1) {
      map.setView(latlngs[0], 14);
    } else {
      map.fitBounds(L.latLngBounds(latlngs), { padding: [20, 20], maxZoom: 16 });
    }
  }

  function drawTrack(el, points) {
    var map = baseMap(el);
    var latlngs = points.map(function (p) { return [p.lat, p.lon]; });
    L.polyline(latlngs, { className: "map-track", weight: 3 }).addTo(map);
    points.forEach(function (p, i) {
      var last = i === points.length - 1;
      L.circleMarker([p.lat, p.lon], {
        className: last ? "map-point map-point-last" : "map-point",
        radius: last ? 8 : 3
      }).bindTooltip(new Date(p.at).toLocaleString()).addTo(map);
    });
    fit(map, latlngs);
    return map;
  }

  function drawFleet(el, points) {
    var map = baseMap(el);
    var group = L.markerClusterGroup
      ? L.markerClusterGroup({ showCoverageOnHover: false, maxClusterRadius: 50 })
      : L.featureGroup();
    var latlngs = [];
    points.forEach(function (p) {
      var marker = L.circleMarker([p.lat, p.lon], { className: "map-vehicle", radius: 8 });
      var link = document.createElement("a");
      link.href = p.url;
      link.textContent = p.label;
      var box = document.createElement("div");
      box.appendChild(link);
      var when = document.createElement("div");
      when.textContent = p.at ? "Seen " + new Date(p.at).toLocaleString() : "";
      box.appendChild(when);
      marker.bindPopup(box);
      marker.options.title = p.label;
      group.addLayer(marker);
      latlngs.push([p.lat, p.lon]);
    });
    group.addTo(map);
    fit(map, latlngs);
    return map;
  }

  // The panel re-renders every few seconds; keep the view a person chose across re-renders.
  var savedViews = {};

  function keepView(el, map) {
    var key = el.dataset.mapKey;
    if (!key) return;
    if (savedViews[key]) map.setView(savedViews[key].center, savedViews[key].zoom, { animate: false });
    setTimeout(function () {
      map.on("moveend", function () {
        savedViews[key] = { center: map.getCenter(), zoom: map.getZoom() };
      });
    }, 0);
  }

  function init(root) {
    if (typeof L === "undefined") return;
    var scope = root && root.querySelectorAll ? root : document;
    var maps = Array.prototype.slice.call(scope.querySelectorAll(".js-telemetry-map"));
    if (scope.classList && scope.classList.contains("js-telemetry-map")) maps.push(scope);
    maps.forEach(function (el) {
      if (el.dataset.ready) return;
      var points = readPoints(el);
      if (!points.length) return;
      el.dataset.ready = "1";
      var map = el.dataset.kind === "fleet" ? drawFleet(el, points) : drawTrack(el, points);
      keepView(el, map);
      el.leafletMap = map;
      el.dataset.mapReady = "1";
    });
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  // The telemetry panel is loaded and refreshed by htmx.
  document.addEventListener("htmx:load", function (event) { init(event.target); });
})();
