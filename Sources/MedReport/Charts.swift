import Foundation

/// A colour scale from white through blue (sequential), for heat maps.
public func sequentialColor(_ t: Double) -> String {
    let u = min(1, max(0, t.isFinite ? t : 0))
    // From #f7fbff to #08306b (ColorBrewer Blues ends).
    let (r, g, b) = (247 - (247 - 8) * u, 251 - (251 - 48) * u, 255 - (255 - 107) * u)
    return String(format: "#%02x%02x%02x", Int(r.rounded()), Int(g.rounded()), Int(b.rounded()))
}

/// A square matrix of values between labelled rows and columns (site x site), with a colour bar and the values
/// written in the cells.
public struct Heatmap: Sendable {
    public var title: String
    public var labels: [String]
    public var values: [[Double]]
    /// Text of a cell (default: the value); e.g. p-values with stars.
    public var cellText: (@Sendable (Int, Int) -> String)?
    public var colorRange: ClosedRange<Double>?
    public var unit: String

    public init(title: String, labels: [String], values: [[Double]], unit: String = "", colorRange: ClosedRange<Double>? = nil,
                cellText: (@Sendable (Int, Int) -> String)? = nil) {
        self.title = title; self.labels = labels; self.values = values; self.unit = unit; self.colorRange = colorRange; self.cellText = cellText
    }

    public var svg: String {
        let n = labels.count
        let label = Double(labels.map(\.count).max() ?? 4) * 7 + 12
        let cell = max(34, min(64, 420 / Double(max(1, n))))
        let width = label + cell * Double(n) + 90, height = 40 + label + cell * Double(n) + 10
        let finite = values.flatMap { $0 }.filter { $0.isFinite }
        let range = colorRange ?? ((finite.min() ?? 0)...(max(finite.max() ?? 1, (finite.min() ?? 0) + 1e-12)))
        var s = svgOpen(width: width, height: height, title: title)
        s += "<text x=\"\(f(width / 2))\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">\(escapeXML(title))</text>"
        let top = 40 + label
        for (j, name) in labels.enumerated() {
            let x = label + cell * (Double(j) + 0.5)
            s += "<text transform=\"translate(\(f(x)),\(f(top - 6))) rotate(-45)\" text-anchor=\"start\">\(escapeXML(name))</text>"
        }
        for (i, name) in labels.enumerated() {
            s += "<text x=\"\(f(label - 6))\" y=\"\(f(top + cell * (Double(i) + 0.5) + 4))\" text-anchor=\"end\">\(escapeXML(name))</text>"
            for j in 0..<n {
                let v = i < values.count && j < values[i].count ? values[i][j] : .nan
                let t = (v - range.lowerBound) / max(1e-300, range.upperBound - range.lowerBound)
                let color = v.isFinite ? sequentialColor(t) : "#eeeeee"
                s += "<rect x=\"\(f(label + cell * Double(j)))\" y=\"\(f(top + cell * Double(i)))\" width=\"\(f(cell))\" height=\"\(f(cell))\" fill=\"\(color)\" stroke=\"white\"/>"
                let text = cellText?(i, j) ?? formatNumber(v, digits: 2)
                s += "<text x=\"\(f(label + cell * (Double(j) + 0.5)))\" y=\"\(f(top + cell * (Double(i) + 0.5) + 4))\" text-anchor=\"middle\" "
                    + "font-size=\"11\" fill=\"\(t > 0.6 ? "white" : "#111")\">\(escapeXML(text))</text>"
            }
        }
        // Colour bar.
        let bx = label + cell * Double(n) + 24, bh = cell * Double(n)
        for k in 0..<20 {
            let t = 1 - Double(k) / 19
            s += "<rect x=\"\(f(bx))\" y=\"\(f(top + bh * Double(k) / 20))\" width=\"14\" height=\"\(f(bh / 20 + 0.5))\" fill=\"\(sequentialColor(t))\"/>"
        }
        s += "<text x=\"\(f(bx + 18))\" y=\"\(f(top + 10))\">\(escapeXML(formatNumber(range.upperBound, digits: 2)))</text>"
        s += "<text x=\"\(f(bx + 18))\" y=\"\(f(top + bh))\">\(escapeXML(formatNumber(range.lowerBound, digits: 2)))</text>"
        if !unit.isEmpty { s += "<text x=\"\(f(bx))\" y=\"\(f(top - 8))\">\(escapeXML(unit))</text>" }
        return s + "</svg>\n"
    }
}

