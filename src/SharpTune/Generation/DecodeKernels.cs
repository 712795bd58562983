using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SharpTune.Generation;

/// <summary>
/// The batch-1 matrix-vector products of <see cref="CpuDecoder"/>, read straight from the weights' native memory:
/// fp32, int8 rows with a per-row scale (bitsandbytes' Linear8bitLt layout) and blockwise 4-bit codes (NF4/FP4, two
/// per byte, high nibble first, one float scale per block of the flattened weight). Decoding one token is bound by
/// the bytes of weight it streams, so the quantized kernels decode straight from the packed bytes instead of
/// expanding them to fp32 first. Rows are split over threads only when a product is big enough to pay for the hand-off.
/// The hot methods are compiled optimised at once (AggressiveOptimization): tier-0 code of vector intrinsics is many
/// times slower, and a generation is over before tiering would replace it.
/// </summary>
internal static unsafe class DecodeKernels
{
    /// <summary>Multiply-adds below which one thread does a product alone (the fork/join costs a few microseconds).</summary>
    private const long ParallelThreshold = 1 << 16;

    /// <summary>True when this CPU has the vector instructions the kernels use (AVX2 + FMA).</summary>
    public static bool IsSupported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>Runs <paramref name="rows"/> rows in at most <paramref name="threads"/> contiguous blocks.</summary>
    public static void ForRows(int rows, long work, int threads, Action<int, int> body)
    {
        var blocks = work < ParallelThreshold ? 1 : Math.Min(threads, Math.Max(1, rows / 8));
        if (blocks <= 1)
        {
            body(0, rows);
            return;
        }
        // Block boundaries on multiples of 4 rows keep the 4-row inner loops whole.
        var per = (rows / blocks + 3) & ~3;
        Parallel.For(0, blocks, new ParallelOptions { MaxDegreeOfParallelism = blocks }, b =>
        {
            var start = Math.Min(rows, b * per);
            var end = b == blocks - 1 ? rows : Math.Min(rows, start + per);
            if (start < end)
                body(start, end);
        });
    }

    /// <summary>y[r] = W[r, :] · x (+ bias[r]) for r in [start, end); W fp32 row-major [rows, cols].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Float32Rows(float* w, float* x, float* bias, float* y, int cols, int start, int end)
    {
        var r = start;
        for (; r + 4 <= end; r += 4)
        {
            float* w0 = w + (long)r * cols, w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            var i = 0;
            for (; i + 8 <= cols; i += 8)
            {
                var xv = Avx.LoadVector256(x + i);
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + i), xv, a0);
                a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + i), xv, a1);
                a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + i), xv, a2);
                a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + i), xv, a3);
            }
            float s0 = Vector256.Sum(a0), s1 = Vector256.Sum(a1), s2 = Vector256.Sum(a2), s3 = Vector256.Sum(a3);
            for (; i < cols; i++)
            {
                s0 += w0[i] * x[i];
                s1 += w1[i] * x[i];
                s2 += w2[i] * x[i];
                s3 += w3[i] * x[i];
            }
            y[r] = s0 + Bias(bias, r);
            y[r + 1] = s1 + Bias(bias, r + 1);
            y[r + 2] = s2 + Bias(bias, r + 2);
            y[r + 3] = s3 + Bias(bias, r + 3);
        }
        for (; r < end; r++)
            y[r] = Dot(w + (long)r * cols, x, cols) + Bias(bias, r);
    }

    /// <summary>y[r] = (codes[r, :] · x) × scale[r] (+ bias[r]); codes int8 [rows, cols], scale = row absmax / 127.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Int8Rows(sbyte* codes, float* scale, float* x, float* bias, float* y, int cols, int start, int end)
    {
        var r = start;
        for (; r + 2 <= end; r += 2)
        {
            sbyte* c0 = codes + (long)r * cols, c1 = c0 + cols;
            Vector256<float> a0 = default, a1 = default;
            var i = 0;
            for (; i + 8 <= cols; i += 8)
            {
                var xv = Avx.LoadVector256(x + i);
                a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(c0 + i)), xv, a0);
                a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(c1 + i)), xv, a1);
            }
            float s0 = Vector256.Sum(a0), s1 = Vector256.Sum(a1);
            for (; i < cols; i++)
            {
                s0 += c0[i] * x[i];
                s1 += c1[i] * x[i];
            }
            y[r] = s0 * scale[r] + Bias(bias, r);
            y[r + 1] = s1 * scale[r + 1] + Bias(bias, r + 1);
        }
        for (; r < end; r++)
        {
            var c = codes + (long)r * cols;
            var s = 0f;
            for (var i = 0; i < cols; i++)
                s += c[i] * x[i];
            y[r] = s * scale[r] + Bias(bias, r);
        }
    }

    /// <summary>
    /// y[r] = Σ dequantized W[r, :] × x (+ bias[r]) for 4-bit codes: element e of the flattened [rows, cols] weight is
    /// nibble e of <paramref name="packed"/> (high first), scaled by absmax[e / blockSize]. <paramref name="pairs"/> holds,
    /// for every byte, its two decoded code-book values side by side (one 8-byte gather decodes a byte). cols must be even.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FourBitRows(byte* packed, float* absmax, double* pairs, int blockSize, float* x, float* bias, float* y,
        int cols, int start, int end)
    {
        for (var r = start; r < end; r++)
        {
            var rowStart = (long)r * cols;
            var total = Vector256<float>.Zero;
            var tail = 0f;
            var e = rowStart;
            var rowEnd = rowStart + cols;
            while (e < rowEnd)
            {
                var block = e / blockSize;
                var segmentEnd = Math.Min(rowEnd, (block + 1) * blockSize);
                var scale = absmax[block];
                var acc = Vector256<float>.Zero;
                var bytes = packed + e / 2;
                var xs = x + (e - rowStart);
                var n = (int)(segmentEnd - e);
                var i = 0;
                for (; i + 8 <= n; i += 8)
                {
                    // Four bytes -> four pair indices -> eight decoded values.
                    var index = Sse41.ConvertToVector128Int32(bytes + i / 2);
                    var values = Avx2.GatherVector256(pairs, index, 8).AsSingle();
                    acc = Fma.MultiplyAdd(values, Avx.LoadVector256(xs + i), acc);
                }
                total = Fma.MultiplyAdd(acc, Vector256.Create(scale), total);
                for (; i < n; i += 2)
                {
                    var pair = (float*)(pairs + bytes[i / 2]);
                    tail += (pair[0] * xs[i] + pair[1] * xs[i + 1]) * scale;
                }
                e = segmentEnd;
            }
            y[r] = Vector256.Sum(total) + tail + Bias(bias, r);
        }
    }

    /// <summary>x · y over n floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static float Dot(float* x, float* y, int n)
    {
        Vector256<float> a = default;
        var i = 0;
        for (; i + 8 <= n; i += 8)
            a = Fma.MultiplyAdd(Avx.LoadVector256(x + i), Avx.LoadVector256(y + i), a);
        var s = Vector256.Sum(a);
        for (; i < n; i++)
            s += x[i] * y[i];
        return s;
    }

    /// <summary>y += a × x over n floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddScaled(float* y, float a, float* x, int n)
    {
        var av = Vector256.Create(a);
        var i = 0;
        for (; i + 8 <= n; i += 8)
            Avx.Store(y + i, Fma.MultiplyAdd(Avx.LoadVector256(x + i), av, Avx.LoadVector256(y + i)));
        for (; i < n; i++)
            y[i] += a * x[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Bias(float* bias, int r) => bias == null ? 0f : bias[r];
}
