import Foundation

/// # MedReport
///
/// Self-contained reports from plain values: charts as SVG strings (line charts with bands, scatter plots with a fitted
/// line, heat maps with a colour bar, histograms, bar charts with error bars, dot plots, image grids) and an HTML document that
/// inlines them with tables and findings. No JavaScript, no network, readable when printed; the same SVG can be written
/// as a file for papers. Every chart is a value type whose `svg` property renders it.
public enum MedReportModule {}

/// Escapes text for SVG and HTML.
public func escapeXML(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.count)
    for c in text {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(c)
        }
    }
    return out
}

/// A number for an axis label or a table: few digits, no trailing zeros ("0.25", "1200", "3e-05").
public func formatNumber(_ v: Double, digits: Int = 3) -> String {
    guard v.isFinite else { return v.isNaN ? "–" : (v > 0 ? "∞" : "−∞") }
    if v == 0 { return "0" }
    let a = abs(v)
    if a >= 1e5 || a < 1e-3 { return String(format: "%.\(max(0, digits - 1))e", v) }
    var s = String(format: "%.\(max(0, digits - Int(floor(log10(a))) - 1))f", v)
    if s.contains(".") { while s.hasSuffix("0") { s.removeLast() }; if s.hasSuffix(".") { s.removeLast() } }
    return s
}

/// Axis ticks at 1, 2 or 5 times a power of ten, covering a data range.
public struct NiceScale: Sendable, Equatable {
    public var lower: Double
    public var upper: Double
    public var step: Double

    /// About `count` ticks covering [low, high] (a degenerate range is widened around its value).
    public init(_ low: Double, _ high: Double, count: Int = 5) {
        var (lo, hi) = (low.isFinite ? low : 0, high.isFinite ? high : 1)
        if hi < lo { swap(&lo, &hi) }
        if hi - lo < 1e-12 * max(1, abs(hi)) { lo -= max(0.5, abs(lo) * 0.1); hi += max(0.5, abs(hi) * 0.1) }
        let raw = (hi - lo) / Double(max(1, count))
        let power = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? 10 * power
        self.step = step
        lower = (lo / step).rounded(.down) * step
        upper = (hi / step).rounded(.up) * step
    }

    public var ticks: [Double] {
        var t: [Double] = []
        var v = lower
        while v <= upper + step * 1e-9 { t.append(abs(v) < step * 1e-9 ? 0 : v); v += step }
        return t
    }
}

/// A palette that stays distinguishable for colour-blind readers (Okabe & Ito 2008), then repeats.
public let chartColors = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

/// The drawing area of a chart: pixel position of data values on both axes.
struct PlotFrame {
    var width: Double, height: Double
    var left: Double, right: Double, top: Double, bottom: Double
    var x: NiceScale, y: NiceScale

    func px(_ v: Double) -> Double { left + (v - x.lower) / max(1e-300, x.upper - x.lower) * (width - left - right) }
    func py(_ v: Double) -> Double { height - bottom - (v - y.lower) / max(1e-300, y.upper - y.lower) * (height - top - bottom) }

    /// Axes, grid lines, tick labels and axis titles.
    func axes(xLabel: String, yLabel: String, xTicks: [Double]? = nil, xTickLabel: ((Double) -> String)? = nil) -> String {
        var s = ""
        for t in y.ticks {
            let yy = py(t)
            s += "<line x1=\"\(f(left))\" y1=\"\(f(yy))\" x2=\"\(f(width - right))\" y2=\"\(f(yy))\" stroke=\"#e5e5e5\"/>"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(yy + 4))\" text-anchor=\"end\">\(escapeXML(formatNumber(t)))</text>"
        }
        for t in xTicks ?? x.ticks {
            let xx = px(t)
            s += "<line x1=\"\(f(xx))\" y1=\"\(f(height - bottom))\" x2=\"\(f(xx))\" y2=\"\(f(height - bottom + 4))\" stroke=\"#333\"/>"
            s += "<text x=\"\(f(xx))\" y=\"\(f(height - bottom + 16))\" text-anchor=\"middle\">\(escapeXML(xTickLabel?(t) ?? formatNumber(t)))</text>"
        }
        s += "<line x1=\"\(f(left))\" y1=\"\(f(height - bottom))\" x2=\"\(f(width - right))\" y2=\"\(f(height - bottom))\" stroke=\"#333\"/>"
        s += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(height - bottom))\" stroke=\"#333\"/>"
        s += "<text x=\"\(f((left + width - right) / 2))\" y=\"\(f(height - 6))\" text-anchor=\"middle\">\(escapeXML(xLabel))</text>"
        s += "<text transform=\"translate(14,\(f((top + height - bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">\(escapeXML(yLabel))</text>"
        return s
    }
}

/// Two decimals for coordinates.
func f(_ v: Double) -> String { String(format: "%.2f", v) }

/// The opening tag of a chart's SVG (fixed size, scales with the page through viewBox).
func svgOpen(width: Double, height: Double, title: String) -> String {
    "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(f(width)) \(f(height))\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
        + "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"\(escapeXML(title))\">"
        + "<title>\(escapeXML(title))</title><rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
}

