import Foundation
import Testing
@testable import MedImage

@Suite("Affine and orientation")
struct GeometryTests {
    @Test("spacing and origin come from the affine's columns and translation")
    func spacingOrigin() {
        // Columns: (0, 0.9, 0), (-0.8, 0, 0), (0, 0, 2.5); hand-computed norms 0.9, 0.8, 2.5.
        let a = Affine(rows: [[0, -0.8, 0, 10], [0.9, 0, 0, -20], [0, 0, 2.5, 5], [0, 0, 0, 1]])
        #expect(a.spacing.enumerated().allSatisfy { abs($0.element - [0.9, 0.8, 2.5][$0.offset]) < 1e-12 })
        #expect(a.origin == [10, -20, 5])
        #expect(a.orientationCodes == "ALS")
    }

    @Test("orientation codes of standard frames", arguments: [
        ([1.0, 1, 1], "RAS"), ([-1.0, -1, 1], "LPS"), ([-1.0, 1, -1], "LAI"), ([1.0, -1, -1], "RPI"),
    ])
    func codes(diagonal: [Double], expected: String) {
        #expect(Affine.diagonal(spacing: diagonal).orientationCodes == expected)
    }

    @Test("an oblique frame maps to the closest axes")
    func oblique() {
        // 30 degrees about z: axis i -> (cos, sin, 0) is mostly +x (R); axis j -> (-sin, cos, 0) mostly +y (A).
        let c = cos(Double.pi / 6), s = sin(Double.pi / 6)
        let a = Affine(rows: [[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
        #expect(a.orientationCodes == "RAS")
        // 60 degrees: axis i is now mostly +y (A), axis j mostly -x (L).
        let c6 = cos(Double.pi / 3), s6 = sin(Double.pi / 3)
        let b = Affine(rows: [[c6, -s6, 0, 0], [s6, c6, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
        #expect(b.orientationCodes == "ALS")
    }

    @Test("a sheared frame uses the polar factor, not raw columns")
    func sheared() {
        // Strong shear: column j = (0.9, 1, 0) would tie toward x by raw comparison of rows only if we used RS directly
        // on the wrong axis; the greedy choice removes x after axis i claims it, so j must become A.
        let a = Affine(rows: [[1, 0.9, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
        #expect(a.orientationCodes == "RAS")
    }

    @Test("codes parse back and reject repeated axes")
    func parse() {
        #expect(Orientation(codes: "lps")?.codes == "LPS")
        #expect(Orientation(codes: "RRS") == nil)
        #expect(Orientation(codes: "RA") == nil)
    }

    @Test("inverse times affine is the identity")
    func inverse() throws {
        let a = Affine(rows: [[0, -0.8, 0.1, 10], [0.9, 0, 0, -20], [0, 0.05, 2.5, 5], [0, 0, 0, 1]])
        let inv = try #require(a.inverse)
        #expect((inv * a).maxAbsDifference(.identity) < 1e-12)
        #expect(Affine(rows: [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]).inverse == nil)
    }
}

@Suite("MedicalImage")
struct MedicalImageTests {
    @Test("index order is i fastest, then j, k, t")
    func indexOrder() {
        var img = MedicalImage(shape: ImageShape(2, 3, 4, 2))
        img[1, 2, 3, 1] = 7
        #expect(img.voxels[1 + 2 * (2 + 3 * (3 + 4 * 1))] == 7)
        #expect(img.shape.dimensions == [2, 3, 4, 2])
        #expect(ImageShape(5, 6).dimensions == [5, 6])
        #expect(ImageShape(5, 6, 1, 3).dimensions == [5, 6, 1, 3])
    }

    @Test("statistics ignore NaN and infinities and match a hand computation")
    func stats() throws {
        let img = MedicalImage(shape: ImageShape(5, 1), voxels: [1, .nan, 3, -2, .infinity])
        let s = try #require(img.statistics)
        #expect(s.min == -2 && s.max == 3 && abs(s.mean - 2.0 / 3.0) < 1e-12)
        #expect(MedicalImage(shape: ImageShape(1, 1), voxels: [.nan]).statistics == nil)
    }

    @Test("distinct values are sorted")
    func distinct() {
        let img = MedicalImage(shape: ImageShape(5, 1), voxels: [2, 0, 2, 1, 0], kind: .labelMap)
        #expect(img.distinctValues == [0, 1, 2])
    }
}
