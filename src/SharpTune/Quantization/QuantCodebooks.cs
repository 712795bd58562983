using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>The 4-bit data types of bitsandbytes.</summary>
public enum FourBitType
{
    /// <summary>NormalFloat4 (QLoRA): quantiles of a normal distribution, the best 4-bit type for normally distributed weights.</summary>
    Nf4,

    /// <summary>4-bit float: sign, 2 exponent bits, 1 mantissa bit.</summary>
    Fp4,
}

/// <summary>The code books (value tables) of bitsandbytes' data types, bit for bit.</summary>
public static class QuantCodebooks
{
    /// <summary>NF4 as published (QLoRA, appendix E; bitsandbytes <c>get_4bit_type("nf4")</c>), index = 4-bit code.</summary>
    public static IReadOnlyList<float> Nf4 { get; } =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>FP4 of bitsandbytes: codes 0b0000..0b0111 are 0, 0.0625, 8, 12, 4, 6, 2, 3 (bit 3 is the sign), divided by 12.</summary>
    public static IReadOnlyList<float> Fp4 { get; } =
        new[] { 0f, 0.0625f, 8f, 12f, 4f, 6f, 2f, 3f, -0f, -0.0625f, -8f, -12f, -4f, -6f, -2f, -3f }.Select(v => v / 12f).ToArray();

    /// <summary>The decision thresholds of bitsandbytes' CUDA NF4 quantizer (<c>dQuantizeNF4</c>): a scaled value x gets
    /// the code of the first threshold it is not above. They are the code-book midpoints as float literals, which differ
    /// by one ulp from midpoints computed in float32 (bitsandbytes' CPU backend) at four of the fifteen.</summary>
    public static IReadOnlyList<float> Nf4Thresholds { get; } =
    [
        -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f, -0.23460740596055984f,
        -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f, 0.1202552504837513f, 0.2035212516784668f,
        0.2920137718319893f, 0.3893125355243683f, 0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f,
    ];

    /// <summary>The magnitude thresholds of bitsandbytes' CUDA FP4 quantizer (<c>dQuantizeFP4</c>, rounded midpoints of
    /// |code|) and the 3-bit magnitude code of each interval; the sign bit (8) is set for x &lt; 0.</summary>
    public static IReadOnlyList<float> Fp4MagnitudeThresholds { get; } =
        [0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f];

    public static IReadOnlyList<byte> Fp4MagnitudeCodes { get; } = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011];

    public static IReadOnlyList<float> FourBit(FourBitType type) => type == FourBitType.Nf4 ? Nf4 : Fp4;

    public static string Name(FourBitType type) => type == FourBitType.Nf4 ? "nf4" : "fp4";

    public static FourBitType ParseFourBit(string name) => name.Trim().ToLowerInvariant() switch
    {
        "nf4" => FourBitType.Nf4,
        "fp4" => FourBitType.Fp4,
        _ => throw new ArgumentException($"unknown 4-bit quantization type '{name}' (expected nf4 or fp4)"),
    };

    /// <summary>bitsandbytes' dynamic 8-bit map (<c>create_dynamic_map</c>): a sign, a unary exponent of up to 7 decades and
    /// a linear fraction in the remaining bits; 256 sorted values. Signed for absmax constants and Adam's first moment,
    /// unsigned for the second moment.</summary>
    public static float[] Dynamic8Bit(bool signed)
    {
        const int maxExponentBits = 7, nonSignBits = 7;
        var data = new List<float>(256);
        for (var i = 0; i < maxExponentBits; i++)
        {
            var fractionItems = signed ? (1 << (i + nonSignBits - maxExponentBits)) + 1 : (1 << (i + nonSignBits - maxExponentBits + 1)) + 1;
            // Computed with libtorch's own float32 linspace and products so the table is identical to the Python one.
            using var boundaries = linspace(0.1, 1, fractionItems, ScalarType.Float32);
            using var means = (boundaries[..^1] + boundaries[1..]) / 2.0;
            var scale = Math.Pow(10, -(maxExponentBits - 1) + i);
            using var positive = means * scale;
            data.AddRange(positive.data<float>());
            if (signed)
            {
                using var negative = means * -scale;
                data.AddRange(negative.data<float>());
            }
        }
        data.Add(0f);
        data.Add(1f);
        while (data.Count < 256)
            data.Add(0f);
        data.Sort();
        return data.ToArray();
    }
}