/// Points with labels and an optional least-squares line, e.g. per-site Dice against distance to the source.
public struct ScatterPlot: Sendable {
    public struct Point: Sendable {
        public var x: Double, y: Double
        public var label: String?
        public var group: Int
        public init(x: Double, y: Double, label: String? = nil, group: Int = 0) { self.x = x; self.y = y; self.label = label; self.group = group }
    }
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var points: [Point]
    /// Legend names by group index (an empty name: no legend entry, e.g. to reach a later colour).
    public var groups: [String] = []
    public var fitLine = false
    /// The line y = x (dashed), e.g. for estimates against true values.
    public var identityLine = false
    /// Text under the title (e.g. the correlation).
    public var subtitle: String?
    public var width: Double = 560
    public var height: Double = 380
    public var pointRadius: Double = 4

    public init(title: String, xLabel: String, yLabel: String, points: [Point]) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.points = points
    }

    public var svg: String {
        let p = points.filter { $0.x.isFinite && $0.y.isFinite }
        let pad = { (lo: Double, hi: Double) -> (Double, Double) in let m = (hi - lo) * 0.06 + 1e-12; return (lo - m, hi + m) }
        var (x0, x1) = pad(p.map(\.x).min() ?? 0, p.map(\.x).max() ?? 1), (y0, y1) = pad(p.map(\.y).min() ?? 0, p.map(\.y).max() ?? 1)
        if identityLine { (x0, x1) = (min(x0, y0), max(x1, y1)); (y0, y1) = (x0, x1) }   // one scale on both axes
        // The legend has its own column right of the plot, so it never covers points.
        let legendWidth = groups.contains { !$0.isEmpty } ? Double(groups.map(\.count).max() ?? 0) * 7 + 28 : 0
        let frame = PlotFrame(width: width, height: height, left: 64, right: 20 + legendWidth, top: subtitle == nil ? 36 : 52, bottom: 44,
                              x: NiceScale(x0, x1), y: NiceScale(y0, y1))
        var s = svgOpen(width: width, height: height, title: title)
        s += "<text x=\"\(f(width / 2))\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">\(escapeXML(title))</text>"
        if let subtitle { s += "<text x=\"\(f(width / 2))\" y=\"36\" text-anchor=\"middle\" fill=\"#444\">\(escapeXML(subtitle))</text>" }
        s += frame.axes(xLabel: xLabel, yLabel: yLabel)
        if identityLine {
            let (a, b) = (max(frame.x.lower, frame.y.lower), min(frame.x.upper, frame.y.upper))
            s += "<line x1=\"\(f(frame.px(a)))\" y1=\"\(f(frame.py(a)))\" x2=\"\(f(frame.px(b)))\" y2=\"\(f(frame.py(b)))\" stroke=\"#888\" stroke-dasharray=\"5,4\"/>"
                + "<text x=\"\(f(frame.px(b) - 4))\" y=\"\(f(frame.py(b) + 14))\" text-anchor=\"end\" fill=\"#666\">y = x</text>"
        }
        if fitLine && p.count >= 2 {
            let mx = p.map(\.x).reduce(0, +) / Double(p.count), my = p.map(\.y).reduce(0, +) / Double(p.count)
            let sxx = p.reduce(0.0) { $0 + ($1.x - mx) * ($1.x - mx) }, sxy = p.reduce(0.0) { $0 + ($1.x - mx) * ($1.y - my) }
            if sxx > 0 {
                let b = sxy / sxx, a = my - b * mx
                let (xa, xb) = (frame.x.lower, frame.x.upper)
                s += "<line x1=\"\(f(frame.px(xa)))\" y1=\"\(f(frame.py(a + b * xa)))\" x2=\"\(f(frame.px(xb)))\" y2=\"\(f(frame.py(a + b * xb)))\" "
                    + "stroke=\"#888\" stroke-dasharray=\"5,4\" clip-path=\"none\"/>"
            }
        }
        for q in p {
            let color = chartColors[q.group % chartColors.count]
            s += "<circle cx=\"\(f(frame.px(q.x)))\" cy=\"\(f(frame.py(q.y)))\" r=\"\(f(pointRadius))\" fill=\"\(color)\" fill-opacity=\"0.8\"/>"
            // Labels of points in the right third of the plot read leftwards, so they stay inside it.
            if let l = q.label {
                let right = frame.px(q.x) > frame.left + (width - frame.left - frame.right) * 0.66
                // A white halo keeps a label readable over other points.
                s += "<text x=\"\(f(frame.px(q.x) + (right ? -6 : 6)))\" y=\"\(f(frame.py(q.y) - 6))\"\(right ? " text-anchor=\"end\"" : "")"
                    + " stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\">\(escapeXML(l))</text>"
            }
        }
        if !groups.isEmpty {
            var ly = frame.top + 4
            let lx = width - frame.right + 16
            for (k, g) in groups.enumerated() where !g.isEmpty {   // an empty name skips a colour
                s += "<circle cx=\"\(f(lx))\" cy=\"\(f(ly))\" r=\"4\" fill=\"\(chartColors[k % chartColors.count])\"/>"
                s += "<text x=\"\(f(lx + 10))\" y=\"\(f(ly + 4))\">\(escapeXML(g))</text>"
                ly += 16
            }
        }
        return s + "</svg>\n"
    }
}

