using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SharpTune.Generation;

/// <summary>
/// The batch-1 matrix-vector products of <see cref="CpuDecoder"/>, read straight from the weights' native memory:
/// fp32, int8 rows with a per-row scale (bitsandbytes' Linear8bitLt layout) and blockwise 4-bit codes (NF4/FP4, two
/// per byte, high nibble first, one float scale per block of the flattened weight). Decoding one token is bound by
/// the bytes of weight it streams, so the quantized kernels decode straight from the packed bytes instead of
/// expanding them to fp32 first.
/// <para>
/// Each kernel walks one row at a time with four independent accumulators: one sequential stream per core is what the
/// hardware prefetchers follow best (measured on Zen 4: 4 interleaved rows stream ~25% slower), and four chains hide
/// the FMA latency. Where AVX-512 is accelerated the 512-bit variants run (half the instructions per byte, which the
/// int8 and 4-bit decoding need); otherwise the AVX2 ones. Both are internal so tests hold each against a reference.
/// </para>
/// The hot methods are compiled optimised at once (AggressiveOptimization): tier-0 code of vector intrinsics is many
/// times slower, and a generation is over before tiering would replace it.
/// </summary>
internal static unsafe class DecodeKernels
{
    /// <summary>True when this CPU has the vector instructions the kernels use (AVX2 + FMA).</summary>
    public static bool IsSupported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>True when the 512-bit kernels run (AVX-512 F/BW present and not demoted by the runtime for throttling).</summary>
    public static bool UsesAvx512 => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported;

    /// <summary>y[r] = W[r, :] · x (+ bias[r]) for r in [start, end); W fp32 row-major [rows, cols].</summary>
    public static void Float32Rows(float* w, float* x, float* bias, float* y, int cols, int start, int end)
    {
        if (UsesAvx512)
            Float32Rows512(w, x, bias, y, cols, start, end);
        else
            Float32Rows256(w, x, bias, y, cols, start, end);
    }

    internal static void Float32Rows512(float* w, float* x, float* bias, float* y, int cols, int start, int end) =>
        Rows512<float, Float32Weights>(w, null, x, bias, y, cols, start, end);

    internal static void Float32Rows256(float* w, float* x, float* bias, float* y, int cols, int start, int end) =>
        Rows256<float, Float32Weights>(w, null, x, bias, y, cols, start, end);

    /// <summary>y[r] = (codes[r, :] · x) × scale[r] (+ bias[r]); codes int8 [rows, cols], scale = row absmax / 127.</summary>
    public static void Int8Rows(sbyte* codes, float* scale, float* x, float* bias, float* y, int cols, int start, int end)
    {
        if (UsesAvx512)
            Int8Rows512(codes, scale, x, bias, y, cols, start, end);
        else
            Int8Rows256(codes, scale, x, bias, y, cols, start, end);
    }

    internal static void Int8Rows512(sbyte* codes, float* scale, float* x, float* bias, float* y, int cols, int start, int end) =>
        Rows512<sbyte, Int8Weights>(codes, scale, x, bias, y, cols, start, end);

    internal static void Int8Rows256(sbyte* codes, float* scale, float* x, float* bias, float* y, int cols, int start, int end) =>
        Rows256<sbyte, Int8Weights>(codes, scale, x, bias, y, cols, start, end);

    /// <summary>How a row kernel reads weights as floats: fp32 as stored, int8 sign-extended and converted. The kernels
    /// are generic over it (a struct, so the JIT compiles each pairing on its own, with the loads inlined).</summary>
    private interface IWeights<TWeight> where TWeight : unmanaged
    {
        static abstract Vector512<float> Load512(TWeight* at);
        static abstract Vector256<float> Load256(TWeight* at);
        static abstract float Scalar(TWeight* at);
    }

    private readonly struct Float32Weights : IWeights<float>
    {
        public static Vector512<float> Load512(float* at) => Vector512.Load(at);
        public static Vector256<float> Load256(float* at) => Vector256.Load(at);
        public static float Scalar(float* at) => *at;
    }