/// Lines through points, optionally with a shaded band (an interval) per series; a second y axis on the right for
/// series of another scale (a training loss beside a Dice score).
public struct LineChart: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        /// Lower and upper values at each point (e.g. a 95 % interval), drawn as a band.
        public var band: [(low: Double, high: Double)]?
        public var color: String?
        /// Plotted against the right-hand axis.
        public var rightAxis: Bool
        public var markers: Bool
        public init(name: String, points: [(x: Double, y: Double)], band: [(low: Double, high: Double)]? = nil, color: String? = nil,
                    rightAxis: Bool = false, markers: Bool = false) {
            self.name = name; self.points = points; self.band = band; self.color = color; self.rightAxis = rightAxis; self.markers = markers
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var rightLabel: String?
    public var series: [Series]
    public var width: Double = 640
    public var height: Double = 320
    /// Fixed y range (e.g. 0...1 for Dice); nil: from the data.
    public var yRange: ClosedRange<Double>? = nil
    public var rightRange: ClosedRange<Double>? = nil
    /// Only whole-number x ticks (epochs, rounds, counts).
    public var integerX = false

    public init(title: String, xLabel: String, yLabel: String, rightLabel: String? = nil, series: [Series]) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.rightLabel = rightLabel; self.series = series
    }

    public var svg: String {
        let finite = { (v: Double) in v.isFinite }
        let all = series.flatMap { $0.points }.filter { finite($0.x) && finite($0.y) }
        let xs = all.map(\.x)
        func yValues(_ right: Bool) -> [Double] {
            series.filter { $0.rightAxis == right }.flatMap { s in s.points.map(\.y) + (s.band?.flatMap { [$0.low, $0.high] } ?? []) }.filter(finite)
        }
        let left = yValues(false), rightValues = yValues(true)
        var xs0 = NiceScale(xs.min() ?? 0, xs.max() ?? 1, count: 8)
        if integerX {
            // Whole-number ticks from the first to the last x (epochs 1...N).
            let (lo, hi) = ((xs.min() ?? 0).rounded(.down), max((xs.min() ?? 0) + 1, (xs.max() ?? 1).rounded(.up)))
            xs0.step = max(1, xs0.step.rounded(.up))
            xs0.lower = lo; xs0.upper = hi
        }
        let yScale = yRange.map { NiceScale($0.lowerBound, $0.upperBound) } ?? NiceScale(left.min() ?? 0, left.max() ?? 1)
        let hasRight = !rightValues.isEmpty
        let frame = PlotFrame(width: width, height: height, left: 64, right: hasRight ? 64 : 20, top: 40, bottom: 44, x: xs0, y: yScale)
        let xTicks = xs0.ticks
        var s = svgOpen(width: width, height: height, title: title)
        s += "<text x=\"\(f(width / 2))\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">\(escapeXML(title))</text>"
        s += frame.axes(xLabel: xLabel, yLabel: yLabel, xTicks: xTicks)
        var rightFrame = frame
        if hasRight {
            rightFrame.y = rightRange.map { NiceScale($0.lowerBound, $0.upperBound) } ?? NiceScale(rightValues.min() ?? 0, rightValues.max() ?? 1)
            for t in rightFrame.y.ticks {
                s += "<text x=\"\(f(width - frame.right + 6))\" y=\"\(f(rightFrame.py(t) + 4))\">\(escapeXML(formatNumber(t)))</text>"
            }
            s += "<line x1=\"\(f(width - frame.right))\" y1=\"\(f(frame.top))\" x2=\"\(f(width - frame.right))\" y2=\"\(f(height - frame.bottom))\" stroke=\"#333\"/>"
            s += "<text transform=\"translate(\(f(width - 12)),\(f((frame.top + height - frame.bottom) / 2))) rotate(90)\" text-anchor=\"middle\">"
                + "\(escapeXML(rightLabel ?? ""))</text>"
        }
        for (k, series) in series.enumerated() {
            let color = series.color ?? chartColors[k % chartColors.count]
            let fr = series.rightAxis ? rightFrame : frame
            let pts = series.points.enumerated().filter { finite($0.element.x) && finite($0.element.y) }
            if let band = series.band, band.count == series.points.count {
                let upper = pts.map { "\(f(fr.px($0.element.x))),\(f(fr.py(band[$0.offset].high)))" }
                let lower = pts.reversed().map { "\(f(fr.px($0.element.x))),\(f(fr.py(band[$0.offset].low)))" }
                if !upper.isEmpty { s += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(color)\" fill-opacity=\"0.18\" stroke=\"none\"/>" }
            }
            let line = pts.map { "\(f(fr.px($0.element.x))),\(f(fr.py($0.element.y)))" }.joined(separator: " ")
            if pts.count > 1 { s += "<polyline points=\"\(line)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>" }
            if series.markers || pts.count == 1 {
                for p in pts { s += "<circle cx=\"\(f(fr.px(p.element.x)))\" cy=\"\(f(fr.py(p.element.y)))\" r=\"3\" fill=\"\(color)\"/>" }
            }
        }
        // Legend, top right, one entry per series.
        var lx = width - frame.right - 8
        for (k, series) in series.enumerated().reversed() {
            let color = series.color ?? chartColors[k % chartColors.count]
            let label = series.name + (series.rightAxis && hasRight ? " (right axis)" : "")
            let wText = Double(label.count) * 6.4
            s += "<rect x=\"\(f(lx - wText - 18))\" y=\"\(f(frame.top - 14))\" width=\"12\" height=\"4\" fill=\"\(color)\"/>"
            s += "<text x=\"\(f(lx - wText))\" y=\"\(f(frame.top - 8))\">\(escapeXML(label))</text>"
            lx -= wText + 30
        }
        return s + "</svg>\n"
    }
}