/// Bars with optional error bars (e.g. a quality measure per site with its spread).
public struct BarChart: Sendable {
    public var title: String
    public var yLabel: String
    public var labels: [String]
    public var values: [Double]
    /// Half-widths of error bars (or nil).
    public var errors: [Double]?
    /// Bars to highlight (e.g. the source site).
    public var highlighted: Set<Int> = []
    public var width: Double = 420
    public var height: Double = 260

    public init(title: String, yLabel: String, labels: [String], values: [Double], errors: [Double]? = nil) {
        self.title = title; self.yLabel = yLabel; self.labels = labels; self.values = values; self.errors = errors
    }

    public var svg: String {
        let tops = values.enumerated().map { $0.element + (errors?[$0.offset] ?? 0) }.filter { $0.isFinite }
        let lows = values.enumerated().map { $0.element - (errors?[$0.offset] ?? 0) }.filter { $0.isFinite }
        let frame = PlotFrame(width: width, height: height, left: 64, right: 12, top: 32, bottom: 54,
                              x: NiceScale(0, Double(max(1, labels.count))), y: NiceScale(min(0, lows.min() ?? 0), max(0, tops.max() ?? 1)))
        var s = svgOpen(width: width, height: height, title: title)
        s += "<text x=\"\(f(width / 2))\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">\(escapeXML(title))</text>"
        s += frame.axes(xLabel: "", yLabel: yLabel, xTicks: [])
        let slot = (width - frame.left - frame.right) / Double(max(1, labels.count))
        for (i, v) in values.enumerated() {
            let x = frame.left + slot * Double(i) + slot * 0.15, w = slot * 0.7
            if v.isFinite {
                let (y0, y1) = (frame.py(max(0, v)), frame.py(min(0, v)))
                s += "<rect x=\"\(f(x))\" y=\"\(f(y0))\" width=\"\(f(w))\" height=\"\(f(max(0.5, y1 - y0)))\" fill=\"\(highlighted.contains(i) ? chartColors[1] : chartColors[0])\"/>"
                if let e = errors?[i], e.isFinite, e > 0 {
                    let cx = x + w / 2
                    s += "<line x1=\"\(f(cx))\" y1=\"\(f(frame.py(v - e)))\" x2=\"\(f(cx))\" y2=\"\(f(frame.py(v + e)))\" stroke=\"#222\"/>"
                    s += "<line x1=\"\(f(cx - 5))\" y1=\"\(f(frame.py(v + e)))\" x2=\"\(f(cx + 5))\" y2=\"\(f(frame.py(v + e)))\" stroke=\"#222\"/>"
                    s += "<line x1=\"\(f(cx - 5))\" y1=\"\(f(frame.py(v - e)))\" x2=\"\(f(cx + 5))\" y2=\"\(f(frame.py(v - e)))\" stroke=\"#222\"/>"
                }
            }
            s += "<text transform=\"translate(\(f(x + w / 2)),\(f(height - frame.bottom + 14))) rotate(30)\" text-anchor=\"start\">\(escapeXML(labels[i]))</text>"
        }
        return s + "</svg>\n"
    }
}

