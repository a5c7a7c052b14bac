import Foundation
import Testing
@testable import MedReport

/// The charts' geometry read back from their SVG: where the marks are, not how they look.
struct ChartTests {
    /// Centres of every `<circle>` in document order.
    static func circles(_ svg: String) -> [(x: Double, y: Double)] {
        svg.components(separatedBy: "<circle ").dropFirst().map { part in
            (attribute("cx", part), attribute("cy", part))
        }
    }

    static func attribute(_ name: String, _ tag: String) -> Double {
        guard let r = tag.range(of: " \(name)=\"") ?? tag.range(of: "\(name)=\"") else { return .nan }
        return Double(tag[r.upperBound...].prefix { $0 != "\"" }) ?? .nan
    }

    @Test func niceScaleTicksByHand() {
        // (0.99 - 0.93) / 5 = 0.012 -> step 0.02 (the first of 1, 2, 5 x 0.01 at least 0.012); 0.93 / 0.02 = 46.5 -> 0.92.
        let s = NiceScale(0.93, 0.99)
        #expect(abs(s.step - 0.02) < 1e-12 && abs(s.lower - 0.92) < 1e-12 && abs(s.upper - 1.0) < 1e-12)
        #expect(s.ticks.count == 5)
        // A degenerate range is widened around its value.
        let d = NiceScale(3, 3)
        #expect(d.lower < 3 && d.upper > 3)
    }

    @Test func dotPlotPlacesEveryFiniteValueInOrder() {
        var plot = DotPlot(title: "Dice", xLabel: "Dice", categories: ["random", "xssr"], series: ["CHN", "SiteC"],
                           values: [[0.90, 0.95], [.nan, 0.95]], errors: [[0.01, 0], [0, 0]])
        plot.width = 600
        let svg = plot.svg
        let all = Self.circles(svg)
        // Two legend dots, then one dot per finite value (the NaN is left out).
        #expect(all.count == 2 + 3)
        let dots = Array(all.dropFirst(2))
        let fr = plot.frame
        // Larger values lie further right, all inside the plotting area.
        #expect(dots[0].x < dots[1].x && abs(dots[1].x - dots[2].x) < 1e-6)
        #expect(dots.allSatisfy { $0.x >= fr.left - 1e-6 && $0.x <= 600 - fr.right + 1e-6 })
        // Rows run top to bottom in the categories' order; equal values in one row would not hide each other.
        #expect(dots[0].y < dots[2].y && dots[1].y < dots[2].y && dots[0].y != dots[1].y)
        // The whisker of 0.90 ± 0.01 is centred on its dot and spans the value range's pixels (linear axis).
        let whiskers = svg.components(separatedBy: "<line ").dropFirst().filter { $0.contains("stroke-width=\"1.5\"") }
        #expect(whiskers.count == 1)
        if let w = whiskers.first {
            let (x1, x2) = (Self.attribute("x1", w), Self.attribute("x2", w))
            #expect(abs((x1 + x2) / 2 - dots[0].x) < 0.02)
            // 0.01 of the axis in pixels: the distance between 0.90 and 0.95 is five times that.
            #expect(abs((dots[1].x - dots[0].x) - 5 * (x2 - x1) / 2) < 0.05)
        }
        #expect(svg.contains(">random</text>") && svg.contains(">xssr</text>") && svg.contains(">SiteC</text>"))
    }

    @Test func scatterLegendStaysRightOfThePoints() {
        // Points over the whole range, the rightmost in the top right corner where a legend used to sit.
        var points: [ScatterPlot.Point] = []
        for i in 0..<20 { points.append(.init(x: Double(i) / 19, y: Double(i % 5) / 4, group: i % 2)) }
        points.append(.init(x: 1, y: 1, label: "7", group: 1))
        var plot = ScatterPlot(title: "map", xLabel: "x", yLabel: "y", points: points)
        plot.groups = ["CHN", "a-longer-site-name"]
        plot.width = 480
        let all = Self.circles(plot.svg)
        #expect(all.count == points.count + 2)
        let dots = all.prefix(points.count), legend = all.suffix(2)
        let rightmost = dots.map(\.x).max()!
        #expect(legend.allSatisfy { $0.x > rightmost + 4 })
        // The legend's longest name still fits in the chart.
        #expect(legend.allSatisfy { $0.x + 10 + Double("a-longer-site-name".count) * 7 <= 480 })
    }
}
