// mlperf report: builds every chart of the page with BokehJS from the JSON specs in
// <script id="mlperf-charts">, written by mlperf/report/interactive.py.  No network: BokehJS
// is loaded from the report's own _mlperf/js/ folder (or inlined with --self-contained).
(function () {
  "use strict";
  var plt = Bokeh.Plotting;
  var specs = JSON.parse(document.getElementById("mlperf-charts").textContent);
  var built = 0;

  function source(columns) {
    return new Bokeh.ColumnDataSource({ data: columns });
  }

  function commitTicks(labels) {
    return new Bokeh.CustomJSTickFormatter({
      args: { labels: labels },
      code: "var i = Math.round(tick); return (i === tick && labels[i]) ? labels[i] : '';",
    });
  }

  function frame(s, top) {
    var p = plt.figure({
      title: s.title,
      height: s.height,
      sizing_mode: "stretch_width",
      tools: "pan,xwheel_zoom,box_zoom,reset,save",
      toolbar_location: s.small ? null : "right",
      x_range: new Bokeh.Range1d({ start: -0.5, end: Math.max(s.n - 0.5, 0.5) }),
      y_range: new Bokeh.Range1d({ start: 0, end: top > 0 ? top * 1.08 : 1 }),
      y_axis_label: s.small ? null : s.unit,
      x_axis_label: s.small ? null : "commit, oldest to newest",
    });
    p.xaxis.formatter = commitTicks(s.ticks);
    p.xaxis.major_label_orientation = s.small ? 0 : 0.8;
    p.title.text_font_size = s.small ? "11px" : "13px";
    return p;
  }

  function trend(s) {
    var pts = s.points;
    var top = Math.max.apply(null, pts.high.concat(s.runs.y, s.band ? [s.band[1]] : []));
    var p = frame(s, top);
    if (s.band) {
      p.add_layout(new Bokeh.BoxAnnotation({
        bottom: s.band[0], top: s.band[1], fill_color: "#2e7d32", fill_alpha: 0.07, line_alpha: 0,
      }));
    }
    var src = source(pts);
    p.varea({ x: { field: "x" }, y1: { field: "low" }, y2: { field: "high" }, source: src,
              fill_color: "#1565c0", fill_alpha: 0.16 });
    p.scatter({ x: { field: "x" }, y: { field: "y" }, source: source(s.runs), size: 3,
                fill_color: "#546e7a", fill_alpha: 0.55, line_alpha: 0 });
    p.line({ x: { field: "x" }, y: { field: "value" }, source: src, line_color: "#1565c0",
             line_width: 1.2 });
    p.line({ x: { field: "x" }, y: { field: "y" }, source: source(s.fit), line_color: "#c62828",
             line_width: 2, line_dash: "dashed", line_alpha: 0.8 });
    s.steps.forEach(function (st) {
      p.add_layout(new Bokeh.Span({ location: st.x, dimension: "height", line_width: 1.5,
                                    line_color: st.up ? "#c62828" : "#2e7d32", line_dash: "dotted" }));
    });
    var dots = p.scatter({ x: { field: "x" }, y: { field: "value" }, source: src,
                           size: s.small ? 5 : 7, fill_color: "#1565c0", line_color: "#ffffff" });
    p.add_tools(new Bokeh.HoverTool({
      renderers: [dots], mode: "vline",
      tooltips: [["commit", "@commit"], ["date", "@date"], ["subject", "@subject"],
                 ["median", "@label"], ["spread", "@spread"], ["runs", "@runs"]],
    }));
    return p;
  }

  function lines(s) {
    var top = 0;
    s.series.forEach(function (l) { top = Math.max(top, Math.max.apply(null, l.y)); });
    var p = frame(s, top);
    var renderers = s.series.map(function (l) {
      var src = source({ x: l.x, y: l.y, commit: l.commit, label: l.label });
      p.line({ x: { field: "x" }, y: { field: "y" }, source: src, line_color: l.colour,
               legend_label: l.name });
      return p.scatter({ x: { field: "x" }, y: { field: "y" }, source: src, size: 5,
                         fill_color: l.colour, line_color: "#ffffff" });
    });
    p.legend.location = "bottom_left";
    p.add_tools(new Bokeh.HoverTool({
      renderers: renderers, mode: "vline", tooltips: [["commit", "@commit"], ["value", "@label"]],
    }));
    return p;
  }

  specs.forEach(function (s) {
    try {
      plt.show(s.kind === "lines" ? lines(s) : trend(s), "#" + s.target);
      built += 1;
    } catch (err) {
      console.error("mlperf report: chart " + s.target + " failed: " + err);
    }
  });
  document.body.setAttribute("data-charts-total", String(specs.length));
  document.body.setAttribute("data-charts-built", String(built));
})();
