import Foundation
import Testing
import MedData

@Suite("Slices")
struct SlicesTests {
    @Test("grayscale: BT.601 luminance of colour slices, z-scored again")
    func grayscale() {
        // One 2 x 2 slice of 3 channels (planes R, G, B): R (1, 3, 0, 0), G (0, 2, 0, 0), B (4, 0, 0, 0): luminance
        // 0.299 + 0.456 = 0.755, 0.897 + 1.174 = 2.071, 0, 0; then z-scored (population sd).
        let s = ImageSlices(values: [1, 3, 0, 0, 0, 2, 0, 0, 4, 0, 0, 0], count: 1, channels: 3, size: 2)
        let g = s.grayscale()
        #expect(g.channels == 1 && g.count == 1)
        // Pixels 0 and 1 carry the values, 2 and 3 are zero in every channel.
        let lum: [Float] = [0.299 * 1 + 0.114 * 4, 0.299 * 3 + 0.587 * 2, 0, 0]
        let mean = lum.reduce(0, +) / 4, sd = (lum.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4).squareRoot()
        #expect(zip(g.values, lum.map { ($0 - mean) / sd }).allSatisfy { abs($0 - $1) < 1e-5 })
    }
}
