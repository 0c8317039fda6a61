// Telemetry maps (Leaflet, vendored in static/vendor/leaflet). No inline script: the points
// come as JSON in an (auto-escaped) data attribute, which survives htmx swaps.
//   <div class="js-telemetry-map" data-kind="track|fleet" data-points="[{lat, lon, ...}]"
//        data-tile-url="https://.../{z}/{x}/{y}.png" data-attribution="...">
// Without a tile URL the points are drawn on a plain background (CSS class map-plain), with a
// scale bar, and every fleet marker carries a permanent label so it can be told apart.
// Dates are rendered by the server in the portal's format (p.when / p.seen), never by the
// browser's locale.
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
    } else {
      L.control.scale({ imperial: false }).addTo(map);
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
      }).bindTooltip(p.when || p.at || "").addTo(map);
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
    function line(box, text, className) {
      if (!text) return;
      var div = document.createElement("div");
      div.className = className;
      div.textContent = text;
      box.appendChild(div);
    }
    points.forEach(function (p) {
      var marker = L.circleMarker([p.lat, p.lon], {
        className: p.approved === false ? "map-vehicle map-vehicle-inactive" : "map-vehicle",
        radius: 8
      });
      var link = document.createElement("a");
      link.href = p.url;
      link.textContent = p.label;
      var box = document.createElement("div");
      box.className = "map-popup";
      box.appendChild(link);
      if (p.vin && p.vin !== p.label) line(box, "VIN " + p.vin, "map-popup-vin");
      line(box, p.status ? "Data access: " + p.status : "", "map-popup-status");
      line(box, p.seen ? "Position reported " + p.seen : "", "map-popup-seen");
      marker.bindPopup(box);
      // A label beside every dot. An element, not a string: Leaflet puts strings in as HTML.
      var label = document.createElement("span");
      label.textContent = p.label;
      marker.bindTooltip(label, {
        permanent: true, direction: "right", offset: [8, 0], className: "map-label"
      });
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
