using SharpTune.Generation;
using SharpTune.Quantization;

namespace SharpTune.Tests.Generation;

/// <summary>
/// The fused decoder's matrix-vector kernels, both widths, against a double-precision reference on shapes that exercise
/// every unrolled loop and tail (columns below, at and between vector multiples; 4-bit blocks that straddle rows),
/// with and without bias, on a sub-range of rows. On a CPU without AVX-512 the 512-bit case checks that the dispatcher
/// runs the AVX2 kernel instead.
/// </summary>
public unsafe class DecodeKernelsTests
{
    public static TheoryData<int, int> Shapes => new() { { 5, 1 }, { 9, 7 }, { 6, 16 }, { 7, 17 }, { 4, 63 }, { 5, 64 }, { 3, 130 }, { 11, 288 } };

    private static float[] Random(Random random, int length, double scale = 1) =>
        Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() * 2 - 1) * scale)).ToArray();

    /// <summary>Asserts y over [start, end) against the reference (bounded by the dot product's magnitude) and that
    /// rows outside it were not written.</summary>
    private static void AssertRows(float[] y, Func<int, (double Value, double Magnitude)> reference, int start, int end)
    {
        for (var r = 0; r < y.Length; r++)
        {
            if (r < start || r >= end)
            {
                Assert.True(float.IsNaN(y[r]), $"row {r} outside [{start}, {end}) was written");
                continue;
            }
            var (value, magnitude) = reference(r);
            Assert.True(Math.Abs(y[r] - value) <= 1e-5 * (magnitude + 1), $"row {r}: {y[r]} vs {value}");
        }
    }

    private static float[] Output(int rows) => Enumerable.Repeat(float.NaN, rows).ToArray();

    private static bool Skip512(bool wide) => wide && !DecodeKernels.UsesAvx512;

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Float32RowsMatchTheReference(int rows, int cols)
    {
        var random = new Random(rows * 1000 + cols);
        float[] w = Random(random, rows * cols), x = Random(random, cols), bias = Random(random, rows);
        foreach (var wide in new[] { false, true })
        foreach (var withBias in new[] { false, true })
        {
            var y = Output(rows);
            int start = rows > 2 ? 1 : 0, end = rows;
            fixed (float* wp = w, xp = x, bp = bias, yp = y)
            {
                var b = withBias ? bp : null;
                if (Skip512(wide))
                {
                    DecodeKernels.Float32Rows(wp, xp, b, yp, cols, start, end);
                    var narrow = Output(rows);
                    fixed (float* np = narrow)
                        DecodeKernels.Float32Rows256(wp, xp, b, np, cols, start, end);
                    Assert.Equal(narrow, y);
                    continue;
                }
                if (wide)
                    DecodeKernels.Float32Rows512(wp, xp, b, yp, cols, start, end);
                else
                    DecodeKernels.Float32Rows256(wp, xp, b, yp, cols, start, end);
            }
            AssertRows(y, r => Reference(r, c => w[r * cols + c], x, withBias ? bias[r] : 0), start, end);
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Int8RowsMatchTheReference(int rows, int cols)
    {
        var random = new Random(rows * 1000 + cols + 1);
        var codes = Enumerable.Range(0, rows * cols).Select(_ => (sbyte)random.Next(-127, 128)).ToArray();
        float[] scale = Random(random, rows, 0.01), x = Random(random, cols), bias = Random(random, rows);
        foreach (var wide in new[] { false, true })
        {
            var y = Output(rows);
            fixed (sbyte* cp = codes)
            fixed (float* sp = scale, xp = x, bp = bias, yp = y)
            {
                if (Skip512(wide))
                {
                    DecodeKernels.Int8Rows(cp, sp, xp, bp, yp, cols, 0, rows);
                    var narrow = Output(rows);
                    fixed (float* np = narrow)
                        DecodeKernels.Int8Rows256(cp, sp, xp, bp, np, cols, 0, rows);
                    Assert.Equal(narrow, y);
                    continue;
                }
                if (wide)
                    DecodeKernels.Int8Rows512(cp, sp, xp, bp, yp, cols, 0, rows);
                else
                    DecodeKernels.Int8Rows256(cp, sp, xp, bp, yp, cols, 0, rows);
            }
            AssertRows(y, r => Reference(r, c => codes[r * cols + c] * (double)scale[r], x, bias[r]), 0, rows);
        }
    }

    [Theory]
    [InlineData(4, 64, 64, FourBitType.Nf4)]
    [InlineData(6, 288, 64, FourBitType.Nf4)]
    [InlineData(5, 40, 32, FourBitType.Nf4)]   // blocks straddle rows
    [InlineData(7, 18, 32, FourBitType.Fp4)]   // several rows per block, 9-byte rows
    [InlineData(3, 130, 128, FourBitType.Fp4)]
    public void FourBitRowsMatchTheReference(int rows, int cols, int blockSize, FourBitType type)
    {
        var random = new Random(rows * 1000 + cols + blockSize);
        var packed = Enumerable.Range(0, rows * cols / 2).Select(_ => (byte)random.Next(256)).ToArray();
        var absmax = Random(random, (rows * cols + blockSize - 1) / blockSize).Select(Math.Abs).ToArray();
        var codebook = QuantCodebooks.FourBit(type).ToArray();
        float[] x = Random(random, cols), bias = Random(random, rows), even = new float[cols / 2], odd = new float[cols / 2];
        double Weight(int r, int c)
        {
            var e = r * cols + c;
            var code = e % 2 == 0 ? packed[e / 2] >> 4 : packed[e / 2] & 15;
            return codebook[code] * (double)absmax[e / blockSize];
        }
        foreach (var wide in new[] { false, true })
        {
            var y = Output(rows);
            int start = 1, end = rows - 1;
            fixed (byte* pp = packed)
            fixed (float* ap = absmax, cb = codebook, xp = x, ep = even, op = odd, bp = bias, yp = y)
            {
                DecodeKernels.SplitEvenOdd(xp, ep, op, cols);
                if (Skip512(wide))
                {
                    DecodeKernels.FourBitRows(pp, ap, cb, blockSize, ep, op, bp, yp, cols, start, end);
                    var narrow = Output(rows);
                    fixed (float* np = narrow)
                        DecodeKernels.FourBitRows256(pp, ap, cb, blockSize, ep, op, bp, np, cols, start, end);
                    Assert.Equal(narrow, y);
                    continue;
                }
                if (wide)
                    DecodeKernels.FourBitRows512(pp, ap, cb, blockSize, ep, op, bp, yp, cols, start, end);
                else
                    DecodeKernels.FourBitRows256(pp, ap, cb, blockSize, ep, op, bp, yp, cols, start, end);
            }
            AssertRows(y, r => Reference(r, c => Weight(r, c), x, bias[r]), start, end);
        }
    }

    private static (double, double) Reference(int row, Func<int, double> weight, float[] x, double bias)
    {
        double sum = bias, magnitude = Math.Abs(bias);
        for (var c = 0; c < x.Length; c++)
        {
            sum += weight(c) * x[c];
            magnitude += Math.Abs(weight(c) * x[c]);
        }
        return (sum, magnitude);
    }
}
