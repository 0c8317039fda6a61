// Telemetry maps (Leaflet, vendored in static/vendor/leaflet). No inline script: the points
// come as JSON in an (auto-escaped) data attribute, which survives htmx swaps.
//   <div class="js-telemetry-map" data-kind="track|fleet|places" data-points="[{lat, lon, ...}]"
//        data-places="[{name, lat, lon, radius}]" data-src="(fleet: URL of the map's JSON)"
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

  function readPlaces(el) {
    try { return JSON.parse(el.dataset.places || "[]") || []; } catch (e) { return []; }
  }

  // Named places as circles with their name; returns their centres (to fit the view).
  function drawPlaces(map, places) {
    // Their own pane, under the vehicles: a place never takes a click meant for a vehicle.
    if (!map.getPane("places")) map.createPane("places").style.zIndex = 350;
    return places.map(function (p) {
      var label = document.createElement("span");
      label.textContent = p.name;
      L.circle([p.lat, p.lon], { radius: p.radius, className: "map-place", weight: 2, pane: "places" })
        .bindTooltip(label, { className: "map-place-label" })
        .addTo(map);
      return [p.lat, p.lon];
    });
  }

  // Places page: click the map for the centre, click again for the edge; the form's fields
  // follow, and typing in them moves the circle.
  function drawingPlaces(el, map) {
    var form = document.querySelector(".place-form form");
    if (!el.dataset.draw || !form) return;
    var lat = form.querySelector("[name=latitude]");
    var lon = form.querySelector("[name=longitude]");
    var radius = form.querySelector("[name=radius_m]");
    var circle = null;
    var centre = null;
    function show() {
      var la = parseFloat(lat.value), lo = parseFloat(lon.value), r = parseFloat(radius.value);
      if (isNaN(la) || isNaN(lo)) return;
      if (!circle) circle = L.circle([la, lo], { radius: r || 50, className: "map-place-new" }).addTo(map);
      circle.setLatLng([la, lo]);
      circle.setRadius(r > 0 ? r : 50);
    }
    map.on("click", function (e) {
      if (!centre) {
        centre = e.latlng;
        lat.value = e.latlng.lat.toFixed(6);
        lon.value = e.latlng.lng.toFixed(6);
        if (!radius.value) radius.value = "200";
      } else {
        radius.value = String(Math.max(20, Math.round(map.distance(centre, e.latlng))));
        centre = null;
      }
      show();
    });
    [lat, lon, radius].forEach(function (input) { input.addEventListener("input", show); });
    show();
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
    drawPlaces(map, readPlaces(el));
    var trips = [];
    try { trips = JSON.parse(el.dataset.trips || "[]") || []; } catch (e) { trips = []; }
    trips.forEach(function (t) {
      if (t.path.length < 2) return;
      L.polyline(t.path, { className: t.under_way ? "map-trip map-trip-under-way" : "map-trip", weight: 4 }).addTo(map);
    });
    fit(map, latlngs);
    return map;
  }

  function line(box, text, className) {
    if (!text) return;
    var div = document.createElement("div");
    div.className = className;
    div.textContent = text;
    box.appendChild(div);
  }

  // The fleet map: one compact JSON (fields named once, a row per vehicle) from data-src.
  function drawFleet(el) {
    var map = baseMap(el);
    var plain = !el.dataset.tileUrl;
    fetch(el.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        var f = {};
        data.fields.forEach(function (name, i) { f[name] = i; });
        var group = L.markerClusterGroup
          ? L.markerClusterGroup({ showCoverageOnHover: false, maxClusterRadius: 50, chunkedLoading: true })
          : L.featureGroup();
        var markers = [];
        var latlngs = [];
        data.vehicles.forEach(function (v) {
          var status = data.statuses[v[f.status]] || ["", ""];
          var inactive = !status[2];  // no data access (statuses.DATA_FLOWS)
          var place = v[f.place] >= 0 ? data.places[v[f.place]] : null;
          var marker = L.circleMarker([v[f.lat], v[f.lon]], {
            className: "map-vehicle fresh-" + (inactive ? "inactive" : v[f.freshness]),
            radius: 8
          });
          marker.bindPopup(function () {
            var box = document.createElement("div");
            box.className = "map-popup";
            var link = document.createElement("a");
            link.href = data.url.replace("{id}", v[f.id]);
            link.textContent = v[f.label];
            box.appendChild(link);
            line(box, v[f.plate] ? "Plate " + v[f.plate] : "", "map-popup-plate");
            line(box, "Data access: " + status[1], "map-popup-status");
            var energy = v[f.battery] !== null ? "Battery " + v[f.battery] + " %"
              : (v[f.fuel] !== null ? "Fuel " + v[f.fuel] + " %" : "");
            line(box, energy, "map-popup-energy");
            line(box, place ? "At " + place.name : "", "map-popup-place");
            line(box, v[f.freshness_words] + " · last report " + v[f.seen], "map-popup-seen");
            return box;
          });
          if (plain) {
            // A label beside every dot. An element, not a string: Leaflet puts strings in as HTML.
            var label = document.createElement("span");
            label.textContent = v[f.label];
            marker.bindTooltip(label, {
              permanent: true, direction: "right", offset: [8, 0], className: "map-label"
            });
          }
          markers.push(marker);
          latlngs.push([v[f.lat], v[f.lon]]);
        });
        if (group.addLayers) group.addLayers(markers); else markers.forEach(function (m) { group.addLayer(m); });
        group.addTo(map);
        var centres = drawPlaces(map, data.places || []);
        if (latlngs.length || centres.length) fit(map, latlngs.length ? latlngs : centres);
        el.dataset.vehicles = String(markers.length);
        el.dataset.loaded = "1";
      })
      .catch(function () {
        el.dataset.loaded = "failed";
        var note = document.createElement("p");
        note.className = "map-failed";
        note.textContent = "The map could not load the vehicles; reload the page to try again.";
        el.parentNode.insertBefore(note, el.nextSibling);
      });
    map.setView([50.5, 10.5], 4);
    return map;
  }

  function drawPlacesMap(el) {
    var map = baseMap(el);
    var centres = drawPlaces(map, readPlaces(el));
    if (centres.length) fit(map, centres); else map.setView([50.5, 10.5], 5);
    drawingPlaces(el, map);
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
      if (!points.length && el.dataset.kind === "track") return;
      el.dataset.ready = "1";
      var map;
      if (el.dataset.kind === "places") map = drawPlacesMap(el);
      else if (el.dataset.kind === "fleet") map = drawFleet(el);
      else map = drawTrack(el, points);
      keepView(el, map);
      el.leafletMap = map;
      el.dataset.mapReady = "1";
    });
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  // The telemetry panel is loaded and refreshed by htmx.
  document.addEventListener("htmx:load", function (event) { init(event.target); });
})();
