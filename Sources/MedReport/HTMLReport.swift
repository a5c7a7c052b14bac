import Foundation

/// One self-contained HTML page: sections of text, tables, inline SVG charts and image grids; no script, no network,
/// a small stylesheet that reads well on a desktop, on a phone-width window and on paper.
public struct HTMLReport: Sendable {
    public var title: String
    public var subtitle: String?
    private var body: [String] = []

    public init(title: String, subtitle: String? = nil) { self.title = title; self.subtitle = subtitle }

    public mutating func heading(_ text: String, id: String? = nil) {
        body.append("<h2\(id.map { " id=\"\(escapeXML($0))\"" } ?? "")>\(escapeXML(text))</h2>")
    }

    public mutating func paragraph(_ text: String) { body.append("<p>\(escapeXML(text))</p>") }

    /// A bulleted list (e.g. findings), the first item emphasised when asked.
    public mutating func list(_ items: [String], emphasiseFirst: Bool = false) {
        body.append("<ul class=\"findings\">" + items.enumerated().map { i, t in
            "<li\(i == 0 && emphasiseFirst ? " class=\"first\"" : "")>\(escapeXML(t))</li>"
        }.joined() + "</ul>")
    }

    /// A table; `numeric` columns are right-aligned. The caption sits above it at the page's width; a table wider
    /// than the screen scrolls sideways on its own.
    public mutating func table(header: [String], rows: [[String]], numeric: Set<Int> = [], caption: String? = nil) {
        var s = caption.map { "<p class=\"caption\">\(escapeXML($0))</p>" } ?? ""
        s += "<div class=\"table-wrap\"><table>"
        s += "<thead><tr>" + header.enumerated().map { "<th\(numeric.contains($0.offset) ? " class=\"num\"" : "")>\(escapeXML($0.element))</th>" }.joined() + "</tr></thead><tbody>"
        for r in rows {
            s += "<tr>" + r.enumerated().map { "<td\(numeric.contains($0.offset) ? " class=\"num\"" : "")>\(escapeXML($0.element))</td>" }.joined() + "</tr>"
        }
        body.append(s + "</tbody></table></div>")
    }

    /// Inline SVG figures side by side (wrapping on narrow screens), each with an optional caption.
    public mutating func figures(_ svgs: [(svg: String, caption: String?)]) {
        body.append("<div class=\"figures\">" + svgs.map { "<figure class=\"chart\">\($0.svg)\($0.caption.map { "<figcaption>\(escapeXML($0))</figcaption>" } ?? "")</figure>" }.joined() + "</div>")
    }

    public mutating func raw(_ html: String) { body.append(html) }

    public var html: String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escapeXML(title))</title>
        <style>
        body{font-family:Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;padding:16px 20px;color:#111;line-height:1.45}
        h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
        .subtitle{color:#555;margin-top:0}
        .findings li{margin:.3em 0}.findings li.first{font-weight:bold}
        .table-wrap{overflow-x:auto}table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
        th,td{border-bottom:1px solid #e3e3e3;padding:4px 10px;text-align:left;white-space:nowrap}th{background:#f4f6f8}
        td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}p.caption{color:#555;margin:.8em 0 0;max-width:900px}
        .figures{display:flex;flex-wrap:wrap;gap:18px}figure{margin:0}figure.chart svg{max-width:100%;height:auto}
        figcaption{font-size:.85em;color:#555;max-width:560px}
        .grid-row{display:flex;flex-wrap:wrap;align-items:flex-start;gap:8px;margin:8px 0}.grid-title{width:140px;font-weight:bold}
        .grid figure{text-align:center}.grid img{image-rendering:auto;border:1px solid #ccc}.grid figcaption{max-width:110px;font-size:.75em}
        .note{color:#555;font-size:.9em}
        @media (max-width:700px){body{padding:10px}.grid-title{width:100%}}
        @media print{body{max-width:none}.figures{display:block}}
        </style></head><body>
        <h1>\(escapeXML(title))</h1>
        \(subtitle.map { "<p class=\"subtitle\">\(escapeXML($0))</p>" } ?? "")
        \(body.joined(separator: "\n"))
        </body></html>

        """
    }
}