    private readonly struct Int8Weights : IWeights<sbyte>
    {
        public static Vector512<float> Load512(sbyte* at) => Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(at)));
        public static Vector256<float> Load256(sbyte* at) => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(at));
        public static float Scalar(sbyte* at) => *at;
    }

    /// <summary>y[r] = (W[r, :] · x) × scale[r] (scale null: 1) + bias[r] (bias null: 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows512<TWeight, TLoad>(TWeight* w, float* scale, float* x, float* bias, float* y, int cols, int start, int end)
        where TWeight : unmanaged where TLoad : struct, IWeights<TWeight>
    {
        for (var r = start; r < end; r++)
        {
            var row = w + (long)r * cols;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            var i = 0;
            for (; i + 64 <= cols; i += 64)
            {
                a0 = Avx512F.FusedMultiplyAdd(TLoad.Load512(row + i), Vector512.Load(x + i), a0);
                a1 = Avx512F.FusedMultiplyAdd(TLoad.Load512(row + i + 16), Vector512.Load(x + i + 16), a1);
                a2 = Avx512F.FusedMultiplyAdd(TLoad.Load512(row + i + 32), Vector512.Load(x + i + 32), a2);
                a3 = Avx512F.FusedMultiplyAdd(TLoad.Load512(row + i + 48), Vector512.Load(x + i + 48), a3);
            }
            for (; i + 16 <= cols; i += 16)
                a0 = Avx512F.FusedMultiplyAdd(TLoad.Load512(row + i), Vector512.Load(x + i), a0);
            var s = Vector512.Sum(a0 + a1 + (a2 + a3));
            for (; i < cols; i++)
                s += TLoad.Scalar(row + i) * x[i];
            y[r] = (scale == null ? s : s * scale[r]) + Bias(bias, r);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows256<TWeight, TLoad>(TWeight* w, float* scale, float* x, float* bias, float* y, int cols, int start, int end)
        where TWeight : unmanaged where TLoad : struct, IWeights<TWeight>
    {
        for (var r = start; r < end; r++)
        {
            var row = w + (long)r * cols;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            var i = 0;
            for (; i + 32 <= cols; i += 32)
            {
                a0 = Fma.MultiplyAdd(TLoad.Load256(row + i), Vector256.Load(x + i), a0);
                a1 = Fma.MultiplyAdd(TLoad.Load256(row + i + 8), Vector256.Load(x + i + 8), a1);
                a2 = Fma.MultiplyAdd(TLoad.Load256(row + i + 16), Vector256.Load(x + i + 16), a2);
                a3 = Fma.MultiplyAdd(TLoad.Load256(row + i + 24), Vector256.Load(x + i + 24), a3);
            }
            for (; i + 8 <= cols; i += 8)
                a0 = Fma.MultiplyAdd(TLoad.Load256(row + i), Vector256.Load(x + i), a0);
            var s = Vector256.Sum(a0 + a1 + (a2 + a3));
            for (; i < cols; i++)
                s += TLoad.Scalar(row + i) * x[i];
            y[r] = (scale == null ? s : s * scale[r]) + Bias(bias, r);
        }
    }

    /// <summary>
    /// Splits x into its even and odd elements, the layout <see cref="FourBitRows"/> reads: a byte's high nibble
    /// multiplies an even element and its low nibble the next one, so with x split, 16 bytes widen to one vector of
    /// high-nibble codes against 16 even elements and one of low-nibble codes against 16 odd ones, with no shuffles.
    /// </summary>
    public static void SplitEvenOdd(float* x, float* even, float* odd, int count)
    {
        for (var i = 0; i < count / 2; i++)
        {
            even[i] = x[2 * i];
            odd[i] = x[2 * i + 1];
        }
    }

    /// <summary>
    /// y[r] = Σ dequantized W[r, :] × x (+ bias[r]) for 4-bit codes: element e of the flattened [rows, cols] weight is
    /// nibble e of <paramref name="packed"/> (high first), scaled by absmax[e / blockSize]; <paramref name="codebook"/>
    /// holds the 16 code values. x comes split by <see cref="SplitEvenOdd"/>. cols and blockSize must be even.
    /// </summary>
    public static void FourBitRows(byte* packed, float* absmax, float* codebook, int blockSize, float* xEven, float* xOdd,
        float* bias, float* y, int cols, int start, int end)
    {
        if (UsesAvx512)
            FourBitRows512(packed, absmax, codebook, blockSize, xEven, xOdd, bias, y, cols, start, end);
        else
            FourBitRows256(packed, absmax, codebook, blockSize, xEven, xOdd, bias, y, cols, start, end);
    }

    /// <summary>16 bytes per step: one in-register table lookup (vpermps over the 16 code values) per 16 nibbles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void FourBitRows512(byte* packed, float* absmax, float* codebook, int blockSize, float* xEven, float* xOdd,
        float* bias, float* y, int cols, int start, int end)
    {
        var table = Vector512.Load(codebook);
        var lowNibble = Vector512.Create(15u);
        for (var r = start; r < end; r++)
        {
            long rowStart = (long)r * cols, rowEnd = rowStart + cols, e = rowStart;
            var total = Vector512<float>.Zero;
            var tail = 0f;
            // One division per row: a row's segments are consecutive blocks.
            for (var block = e / blockSize; e < rowEnd; block++)
            {
                var segmentEnd = Math.Min(rowEnd, (block + 1) * blockSize);
                var scale = absmax[block];
                var bytes = packed + e / 2;
                var offset = (int)(e - rowStart) / 2;
                float* even = xEven + offset, odd = xOdd + offset;
                var count = (int)(segmentEnd - e) / 2;
                Vector512<float> high = default, low = default;
                var i = 0;
                for (; i + 16 <= count; i += 16)
                {
                    var codes = Avx512F.ConvertToVector512UInt32(Vector128.Load(bytes + i));
                    high = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, Avx512F.ShiftRightLogical(codes, 4).AsInt32()), Vector512.Load(even + i), high);
                    low = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, Avx512F.And(codes, lowNibble).AsInt32()), Vector512.Load(odd + i), low);
                }
                total = Avx512F.FusedMultiplyAdd(high + low, Vector512.Create(scale), total);
                tail += TailSum(bytes, codebook, even, odd, i, count) * scale;
                e = segmentEnd;
            }
            y[r] = Vector512.Sum(total) + tail + Bias(bias, r);
        }
    }

    /// <summary>8 bytes per step; a 16-entry lookup is two 8-entry permutes blended on the code's bit 3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void FourBitRows256(byte* packed, float* absmax, float* codebook, int blockSize, float* xEven, float* xOdd,
        float* bias, float* y, int cols, int start, int end)
    {
        var tableLow = Vector256.Load(codebook);
        var tableHigh = Vector256.Load(codebook + 8);
        var lowNibble = Vector256.Create(15);
        for (var r = start; r < end; r++)
        {
            long rowStart = (long)r * cols, rowEnd = rowStart + cols, e = rowStart;
            var total = Vector256<float>.Zero;
            var tail = 0f;
            // One division per row: a row's segments are consecutive blocks.
            for (var block = e / blockSize; e < rowEnd; block++)
            {
                var segmentEnd = Math.Min(rowEnd, (block + 1) * blockSize);
                var scale = absmax[block];
                var bytes = packed + e / 2;
                var offset = (int)(e - rowStart) / 2;
                float* even = xEven + offset, odd = xOdd + offset;
                var count = (int)(segmentEnd - e) / 2;
                Vector256<float> high = default, low = default;
                var i = 0;
                for (; i + 8 <= count; i += 8)
                {
                    var codes = Avx2.ConvertToVector256Int32(bytes + i);
                    high = Fma.MultiplyAdd(Lookup(Avx2.ShiftRightLogical(codes, 4), tableLow, tableHigh), Vector256.Load(even + i), high);
                    low = Fma.MultiplyAdd(Lookup(Avx2.And(codes, lowNibble), tableLow, tableHigh), Vector256.Load(odd + i), low);
                }
                total = Fma.MultiplyAdd(high + low, Vector256.Create(scale), total);
                tail += TailSum(bytes, codebook, even, odd, i, count) * scale;
                e = segmentEnd;
            }
            y[r] = Vector256.Sum(total) + tail + Bias(bias, r);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector256<float> Lookup(Vector256<int> code, Vector256<float> tableLow, Vector256<float> tableHigh) =>
            Avx.BlendVariable(Avx2.PermuteVar8x32(tableLow, code), Avx2.PermuteVar8x32(tableHigh, code), Avx2.ShiftLeftLogical(code, 28).AsSingle());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float TailSum(byte* bytes, float* codebook, float* even, float* odd, int from, int count)
    {
        var sum = 0f;
        for (var i = from; i < count; i++)
            sum += codebook[bytes[i] >> 4] * even[i] + codebook[bytes[i] & 15] * odd[i];
        return sum;
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