/// PNG images (as data URIs) in a grid with captions: thumbnails of cases.
public struct ImageGrid: Sendable {
    public struct Cell: Sendable {
        public var pngDataURI: String
        public var caption: String
        public init(pngDataURI: String, caption: String) { self.pngDataURI = pngDataURI; self.caption = caption }
    }
    public var rows: [(title: String, cells: [Cell])]
    public var side: Int = 96

    public init(rows: [(title: String, cells: [Cell])], side: Int = 96) { self.rows = rows; self.side = side }

    /// HTML (a table of figures), not SVG: images stay sharp and the page can be printed.
    public var html: String {
        var s = "<div class=\"grid\">"
        for row in rows {
            s += "<div class=\"grid-row\"><div class=\"grid-title\">\(escapeXML(row.title))</div>"
            for c in row.cells {
                s += "<figure><img src=\"\(c.pngDataURI)\" width=\"\(side)\" height=\"\(side)\" alt=\"\(escapeXML(c.caption))\"/>"
                    + "<figcaption>\(escapeXML(c.caption))</figcaption></figure>"
            }
            s += "</div>"
        }
        return s + "</div>"
    }
}

/// Several series' values per category on one shared horizontal axis (a Cleveland dot plot), e.g. Dice per strategy
/// (rows) and target site (colours), with optional whiskers. The axis covers the data rather than starting at zero, so
/// differences of a few thousandths stay visible; a series' dots sit slightly apart vertically within each row so
/// equal values do not hide each other.
public struct DotPlot: Sendable {
    public var title: String
    public var xLabel: String
    /// Row names, top to bottom.
    public var categories: [String]
    /// Series names (colours, in `chartColors` order).
    public var series: [String]
    /// `values[category][series]`; non-finite values are left out.
    public var values: [[Double]]
    /// Half-widths of whiskers, shaped like `values` (or nil).
    public var errors: [[Double]]?
    public var width: Double = 640
    public var rowHeight: Double = 24

    public init(title: String, xLabel: String, categories: [String], series: [String], values: [[Double]], errors: [[Double]]? = nil) {
        self.title = title; self.xLabel = xLabel; self.categories = categories; self.series = series; self.values = values; self.errors = errors
    }

    /// The value and whisker of a cell (NaN when absent).
    func cell(_ i: Int, _ k: Int) -> (value: Double, error: Double) {
        let v = i < values.count && k < values[i].count ? values[i][k] : .nan
        let e = errors.flatMap { i < $0.count && k < $0[i].count ? $0[i][k] : nil } ?? 0
        return (v, e.isFinite ? abs(e) : 0)
    }

    /// The drawing frame: rows below the title and the legend, the axis at the bottom.
    var frame: PlotFrame {
        var lows: [Double] = [], highs: [Double] = []
        for i in categories.indices {
            for k in series.indices {
                let (v, e) = cell(i, k)
                if v.isFinite { lows.append(v - e); highs.append(v + e) }
            }
        }
        let label = Double(categories.map(\.count).max() ?? 4) * 7 + 16
        let height = 62 + rowHeight * Double(categories.count) + 44
        // A little room at both ends, so that a dot at the extreme is not drawn on the axis's end.
        let (lo, hi) = (lows.min() ?? 0, highs.max() ?? 1), pad = (hi - lo) * 0.03
        return PlotFrame(width: width, height: height, left: label, right: 24, top: 62, bottom: 44,
                         x: NiceScale(lo - pad, hi + pad), y: NiceScale(0, 1))
    }

    /// The vertical pixel position of category `i`, series `k`.
    func rowY(_ i: Int, _ k: Int, _ frame: PlotFrame) -> Double {
        let spread = min(4, rowHeight * 0.5 / Double(max(1, series.count)))
        return frame.top + rowHeight * (Double(i) + 0.5) + (Double(k) - Double(series.count - 1) / 2) * spread
    }

    public var svg: String {
        let fr = frame
        var s = svgOpen(width: width, height: fr.height, title: title)
        s += "<text x=\"\(f(width / 2))\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">\(escapeXML(title))</text>"
        // Legend under the title, one entry per series.
        var lx = fr.left
        for (k, name) in series.enumerated() {
            s += "<circle cx=\"\(f(lx + 4))\" cy=\"\(f(38))\" r=\"4\" fill=\"\(chartColors[k % chartColors.count])\"/>"
            s += "<text x=\"\(f(lx + 12))\" y=\"\(f(42))\">\(escapeXML(name))</text>"
            lx += Double(name.count) * 7 + 28
        }
        // Vertical grid at the ticks, the axis and its title.
        let bottom = fr.height - fr.bottom
        for t in fr.x.ticks {
            let x = fr.px(t)
            s += "<line x1=\"\(f(x))\" y1=\"\(f(fr.top))\" x2=\"\(f(x))\" y2=\"\(f(bottom))\" stroke=\"#e5e5e5\"/>"
            s += "<text x=\"\(f(x))\" y=\"\(f(bottom + 16))\" text-anchor=\"middle\">\(escapeXML(formatNumber(t)))</text>"
        }
        s += "<line x1=\"\(f(fr.left))\" y1=\"\(f(bottom))\" x2=\"\(f(width - fr.right))\" y2=\"\(f(bottom))\" stroke=\"#333\"/>"
        s += "<text x=\"\(f((fr.left + width - fr.right) / 2))\" y=\"\(f(fr.height - 6))\" text-anchor=\"middle\">\(escapeXML(xLabel))</text>"
        for (i, name) in categories.enumerated() {
            let y = fr.top + rowHeight * (Double(i) + 0.5)
            s += "<line x1=\"\(f(fr.left))\" y1=\"\(f(y))\" x2=\"\(f(width - fr.right))\" y2=\"\(f(y))\" stroke=\"#f0f0f0\"/>"
            s += "<text x=\"\(f(fr.left - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(escapeXML(name))</text>"
            for k in series.indices {
                let (v, e) = cell(i, k)
                guard v.isFinite else { continue }
                let color = chartColors[k % chartColors.count], yk = rowY(i, k, fr)
                if e > 0 {
                    s += "<line x1=\"\(f(fr.px(v - e)))\" y1=\"\(f(yk))\" x2=\"\(f(fr.px(v + e)))\" y2=\"\(f(yk))\" stroke=\"\(color)\" stroke-width=\"1.5\"/>"
                }
                s += "<circle cx=\"\(f(fr.px(v)))\" cy=\"\(f(yk))\" r=\"4\" fill=\"\(color)\" fill-opacity=\"0.9\"><title>\(escapeXML("\(name), \(series[k]): \(formatNumber(v))"))</title></circle>"
            }
        }
        return s + "</svg>\n"
    }
}
